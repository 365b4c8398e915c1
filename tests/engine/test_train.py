"""LoRA training on `tiny`: learning, samples, checkpoints, resume, cancel, export, and the LoRA in use."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from ember.engine.train import TrainConfig, TrainingUnsupported, preset_for, train_lora
from ember.engine.types import Cancelled, InvalidRequest, LoraRef, TrainingExample
from ember.lora_formats import to_kohya

from .conftest import TRAINED_STEPS, TrainedLora, encode, triangle_picture

RESUME_TOLERANCE = 1e-6


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def small_examples(count: int = 6) -> list[TrainingExample]:
    return [TrainingExample(encode(triangle_picture(i)), "a green triangle") for i in range(count)]


def small_config(**fields: Any) -> TrainConfig:
    base = preset_for("tiny", "subject").with_overrides(
        steps=6, resolution=64, batch_size=2, checkpoint_every=3, sample_every=0, seed=5
    )
    return base.with_overrides(**fields)


def test_training_lowers_the_loss(trained: TrainedLora) -> None:
    losses = trained.result.losses
    assert len(losses) == TRAINED_STEPS
    assert np.mean(losses[-40:]) < np.mean(losses[:40])


def test_progress_reports_every_step_with_loss_and_eta(trained: TrainedLora) -> None:
    steps = [event for event in trained.events if event.loss is not None]
    assert [event.step for event in steps] == list(range(1, TRAINED_STEPS + 1))
    assert all(event.total == TRAINED_STEPS and event.eta_s is not None for event in steps)


def test_sample_images_are_made_every_n_steps_and_sent_as_previews(trained: TrainedLora) -> None:
    assert [path.name for path in trained.result.samples] == ["step-000100.png", "step-000200.png", "step-000300.png"]
    previews = [event.step for event in trained.events if event.preview is not None]
    assert previews == [100, 200, 300]


def test_checkpoints_are_written_under_the_work_dir(trained: TrainedLora) -> None:
    names = sorted(path.name for path in (trained.work_dir / "checkpoints").iterdir())
    assert names == ["step-000200", "step-000300"]


def test_subject_captions_carry_the_concept_word(trained: TrainedLora) -> None:
    assert all("zorb" in caption for caption in trained.result.captions)


def test_lora_file_is_diffusers_format_with_rank_and_alpha(trained: TrainedLora) -> None:
    with safe_open(str(trained.result.lora_path), framework="pt") as handle:
        keys = list(handle.keys())
        metadata = json.loads((handle.metadata() or {})["lora_adapter_metadata"])
    assert keys and all(key.startswith("unet.") and (".lora_A." in key or ".lora_B." in key) for key in keys)
    assert (metadata["unet.r"], metadata["unet.lora_alpha"]) == (trained.config.rank, trained.config.alpha)


def test_lora_changes_the_output_for_its_prompt(engine: Any, make_request: Any, trained: TrainedLora) -> None:
    request = make_request(prompt="a zorb")
    base = pixels(engine.generate(request)[0].data)
    with_lora = dataclasses.replace(request, loras=[LoraRef("zorb-1", trained.result.lora_path)])
    assert not np.array_equal(base, pixels(engine.generate(with_lora)[0].data))


def test_lora_weight_scales_its_effect(engine: Any, make_request: Any, trained: TrainedLora) -> None:
    request = make_request(prompt="a zorb")
    base = pixels(engine.generate(request)[0].data)

    def distance(weight: float) -> float:
        weighted = dataclasses.replace(request, loras=[LoraRef("zorb-1", trained.result.lora_path, weight)])
        return float(np.abs(pixels(engine.generate(weighted)[0].data) - base).mean())

    assert 0 < distance(0.3) < distance(1.0)


def test_requests_without_loras_are_unaffected_by_loaded_ones(
    engine: Any, make_request: Any, trained: TrainedLora
) -> None:
    before = pixels(engine.generate(make_request())[0].data)
    engine.generate(make_request(loras=[LoraRef("zorb-1", trained.result.lora_path)]))
    assert np.array_equal(pixels(engine.generate(make_request())[0].data), before)


def test_loras_are_kept_in_an_lru_of_the_configured_size(
    model_dir: Path, make_request: Any, trained: TrainedLora, tmp_path: Path
) -> None:
    from ember.engine.generate import Engine

    engine = Engine(model_dir, lora_cache_size=2)
    base = engine.pipeline("tiny")
    for key in ("a", "b", "c", "b"):
        copy = tmp_path / f"{key}.safetensors"
        shutil.copyfile(trained.result.lora_path, copy)
        engine.generate(make_request(steps=1, loras=[LoraRef(key, copy)]))
    assert engine.loaded_loras() == ["c", "b"]
    assert len(base.get_list_adapters()["unet"]) == 2  # the evicted adapter left the UNet
    assert engine.pipeline("tiny") is base  # switching LoRAs never reloads the base model


def test_several_loras_apply_together_each_with_its_weight(
    engine: Any, make_request: Any, trained: TrainedLora
) -> None:
    one = make_request(prompt="a zorb", loras=[LoraRef("zorb-1", trained.result.lora_path, 0.5)])
    two = dataclasses.replace(one, loras=[*one.loras, LoraRef("zorb-2", trained.result.lora_path, 0.5)])
    assert not np.array_equal(pixels(engine.generate(one)[0].data), pixels(engine.generate(two)[0].data))


def test_kohya_export_draws_the_same_image_as_the_diffusers_file(
    model_dir: Path, make_request: Any, trained: TrainedLora, tmp_path: Path
) -> None:
    from ember.engine.generate import Engine

    kohya = tmp_path / "zorb.kohya.safetensors"
    kohya.write_bytes(to_kohya(trained.result.lora_path.read_bytes()))
    assert all(key.startswith("lora_unet_") for key in load_file(str(kohya)))
    engine = Engine(model_dir)
    request = make_request(prompt="a zorb")
    from_diffusers = engine.generate(dataclasses.replace(request, loras=[LoraRef("d", trained.result.lora_path)]))
    from_kohya = engine.generate(dataclasses.replace(request, loras=[LoraRef("k", kohya)]))
    assert np.abs(pixels(from_diffusers[0].data) - pixels(from_kohya[0].data)).max() <= 2


def test_resume_from_a_checkpoint_reaches_the_weights_of_an_uninterrupted_run(model_dir: Path, tmp_path: Path) -> None:
    examples, config = small_examples(), small_config()
    straight = train_lora(
        "tiny", examples, config, tmp_path / "straight", model_dir=model_dir, mode="subject", concept="zorb"
    )
    seen: list[int] = []
    with pytest.raises(Cancelled):
        train_lora(
            "tiny",
            examples,
            config,
            tmp_path / "resumed",
            model_dir=model_dir,
            mode="subject",
            concept="zorb",
            progress=lambda event: seen.append(event.step),
            should_cancel=lambda: 4 in seen,
        )
    resumed = train_lora(
        "tiny", examples, config, tmp_path / "resumed", model_dir=model_dir, mode="subject", concept="zorb"
    )
    assert resumed.resumed_from == 3 and straight.resumed_from is None
    assert resumed.losses == pytest.approx(straight.losses, abs=RESUME_TOLERANCE)
    expected, actual = load_file(str(straight.lora_path)), load_file(str(resumed.lora_path))
    assert expected.keys() == actual.keys()
    assert max(float((expected[k] - actual[k]).abs().max()) for k in expected) <= RESUME_TOLERANCE


def test_cancel_stops_training_within_one_step(model_dir: Path, tmp_path: Path) -> None:
    steps: list[int] = []
    with pytest.raises(Cancelled):
        train_lora(
            "tiny",
            small_examples(),
            small_config(steps=50),
            tmp_path,
            model_dir=model_dir,
            mode="subject",
            concept="zorb",
            progress=lambda event: steps.append(event.step),
            should_cancel=lambda: 2 in steps,
        )
    assert max(steps) == 2
    assert not (tmp_path / "lora.safetensors").exists()


def test_replayed_examples_change_what_is_learned(model_dir: Path, tmp_path: Path) -> None:
    examples, config = small_examples(), small_config(steps=2, checkpoint_every=0)
    replay = [TrainingExample(encode(Image.new("RGB", (64, 64), (200, 30, 30))), "a red square") for _ in range(3)]
    plain = train_lora(
        "tiny", examples, config, tmp_path / "plain", model_dir=model_dir, mode="subject", concept="zorb"
    )
    mixed = train_lora(
        "tiny", examples, config, tmp_path / "mixed", model_dir=model_dir, mode="subject", concept="zorb", replay=replay
    )
    assert plain.losses != mixed.losses


def test_style_mode_needs_no_concept_and_drops_captions(model_dir: Path, tmp_path: Path) -> None:
    config = preset_for("tiny", "style").with_overrides(steps=2, resolution=64, batch_size=2, checkpoint_every=0)
    assert config.caption_dropout > 0
    result = train_lora("tiny", small_examples(), config, tmp_path, model_dir=model_dir, mode="style")
    assert result.lora_path.is_file() and result.captions == ["a green triangle"] * 6


def test_prior_preservation_makes_class_images_with_the_base_model(model_dir: Path, tmp_path: Path) -> None:
    config = small_config(
        steps=2, checkpoint_every=0, prior_preservation=True, num_class_images=2, class_prompt="a triangle"
    )
    result = train_lora("tiny", small_examples(), config, tmp_path, model_dir=model_dir, mode="subject", concept="zorb")
    assert len(list((tmp_path / "class_images").glob("class-*.png"))) == 2 and result.lora_path.is_file()


def test_subject_mode_without_a_concept_is_rejected(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="concept"):
        train_lora("tiny", small_examples(), small_config(), tmp_path, model_dir=model_dir, mode="subject")


def test_training_a_model_without_a_recipe_is_refused(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingUnsupported):
        train_lora("flux-schnell", small_examples(), small_config(), tmp_path, model_dir=model_dir, mode="style")


def test_presets_differ_by_base_model_and_mode() -> None:
    assert preset_for("tiny", "subject") != preset_for("sd15", "subject")
    assert preset_for("sd15", "style").caption_dropout > preset_for("sd15", "subject").caption_dropout == 0


def test_overrides_replace_fields_and_none_keeps_the_preset() -> None:
    preset = preset_for("tiny", "subject")
    changed = preset.with_overrides(steps=7, rank=None)
    assert (changed.steps, changed.rank) == (7, preset.rank)
    with pytest.raises(InvalidRequest):
        preset.with_overrides(colour="red")


def test_gradient_accumulation_and_checkpointing_train(model_dir: Path, tmp_path: Path) -> None:
    config = small_config(steps=2, gradient_accumulation=2, gradient_checkpointing=True, checkpoint_every=0)
    result = train_lora("tiny", small_examples(), config, tmp_path, model_dir=model_dir, mode="subject", concept="zorb")
    assert len(result.losses) == 2 and all(np.isfinite(result.losses))


def test_torch_is_not_left_with_gradients_enabled_globally() -> None:
    assert torch.is_grad_enabled()


def test_the_trained_fixture_uses_the_default_tiny_preset(trained: TrainedLora) -> None:
    assert trained.config == preset_for("tiny", "subject").with_overrides(seed=3)
    assert trained.config.steps == TRAINED_STEPS


def test_caption_dropout_changes_what_the_model_sees(model_dir: Path, tmp_path: Path) -> None:
    def losses(dropout: float) -> list[float]:
        config = small_config(steps=2, checkpoint_every=0, caption_dropout=dropout)
        return train_lora(
            "tiny", small_examples(), config, tmp_path / str(dropout), model_dir=model_dir, mode="style"
        ).losses

    assert losses(0.0) != losses(0.9)


def test_aspect_ratio_buckets_train_on_mixed_shapes(model_dir: Path, tmp_path: Path) -> None:
    sizes = [(160, 160), (200, 120), (120, 200)] * 2
    examples = [TrainingExample(encode(triangle_picture(i, size=s)), "a green triangle") for i, s in enumerate(sizes)]
    config = small_config(steps=3, checkpoint_every=0, aspect_buckets=True)
    result = train_lora("tiny", examples, config, tmp_path, model_dir=model_dir, mode="style")
    assert len(result.losses) == 3 and all(np.isfinite(result.losses))


def test_bf16_mixed_precision_trains_on_cpu(model_dir: Path, tmp_path: Path) -> None:
    config = small_config(steps=2, checkpoint_every=0, mixed_precision="bf16")
    result = train_lora("tiny", small_examples(), config, tmp_path, model_dir=model_dir, mode="subject", concept="zorb")
    assert all(np.isfinite(result.losses))
