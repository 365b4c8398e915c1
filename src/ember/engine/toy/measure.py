"""Measures of toy-world pictures: which shape (a small CNN), which colour and background, how sepia."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageFilter

from ember.engine.toy.world import ALL_SHAPES, BACKGROUNDS, COLOURS, SIZE, STYLES, random_scene, render

if TYPE_CHECKING:
    import torch

CLASSIFIER_WEIGHTS = "shape_classifier.safetensors"
CLASSIFIER_CONFIG = "shape_classifier.json"
# Pixels this far (RGB distance) from the background colour belong to the shape.
_SHAPE_DISTANCE = 60.0
# Fewer shape pixels than this and the picture has no readable shape colour.
_MIN_SHAPE_PIXELS = 20
# A pixel is "sepia" when it lies this close to the sepia palette at its own brightness.
_SEPIA_DISTANCE = 45.0
_SEPIA_SHARE = 0.5
# A star is read only when the classifier gives it at least half its probability: the base model never
# learned stars, and its blurred attempts at other shapes sometimes look a little like one (at most 0.38 on the
# base model's samples of every base prompt), so reading those as stars would count leakage that is not there.
# `bench/star_threshold.py` measures what it reads (docs/toy.md, "The star threshold"): no false star on the
# base model's samples, one small blurred cross in 200 renders of other shapes; a stricter 0.9 read half as
# many of the stars the toy VAE can draw, and 1 of the 25 stars a custom model drew on seed 1.
STAR_CONFIDENCE = 0.5


class ClassifierMissingError(FileNotFoundError):
    """No trained shape classifier in the weights folder (run `ember engine toy train-classifier`)."""


@dataclass(frozen=True)
class ShapeClassifierConfig:
    steps: int = 600
    batch: int = 64
    learning_rate: float = 2e-3
    seed: int = 0
    width: int = 16


@dataclass(frozen=True)
class SceneReading:
    """What a picture shows, as read by the measures."""

    shape: str
    shape_confidence: float
    colour: str | None
    background: str
    sepia: bool


def _shape_network(width: int) -> torch.nn.Module:
    from torch import nn

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(
        *block(3, width), *block(width, width * 2), *block(width * 2, width * 4), *block(width * 4, width * 4),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width * 4, len(ALL_SHAPES)),
    )


def _to_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    import torch

    array = np.stack([np.asarray(image.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


def _degraded(image: Image.Image, rng: random.Random) -> Image.Image:
    """A render made to look like a generated picture: softened edges and pixel noise."""
    if rng.random() < 0.7:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(0, 12), (SIZE, SIZE, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def degraded_renders(
    rng: random.Random, count: int, shapes: Sequence[str] = ALL_SHAPES
) -> tuple[list[Image.Image], list[int]]:
    """World renders of `shapes` in every colour and style, degraded like generated pictures, with each one's
    index in ALL_SHAPES: what the classifier trains on (every shape, so it reads held-out pairs and stars too)."""
    pairs = tuple((shape, colour) for shape in shapes for colour in COLOURS)
    images, labels = [], []
    for _ in range(count):
        scene = random_scene(rng, pairs=pairs, style=rng.choice(STYLES))
        images.append(_degraded(render(scene), rng))
        labels.append(ALL_SHAPES.index(scene.shape))
    return images, labels


def train_shape_classifier(out_dir: Path, config: ShapeClassifierConfig, threads: int = 2) -> float:
    """Train the classifier, write it to `out_dir`, and return its accuracy on fresh degraded renders."""
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    network = _shape_network(config.width)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.learning_rate, total_steps=config.steps)
    network.train()
    for _ in range(config.steps):
        images, labels = degraded_renders(rng, config.batch)
        loss = torch.nn.functional.cross_entropy(network(_to_tensor(images)), torch.tensor(labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    network.eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(out_dir / CLASSIFIER_WEIGHTS))
    (out_dir / CLASSIFIER_CONFIG).write_text(json.dumps({**asdict(config), "shapes": list(ALL_SHAPES)}) + "\n")
    images, labels = degraded_renders(random.Random(config.seed + 1), 600)
    with torch.no_grad():
        predicted = network(_to_tensor(images)).argmax(dim=1)
    return float((predicted == torch.tensor(labels)).float().mean())


def _background_colour(pixels: np.ndarray) -> np.ndarray:
    # Shapes keep a margin from the edges, so the outer two pixels are background.
    border = np.concatenate([pixels[:2].reshape(-1, 3), pixels[-2:].reshape(-1, 3),
                             pixels[:, :2].reshape(-1, 3), pixels[:, -2:].reshape(-1, 3)])
    median: np.ndarray = np.median(border, axis=0)
    return median


def _nearest(colour: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    return min(palette, key=lambda name: float(np.linalg.norm(colour - np.array(palette[name]))))


def read_colour(image: Image.Image) -> tuple[str | None, str]:
    """The shape's colour (None when no shape stands out) and the background, as the nearest palette names."""
    pixels = np.asarray(image.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32)
    background = _background_colour(pixels)
    distance = np.linalg.norm(pixels - background, axis=2)
    shape_pixels = pixels[distance > _SHAPE_DISTANCE]
    colour = _nearest(np.median(shape_pixels, axis=0), COLOURS) if len(shape_pixels) >= _MIN_SHAPE_PIXELS else None
    return colour, _nearest(background, BACKGROUNDS)


