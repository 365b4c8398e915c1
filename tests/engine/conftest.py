"""Engine fixtures: the tiny model materialized once, one engine, one training run shared by the session."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw


def encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def triangle_picture(index: int, size: tuple[int, int] = (160, 160)) -> Image.Image:
    """A green triangle on grey, shifted per index so no two pictures are near-duplicates."""
    width, height = size
    image = Image.new("RGB", size, (235, 235, 235))
    draw = ImageDraw.Draw(image)
    x = width * (0.1 + 0.04 * index)
    y = height * (0.15 + 0.03 * (index % 5))
    draw.polygon(
        [(x, y + height * 0.5), (x + width * 0.25, y), (x + width * 0.5, y + height * 0.5)], fill=(30, 160, 40)
    )
    draw.rectangle(
        (width * 0.05 * (index % 7), height * 0.8, width * 0.05 * (index % 7) + 12, height * 0.9),
        fill=(20 * index % 255, 40, 200),
    )
    return image


@pytest.fixture(scope="session", autouse=True)
def single_torch_thread() -> None:
    """One intra-op thread: on a small shared machine, torch's thread pool waiting on busy cores made steps
    10–50× slower than one thread (measured on a 2-core machine under load)."""
    import os

    import torch

    torch.set_num_threads(int(os.environ.get("EMBER_TEST_TORCH_THREADS", "1")))


@pytest.fixture(scope="session")
def engine(model_dir: Path) -> Any:
    from ember.engine.generate import Engine

    return Engine(model_dir, lora_cache_size=2)


@pytest.fixture(scope="session")
def make_request() -> Callable[..., Any]:
    """A small, fast request on `tiny` (3 steps, 256 px); keyword arguments replace fields."""
    from ember.engine.types import GenerationRequest

    def build(**fields: Any) -> GenerationRequest:
        values: dict[str, Any] = {
            "base_model": "tiny",
            "prompt": "a red mug on a table",
            "seeds": [7],
            "width": 128,
            "height": 128,
            "mimetype": "image/png",
            "steps": 3,
        }
        values.update(fields)
        return GenerationRequest(**values)

    return build


@dataclass
class TrainedLora:
    result: Any
    examples: list[Any]
    config: Any
    work_dir: Path
    events: list[Any]


TRAINED_STEPS = 300


@pytest.fixture(scope="session")
def trained(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedLora:
    """One real training run on `tiny` with its default subject preset (concept "zorb"), shared by the
    training tests."""
    from ember.engine.train import preset_for, train_lora
    from ember.engine.types import TrainingExample

    examples = [TrainingExample(encode(triangle_picture(i)), "a green triangle on grey") for i in range(10)]
    config = preset_for("tiny", "subject").with_overrides(seed=3)
    work_dir = tmp_path_factory.mktemp("trained")
    events: list[Any] = []
    result = train_lora(
        "tiny",
        examples,
        config,
        work_dir,
        model_dir=model_dir,
        mode="subject",
        concept="zorb",
        sample_prompt="a zorb",
        progress=events.append,
    )
    return TrainedLora(result=result, examples=examples, config=config, work_dir=work_dir, events=events)
