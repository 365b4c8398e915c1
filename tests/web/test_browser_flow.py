"""The web UI end to end in headless chromium against `ember serve`: sign in, create a project, train a subject
model, fix what the UI flags, publish, share with another organization's technical account, preview and test;
then that account lists the model over the API and generates with it. (`test_browser_product.py` walks the
gallery's actions, the training-set summary, cancelling, retraining and deleting.)"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from ember.client import EmberClient

from .conftest import write_files

pytestmark = pytest.mark.slow

EMAIL = "ada@acme.test"
PASSWORD = "a long enough password"
CONCEPT = "router"
TRAINING_STEPS = "20"
STEP_TIMEOUT_MS = 20_000
TRAINING_TIMEOUT_MS = 120_000
UPLOAD_TIMEOUT_MS = 60_000


def router_picture(index: int) -> bytes:
    """A box with antennas and lights: each index gets its own background, body colour and lights."""
    background = ((index * 53) % 200 + 40, (index * 97) % 200 + 40, (index * 31) % 200 + 40)
    image = Image.new("RGB", (160, 128), background)
    draw = ImageDraw.Draw(image)
    body = (20 + index * 20, 20, 30)
    left, top = 20 + index * 3, 60 + (index % 3) * 8
    draw.rectangle((left, top, left + 110, top + 36), fill=body)
    for antenna in range(2 + index % 2):
        x = left + 15 + antenna * 35
        draw.line((x, top, x - 8 + antenna * 8, top - 40), fill=(10, 10, 10), width=3)
    for light in range(index % 5 + 1):
        draw.ellipse((left + 8 + light * 14, top + 14, left + 16 + light * 14, top + 22), fill=(40, 240, 90))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def training_files(directory: Path) -> list[Path]:
    """Ten distinct pictures, and an eleventh that repeats the first (the UI must flag it)."""
    files = {f"router-{index:02d}.png": router_picture(index) for index in range(10)}
    return write_files(directory, {**files, "router-copy.png": router_picture(0)})


def wait_for_training(walk: Any) -> None:
    """Until the model page shows the preview (trained) or the failure notice (reported in full)."""
    from playwright.sync_api import expect

    page = walk.page
    finished = page.get_by_role("heading", name="Preview and test").or_(page.locator(".notice.error"))
    expect(finished).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    failure = page.locator(".notice.error")
    if failure.count():
        walk.shot("training-failed")
        pytest.fail(f"training did not succeed; the UI says: {failure.inner_text()}")


def test_a_user_trains_publishes_shares_and_tests_a_subject_model_in_the_browser(
    server: Any, browser: Any, walk_of: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    server.add_user("acme", EMAIL, PASSWORD)
    partner = server.add_client("partner")
    page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page.set_default_timeout(STEP_TIMEOUT_MS)
    expect.set_options(timeout=STEP_TIMEOUT_MS)  # assertions wait for the server as long as actions do
    walk = walk_of(page)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    # Sign in.
    page.goto(f"{server.url}/")
    expect(page.get_by_role("heading", name="Sign in to Ember")).to_be_visible()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    walk.shot("sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Custom models")).to_be_visible()
    expect(page.get_by_text(f"{EMAIL} · acme")).to_be_visible()
    walk.shot("gallery-empty")

    # Describe the model and save it to a new project.
    page.get_by_role("navigation").get_by_role("link", name="Train a model").click()
    page.get_by_label("Model name").fill("Router")
    page.get_by_label("Subject").check()
    page.get_by_label("Concept word").fill(CONCEPT)
    page.get_by_label("Base model").select_option("tiny")
    expect(page.get_by_text("test model — images are not meaningful")).to_be_visible()
    page.get_by_label("Save to project").select_option(label="New project…")
    page.get_by_label("New project name").fill("Launch")
    walk.shot("train-describe")
    page.get_by_role("button", name="Continue: add images").click()

    # Upload; the repeated picture is flagged and deleted inline.
    expect(page.get_by_role("heading", name=re.compile("training images"))).to_be_visible()
    expect(page.get_by_label("Concept word")).to_have_value(CONCEPT)  # a draft's concept word can still change
    page.locator("#image-files").set_input_files([str(path) for path in training_files(tmp_path / "images")])
    # Uploading checks and captions every image on the server: allow for a busy machine.
    # Every caption the fallback captioner wrote is left to review until edited.
    expect(page.locator("#image-count")).to_have_text(
        "11 images · 1 needs attention · 10 to review", timeout=UPLOAD_TIMEOUT_MS
    )
    flagged = page.locator(".image-card.flagged")
    expect(flagged).to_contain_text("duplicate")
    walk.shot("images-duplicate-flagged")
    flagged.get_by_role("button", name="Delete").click()
    expect(page.locator("#image-count")).to_have_text("10 images · 10 to review")

    # A caption edited down to one word is flagged; fixing it inline clears the flag.
    first = page.locator(".image-card").first
    first.get_by_role("textbox").fill(CONCEPT)
    first.get_by_role("button", name="Save caption").click()
    expect(page.locator("#image-count")).to_have_text("10 images · 1 needs attention · 9 to review")
    walk.shot("caption-flagged")
    flagged.get_by_role("textbox").fill(f"a photo of {CONCEPT} with two antennas on a desk")
    flagged.get_by_role("button", name="Save caption").click()
    expect(page.locator("#image-count")).to_have_text("10 images · 9 to review")
    expect(flagged).to_have_count(0)

    # Sample prompt, a short run, Train; then live progress until the preview appears.
    page.get_by_role("textbox", name="Sample prompt").fill(f"a photo of {CONCEPT} on a wooden desk")
    page.get_by_text("Advanced").click()
    page.get_by_label("Training steps").fill(TRAINING_STEPS)
    walk.shot("ready-to-train")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_label("Training progress")).to_be_visible()
    stepping = page.locator("#training-step", has_text="loss")
    expect(stepping.or_(page.get_by_role("heading", name="Preview and test"))).to_be_visible(
        timeout=TRAINING_TIMEOUT_MS
    )
    walk.shot("training")
    wait_for_training(walk)
    walk.shot("trained")
    # The progress panel followed the training job's event stream and never polled its status.
    streams = [url for url in requested if re.search(r"/v3/status/[^/]+/events$", url)]
    assert streams, "the page never opened the training job's event stream"
    assert streams[0].removesuffix("/events") not in requested

    # Publish and share with the partner's technical account.
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".page-head .badge.ok")).to_have_text("published")
    page.get_by_role("button", name="Share").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Technical account id or email").fill(partner.technical_account_id)
    dialog.get_by_label("Role").select_option("user")
    dialog.get_by_role("button", name="Share").click()
    expect(dialog.get_by_role("list", name="Shared with")).to_contain_text(partner.technical_account_id)
    walk.shot("shared")
    dialog.get_by_role("button", name="Done").click()

    # Preview: nothing runs until asked; then a prompt with two seeds and two style presets; a download.
    outputs = page.locator(".outputs li")
    expect(page.get_by_role("button", name="Generate")).to_be_enabled()
    expect(outputs).to_have_count(0)
    page.get_by_label("Prompt", exact=True).fill(f"{CONCEPT} on a beach at golden hour")
    page.get_by_label("Seeds (optional)").fill("7, 8")
    expect(page.get_by_label("Variations")).to_be_disabled()  # the seeds decide how many images come back
    page.get_by_text("Style", exact=True).click()
    page.get_by_label("Find a style").fill("golden")
    page.get_by_label("Golden hour").check()
    page.get_by_label("Find a style").fill("cinem")
    page.get_by_label("Cinematic").check()
    expect(page.get_by_text("Chosen: Golden hour, Cinematic")).to_be_visible()
    page.get_by_role("button", name="Generate").click()
    expect(outputs).to_have_count(2, timeout=60_000)
    expect(outputs.first).to_contain_text("seed 7")
    expect(outputs.first).to_contain_text(f"{CONCEPT} on a beach at golden hour")
    with page.expect_download() as download:
        outputs.first.get_by_role("link", name=re.compile("Download")).click()
    assert download.value.suggested_filename == "ember-7.png"
    walk.shot("preview-and-test")

    # History and the gallery, at desktop and phone widths.
    page.get_by_role("navigation").get_by_role("link", name="History").click()
    expect(page.locator("table.jobs tbody tr")).to_have_count(2)  # the training and the one generation asked for
    walk.shot("history")
    page.get_by_role("navigation").get_by_role("link", name="Custom models").click()
    card = page.locator(".model-card", has_text="Router")
    expect(card).to_contain_text("test model — images are not meaningful")
    expect(card.get_by_role("img")).to_be_visible()
    walk.shot("gallery")
    page.set_viewport_size({"width": 390, "height": 844})
    walk.shot("gallery-phone")
    card.get_by_role("link", name="Open Router").click()
    expect(page.get_by_role("heading", name="Preview and test")).to_be_visible()
    walk.shot("model-phone")
    assert problems == []

    # The partner's API client sees the shared model and generates with it.
    with EmberClient(server.url, partner.client_id, partner.client_secret) as api:
        models = {model["displayName"]: model for model in api.list_custom_models()}
        assert models["Router"]["conceptId"] == CONCEPT
        accepted = api.generate_async(
            f"a photo of {CONCEPT}", custom_model_id=models["Router"]["assetId"], seeds=[3], mimetype="image/png"
        )
        status = api.wait(accepted["jobId"], timeout_s=60)
        image = api.download(status["result"]["outputs"][0]["image"]["url"])
    assert Image.open(io.BytesIO(image)).format == "PNG"