# The sepia palette is a line in RGB (see world.sepia): a brightness v is drawn at _SEPIA_ORIGIN + v·direction.
_SEPIA_ORIGIN = np.array([70.0, 45.0, 20.0], dtype=np.float32)
_SEPIA_DIRECTION = np.array([0.78, 0.62, 0.40], dtype=np.float32)


def _sepia_brightness(pixels: np.ndarray) -> np.ndarray:
    """The brightness each pixel had before the sepia style, from its place on the palette line."""
    along: np.ndarray = (pixels - _SEPIA_ORIGIN) @ _SEPIA_DIRECTION / float(_SEPIA_DIRECTION @ _SEPIA_DIRECTION)
    return along.clip(0, 255)


def _mostly_sepia(pixels: np.ndarray) -> bool:
    """Whether most pixels lie near the sepia palette at their own brightness."""
    palette = (_SEPIA_ORIGIN + _sepia_brightness(pixels)[..., None] * _SEPIA_DIRECTION).clip(0, 255)
    near = np.linalg.norm(pixels - palette, axis=2) < _SEPIA_DISTANCE
    return float(near.mean()) >= _SEPIA_SHARE


def is_sepia(image: Image.Image) -> bool:
    """Whether most pixels lie on the sepia palette (a plain toy-world picture has almost none there)."""
    return _mostly_sepia(np.asarray(image.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32))


def read_background(image: Image.Image) -> str:
    """The background as the world's captions name it. A sepia picture keeps only each pixel's brightness
    (world.sepia), and the world names a sepia scene's background as it was before the style ("a red circle on
    a purple background in sepia style"): its background is named by the world background of the nearest
    brightness. Any other picture's by the nearest colour, as `read_colour` names it."""
    pixels = np.asarray(image.convert("RGB").resize((SIZE, SIZE)), dtype=np.float32)
    background = _background_colour(pixels)
    if not _mostly_sepia(pixels):
        return _nearest(background, BACKGROUNDS)
    brightness = float(_sepia_brightness(background))
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # PIL's "L", which world.sepia maps
    return min(BACKGROUNDS, key=lambda name: abs(brightness - float(np.array(BACKGROUNDS[name]) @ luma)))


class SceneReader:
    """Reads generated toy-world pictures with the committed shape classifier and the pixel measures."""

    def __init__(self, weights_dir: Path | None = None) -> None:
        import torch
        from safetensors.torch import load_file

        from ember.engine.toy.model import WEIGHTS_DIR

        folder = Path(weights_dir or WEIGHTS_DIR)
        if not (folder / CLASSIFIER_WEIGHTS).is_file():
            raise ClassifierMissingError(f"no shape classifier in {folder}")
        config: dict[str, Any] = json.loads((folder / CLASSIFIER_CONFIG).read_text())
        self.shapes: tuple[str, ...] = tuple(config["shapes"])
        self.network = _shape_network(int(config["width"]))
        self.network.load_state_dict(load_file(str(folder / CLASSIFIER_WEIGHTS)))
        self.network.eval()
        self._torch = torch

    def probabilities(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """The classifier's probability of each shape (in `shapes` order) for each picture, one row per picture,
        before the star threshold `read` applies."""
        with self._torch.no_grad():
            return self.network(_to_tensor(images)).softmax(dim=1)

    def read(self, images: Sequence[Image.Image]) -> list[SceneReading]:
        if not images:
            return []
        probabilities = self.probabilities(images)
        readings = []
        star = self.shapes.index("star")
        for image, row in zip(images, probabilities, strict=True):
            colour, background = read_colour(image)
            if float(row[star]) < STAR_CONFIDENCE:
                row = row.clone()
                row[star] = 0.0
            index = int(row.argmax())
            readings.append(SceneReading(self.shapes[index], float(row[index]), colour, background, is_sepia(image)))
        return readings


def shape_rate(readings: Sequence[SceneReading], shape: str) -> float:
    return sum(r.shape == shape for r in readings) / len(readings) if readings else 0.0


def colour_rate(readings: Sequence[SceneReading], colour: str) -> float:
    return sum(r.colour == colour for r in readings) / len(readings) if readings else 0.0


def sepia_rate(readings: Sequence[SceneReading]) -> float:
    return sum(r.sepia for r in readings) / len(readings) if readings else 0.0


def background_rate(readings: Sequence[SceneReading], background: str) -> float:
    return sum(r.background == background for r in readings) / len(readings) if readings else 0.0

