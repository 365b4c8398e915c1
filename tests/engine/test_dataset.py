"""Training-set rules of SPEC §2, each with its error code, and preparation of images for training."""

from __future__ import annotations

import struct
import zlib

import pytest
from PIL import Image

from ember.engine import dataset
from ember.engine.dataset import DatasetRules, check_dataset, check_image, prepare_image
from ember.engine.registry import get_base_model

from .conftest import encode, triangle_picture

TINY = get_base_model("tiny")


def codes(report: dataset.ImageReport) -> list[str]:
    return [issue.code for issue in report.errors]


def test_a_good_image_passes_with_its_size_and_format() -> None:
    report = check_image("a.png", encode(triangle_picture(0)), TINY)
    assert report.ok and (report.format, report.width, report.height) == ("PNG", 160, 160)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_jpeg_png_and_webp_are_accepted(fmt: str) -> None:
    assert check_image("a", encode(triangle_picture(0), fmt), TINY).ok


def test_other_formats_are_unsupported() -> None:
    report = check_image("a.gif", encode(triangle_picture(0), "GIF"), TINY)
    assert codes(report) == [dataset.UNSUPPORTED_FORMAT]


def test_empty_file_is_reported() -> None:
    assert codes(check_image("a.png", b"", TINY)) == [dataset.EMPTY_FILE]


def test_files_over_the_size_limit_are_too_large() -> None:
    data = encode(triangle_picture(0))
    report = check_image("a.png", data, TINY, DatasetRules(max_bytes=len(data) - 1))
    assert codes(report) == [dataset.FILE_TOO_LARGE]


def test_bytes_that_are_not_an_image_are_corrupt() -> None:
    assert codes(check_image("a.png", b"this is not an image at all", TINY)) == [dataset.CORRUPT_IMAGE]


def test_a_truncated_image_is_corrupt() -> None:
    data = encode(triangle_picture(0), "JPEG")
    assert codes(check_image("a.jpg", data[: len(data) // 2], TINY)) == [dataset.CORRUPT_IMAGE]


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares a huge size over a tiny payload: a decompression bomb's shape."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def test_an_image_declaring_too_many_pixels_is_a_decompression_bomb() -> None:
    assert codes(check_image("bomb.png", _png_declaring(60000, 60000), TINY)) == [dataset.DECOMPRESSION_BOMB]


def test_the_pixel_limit_is_configurable() -> None:
    report = check_image("a.png", encode(triangle_picture(0)), TINY, DatasetRules(max_pixels=100 * 100))
    assert codes(report) == [dataset.DECOMPRESSION_BOMB]


def test_shortest_side_below_the_models_minimum_is_too_small() -> None:
    small = triangle_picture(0, size=(TINY.min_train_side - 1, 100))
    assert codes(check_image("a.png", encode(small), TINY)) == [dataset.IMAGE_TOO_SMALL]


def test_minimum_side_follows_the_base_model() -> None:
    picture = encode(triangle_picture(0, size=(600, 600)))
    assert check_image("a.png", picture, get_base_model("sd15")).ok
    assert codes(check_image("a.png", picture, get_base_model("sdxl"))) == [dataset.IMAGE_TOO_SMALL]


def test_minimum_side_can_be_overridden_by_the_rules() -> None:
    picture = encode(triangle_picture(0, size=(600, 600)))
    assert check_image("a.png", picture, get_base_model("sdxl"), DatasetRules(min_side=512)).ok


@pytest.mark.parametrize("size", [(330, 180), (180, 330)])
def test_aspect_ratio_beyond_sixteen_by_nine_is_rejected(size: tuple[int, int]) -> None:
    report = check_image("a.png", encode(triangle_picture(0, size=size)), TINY)
    assert codes(report) == [dataset.ASPECT_RATIO_OUT_OF_RANGE]


@pytest.mark.parametrize("size", [(320, 180), (180, 320)])
def test_exactly_sixteen_by_nine_is_accepted(size: tuple[int, int]) -> None:
    assert check_image("a.png", encode(triangle_picture(0, size=size)), TINY).ok


def test_exif_orientation_is_applied_before_measuring() -> None:
    picture = triangle_picture(0, size=(300, 170))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90°: the stored landscape is shown as a portrait
    report = check_image("a.jpg", encode(picture, "JPEG", exif=exif.tobytes()), TINY)
    assert (report.width, report.height) == (170, 300)


def test_exif_orientation_is_applied_when_preparing() -> None:
    picture = Image.new("RGB", (200, 100), (255, 0, 0))
    picture.paste((0, 0, 255), (0, 0, 100, 100))  # left half blue, right half red
    exif = Image.Exif()
    exif[0x0112] = 6
    prepared = prepare_image(encode(picture, "PNG", exif=exif.tobytes()), 64)
    top, bottom = prepared.getpixel((32, 5)), prepared.getpixel((32, 58))
    assert top[2] > 200 and bottom[0] > 200  # rotated clockwise: the left (blue) half is on top


def test_near_duplicates_are_reported_on_the_later_image() -> None:
    original = triangle_picture(0, size=(200, 200))
    recompressed = encode(original.resize((190, 190)), "JPEG", quality=70)
    files = [
        ("a.png", encode(original)),
        ("b.png", encode(triangle_picture(5, size=(200, 200)))),
        ("c.jpg", recompressed),
    ]
    report = check_dataset(files, TINY, DatasetRules(min_count=1))
    assert [codes(image) for image in report.images] == [[], [], [dataset.DUPLICATE_IMAGE]]
    assert "a.png" in report.images[2].errors[0].message


def test_fewer_than_ten_images_is_too_few() -> None:
    files = [(f"{i}.png", encode(triangle_picture(i))) for i in range(9)]
    report = check_dataset(files, TINY)
    assert [issue.code for issue in report.errors] == [dataset.TOO_FEW_IMAGES] and not report.ok


def test_more_than_thirty_images_is_too_many() -> None:
    files = [(f"{i}.png", encode(Image.new("RGB", (64, 64), (i * 8, 0, 0)))) for i in range(31)]
    report = check_dataset(files, TINY, DatasetRules(copy_likeness=-1))
    assert [issue.code for issue in report.errors] == [dataset.TOO_MANY_IMAGES]


def test_ten_distinct_good_images_make_a_valid_dataset() -> None:
    files = [(f"{i}.png", encode(triangle_picture(i))) for i in range(10)]
    report = check_dataset(files, TINY)
    assert report.ok, [(image.name, codes(image)) for image in report.images]


def test_every_message_is_human_readable() -> None:
    report = check_image("a.gif", encode(triangle_picture(0), "GIF"), TINY)
    assert all(issue.message and issue.message[0].isupper() for issue in report.errors)


def test_prepare_crops_to_a_square_at_the_training_resolution() -> None:
    assert prepare_image(triangle_picture(0, size=(300, 200)), 128).size == (128, 128)


def test_prepare_with_buckets_keeps_the_nearest_aspect_ratio() -> None:
    buckets = dataset.bucket_sizes(512)
    prepared = prepare_image(triangle_picture(0, size=(320, 180)), 512, buckets)
    assert prepared.size in buckets and prepared.width > prepared.height
