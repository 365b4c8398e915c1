"""What the `toy` shape classifier's reading of a drawn star depends on: a sweep over how the star is drawn.

Stars are drawn with PIL at 64 px (the size the classifier and the toy model work at) on a gray background, at
random positions, and read with the toy measures: the star rate (classifier probability of the star at least
`STAR_CONFIDENCE`, as the learning gate counts it) per cell of size × inner ratio, then one factor at a time
(rotation, anti-aliasing, blur, colour, background) around the learning bench's own star. With `--vae` every cell is
also read after an encode/decode round trip through the committed VAE, which bounds what a custom model can
draw. Seconds, no training: `python bench/star_sweep.py [--per-cell 24] [--vae]`.

Size is the star's outer diameter as a share of the side (the toy world's `size`: 0.35–0.6); the inner ratio is
the inner radius over the outer (the world draws 0.42, the learning bench 0.45); rotation 0 is one point up.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).parent))

from learning import STAR_RGB, shape_probabilities  # noqa: E402
from vae_codec import load_vae, round_trip  # noqa: E402

from ember.engine.toy.measure import STAR_CONFIDENCE, SceneReader  # noqa: E402
from ember.engine.toy.world import BACKGROUNDS, COLOURS, NEW_SHAPE, SIZE  # noqa: E402

SIZES = (0.3, 0.4, 0.5, 0.6, 0.7)
RATIOS = (0.35, 0.40, 0.45, 0.50, 0.55)
GRAY = BACKGROUNDS["gray"]


@dataclass(frozen=True)
class StarDrawing:
    size: float = 0.45  # outer diameter / side (the learning bench's stars span 0.34–0.6)
    ratio: float = 0.45  # inner radius / outer radius
    rotation: float | None = 0.0  # degrees; None: a random angle per picture
    fill: tuple[int, int, int] = STAR_RGB
    background: tuple[int, int, int] = GRAY
    antialias: str = "lanczos 2x"  # "none", "lanczos 2x" (the learning bench), "box 2x" (the toy world), "box 4x"
    blur: float = 0.0  # a Gaussian blur of this radius (px at 64 px) after drawing, as soft as generated pictures


def draw_star(drawing: StarDrawing, rng: random.Random) -> Image.Image:
    """One star at a random position that keeps it inside the picture, at SIZE×SIZE pixels."""
    method, scale = {"none": (None, 1), "lanczos 2x": (Image.Resampling.LANCZOS, 2),
                     "box 2x": (Image.Resampling.BOX, 2), "box 4x": (Image.Resampling.BOX, 4)}[drawing.antialias]
    canvas = SIZE * scale
    outer = drawing.size * canvas / 2
    margin = outer + canvas * 0.03
    cx, cy = rng.uniform(margin, canvas - margin), rng.uniform(margin, canvas - margin)
    turn = math.radians(rng.uniform(0, 72) if drawing.rotation is None else drawing.rotation)
    points = []
    for corner in range(10):
        reach = outer if corner % 2 == 0 else outer * drawing.ratio
        angle = -math.pi / 2 + corner * math.pi / 5 + turn
        points.append((cx + reach * math.cos(angle), cy + reach * math.sin(angle)))
    picture = Image.new("RGB", (canvas, canvas), drawing.background)
    ImageDraw.Draw(picture).polygon(points, fill=drawing.fill)
    picture = picture if method is None else picture.resize((SIZE, SIZE), method)
    return picture.filter(ImageFilter.GaussianBlur(drawing.blur)) if drawing.blur else picture


@dataclass
class Cell:
    rate: float
    median: float
    rate_vae: float | None


class Sweep:
    def __init__(self, per_cell: int, vae: bool, seed: int) -> None:
        self.reader = SceneReader()
        self.vae = load_vae() if vae else None
        self.per_cell = per_cell
        self.seed = seed

    def star_probabilities(self, pictures: Sequence[Image.Image]) -> list[float]:
        return [row[NEW_SHAPE] for row in shape_probabilities(self.reader, pictures)]

    def cell(self, drawing: StarDrawing) -> Cell:
        rng = random.Random(self.seed)  # the same positions in every cell
        pictures = [draw_star(drawing, rng) for _ in range(self.per_cell)]
        star = self.star_probabilities(pictures)
        rate_vae = None
        if self.vae is not None:
            back = self.star_probabilities(round_trip(self.vae, pictures))
            rate_vae = sum(p >= STAR_CONFIDENCE for p in back) / len(back)
        return Cell(sum(p >= STAR_CONFIDENCE for p in star) / len(star), statistics.median(star), rate_vae)


def fmt(cell: Cell) -> str:
    text = f"{cell.rate:.2f} ({cell.median:.2f})"
    return text if cell.rate_vae is None else f"{text} {cell.rate_vae:.2f}"


def print_grid(sweep: Sweep, base: StarDrawing, emit: Callable[[str], None]) -> None:
    emit("size \\ inner ratio  " + "".join(f"{r:<18.2f}" for r in RATIOS))
    for size in SIZES:
        emit(f"{size:<19.2f} " + "".join(f"{fmt(sweep.cell(replace(base, size=size, ratio=r))):<18}" for r in RATIOS))


def print_factor(sweep: Sweep, title: str, variants: Sequence[tuple[str, StarDrawing]],
                 emit: Callable[[str], None]) -> None:
    emit(f"{title:<19} " + "".join(f"{size:<18.2f}" for size in SIZES))
    for name, drawing in variants:
        emit(f"{name:<19} " + "".join(f"{fmt(sweep.cell(replace(drawing, size=size))):<18}" for size in SIZES))


def main(argv: Sequence[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-cell", type=int, default=24, help="stars per cell")
    parser.add_argument("--vae", action="store_true", help="also read each cell through the committed VAE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sweep = Sweep(args.per_cell, args.vae, args.seed)
    emit = print
    vae_note = ", then the rate after a VAE round trip" if args.vae else ""
    emit(f"star rate (classifier star probability >= {STAR_CONFIDENCE}) of {args.per_cell} stars per cell, "
         f"(median star probability){vae_note}")
    base = StarDrawing()
    emit("")
    emit("yellow on gray, upright, lanczos 2x")
    print_grid(sweep, base, emit)
    emit("")
    emit("one factor at a time, inner ratio 0.45 (the learning bench's), by size")
    print_factor(sweep, "rotation", [("0° (point up)", base), ("18°", replace(base, rotation=18.0)),
                                     ("36° (point down)", replace(base, rotation=36.0)),
                                     ("random", replace(base, rotation=None))], emit)
    emit("")
    print_factor(sweep, "anti-aliasing", [(a, replace(base, antialias=a))
                                          for a in ("none", "lanczos 2x", "box 2x", "box 4x")], emit)
    emit("")
    print_factor(sweep, "blur (px)", [(f"{b:.1f}", replace(base, blur=b)) for b in (0.0, 0.6, 1.2, 1.8)], emit)
    emit("")
    print_factor(sweep, "colour on gray", [("bench yellow", base)] + [
        (name, replace(base, fill=rgb)) for name, rgb in COLOURS.items()], emit)
    emit("")
    print_factor(sweep, "background", [(name, replace(base, background=rgb)) for name, rgb in BACKGROUNDS.items()]
                 + [("navy", replace(base, background=(30, 50, 160))),
                    ("teal", replace(base, background=(20, 110, 110)))], emit)
    emit("")
    emit("the toy world's own star (inner ratio 0.42, box 2x), by colour on gray")
    world = replace(base, ratio=0.42, antialias="box 2x")
    print_factor(sweep, "world star", [(name, replace(world, fill=rgb)) for name, rgb in COLOURS.items()], emit)


if __name__ == "__main__":
    main()
