"""The web app in a real browser: headless Debian Chromium driven by Playwright, tiny model.

One app and one browser serve the module. At desktop (1280x900) and phone (390x844) sizes: the
one-click example end to end (train, make the comic, edit a line of dialogue and see the page
lettered again without a render, redraw a panel); every user mistake leaves a message on its step's
status line that is still there 15 s later and goes with the next success. Screenshots are kept
under the test's tmp folder (and copied to $STORYFACE_SCREENSHOT_DIR when set).
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
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 90_000  # training and rendering take seconds on 2 shared CPU cores
STAYS_MS = 15_000  # an error message must still be on the page this long after it appeared


@pytest.fixture(scope="module")
def app(tmp_path_factory, start_app):
    if not CHROMIUM.is_file():
        pytest.skip(f"Debian's chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    running = start_app("tiny", tmp_path_factory.mktemp("browser-data"), train_steps=3, render_steps=2)
    yield running
    running.close()


@pytest.fixture(scope="module")
def browser(app):
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect.set_options(timeout=TIMEOUT_MS)
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def open_tab(browser, app, viewport: dict):
    """A new browser session (its own cast, story and comic) on the page."""
    tab = browser.new_page(viewport=viewport)
    tab.set_default_timeout(TIMEOUT_MS)
    tab.goto(app.url)
    tab.locator("#use-example").wait_for()
    return tab


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def save_screenshot(tab, folder: Path, name: str, full_page: bool = False, share: bool = True) -> Path:
    """Kept under the test's tmp folder; ``share``: also copied to $STORYFACE_SCREENSHOT_DIR (the README's)."""
    shot = folder / name
    tab.screenshot(path=str(shot), full_page=full_page)
    if share and os.environ.get("STORYFACE_SCREENSHOT_DIR"):
        target = Path(os.environ["STORYFACE_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / shot.name)
    return shot


def latest_comic(app) -> Path:
    return max((d for d in app.services.comics_dir.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime_ns)


def lettered_caption(panel: dict) -> str | None:
    """The narration box's text as placed on the page (comic.json's lettering record)."""
    placed = (panel.get("lettering") or {}).get("lettering") or {}
    return (placed.get("caption") or {}).get("text")


def status(tab, step: str):
    return tab.locator(f"#{step}-status")


@pytest.fixture(scope="module")
def example_comic(app, browser, shots):
    """The one-click example at desktop size: example -> Train -> Make the comic (the tab stays open)."""
    from playwright.sync_api import expect

    from storyface.app.handlers import EXAMPLE_STORY

    tab = open_tab(browser, app, DESKTOP)
    expect(tab.locator("#tiny-banner")).to_contain_text("tiny random-weight test model")
    expect(status(tab, "result")).to_contain_text("No comic yet")
    expect(tab.locator("#train")).to_be_disabled()
    tab.locator("#use-example").click()
    expect(tab.locator("#pending")).to_contain_text("Grace Hopper")
    expect(tab.locator("#story textarea")).to_have_value(EXAMPLE_STORY)
    expect(tab.locator("#panels-table")).to_contain_text("Outside, the rain stopped.")
    expect(tab.locator("#dialogue-table")).to_contain_text("Can you check the navigation code?")
    expect(tab.locator("#train-hint")).to_contain_text("Training 2 people")
    tab.locator("#train").click()
    expect(status(tab, "people")).to_contain_text("Eileen Collins and Grace Hopper trained")
    expect(tab.locator("#cast")).to_contain_text("Eileen Collins")
    expect(tab.locator("#cast")).to_contain_text("Grace Hopper")
    expect(tab.locator("#library")).to_contain_text("✓ Grace Hopper")  # the cast, ticked in the library
    tab.locator("#generate").click()
    expect(status(tab, "comic")).to_contain_text("5 panels on 1 page")
    return tab


def test_the_example_end_to_end(app, example_comic, shots):
    from playwright.sync_api import expect

    tab = example_comic
    record = json.loads((latest_comic(app) / "comic.json").read_text())
    # the page's narration boxes are the author's sentences; the scene drawn spells names in full
    assert [lettered_caption(p) for p in record["panels"]] == [
        "Grace Hopper was fixing a huge computer when Eileen Collins walked in with a flight plan.", None,
        "Grace found a moth in the relay.", "Outside, the rain stopped.", "At dawn, the two watched a rocket launch together.",
    ]  # fmt: skip
    assert record["panels"][2]["sentence"] == "Grace Hopper found a moth in the relay."
    assert record["panels"][3]["characters"] == [] and record["panels"][3]["identities"] == []  # a scene panel
    page = tab.locator("#pages img").first
    expect(page).to_be_visible()
    tab.wait_for_function("() => { const i = document.querySelector('#pages img'); return i && i.complete && i.naturalWidth > 0; }")
    with Image.open(latest_comic(app) / "pages" / "page-01.png") as im:
        assert page.evaluate("img => img.naturalWidth") == im.width  # the shown image is that page
    box = page.bounding_box()
    assert box["width"] >= 380  # big enough to read (and it opens full screen)
    on_top = tab.evaluate("([x, y]) => document.elementFromPoint(x, y).tagName", [box["x"] + box["width"] / 2,
                                                                                  box["y"] + box["height"] / 2])  # fmt: skip
    assert on_top == "IMG"  # painted and not covered
    expect(tab.locator("#sf-result")).to_be_in_viewport()  # the result beside the steps, never below the fold
    tiles = tab.locator("#panel-gallery")
    expect(tiles.locator("img")).to_have_count(5)
    expect(tiles).to_contain_text("3. Grace found a moth in the relay.")  # full captions, not cut
    expect(tiles).to_contain_text("4. Outside, the rain stopped.")
    for kind in (".png", ".pdf", ".cbz"):
        expect(tab.locator("#downloads")).to_contain_text(kind)
    body = tab.locator("body").inner_text()
    assert str(app.services.library.root) not in body and "loss" not in body.lower().split("advanced")[0]
    save_screenshot(tab, shots, "app_desktop.png")
    save_screenshot(tab, shots, "app_desktop_full.png", full_page=True, share=False)
    assert (shots / "app_desktop.png").stat().st_size > 50_000
    # a click on a library face takes them out of the cast (no tick) and puts them back
    face = tab.locator("#library .thumbnail-item").filter(has_text="Eileen Collins")
    face.click()
    expect(tab.locator("#library")).not_to_contain_text("✓ Eileen Collins")
    expect(tab.locator("#cast")).not_to_contain_text("Eileen Collins")
    face.click()
    expect(tab.locator("#library")).to_contain_text("✓ Eileen Collins")


def test_editing_a_line_of_dialogue_letters_the_page_again_without_a_render(app, example_comic, monkeypatch):
    from playwright.sync_api import expect

    tab, out_dir = example_comic, latest_comic(app)
    calls = []
    for method in ("render", "rerender"):
        real = getattr(app.services.renderer, method)
        monkeypatch.setattr(app.services.renderer, method, lambda *a, _real=real, **k: (calls.append(1), _real(*a, **k))[1])
    art = [p.read_bytes() for p in sorted((out_dir / "panels").glob("panel-*.png"))]
    page_png = (out_dir / "pages" / "page-01.png").read_bytes()
    shown = tab.locator("#pages img").first.get_attribute("src")
    cell = tab.locator('#dialogue-table [data-row="0"][data-col="3"]')
    cell.dblclick()
    tab.keyboard.press("Control+A")
    tab.keyboard.type("Is the moth still in the relay?")
    tab.keyboard.press("Enter")
    expect(status(tab, "result")).to_contain_text("lettered again with your edit")
    expect(tab.locator("#pages img").first).not_to_have_attribute("src", shown)  # the page on screen changed
    expect(tab.locator("#panel-gallery")).to_contain_text("Is the moth still in the relay?")
    assert calls == []  # no model was called
    assert (out_dir / "pages" / "page-01.png").read_bytes() != page_png
    assert [p.read_bytes() for p in sorted((out_dir / "panels").glob("panel-*.png"))] == art
    record = json.loads((out_dir / "comic.json").read_text())
    assert record["panels"][1]["dialogue"][0]["text"] == "Is the moth still in the relay?"


def test_redraw_highlights_the_panel(app, example_comic):
    from playwright.sync_api import expect

    tab = example_comic
    expect(tab.locator("#regenerate")).to_be_disabled()  # nothing picked yet
    tab.locator("#panel-gallery .thumbnail-item").nth(1).click()
    expect(tab.locator("#panel-number input")).to_have_value("2")
    expect(tab.locator("#regenerate")).to_be_enabled()
    expect(tab.locator("#regenerate")).to_have_text("Redraw panel 2")
    tab.locator("#regenerate").click()
    expect(status(tab, "result")).to_contain_text("Panel 2 was drawn again with a new seed")
    expect(tab.locator("#panel-gallery")).to_contain_text("↻ drawn again · 2.")


def test_phone_one_column_scrolls_to_the_comic(app, browser, example_comic, shots):
    from playwright.sync_api import expect

    tab = open_tab(browser, app, PHONE)
    tab.locator("#use-example").click()  # both people are in the library now: straight to the cast
    expect(status(tab, "people")).to_contain_text("in the library and in the cast")
    inputs, result = tab.locator("#sf-inputs").bounding_box(), tab.locator("#sf-result").bounding_box()
    assert result["y"] >= inputs["y"] + inputs["height"] - 1 and abs(result["x"] - inputs["x"]) < 40  # one column
    assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1  # nothing sticks out sideways
    tab.locator("#generate").click()
    expect(status(tab, "comic")).to_contain_text("5 panels on 1 page")
    expect(tab.locator("#pages img").first).to_be_in_viewport()  # scrolled to the comic when it was ready
    tab.wait_for_timeout(800)  # the smooth scroll settles
    save_screenshot(tab, shots, "app_phone.png")
    tab.close()


@pytest.fixture(scope="module")
def blank_photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "blank.png"
    Image.new("RGB", (400, 400), (210, 210, 200)).save(path)
    return path


def add_person(tab, photo: Path, name: str, consent: bool) -> None:
    tab.locator("#photo input[type=file]").set_input_files(str(photo))
    tab.locator("#photo img").wait_for()
    tab.locator("#person-name input, #person-name textarea").first.fill(name)
    box = tab.locator("#consent input[type=checkbox]")
    box.check() if consent else box.uncheck()
    tab.locator("#add-person").click()


def split(tab, story: str) -> None:
    tab.locator("#story textarea").fill(story)
    tab.locator("#process-text").click()


def test_every_mistake_leaves_a_message_on_its_step_until_a_success(
    app, browser, example_comic, shots, blank_photo, two_faces_path, astronaut_path
):
    """Three sessions side by side (so one 15 s wait covers them all), every mistake in its step."""
    from playwright.sync_api import expect

    a, b, c = (open_tab(browser, app, DESKTOP) for _ in range(3))
    expected = {
        (a, "people"): "No face found",
        (a, "story"): "the story is empty",
        (a, "result"): "No comic yet: make one with step 4",  # Redraw is disabled and says why
        (b, "people"): "Found 2 faces in the photo; use a photo of one person",
        (b, "story"): "the story names no one in the library (Eileen Collins, Grace Hopper)",
        (c, "people"): "tick the consent box for Sally Ride's photo",
        (c, "cast"): "no identity named 'Ada Lovelace'",
    }
    add_person(a, blank_photo, "Blank Person", True)
    split(a, "   ")
    add_person(b, two_faces_path, "Two People", True)
    split(b, "A cat sat on the mat.")
    add_person(c, astronaut_path, "Sally Ride", False)
    c.locator("#cast input").fill("Ada Lovelace")  # typed into the cast: no such identity
    c.locator("#cast input").press("Enter")
    for (tab, step), text in expected.items():
        expect(status(tab, step)).to_contain_text(text)
    expect(c.locator("#cast")).not_to_contain_text("Ada Lovelace")  # refused as it was typed
    expect(a.locator("#regenerate")).to_be_disabled()
    expect(a.locator("#delete-row")).to_be_disabled()  # delete and move act on a picked row
    expect(a.locator("#row-hint")).to_contain_text("Click a row to pick it")
    c.locator("#add-row").click()  # with nothing picked, a row is added at the end
    expect(status(c, "story")).to_contain_text("Added panel 1")
    save_screenshot(b, shots, "mistakes.png", share=False)
    a.wait_for_timeout(STAYS_MS)
    for (tab, step), text in expected.items():  # still there, in words
        expect(status(tab, step)).to_contain_text(text, timeout=1)
        assert "left, top" not in status(tab, step).inner_text()
    expect(a.locator("#row-hint")).to_contain_text("Click a row to pick it", timeout=1)
    # the next success in each step clears its message
    add_person(a, astronaut_path, "Sally Ride", True)
    add_person(b, astronaut_path, "Sally Ride", True)
    c.locator("#consent input[type=checkbox]").check()
    c.locator("#add-person").click()
    c.locator("#library .thumbnail-item").filter(has_text="Grace Hopper").click()
    expect(status(c, "cast")).not_to_contain_text("Ada Lovelace")
    for tab in (a, b, c):
        expect(status(tab, "people")).to_contain_text("Sally Ride is on the list")
    split(a, "Grace Hopper waved at Eileen. It was raining outside.")
    split(b, "Grace Hopper waved.")
    expect(status(a, "story")).to_contain_text("2 panels, 1 of them a scene with no one in it")
    expect(status(b, "story")).to_contain_text("1 panel. Edit any caption")
    expect(a.locator("#panels-table")).to_contain_text("no one (a scene)")  # a scene sentence became a panel
    a.locator('#panels-table [data-row="1"][data-col="0"]').click()
    expect(a.locator("#row-hint")).to_contain_text("Row 2 picked")
    expect(a.locator("#delete-row")).to_be_enabled()
    a.locator("#generate").click()
    expect(status(a, "comic")).to_contain_text("2 panels on 1 page")
    expect(status(a, "result")).to_contain_text("Click a panel to pick it")
    for (tab, step), text in expected.items():
        expect(status(tab, step)).not_to_contain_text(text)
    for tab in (a, b, c):
        assert tab.locator(".sf-error").count() == 0
        tab.close()
