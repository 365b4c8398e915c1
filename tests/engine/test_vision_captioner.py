"""The vision-language captioner path (BLIP through transformers), run on a tiny random-weight BLIP built from
its config: the loading and captioning code runs here, though its captions mean nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ember.engine.captioning import TransformersCaptioner, caption_images, check_caption, get_captioner

pytestmark = pytest.mark.slow

WORDS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "photo", "of", "star", "on", "background")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder holding `captioners/blip`: a BLIP of one layer per tower, 32 wide, random weights."""
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    models = tmp_path_factory.mktemp("models")
    folder = models / "captioners" / "blip"
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
    config = BlipConfig(
        text_config={**tower, "vocab_size": len(WORDS), "encoder_hidden_size": 32, "bos_token_id": 5,
                     "pad_token_id": 0, "sep_token_id": 3, "eos_token_id": 3, "max_position_embeddings": 64},
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=32,
    )
    BlipForConditionalGeneration(config).save_pretrained(folder)
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), bos_token="[DEC]")
    images = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    return models


def test_auto_picks_the_vision_language_captioner_whose_weights_are_present(model_dir: Path) -> None:
    captioner = get_captioner("auto", model_dir, device="cpu")
    assert isinstance(captioner, TransformersCaptioner) and captioner.name == "blip"
    assert captioner.review_note is None


def test_the_vision_language_captioner_loads_and_captions_a_picture(model_dir: Path) -> None:
    captioner = get_captioner("blip", model_dir, device="cpu")
    assert isinstance(captioner.caption(Image.new("RGB", (120, 90), (200, 20, 20))), str)


def test_a_meaningless_model_caption_falls_back_to_one_within_the_rules(model_dir: Path) -> None:
    captioner = get_captioner("blip", model_dir, device="cpu")
    [caption] = caption_images([Image.new("RGB", (120, 90), (20, 20, 200))], captioner, "subject", "zorb")
    assert check_caption(caption, "subject", "zorb") == []
