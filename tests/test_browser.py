"""The whole flow in a real browser: headless Debian Chromium driven by Playwright, tiny model.

Loads the page, adds a person from a real photo (consent ticked), trains, picks the cast by clicking
the library, processes a story, generates, and checks the page image shows one panel per sentence.
Saves a screenshot (also to $STORYFACE_SCREENSHOT_DIR when set).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip
STORY = "Eileen Collins walked into the mission lab with a flight plan. She waved at the camera."
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def app(tmp_path_factory, start_app):
    if not CHROMIUM.is_file():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    running = start_app("tiny", tmp_path_factory.mktemp("browser-data"), train_steps=3, render_steps=2)
    yield running
    running.close()


@pytest.fixture()
def page(app):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.set_default_timeout(TIMEOUT_MS)
            tab.goto(app.url)
            yield tab
        finally:
            browser.close()


def save_screenshot(page, tmp_path: Path) -> Path:
    shot = tmp_path / "storyface-app.png"
    page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("STORYFACE_SCREENSHOT_DIR"):
        target = Path(os.environ["STORYFACE_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / shot.name)
    return shot


def test_browser_cast_story_generate(app, page, astronaut_path, tmp_path):
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)  # training and rendering take seconds on CPU
    expect(page.locator("#tiny-banner")).to_contain_text("tiny random-weight test model")
    # bad input: a clear message in the page, nothing else happens
    page.locator("#add-person").click()
    expect(page.get_by_text("upload a photo of the person first")).to_be_visible()
    page.locator(".toast-close").first.click()
    expect(page.get_by_text("upload a photo of the person first")).to_be_hidden()
    # 1. cast: photo + name + consent, add, train; the finished identity joins the library and the cast
    page.locator("#photo input[type=file]").set_input_files(str(astronaut_path))
    expect(page.locator("#photo img")).to_be_visible()
    page.locator("#person-name textarea, #person-name input").first.fill("Eileen Collins")
    page.locator("#consent input[type=checkbox]").check()
    page.locator("#add-person").click()
    expect(page.locator("#pending")).to_contain_text("Eileen Collins")
    page.locator("#train").click()
    expect(page.locator("#jobs")).to_contain_text("done")
    expect(page.locator("#library")).to_contain_text("Eileen Collins")
    cast = page.locator("#cast")
    expect(cast).to_contain_text("Eileen Collins")  # added to the cast when training finished
    page.locator("#library button").filter(has=page.locator("img")).first.click()  # click the face: out
    expect(cast).not_to_contain_text("Eileen Collins")
    page.locator("#library button").filter(has=page.locator("img")).first.click()  # and back in
    expect(cast).to_contain_text("Eileen Collins")
    # 2. story -> one editable row per sentence
    page.locator("#story textarea").fill(STORY)
    page.locator("#process-text").click()
    sentences = page.locator('#panels-table [role="gridcell"][data-col="0"]')
    expect(sentences).to_have_count(2)
    expect(page.locator("#panels-table")).to_contain_text("Eileen Collins waved at the camera.")
    # 4. generate: the page image appears; it holds one panel per sentence
    page.locator("#generate").click()
    image = page.locator("#page img")
    expect(image).to_be_visible()
    expect(page.locator("#comic-status")).to_contain_text("2 panels")
    [comic_dir] = [d for d in app.services.comics_dir.iterdir() if d.is_dir()]
    record = json.loads((comic_dir / "comic.json").read_text())
    assert [p["sentence"] for p in record["panels"]] == [
        "Eileen Collins walked into the mission lab with a flight plan.",
        "Eileen Collins waved at the camera.",
    ]
    with Image.open(comic_dir / "pages" / "page-01.png") as im:
        assert image.evaluate("img => img.naturalWidth") == im.width  # the shown image is that page
    expect(page.locator("#panel-gallery img")).to_have_count(2)
    shot = save_screenshot(page, tmp_path)
    assert shot.stat().st_size > 10_000
