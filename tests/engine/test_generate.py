"""Generation on `tiny`: determinism, every request field acting on the output, progress and cancel."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ember.engine.types import Cancelled, InvalidRequest

from .conftest import encode, triangle_picture

Request = Callable[..., Any]


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def render(engine: Any, request: Any) -> list[np.ndarray]:
    return [pixels(image.data) for image in engine.generate(request)]


def test_same_request_and_seed_give_identical_pixels(
    engine: Any, make_request: Request, base_image: np.ndarray
) -> None:
    assert np.array_equal(render(engine, make_request())[0], base_image)


def test_different_seeds_give_different_images(engine: Any, make_request: Request) -> None:
    one, two = render(engine, make_request(seeds=[1, 2]))
    assert not np.array_equal(one, two)


def test_four_variations_come_from_one_call_each_with_its_seed(engine: Any, make_request: Request) -> None:
    images = engine.generate(make_request(seeds=[11, 12, 13, 14]))
    assert [image.seed for image in images] == [11, 12, 13, 14]


def test_a_seed_gives_the_same_image_alone_or_in_a_batch(engine: Any, make_request: Request) -> None:
    alone = render(engine, make_request(seeds=[12]))[0]
    batched = render(engine, make_request(seeds=[11, 12, 13]))[1]
    assert np.abs(alone - batched).max() <= 2


def test_the_engine_draws_more_seeds_a_call_than_a_request_asks_for_up_to_its_batch_limit(
    engine: Any, make_request: Request
) -> None:
    """Ember's own callers (the check after training) draw up to MAX_BATCH pictures at once; the API's limit of
    4 a request is the API's (tests/api)."""
    from ember.engine.generate import MAX_BATCH, MAX_VARIATIONS

    seeds = list(range(MAX_VARIATIONS + 2))
    batched = render(engine, make_request(seeds=seeds))
    assert len(batched) == len(seeds)
    assert np.abs(batched[-1] - render(engine, make_request(seeds=seeds[-1:]))[0]).max() <= 2
    with pytest.raises(InvalidRequest, match=f"between 1 and {MAX_BATCH} seeds"):
        engine.generate(make_request(seeds=list(range(MAX_BATCH + 1))))


def test_output_has_the_requested_size(engine: Any, make_request: Request) -> None:
    image = engine.generate(make_request(width=1344, height=768))[0]
    assert (image.width, image.height) == (1344, 768)
    assert Image.open(io.BytesIO(image.data)).size == (1344, 768)


@pytest.mark.parametrize(
    ("mimetype", "pil_format"), [("image/jpeg", "JPEG"), ("image/png", "PNG"), ("image/webp", "WEBP")]
)
def test_output_is_encoded_as_the_requested_mimetype(
    engine: Any, make_request: Request, mimetype: str, pil_format: str
) -> None:
    image = engine.generate(make_request(mimetype=mimetype))[0]
    assert image.mimetype == mimetype and Image.open(io.BytesIO(image.data)).format == pil_format


def _reference(index: int) -> bytes:
    return encode(triangle_picture(index, size=(128, 128)))


CHANGES: dict[str, dict[str, Any]] = {
    "prompt": {"prompt": "a blue car in the city"},
    "negative_prompt": {"negative_prompt": "blurry, grey"},
    "content_class": {"content_class": "art"},
    "visual_intensity": {"visual_intensity": 10},
    "style_presets": {"style_presets": ["watercolor"]},
    "style_image": {"style_image": _reference(1)},
    "structure_image": {"structure_image": _reference(2)},
    "guidance_scale": {"guidance_scale": 2.0},
    "steps": {"steps": 5},
}


@pytest.fixture(scope="module")
def base_image(engine: Any, make_request: Request) -> np.ndarray:
    return render(engine, make_request())[0]


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_each_request_field_changes_the_output(
    engine: Any, make_request: Request, base_image: np.ndarray, field: str
) -> None:
    base = base_image
    changed = render(engine, make_request(**CHANGES[field]))[0]
    assert not np.array_equal(base, changed)


