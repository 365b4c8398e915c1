"""The `toy` base model's captioner: captions in the toy world's own words, read by the toy measures."""

from __future__ import annotations

from PIL import Image

from ember.engine.dataset import center_crop_resize
from ember.engine.toy.measure import SceneReader, read_colour
from ember.engine.toy.world import SIZE, caption


class ToyCaptioner:
    """Writes "a red circle on a black background" for what the measures read in a picture.

    The picture is read as training will see it (centre-cropped and scaled to 64×64). In subject mode the
    concept word takes the place of the shape and its colour (the concept carries its colour, as the toy world's
    subject captions do), so only the background is read; in style mode the shape, its colour and the background
    are named and the style is left unnamed, so that the custom model applies it to every prompt. Colours outside
    the world's palette are named by the nearest palette colour, which is the word the base model knows.
    """

    name = "toy"
    review_note: str | None = None

    def __init__(self) -> None:
        self._reader: SceneReader | None = None

    def caption(self, image: Image.Image, mode: str = "style", concept: str | None = None) -> str:
        picture = center_crop_resize(image, SIZE, SIZE)
        colour, background = read_colour(picture)
        if mode == "subject" and concept:
            return caption(concept.strip(), None, background)
        if self._reader is None:
            self._reader = SceneReader()  # the shape classifier needs torch: loaded only in style mode
        shape = self._reader.read([picture])[0].shape
        return caption(shape, colour, background)
