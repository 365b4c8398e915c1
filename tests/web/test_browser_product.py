"""The web UI as a product, in headless chromium against `ember serve`: a style model in a new project, a
training set with a flagged and a corrupt file, previews that survive a reload, the training-set summary and
its bulk delete, cancelling (after a confirmation) and retraining, renaming, publishing, a preview that runs
nothing unasked, the gallery's project filter and actions menu, deleting after a confirmation; and the gallery
and the model page at a phone's 390 px with nothing pushed off-screen. Screenshots of each step go to the
artifacts folder (`docs/images/` holds a chosen few)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from .conftest import write_files

pytestmark = pytest.mark.slow

EMAIL = "grace@acme.test"
PASSWORD = "a long enough password"
STEP_TIMEOUT_MS = 20_000
UPLOAD_TIMEOUT_MS = 60_000
TRAINING_TIMEOUT_MS = 180_000
LONG_RUN_STEPS = "5000"  # long enough that it is still queued or running when it is cancelled
SHORT_RUN_STEPS = "12"
PHONE_WIDTH = 390


def ink_picture(index: int, size: tuple[int, int] = (160, 128)) -> bytes:
    """Brush strokes on paper: each index gets its own strokes and tint."""
    image = Image.new("RGB", size, (240 - index * 3, 232, 215))
    draw = ImageDraw.Draw(image)
    for stroke in range(3 + index % 3):
        x = 4 + (index * 37 + stroke * 29) % max(8, size[0] - 40)
        draw.line((x, 10 + stroke * 9, x + 30 - stroke * 7, size[1] - 12), fill=(20 + index * 9, 20, 30), width=4)
    draw.ellipse((size[0] - 50, 12, size[0] - 20 + index % 4, 42), outline=(10, 10, 10), width=3)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def training_files(directory: Path) -> list[Path]:
    """Ten usable pictures, one too small for the base model (flagged, kept) and one corrupt file (refused)."""
    files = {f"ink-{index:02d}.png": ink_picture(index) for index in range(10)}
    files["tiny-sketch.png"] = ink_picture(11, size=(40, 32))
    files["broken.png"] = b"\x89PNG\r\n\x1a\n" + b"not really a picture" * 20
    return write_files(directory, files)


def offscreen(page: Any) -> list[str]:
    """Every visible element of the page whose box reaches past the viewport's left or right edge (content
    inside a box that scrolls sideways on purpose would be listed too: there is none)."""
    found: list[str] = page.evaluate(
        """() => {
          const width = document.documentElement.clientWidth;
          const out = [];
          for (const el of document.querySelectorAll("body *")) {
            const style = getComputedStyle(el);
            if (style.visibility === "hidden" || style.position === "fixed") continue;
            if (el.closest(".visually-hidden") || el.matches("input[type=file]")) continue;
            for (const box of el.getClientRects()) {
              if (box.width === 0 || box.height === 0) continue;
              if (box.left < -0.5 || box.right > width + 0.5) {
                const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
                  + (el.className && typeof el.className === "string" ? "." + el.className.split(" ").join(".") : "");
                out.push(`${name} [${Math.round(box.left)}, ${Math.round(box.right)}] of ${width}`);
                break;
              }
            }
          }
          const scrolled = document.documentElement.scrollWidth;
          if (scrolled > width) out.push(`page scrolls sideways: ${scrolled}`);
          return out;
        }"""
    )
    return found


def thumbnails_loaded(page: Any) -> tuple[int, int]:
    """(cards, cards whose preview image has loaded with real pixels)."""
    counts: list[int] = page.evaluate(
        """() => {
          const cards = [...document.querySelectorAll(".image-card")];
          const loaded = cards.filter((card) => {
            const img = card.querySelector("img.thumb");
            return img && img.complete && img.naturalWidth > 0;
          });
          return [cards.length, loaded.length];
        }"""
    )
    return counts[0], counts[1]


def test_a_user_manages_a_style_model_from_draft_to_deletion_in_the_browser(
    server: Any, browser: Any, walk_of: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    server.add_user("acme", EMAIL, PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    walk = walk_of(page, "product-")
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    generations: list[str] = []
    page.on(
        "request",
        lambda request: generations.append(request.url) if request.url.endswith("/v3/images/generate-async") else None,
    )

    # Before sign-in there is no navigation and no "Sign out"; focus is in the first field.
    page.goto(f"{server.url}/")
    expect(page.get_by_role("heading", name="Sign in to Ember")).to_be_visible()
    expect(page).to_have_title("Sign in — Ember")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    expect(page.get_by_label("Email")).to_be_focused()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Custom models")).to_be_visible()
    expect(page).to_have_title("Custom models — Ember")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    # Describe a style model: the concept field is not shown; a new project's name only when asked for.
    page.get_by_role("navigation").get_by_role("link", name="Train a model").click()
    expect(page).to_have_title("Train a model — Ember")
    expect(page.get_by_label("Model name")).to_be_focused()
    expect(page.get_by_label("Concept word")).to_be_visible()
    expect(page.get_by_label("New project name")).to_be_hidden()
    page.get_by_label("Model name").fill("Ink wash")
    page.get_by_label("Style").check()
    expect(page.get_by_label("Concept word")).to_be_hidden()
    page.get_by_label("Base model").select_option("tiny")
    page.get_by_label("Save to project").select_option(label="New project…")
    expect(page.get_by_label("New project name")).to_be_visible()
    page.get_by_label("New project name").fill("Posters")
    walk.shot("describe-style-model")
    page.get_by_role("button", name="Continue: add images").click()
    expect(page.get_by_role("heading", name=re.compile("training images"))).to_be_visible()
    expect(page).to_have_title("Ink wash — Ember")
    expect(page.locator(".page-head")).to_contain_text("project Posters")

    # Back leaves the model for the gallery (not an empty form that would make a second draft), and the new
    # project is in the gallery's filter.
    page.go_back()
    expect(page.get_by_role("heading", name="Custom models")).to_be_visible()
    expect(page.locator(".model-card")).to_have_count(1)
    expect(page.get_by_label("Project")).to_contain_text("Posters")
    page.locator(".model-card").get_by_role("link", name="Ink wash", exact=True).click()

    # The file input is hidden inside its drop zone, which shows where keyboard focus is.
    # Once drawn, the page puts focus on its heading (no field comes first here); then the user tabs on.
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    page.locator("#image-files").focus()
    outline = page.locator("label.dropzone").evaluate("(zone) => getComputedStyle(zone).outlineStyle")
    assert outline == "solid"

    # Upload: the small picture is kept and flagged, the corrupt file is refused with its reason.
    page.locator("#image-files").set_input_files([str(path) for path in training_files(tmp_path / "images")])
    expect(page.locator("#image-count")).to_contain_text("11 images · 1 needs attention", timeout=UPLOAD_TIMEOUT_MS)
    expect(page.get_by_role("list", name="Files that were not added")).to_contain_text("broken.png")
    summary = page.locator("#training-summary")
    expect(summary).to_contain_text("Training cannot start yet")
    expect(summary).to_contain_text("Too small for the base model: 1 image — tiny-sketch.png")
    walk.shot("images-flagged-and-refused")

    # A reload (or a later visit) still shows every image's preview.
    page.reload()
    expect(page.locator(".image-card")).to_have_count(11)
    page.wait_for_function(
        """() => [...document.querySelectorAll('.image-card img.thumb')]
              .filter((img) => img.complete && img.naturalWidth > 0).length === 11""",
        timeout=STEP_TIMEOUT_MS,
    )
    assert thumbnails_loaded(page) == (11, 11)

    # Bulk delete of the flagged images, after a confirmation that names them.
    page.get_by_role("button", name="Delete 1 flagged image").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("tiny-sketch.png")
    dialog.get_by_role("button", name="Delete them").click()
    expect(page.locator("#image-count")).to_contain_text("10 images")
    expect(page.locator(".image-card.flagged")).to_have_count(0)
    # The toast that says so lets clicks through to the cards under it (only its close button takes them).
    toast = page.locator("#toast")
    expect(toast).to_contain_text("Deleted 1 image.")
    assert toast.evaluate("(el) => getComputedStyle(el).pointerEvents") == "none"
    expect(summary).not_to_contain_text("Too small")
    walk.shot("flagged-deleted")

    # Train a long run, then cancel it: a confirmation first, then a calm notice and "Train again".
    page.get_by_role("textbox", name="Sample prompt").fill("a lighthouse on a cliff")
    page.get_by_text("Advanced").click()
    page.get_by_label("Training steps").fill(LONG_RUN_STEPS)
    expect(summary).to_contain_text("Ready to train.")
    walk.shot("ready-to-train")
    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_label("Training progress")).to_be_visible()
    # Meanwhile, in another tab, the gallery shows how far the training is.
    other = context.new_page()
    other.goto(f"{server.url}/ui/#/models")
    expect(other.locator(".model-card .badge.state-training")).to_have_text(
        re.compile(r"^training \d+ %$"), timeout=TRAINING_TIMEOUT_MS
    )
    other.close()
    page.get_by_role("button", name="Cancel training").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Cancel training?")
    walk.shot("cancel-confirmation", full_page=False)
    dialog.get_by_role("button", name="Keep training").click()
    expect(page.get_by_label("Training progress")).to_be_visible()
    page.get_by_role("button", name="Cancel training").click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel training").click()
    expect(page.get_by_text("The last training was cancelled.")).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    expect(page.locator(".notice.error")).to_have_count(0)
    walk.shot("cancelled")

    # Retrain with a short run; the loss chart and samples carry the prompt.
    page.get_by_text("Advanced").click()
    page.get_by_label("Training steps").fill(SHORT_RUN_STEPS)
    page.get_by_role("button", name="Train again").click()
    expect(page.get_by_label("Training progress")).to_be_visible()
    stepping = page.locator("#training-step", has_text="loss")
    expect(stepping.or_(page.get_by_role("heading", name="Preview and test"))).to_be_visible(
        timeout=TRAINING_TIMEOUT_MS
    )
    walk.shot("training")
    finished = page.get_by_role("heading", name="Preview and test").or_(page.locator(".notice.error"))
    expect(finished).to_be_visible(timeout=TRAINING_TIMEOUT_MS)
    if page.locator(".notice.error").count():
        walk.shot("training-failed")
        pytest.fail(f"training did not succeed; the UI says: {page.locator('.notice.error').inner_text()}")
    walk.shot("trained")

    # Nothing was generated unasked; the model's history shows the two trainings and nothing else.
    history = page.locator(".model-history li")
    expect(history).to_have_count(2)
    expect(history.first).to_contain_text("succeeded")
    expect(history.nth(1)).to_contain_text("cancelled")
    expect(page.locator(".outputs li")).to_have_count(0)
    assert generations == []

    # Rename, then publish.
    page.get_by_role("button", name="Rename").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("New name").fill("Ink wash posters")
    dialog.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ink wash posters")
    expect(page).to_have_title("Ink wash posters — Ember")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".page-head .badge.ok")).to_have_text("published")

    # A preview runs when asked for, once.
    page.get_by_label("Prompt", exact=True).fill("a harbour at dawn")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".outputs li")).to_have_count(1, timeout=60_000)
    expect(page.locator(".outputs li")).to_contain_text("a harbour at dawn")
    assert len(generations) == 1
    expect(history).to_have_count(3)  # the model's history shows the generation just asked for
    expect(history.first).to_contain_text("Generation · “a harbour at dawn”")
    walk.shot("preview")

    # The training set of the trained model can be opened, with its previews.
    page.get_by_text("Training set and retraining").click()
    expect(page.locator("#training-set .image-card")).to_have_count(10)

    # At a phone's width, the model page and the gallery keep everything on screen.
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 844})
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert offscreen(page) == []
    walk.shot("model-phone")
    page.get_by_role("navigation").get_by_role("link", name="History").click()
    expect(page.locator("table.jobs tbody tr")).to_have_count(3)
    assert offscreen(page) == []
    page.get_by_role("navigation").get_by_role("link", name="Custom models").click()
    card = page.locator(".model-card", has_text="Ink wash posters")
    expect(card).to_be_visible()
    card.get_by_role("button", name="Actions for Ink wash posters").click()
    expect(card.get_by_role("menu")).to_be_visible()
    assert offscreen(page) == []
    walk.shot("gallery-phone-menu")
    page.keyboard.press("Escape")
    page.set_viewport_size({"width": 1280, "height": 800})

    # The project filter: the model is in Posters, none is without a project.
    page.get_by_label("Project").select_option(label="Posters")
    expect(page.locator(".model-card")).to_have_count(1)
    expect(page.locator(".model-card")).to_contain_text("Project: Posters")
    page.get_by_label("Project").select_option(label="No project")
    expect(page.locator(".model-card")).to_have_count(0)
    page.get_by_label("Project").select_option(label="All projects")
    walk.shot("gallery")

    # Delete from the card's menu: "Keep it" keeps it; confirming deletes it.
    card = page.locator(".model-card", has_text="Ink wash posters")
    card.get_by_role("button", name="Actions for Ink wash posters").click()
    card.get_by_role("menuitem", name="Delete…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete Ink wash posters?")
    walk.shot("delete-confirmation", full_page=False)
    dialog.get_by_role("button", name="Keep it").click()
    expect(page.locator(".model-card")).to_have_count(1)
    card.get_by_role("button", name="Actions for Ink wash posters").click()
    card.get_by_role("menuitem", name="Delete…").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete model").click()
    expect(page.locator(".model-card")).to_have_count(0)
    expect(page.get_by_text("No custom models yet.")).to_be_visible()

    # A draft on a base model whose weights are not on this server (made over the API, where nothing hides
    # such base models) says so before any image is prepared, and its Train button is off.
    missing = page.evaluate(
        """async () => {
          const session = await (await fetch("/ui/session")).json();
          const headers = { "content-type": "application/json", "x-ember-csrf": session.csrfToken };
          const specs = (await (await fetch("/ui/base-models", { headers })).json()).baseModels;
          const spec = specs.find((candidate) => candidate.trainable && candidate.unavailableReason);
          if (!spec) return null;
          const fields = { displayName: "Far away", trainingMode: "style", baseModel: { name: spec.name } };
          const body = JSON.stringify(fields);
          const created = await (await fetch("/v3/custom-models", { method: "POST", headers, body })).json();
          return { assetId: created.assetId, displayName: spec.displayName };
        }"""
    )
    if missing is not None:  # every trainable base model's weights are here: nothing to refuse
        page.goto(f"{server.url}/ui/#/models/{missing['assetId']}")
        notice = page.locator("#base-model-unavailable")
        expect(notice).to_contain_text(f"{missing['displayName']} cannot be trained on this server")
        expect(page.get_by_role("button", name="Train", exact=True)).to_be_disabled()
    assert problems == []
