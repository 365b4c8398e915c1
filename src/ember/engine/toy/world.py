"""The toy world: captioned 64×64 scenes of one coloured shape on a plain background, drawn deterministically."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace

from PIL import Image, ImageDraw

from ember.engine.types import TrainingExample

SIZE = 64
# Drawn at twice the size and downscaled, so edges are anti-aliased the same way on every machine.
_CANVAS = SIZE * 2

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring")
# Never shown in pretraining: the shape a custom model has to teach.
NEW_SHAPE = "star"
ALL_SHAPES: tuple[str, ...] = (*SHAPES, NEW_SHAPE)

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 80, 230),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
    "purple": (100, 40, 130),
}
# One pair per shape and per colour, so every shape and every colour is still seen in pretraining.
HELD_OUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("circle", "blue"), ("square", "yellow"), ("triangle", "white"), ("cross", "red"), ("ring", "green")}
)
SEEN_PAIRS: tuple[tuple[str, str], ...] = tuple(
    (shape, colour) for shape in SHAPES for colour in COLOURS if (shape, colour) not in HELD_OUT_PAIRS
)

# A style is a way of drawing any scene; "plain" is the world as pretrained.
STYLES: tuple[str, ...] = ("plain", "sepia")
STYLE_WORDS: dict[str, str] = {"sepia": "in sepia style"}

VOCABULARY: tuple[str, ...] = (
    "a", "on", "background", "in", "style", *ALL_SHAPES, *COLOURS, *BACKGROUNDS, *STYLES, "zorb",
)


class UnknownSceneError(ValueError):
    """A scene names a shape, colour, background or style the toy world does not have."""


@dataclass(frozen=True)
class Scene:
    """One picture of the toy world: what is drawn, where and how big (fractions of the picture)."""

    shape: str
    colour: str
    background: str
    x: float = 0.5
    y: float = 0.5
    size: float = 0.5
    style: str = "plain"

    def __post_init__(self) -> None:
        if self.shape not in ALL_SHAPES:
            raise UnknownSceneError(f"unknown shape {self.shape!r}")
        if self.colour not in COLOURS:
            raise UnknownSceneError(f"unknown colour {self.colour!r}")
        if self.background not in BACKGROUNDS:
            raise UnknownSceneError(f"unknown background {self.background!r}")
        if self.style not in STYLES:
            raise UnknownSceneError(f"unknown style {self.style!r}")

    @property
    def caption(self) -> str:
        return caption(self.shape, self.colour, self.background, self.style)


def caption(shape: str, colour: str | None, background: str, style: str = "plain") -> str:
    """The caption of a scene, e.g. "a red circle on a black background"; no colour for a concept word."""
    subject = f"{colour} {shape}" if colour else shape
    text = f"a {subject} on a {background} background"
    return f"{text} {STYLE_WORDS[style]}" if style != "plain" else text


def random_scene(
    rng: random.Random,
    pairs: tuple[tuple[str, str], ...] = SEEN_PAIRS,
    backgrounds: tuple[str, ...] = tuple(BACKGROUNDS),
    style: str = "plain",
) -> Scene:
    """A scene of one of `pairs` with position and size drawn so the shape always fits inside the picture."""
    shape, colour = rng.choice(pairs)
    size = rng.uniform(0.35, 0.6)
    margin = size / 2 + 0.03
    return Scene(
        shape=shape,
        colour=colour,
        background=rng.choice(backgrounds),
        x=rng.uniform(margin, 1 - margin),
        y=rng.uniform(margin, 1 - margin),
        size=size,
        style=style,
    )


def random_scenes(seed: int, count: int, **kwargs: object) -> Iterator[Scene]:
    """`count` scenes from one seed: the same seed always gives the same scenes."""
    rng = random.Random(seed)
    for _ in range(count):
        yield random_scene(rng, **kwargs)  # type: ignore[arg-type]


def _star_points(cx: float, cy: float, outer: float, inner: float) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        radius = outer if i % 2 == 0 else inner
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def shape_mask(scene: Scene, size: int = SIZE) -> Image.Image:
    """The shape's coverage as an 8-bit mask at `size` (255 inside the shape, 0 on the background)."""
    canvas = Image.new("L", (_CANVAS, _CANVAS), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy, r = scene.x * _CANVAS, scene.y * _CANVAS, scene.size * _CANVAS / 2
    box = (cx - r, cy - r, cx + r, cy + r)
    if scene.shape == "circle":
        draw.ellipse(box, fill=255)
    elif scene.shape == "square":
        s = r * 0.85
        draw.rectangle((cx - s, cy - s, cx + s, cy + s), fill=255)
    elif scene.shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=255)
    elif scene.shape == "cross":
        arm = r * 0.33
        draw.rectangle((cx - r, cy - arm, cx + r, cy + arm), fill=255)
        draw.rectangle((cx - arm, cy - r, cx + arm, cy + r), fill=255)
    elif scene.shape == "ring":
        draw.ellipse(box, fill=255)
        hole = r * 0.55
        draw.ellipse((cx - hole, cy - hole, cx + hole, cy + hole), fill=0)
    else:
        draw.polygon(_star_points(cx, cy, r, r * 0.42), fill=255)
    return canvas.resize((size, size), Image.Resampling.BOX)


