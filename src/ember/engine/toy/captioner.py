"""The `toy` base model's captioner: captions in the toy world's own words, read by the toy measures."""

from __future__ import annotations

from PIL import Image

from ember.engine.dataset import center_crop_resize
from ember.engine.toy.measure import SceneReader, read_colour
from ember.engine.toy.world import SIZE, caption


class ToyCaptioner:
    """Writes "a zorb on a purple background" (subject) or "a circle" (style) for what the measures read.

    The picture is read as training will see it (centre-cropped and scaled to 64×64). In subject mode the
    concept word takes the place of the shape and its colour (the concept carries its colour, as the toy world's
    subject captions do), so only the background is read; colours outside the world's palette are named by the
    nearest palette colour, which is the word the base model knows. In style mode only the shape is named: in a
    styled picture the colours are the style, and naming the palette colour they happen to be nearest to (sepia
    reads as "yellow on gray") would tie the style to those words, so prompts with other colours (a purple
    background) kept theirs. Measured with bench/learning.py: with colours named, one shape's prompt stayed
    unstyled (sepia 0.0); with the shape alone every shape's prompt took the style (lowest 0.62).
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
        return f"a {self._reader.read([picture])[0].shape}"
