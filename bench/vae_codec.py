"""How well the `toy` VAE passes pictures through unchanged: the star rate of drawn stars, encoded and decoded.

A custom model can only draw what the VAE can decode. This bench takes the learning bench's drawn stars (the
pictures a user uploads, prepared at 64 px as training prepares them), encodes and decodes them with the
committed VAE (or one in `--vae DIR`), and reads them with the toy measures: the star rate of the pictures
themselves (the ceiling) against their round trip, plus the mean squared error on world scenes. Seconds, no
training: `python bench/vae_codec.py [--vae DIR] [--pictures 48]`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from learning import drawn_star_pictures  # noqa: E402

from ember.engine.dataset import prepare_image  # noqa: E402
from ember.engine.toy.measure import SceneReader, shape_rate  # noqa: E402
from ember.engine.toy.model import PIPELINE_DIR  # noqa: E402
from ember.engine.toy.world import SEEN_PAIRS, random_scenes, render  # noqa: E402


def load_vae(directory: Path | None = None) -> Any:
    import torch
    from diffusers import AutoencoderKL

    vae: Any = AutoencoderKL.from_pretrained(str(directory or PIPELINE_DIR / "vae"), dtype=torch.float32)
    return vae.eval()


def round_trip(vae: Any, pictures: Sequence[Image.Image]) -> list[Image.Image]:
    """Each picture encoded (the posterior's mode) and decoded, as 8-bit RGB."""
    import numpy as np
    import torch

    array = np.stack([np.asarray(p.convert("RGB"), dtype=np.float32) for p in pictures]) / 127.5 - 1.0
    with torch.no_grad():
        batch = torch.from_numpy(array).permute(0, 3, 1, 2)
        decoded = vae.decode(vae.encode(batch).latent_dist.mode()).sample
    out = ((decoded.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(row) for row in out]


def drawn_stars(count: int, seeds: Sequence[int] = (0, 1, 2, 3)) -> list[Image.Image]:
    """The learning bench's drawn stars for several seeds, prepared at 64 px as training prepares them."""
    per_seed = max(1, count // len(seeds))
    return [
        prepare_image(data, 64) for seed in seeds for _, data, _ in drawn_star_pictures(per_seed, seed)
    ][:count]


def world_error(vae: Any, count: int = 256) -> float:
    import numpy as np

    scenes = [render(scene) for scene in random_scenes(12345, count, pairs=SEEN_PAIRS)]
    back = round_trip(vae, scenes)
    a = np.stack([np.asarray(p, dtype=np.float32) / 127.5 - 1 for p in scenes])
    b = np.stack([np.asarray(p, dtype=np.float32) / 127.5 - 1 for p in back])
    return float(((a - b) ** 2).mean())


def main(argv: Sequence[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vae", type=Path, default=None, help="A VAE folder (default: the committed one).")
    parser.add_argument("--pictures", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    reader = SceneReader()
    vae = load_vae(args.vae)
    stars = drawn_stars(args.pictures)
    back = round_trip(vae, stars)
    print(f"drawn stars as drawn, star rate        {shape_rate(reader.read(stars), 'star'):.2f}")
    print(f"drawn stars through the VAE, star rate {shape_rate(reader.read(back), 'star'):.2f}")
    world = [render(s) for s in random_scenes(7, 64, pairs=tuple(("star", c) for c in ("yellow", "red", "white")))]
    print(f"world stars through the VAE, star rate {shape_rate(reader.read(round_trip(vae, world)), 'star'):.2f}")
    print(f"world scenes, squared error            {world_error(vae):.5f}")


if __name__ == "__main__":
    main()
