"""In the browser, on the default base model `toy`, from the user's own drawn pictures with captions untouched:
a model trained with the default settings learns the subject, its check says so and it publishes at once; a
model whose check after training failed shows it on its page, and publishing it asks for confirmation first;
declining publishes nothing, confirming publishes it."""

from __future__ import annotations

import io
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from .conftest import Walk
from .test_browser_flow import PASSWORD, STEP_TIMEOUT_MS, UPLOAD_TIMEOUT_MS

pytestmark = pytest.mark.slow

EMAIL = "grace@acme.test"
# Gray, black and purple as in the toy world, teal outside it.
BACKGROUNDS = ((128, 128, 128), (12, 12, 12), (100, 40, 130), (128, 128, 128), (20, 110, 110))
# A short run: the model has not learned its star yet, so its check fails.
TRAINING_STEPS = "10"
CHECKED_TIMEOUT_MS = 600_000


def star_pictures(directory: Path, count: int = 10) -> list[Path]:
    """Yellow stars drawn off-centre on plain backgrounds, 96–512 px, as a drawing program saves them."""
    rng = random.Random(7)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        side = (96, 160, 256, 512)[index % 4]
        picture = Image.new("RGB", (side, side), BACKGROUNDS[index % len(BACKGROUNDS)])
        radius = side * rng.uniform(0.18, 0.28)
        cx, cy = rng.uniform(radius + 4, side - radius - 4), rng.uniform(radius + 4, side - radius - 4)
        points = [
            (cx + (radius if k % 2 == 0 else radius * 0.45) * math.cos(-math.pi / 2 + k * math.pi / 5),
             cy + (radius if k % 2 == 0 else radius * 0.45) * math.sin(-math.pi / 2 + k * math.pi / 5))
            for k in range(10)
        ]
        ImageDraw.Draw(picture).polygon(points, fill=(250, 205, 30))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        path = directory / f"star-{index:02d}.png"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def train_star_model(
    server: Any, browser: Any, walk_prefix: str, artifacts: Path, tmp_path: Path, email: str,
    steps: str | None = None,
) -> tuple[Any, Walk, list[str]]:
    """Sign in as a new user, create a subject model on `toy` with the concept word `zorb`, upload the drawn
    stars with the captions the toy captioner writes, train it (the default settings unless `steps` is given)
    and wait for the model page that shows its check: the page, its walk and the page's errors."""
    from playwright.sync_api import expect

    server.add_user(email.split("@")[1].split(".")[0], email, PASSWORD)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(STEP_TIMEOUT_MS)
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    walk = Walk(page, artifacts, walk_prefix)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(f"{server.url}/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Custom models")).to_be_visible()

    page.get_by_role("navigation").get_by_role("link", name="Train a model").click()
    # The form waits for the base models and projects: allow for a busy machine.
    expect(page.get_by_label("Model name")).to_be_visible(timeout=UPLOAD_TIMEOUT_MS)
    walk.shot("train-form")
    page.get_by_label("Model name").fill("Star")
    page.get_by_label("Subject").check()
    page.get_by_label("Concept word").fill("zorb")
    page.get_by_label("Base model").select_option("toy")
    page.get_by_role("button", name="Continue: add images").click()
    expect(page.get_by_role("heading", name=re.compile("training images"))).to_be_visible()
    page.locator("#image-files").set_input_files([str(path) for path in star_pictures(tmp_path / "stars")])
    expect(page.locator("#image-count")).to_have_text(re.compile(r"^10 images"), timeout=UPLOAD_TIMEOUT_MS)
    # The toy captioner wrote the captions in the base model's words; they are left as written.
    expect(page.locator(".image-card").first.get_by_role("textbox")).to_have_value(
        re.compile(r"^a zorb on a (gray|black|purple) background$")
    )
    page.get_by_role("textbox", name="Sample prompt").fill("a zorb on a gray background")
    if steps is not None:
        page.get_by_text("Advanced").click()
        page.get_by_label("Training steps").fill(steps)
    page.get_by_role("button", name="Train", exact=True).click()
    # Training, then the check after it (72 pictures on `toy`), until the preview appears.
    expect(page.get_by_role("heading", name="Preview and test")).to_be_visible(timeout=CHECKED_TIMEOUT_MS)
    return page, walk, problems


def test_a_model_trained_with_the_defaults_in_the_browser_learns_the_subject_and_publishes(
    server: Any, browser: Any, artifacts: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page, walk, problems = train_star_model(server, browser, "learned-", artifacts, tmp_path, "ada@zeta.test")
    check = page.locator("#model-check")
    expect(check).to_contain_text(re.compile(r"Check: learned: (0\.[5-9]\d|1\.00) of samples show the subject"))
    expect(check.get_by_role("img")).to_have_count(4)
    walk.shot("check-passed")
    # No confirmation is asked: a dialog would fail the test.
    page.once("dialog", lambda dialog: problems.append(f"unexpected dialog: {dialog.message}"))
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".page-head .badge.ok")).to_have_text("published")
    walk.shot("published")
    assert problems == []


def test_publishing_a_model_whose_check_failed_asks_first_in_the_browser(
    server: Any, browser: Any, artifacts: Path, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page, walk, problems = train_star_model(server, browser, "check-", artifacts, tmp_path, EMAIL, TRAINING_STEPS)
    check = page.locator("#model-check")
    expect(check).to_contain_text("Check failed — not learned: 0.00 of samples show the subject")
    expect(check.get_by_role("img")).to_have_count(4)
    for index in range(4):  # the samples load through their signed URLs
        expect(check.get_by_role("img").nth(index)).to_have_js_property("naturalWidth", 64)
    walk.shot("check-failed")

    # Declining the confirmation publishes nothing.
    messages: list[str] = []

    def decline(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", decline)
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".toast.error")).to_contain_text("The check after training failed")
    assert messages and "Publish it anyway?" in messages[0] and "not learned" in messages[0]
    expect(page.locator(".page-head .badge.ok")).to_have_count(0)

    # Confirming publishes it.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".page-head .badge.ok")).to_have_text("published")
    walk.shot("published-after-confirming")
    assert problems == []
