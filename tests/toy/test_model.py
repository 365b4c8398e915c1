"""The `toy` base model: its tokenizer, its architecture, and the committed pipeline it materializes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.engine.toy import model as toy_model
from ember.engine.toy.world import VOCABULARY


def test_every_toy_world_word_has_its_own_tokens(tmp_path: Path) -> None:
    tokenizer = toy_model.build_tokenizer(tmp_path)
    encodings = {tuple(tokenizer(word, add_special_tokens=False).input_ids) for word in VOCABULARY}
    assert len(encodings) == len(set(VOCABULARY))


def test_a_new_vae_starts_with_an_almost_noiseless_posterior() -> None:
    import torch

    vae = toy_model.new_vae()
    with torch.no_grad():
        posterior = vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist
    assert float(posterior.std.max()) < 0.1


def test_the_text_encoder_is_frozen_and_the_same_every_build(tmp_path: Path) -> None:
    tokenizer = toy_model.build_tokenizer(tmp_path)
    first, second = toy_model.new_text_encoder(tokenizer), toy_model.new_text_encoder(tokenizer)
    assert not any(p.requires_grad for p in first.parameters())
    assert all((a == b).all() for a, b in zip(first.parameters(), second.parameters(), strict=True))


def test_the_registry_builds_toy_with_this_module() -> None:
    from ember.engine.registry import get_base_model

    assert get_base_model("toy").builder == "ember.engine.toy.model:materialize"


def test_the_committed_weights_stay_small() -> None:
    total = sum(f.stat().st_size for f in toy_model.WEIGHTS_DIR.rglob("*") if f.is_file())
    assert total < 8 * 1024 * 1024


def test_materialize_writes_a_full_precision_pipeline(toy_model_dir: Path) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    pipeline = StableDiffusionPipeline.from_pretrained(str(toy_model_dir / "toy"))
    assert pipeline.unet.dtype == torch.float32
    assert pipeline.vae.config.block_out_channels == [16, 32, 32]


def test_materialize_without_committed_weights_says_how_to_make_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(toy_model, "PIPELINE_DIR", tmp_path / "missing")
    with pytest.raises(toy_model.ToyWeightsMissingError):
        toy_model.materialize(tmp_path / "out")


@pytest.mark.parametrize(
    ("shape", "colour", "background"), [("circle", "red", "black"), ("square", "white", "purple")]
)
def test_the_toy_model_draws_what_its_prompt_asks(
    toy_model_dir: Path, shape: str, colour: str, background: str
) -> None:
    import io

    from PIL import Image

    from ember.engine.generate import Engine
    from ember.engine.toy.measure import SceneReader, colour_rate, shape_rate
    from ember.engine.toy.world import caption
    from ember.engine.types import GenerationRequest

    engine = Engine(toy_model_dir)
    pictures = []
    for seeds in ([0, 1, 2, 3], [4, 5, 6, 7]):
        request = GenerationRequest(
            base_model="toy", prompt=caption(shape, colour, background), seeds=seeds, width=64, height=64,
            mimetype="image/png",
        )
        pictures += [Image.open(io.BytesIO(image.data)) for image in engine.generate(request)]
    readings = SceneReader().read(pictures)
    assert colour_rate(readings, colour) >= 0.75
    assert shape_rate(readings, shape) >= 0.5