def test_higher_style_strength_moves_further_from_the_unstyled_image(
    engine: Any, make_request: Request, base_image: np.ndarray
) -> None:
    def distance(strength: int) -> float:
        styled = render(engine, make_request(style_presets=["neon"], style_strength=strength))[0]
        return float(np.abs(styled - base_image).mean())

    assert 0 < distance(10) < distance(50) < distance(100)


def test_structure_strength_keeps_more_of_the_reference_when_higher(engine: Any, make_request: Request) -> None:
    reference = pixels(_reference(3))
    loose = render(engine, make_request(structure_image=_reference(3), structure_strength=10))[0]
    strict = render(engine, make_request(structure_image=_reference(3), structure_strength=95))[0]
    assert np.abs(strict - reference).mean() < np.abs(loose - reference).mean()


def test_progress_is_reported_at_every_step(engine: Any, make_request: Request) -> None:
    events: list[Any] = []
    engine.generate(make_request(steps=4), progress=events.append)
    assert [event.step for event in events] == [1, 2, 3, 4] and all(event.total == 4 for event in events)
    assert events[-1].eta_s == 0


def test_cancel_stops_within_one_step(engine: Any, make_request: Request) -> None:
    events: list[Any] = []
    with pytest.raises(Cancelled):
        engine.generate(make_request(steps=6), progress=events.append, should_cancel=lambda: len(events) >= 2)
    assert len(events) == 2


def test_cancel_before_start_runs_no_step(engine: Any, make_request: Request) -> None:
    events: list[Any] = []
    with pytest.raises(Cancelled):
        engine.generate(make_request(), progress=events.append, should_cancel=lambda: True)
    assert events == []


def test_base_pipeline_stays_loaded_between_calls(engine: Any, make_request: Request) -> None:
    engine.generate(make_request())
    pipeline = engine.pipeline("tiny")
    engine.generate(make_request(prompt="another prompt"))
    assert engine.pipeline("tiny") is pipeline


@pytest.mark.parametrize(
    "fields",
    [
        {"seeds": list(range(33))},  # more than MAX_BATCH
        {"seeds": [1, 1]},
        {"seeds": [-1]},
        {"mimetype": "image/gif"},
        {"prompt": " "},
        {"style_presets": ["nope"]},
        {"visual_intensity": 1},
        {"structure_image": b"x" * 10},
    ],
)
def test_invalid_requests_are_rejected(engine: Any, make_request: Request, fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        engine.generate(make_request(**fields))


def test_a_damaged_lora_file_is_a_clear_error_and_leaves_the_engine_usable(
    engine: Any, make_request: Request, base_image: np.ndarray, tmp_path: Any
) -> None:
    from ember.engine.generate import LoraLoadError
    from ember.engine.types import LoraRef

    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    with pytest.raises(LoraLoadError, match="broken"):
        engine.generate(make_request(loras=[LoraRef("broken", broken)]))
    assert "broken" not in engine.loaded_loras()
    assert np.array_equal(render(engine, make_request())[0], base_image)


def test_a_bad_request_is_rejected_before_any_model_is_loaded(make_request: Request, tmp_path: Any) -> None:
    from ember.engine.generate import Engine

    empty = Engine(tmp_path)
    with pytest.raises(InvalidRequest):
        empty.generate(make_request(base_model="sdxl", style_presets=["nope"]))
    assert not any(tmp_path.iterdir())


def test_a_style_reference_over_the_pixel_limit_is_refused_before_decoding(
    engine: Any, make_request: Request
) -> None:
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, format="PNG")  # 10^8 pixels in about 100 KB
    with pytest.raises(InvalidRequest, match="pixels"):
        engine.generate(make_request(style_image=bomb.getvalue()))