def sepia(image: Image.Image) -> Image.Image:
    """The "sepia" style: every pixel's brightness mapped onto a fixed brown palette."""
    gray = image.convert("L")
    return Image.merge(
        "RGB",
        (
            gray.point(lambda v: min(255, int(70 + v * 0.78))),
            gray.point(lambda v: min(255, int(45 + v * 0.62))),
            gray.point(lambda v: min(255, int(20 + v * 0.40))),
        ),
    )


def render(scene: Scene, size: int = SIZE) -> Image.Image:
    """The scene as an RGB picture of `size`×`size` pixels."""
    picture = paint(scene, COLOURS[scene.colour], BACKGROUNDS[scene.background], size)
    return sepia(picture) if scene.style == "sepia" else picture


def paint(
    scene: Scene, shape_rgb: tuple[int, int, int], background_rgb: tuple[int, int, int], size: int = SIZE
) -> Image.Image:
    """The scene's shape, where and as big as the scene says, in any two colours (its style is not applied)."""
    mask = shape_mask(scene, _CANVAS)
    picture = Image.new("RGB", (_CANVAS, _CANVAS), background_rgb)
    picture.paste(Image.new("RGB", (_CANVAS, _CANVAS), shape_rgb), (0, 0), mask)
    return picture.resize((size, size), Image.Resampling.BOX)


def free_colour_pictures(seed: int, count: int, size: int = SIZE) -> Iterator[Image.Image]:
    """Scenes painted in random colours, outside the world's palette: what the toy VAE learns besides the world,
    so that it can also encode and draw colours no scene uses (a style custom model needs them)."""
    rng = random.Random(seed)
    for _ in range(count):
        scene = random_scene(rng, pairs=(*SEEN_PAIRS, *HELD_OUT_PAIRS, *((NEW_SHAPE, c) for c in COLOURS)))
        shape_rgb = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        background_rgb = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        yield paint(scene, shape_rgb, background_rgb, size)


def with_style(scene: Scene, style: str) -> Scene:
    return replace(scene, style=style)


def replay_examples(count: int, seed: int) -> list[TrainingExample]:
    """Captioned pictures of the pretraining world (seen pairs only), replayed beside a custom model's images
    so that it keeps drawing every other prompt as the base model did; the `toy` presets ask for them."""
    return [TrainingExample(render(scene), scene.caption) for scene in random_scenes(seed + 1, count)]


def random_polygon(rng: random.Random, cx: float, cy: float, radius: float) -> list[tuple[float, float]]:
    """A random simple polygon around (cx, cy): 3–12 corners at jittered angles, each at its own distance from
    the centre, so convex and concave outlines of every kind come out (no shape is drawn on purpose)."""
    corners = rng.randint(3, 12)
    turn = rng.uniform(0, 2 * math.pi)
    # Half the polygons keep every corner near the rim (convex-ish); the rest reach in by a random depth.
    shallowest = rng.uniform(0.75, 1.0) if rng.random() < 0.5 else rng.uniform(0.2, 0.9)
    points = []
    for i in range(corners):
        angle = turn + (i + rng.uniform(-0.35, 0.35)) * 2 * math.pi / corners
        reach = radius * rng.uniform(shallowest, 1.0)
        points.append((cx + reach * math.cos(angle), cy + reach * math.sin(angle)))
    return points


def polygon_pictures(seed: int, count: int, size: int = SIZE) -> Iterator[Image.Image]:
    """Random polygons in random colours on random backgrounds, drawn on larger canvases (128–512 px) and
    downscaled, some saved as JPEG first: what the toy VAE's decoder also learns to draw, so it passes on
    outlines other than the world's five shapes. Neither the UNet nor the shape classifier sees them."""
    import io

    rng = random.Random(seed)
    for _ in range(count):
        canvas = rng.choice((128, 256, 512))
        background = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        picture = Image.new("RGB", (canvas, canvas), background)
        draw = ImageDraw.Draw(picture)
        for _ in range(1 if rng.random() < 0.8 else 2):
            radius = canvas * rng.uniform(0.08, 0.4)
            cx = rng.uniform(radius * 0.5, canvas - radius * 0.5)
            cy = rng.uniform(radius * 0.5, canvas - radius * 0.5)
            fill = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            draw.polygon(random_polygon(rng, cx, cy, radius), fill=fill)
        if rng.random() < 0.3:
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=rng.randint(60, 95))
            picture = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        resample = rng.choice((Image.Resampling.LANCZOS, Image.Resampling.BOX, Image.Resampling.BICUBIC))
        yield picture.resize((size, size), resample)
