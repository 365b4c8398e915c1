"""Pretraining of the toy model: it writes a loadable pipeline and picks up where it stopped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ember.engine.toy.pretrain import PretrainConfig, PretrainConfigMismatchError, Pretraining

TINY = PretrainConfig(
    scenes=64,
    vae_steps=2,
    vae_batch=4,
    vae_free_colour_pictures=16,
    unet_steps=3,
    unet_batch=4,
    warmup_steps=4,
    decoder_steps=2,
    decoder_batch=4,
    decoder_polygon_pictures=16,
)


class Interrupted(Exception):
    pass


def test_pretraining_writes_a_half_precision_pipeline_and_its_record(tmp_path: Path) -> None:
    Pretraining(tmp_path / "work", TINY, threads=1).run(tmp_path / "out")

    index = json.loads((tmp_path / "out" / "pipeline" / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    record = json.loads((tmp_path / "out" / "pretraining.json").read_text())
    assert record["config"]["unet_steps"] == TINY.unet_steps
    from safetensors import safe_open

    with safe_open(str(tmp_path / "out" / "pipeline" / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert f.get_tensor(next(iter(f.keys()))).dtype.is_floating_point
        assert str(f.get_tensor(next(iter(f.keys()))).dtype) == "torch.float16"


def test_an_interrupted_pretraining_resumes_after_its_last_checkpoint(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []
    # Step 2 is interrupted before its checkpoint, so the last checkpoint is after step 1.

    def stop_during_second_unet_step(stage: str, step: int, total: int, loss: float) -> None:
        seen.append((stage, step))
        if stage == "unet" and step == 2:
            raise Interrupted

    first = Pretraining(tmp_path / "work", TINY, progress=stop_during_second_unet_step, threads=1)
    first.CHECKPOINT_SECONDS = 0.0
    with pytest.raises(Interrupted):
        first.run(tmp_path / "out")

    resumed: list[tuple[str, int]] = []
    Pretraining(tmp_path / "work", TINY, progress=lambda *a: resumed.append((a[0], a[1])), threads=1).run(
        tmp_path / "out"
    )
    assert resumed == [("unet", 2), ("unet", 3), ("decoder", 1), ("decoder", 2)]


def test_a_finished_pretraining_rerun_trains_nothing(tmp_path: Path) -> None:
    Pretraining(tmp_path / "work", TINY, threads=1).run(tmp_path / "out")
    steps: list[int] = []
    Pretraining(tmp_path / "work", TINY, progress=lambda *a: steps.append(a[1]), threads=1).run(tmp_path / "out")
    assert steps == []


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    Pretraining(tmp_path / "work", TINY, threads=1).run(tmp_path / "out")
    other = PretrainConfig(
        scenes=64, vae_steps=2, vae_batch=4, unet_steps=5, unet_batch=4, warmup_steps=4, decoder_steps=2
    )
    with pytest.raises(PretrainConfigMismatchError):
        Pretraining(tmp_path / "work", other, threads=1).run(tmp_path / "out")


def _tensors(path: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return dict(load_file(str(path)))


def test_the_decoder_stage_trains_the_decoder_only(tmp_path: Path) -> None:
    """The last stage changes the VAE's decoder and nothing the UNet depends on: encoder, latents' scale, UNet."""
    import torch

    Pretraining(tmp_path / "first", TINY, threads=1).run(tmp_path / "first-out")
    first = tmp_path / "first-out" / "pipeline"
    stages: list[str] = []
    later = Pretraining(tmp_path / "later", TINY, progress=lambda *a: stages.append(a[0]), threads=1)
    later.start_from_pipeline(first)
    record = later.run(tmp_path / "later-out")
    assert stages == ["decoder", "decoder"]
    assert set(record["final_losses"]) == {"vae", "unet", "decoder"}

    second = tmp_path / "later-out" / "pipeline"
    before = _tensors(first / "vae" / "diffusion_pytorch_model.safetensors")
    after = _tensors(second / "vae" / "diffusion_pytorch_model.safetensors")
    changed = {name for name in before if not torch.equal(before[name], after[name])}  # type: ignore[arg-type]
    assert changed and all(name.startswith(("decoder.", "post_quant_conv.")) for name in changed)
    unet_before = _tensors(first / "unet" / "diffusion_pytorch_model.safetensors")
    unet_after = _tensors(second / "unet" / "diffusion_pytorch_model.safetensors")
    assert unet_before.keys() == unet_after.keys()
    assert all(torch.equal(unet_before[n], unet_after[n]) for n in unet_before)  # type: ignore[arg-type]
    scale = [json.loads((p / "vae" / "config.json").read_text())["scaling_factor"] for p in (first, second)]
    assert scale[0] == scale[1]
