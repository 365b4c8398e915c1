"""The `toy` base model's captioner: captions in the toy world's own words, read by the toy measures."""

from __future__ import annotations

from PIL import Image

from ember.engine.dataset import center_crop_resize
from ember.engine.toy.measure import SceneReader, read_background, read_colour
from ember.engine.toy.world import SIZE, caption


class ToyCaptioner:
    """Writes "a zorb on a purple background" (subject) or "a circle on a black background" (style) for what
    the measures read.

    The picture is read as training will see it (centre-cropped and scaled to 64×64). In subject mode the
    concept word takes the place of the shape and its colour (the concept carries its colour, as the toy world's
    subject captions do), so only the background is read; colours outside the world's palette are named by the
    nearest palette colour, which is the word the base model knows. In style mode the shape and the background
    are named, as the world's own captions name them, and the shape's colour is not: in a styled picture the
    colours are the style, and naming the palette colour they happen to be nearest to (sepia reads as "yellow")
    would tie the style to that word, so prompts with other colours kept theirs. A sepia picture's background
    is named as the world names a sepia scene's, by the background it had before the style (its brightness,
    `measure.read_background`): by the nearest colour, a sepia purple reads as gray, no style picture was
    captioned "purple", and the prompt on a purple background stayed unstyled on two seeds of three.

    Measured with bench/learning.py (250 steps, seeds 0–2): shape and background, sepia on every shape's prompt
    (1.00 on each seed) and shapes right 0.77–0.82 under the style; the shape alone on "a background", sepia
    0.35 (0.00 on two shapes, seed 0); the shape's colour named, one shape's prompt stayed unstyled. "a circle"
    alone is shorter than the 3 words a caption needs, and was replaced by the built-in captioner's words,
    with "square" in every caption: shapes right 0.48.
    """

    name = "toy"
    review_note: str | None = None

    def __init__(self) -> None:
        self._reader: SceneReader | None = None

    def caption(self, image: Image.Image, mode: str = "style", concept: str | None = None) -> str:
        picture = center_crop_resize(image, SIZE, SIZE)
        if mode == "subject" and concept:
            _, background = read_colour(picture)
            return caption(concept.strip(), None, background)
        if self._reader is None:
            self._reader = SceneReader()  # the shape classifier needs torch: loaded only in style mode
        return caption(self._reader.read([picture])[0].shape, None, read_background(picture))
