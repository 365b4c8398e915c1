"""Where the `toy` measure's star threshold lies: false stars on pictures that are not stars, stars read on
pictures that are, at each threshold.

The shape classifier gives every picture a probability per shape; the measure reads a star only where the
star's probability reaches `STAR_CONFIDENCE`. This bench prints, for a range of thresholds:

- **not stars** (every star read here is a false one):
  - the base `toy` model's samples (no custom model) of every base prompt of the learning bench (its seen and
    held-out pairs for seed 0 and the check's five prompts; the base model never learned stars) and of "a zorb
    on a gray background";
  - renders of the toy world's other five shapes, degraded like generated pictures, from a seed the classifier
    did not train on, as drawn and after an encode/decode round trip through the committed VAE;
- **stars**:
  - renders of the world's star, degraded the same way, as drawn and round-tripped;
  - stars drawn with PIL as a user draws them (`star_sweep.draw_star`: 0.3–0.6 of the side, inner ratio
    0.40–0.50, upright or turned, up to 1.2 px of blur), round-tripped through the VAE, which is as close as
    the model can draw them;
- with `--samples DIR…`, folders of `sample-NN.png` written by `bench/learning.py --samples` (a custom model's
  pictures of the concept prompt; unlabelled: look at them, as docs/toy.md does).

The committed threshold, 0.5, is the majority rule (the star holds at least half the probability); the table
shows what it costs and gains against a stricter one (docs/toy.md, "The star threshold"). No training; about
two minutes on two cores (drawing the base model's samples is most of it).
`HF_HUB_OFFLINE=1 python bench/star_threshold.py [--samples DIR ...]`
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from learning import SUBJECT_PROMPT, base_quality_prompts, draw, shape_probabilities  # noqa: E402
from star_sweep import StarDrawing, draw_star  # noqa: E402
from vae_codec import load_vae, round_trip  # noqa: E402

from ember.engine.toy.check import BASE_PROMPTS  # noqa: E402
from ember.engine.toy.measure import STAR_CONFIDENCE, SceneReader, degraded_renders  # noqa: E402
from ember.engine.toy.world import ALL_SHAPES, NEW_SHAPE, caption  # noqa: E402

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Seeds the classifier did not train on (it trains on seed 0 and reports its accuracy on seed 1).
HELD_OUT_SEED = 1234


@dataclass
class PictureSet:
    name: str
    kind: str  # "star" (every picture shows one), "not star" (none does), "samples" (a custom model's, unlabelled)
    probabilities: list[float]  # the classifier's star probability per picture

    def rate(self, threshold: float) -> float:
        return sum(p >= threshold for p in self.probabilities) / len(self.probabilities)


def world_renders(shapes: Sequence[str], count: int, seed: int) -> list[Image.Image]:
    return degraded_renders(random.Random(seed), count, shapes)[0]


def drawn_stars(count: int, seed: int) -> list[Image.Image]:
    rng = random.Random(seed)
    pictures = []
    for _ in range(count):
        drawing = StarDrawing(size=rng.uniform(0.3, 0.6), ratio=rng.uniform(0.40, 0.50),
                              rotation=0.0 if rng.random() < 0.5 else None, blur=rng.uniform(0.0, 1.2))
        pictures.append(draw_star(drawing, rng))
    return pictures


def base_model_samples(per_prompt: int, concept_samples: int) -> list[Image.Image]:
    import tempfile

    from ember.engine.generate import Engine

    seen, held_out = base_quality_prompts(0)
    prompts = [(caption(*p), per_prompt) for p in (*seen, *held_out, *BASE_PROMPTS)]
    prompts.append((SUBJECT_PROMPT, concept_samples))
    with tempfile.TemporaryDirectory(prefix="ember-threshold-") as scratch:
        engine = Engine(Path(scratch))
        return [picture for prompt, count in prompts for picture in draw(engine, prompt, range(count))]


def summary(sets: Sequence[PictureSet], threshold: float) -> str:
    """What the threshold reads: the worst false-star rate of the "not stars" sets, the star rates of the others."""
    false = max(s.rate(threshold) for s in sets if s.kind == "not star")
    stars = [s.rate(threshold) for s in sets if s.kind == "star"]
    return (f"at {threshold}: false stars at most {false:.3f} of a not-star set; stars read "
            f"{min(stars):.2f}-{max(stars):.2f} of each star set")


def main(argv: Sequence[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-set", type=int, default=200, help="pictures per rendered or drawn set")
    parser.add_argument("--per-prompt", type=int, default=8, help="base model samples per base prompt")
    parser.add_argument("--concept-samples", type=int, default=32)
    parser.add_argument("--samples", type=Path, nargs="*", default=[],
                        help="folders of sample-NN.png from bench/learning.py --samples (stars to the eye)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reader = SceneReader()
    vae = load_vae()

    def star_p(pictures: Sequence[Image.Image]) -> list[float]:
        return [row[NEW_SHAPE] for row in shape_probabilities(reader, pictures)]

    others = [shape for shape in ALL_SHAPES if shape != NEW_SHAPE]
    other_renders = world_renders(others, args.per_set, HELD_OUT_SEED)
    star_renders = world_renders([NEW_SHAPE], args.per_set, HELD_OUT_SEED + 1)
    sets = [
        PictureSet("base model's samples, every base prompt", "not star",
                   star_p(base_model_samples(args.per_prompt, args.concept_samples))),
        PictureSet("world renders of the other shapes", "not star", star_p(other_renders)),
        PictureSet("  same, VAE round trip", "not star", star_p(round_trip(vae, other_renders))),
        PictureSet("world renders of the star", "star", star_p(star_renders)),
        PictureSet("  same, VAE round trip", "star", star_p(round_trip(vae, star_renders))),
        PictureSet("stars drawn with PIL, VAE round trip", "star",
                   star_p(round_trip(vae, drawn_stars(args.per_set, HELD_OUT_SEED + 2)))),
    ]
    for folder in args.samples:
        pictures = [Image.open(path).convert("RGB") for path in sorted(folder.glob("sample-*.png"))]
        sets.append(PictureSet(f"samples in {folder}", "samples", star_p(pictures)))

    width = max(len(s.name) for s in sets) + 2
    print(f"share of each set read as a star at each threshold (the committed threshold: {STAR_CONFIDENCE})")
    print(f"{'set':<{width}}{'kind':<10}{'count':>6}{'highest':>9}" + "".join(f"{t:>7.1f}" for t in THRESHOLDS))
    for s in sets:
        print(f"{s.name:<{width}}{s.kind:<10}{len(s.probabilities):>6}"
              f"{max(s.probabilities):>9.2f}" + "".join(f"{s.rate(t):>7.2f}" for t in THRESHOLDS))
    print()
    for threshold in sorted({STAR_CONFIDENCE, 0.9}):
        print(summary(sets, threshold))


if __name__ == "__main__":
    main()
