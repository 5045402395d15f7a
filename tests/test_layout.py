"""Comic page layout: panel grid, borders, caption wrapping, title, notice, PNG/PDF output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storyface.errors import InputError
from storyface.render.layout import compose_page, grid_columns, load_font, save_page, wrap_text

COLOURS = [(230, 30, 30), (30, 200, 30), (30, 30, 230), (240, 220, 20), (200, 30, 200), (20, 200, 210), (120, 60, 10)]
STORY = "Grace Hopper finds a moth in the relay of the Mark II and tapes it into the log book as the first actual bug."


def panels(n: int, size: tuple[int, int] = (96, 96)) -> list[Image.Image]:
    return [Image.new("RGB", size, COLOURS[i]) for i in range(n)]


def find_panels(page: Image.Image, n: int) -> list[tuple[int, int, int, int]]:
    """Bounding box (left, top, right, bottom) of each panel's solid colour, with its pixel count checked."""
    arr = np.asarray(page)
    boxes = []
    for colour in COLOURS[:n]:
        ys, xs = np.nonzero((arr == colour).all(axis=2))
        assert len(xs), f"panel colour {colour} missing from the page"
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        assert len(xs) == (box[2] - box[0]) * (box[3] - box[1]), "panel is not one solid rectangle"
        boxes.append(box)
    return boxes


def is_ink(pixel) -> bool:
    return all(c < 40 for c in pixel)


@pytest.mark.parametrize(("n", "cols"), [(1, 1), (2, 2), (4, 2), (5, 3), (7, 3)])
def test_page_has_n_bordered_panels_in_story_order(n, cols):
    page = compose_page(panels(n), [f"panel {i + 1}" for i in range(n)])
    boxes = find_panels(page, n)
    assert all((r - l, b - t) == (96, 96) for l, t, r, b in boxes)
    rows = sorted({t for _, t, _, _ in boxes})
    assert len(rows) == -(-n // cols)
    for row, top in enumerate(rows):  # row-major story order, tops aligned within a row
        in_row = [i for i, box in enumerate(boxes) if box[1] == top]
        assert in_row == list(range(row * cols, min(n, (row + 1) * cols)))
        lefts = [boxes[i][0] for i in in_row]
        assert lefts == sorted(lefts)
    for l, t, r, b in boxes:  # a black border hugs every panel, white paper lies beyond it
        assert is_ink(page.getpixel((l - 1, (t + b) // 2))) and is_ink(page.getpixel((r, (t + b) // 2)))
        assert is_ink(page.getpixel(((l + r) // 2, t - 1)))
        assert page.getpixel((l - 5, t)) == (255, 255, 255)  # border 2 px, gutter 8 px


def test_default_columns_and_strip():
    assert [grid_columns(n) for n in (1, 2, 3, 4, 5, 9, 10)] == [1, 2, 2, 2, 3, 3, 4]
    assert grid_columns(6, layout="strip") == 6
    assert grid_columns(6, columns=1) == 1
    page = compose_page(panels(5), ["a", "b", "c", "d", "e"], layout="strip")
    boxes = find_panels(page, 5)
    assert len({t for _, t, _, _ in boxes}) == 1  # one row
    assert page.width > 5 * 96 > page.height


def test_single_column_stacks_vertically():
    boxes = find_panels(compose_page(panels(3), ["", "", ""], columns=1), 3)
    assert len({l for l, _, _, _ in boxes}) == 1
    assert [t for _, t, _, _ in boxes] == sorted(t for _, t, _, _ in boxes)


def test_wrap_text_fits_width_and_keeps_words():
    font = load_font(14)
    lines = wrap_text(STORY, font, 120)
    assert len(lines) > 3
    assert all(font.getlength(line) <= 120 for line in lines)
    assert " ".join(lines).split() == STORY.split()


def test_wrap_text_breaks_long_words_and_honours_newlines():
    font = load_font(14)
    word = "Supercalifragilisticexpialidocious" * 2
    lines = wrap_text(f"a {word} b", font, 80)
    assert all(font.getlength(line) <= 80 for line in lines)
    assert lines[0] == "a" and "".join(lines[1:]).replace(" ", "") == word + "b"
    assert len(lines) >= 4  # the word took several lines
    assert wrap_text("one\ntwo", font, 500) == ["one", "two"]
    assert wrap_text("", font, 100) == [] and wrap_text("   ", font, 100) == []
    with pytest.raises(InputError):
        wrap_text("x", font, 0)


def test_captions_wrap_inside_their_panel():
    short = compose_page(panels(2), ["one", "two"])
    long = compose_page(panels(2), [STORY, "two"])
    assert long.width == short.width and long.height > short.height  # more lines, same width
    (l0, t0, r0, b0), (l1, _, _, _) = find_panels(long, 2)
    arr = np.asarray(long, dtype=np.int16)
    caption = arr[b0 + 4 :, l0:r0]
    assert (caption.sum(axis=2) < 300).sum() > 200  # text was drawn under panel 1
    gutter = arr[:, r0 + 4 : l1 - 4]  # between the two frames: nothing may spill over
    assert (gutter == 255).all()


def test_title_and_notice_add_bands():
    plain = compose_page(panels(2), ["a", "b"])
    titled = compose_page(panels(2), ["a", "b"], title="The First Bug")
    noticed = compose_page(panels(2), ["a", "b"], notice="tiny random-weight model: images are noise")
    assert titled.width == plain.width and titled.height > plain.height
    top = find_panels(titled, 2)[0][1]
    assert (np.asarray(titled)[:top].sum(axis=2) < 300).any()  # title ink above the panels
    assert noticed.height > plain.height
    bottom = max(b for _, _, _, b in find_panels(noticed, 2))
    assert (np.asarray(noticed)[bottom + 20 :].sum(axis=2) < 600).any()


def test_mixed_sizes_are_scaled_to_one_panel_width():
    images = [Image.new("RGB", (64, 64), COLOURS[0]), Image.new("RGB", (128, 128), COLOURS[1])]
    boxes = find_panels(compose_page(images, ["", ""]), 2)
    assert [(r - l) for l, _, r, _ in boxes] == [128, 128]


def test_bad_layout_inputs():
    with pytest.raises(InputError, match="captions"):
        compose_page(panels(2), ["only one"])
    with pytest.raises(InputError):
        compose_page([], [])
    with pytest.raises(InputError, match="grid"):
        compose_page(panels(2), ["a", "b"], layout="spiral")
    with pytest.raises(InputError, match="columns"):
        compose_page(panels(2), ["a", "b"], columns=0)
    with pytest.raises(InputError, match="font size"):
        compose_page(panels(2), ["a", "b"], caption_font_size=2)


def test_save_page_writes_png_and_pdf_atomically(tmp_path: Path):
    page = compose_page(panels(3), ["a", "b", "c"], title="Bug")
    written = save_page(page, tmp_path / "out" / "comic.png", pdf=True)
    assert [p.name for p in written] == ["comic.png", "comic.pdf"]
    assert written[1].read_bytes().startswith(b"%PDF")
    with Image.open(written[0]) as png:
        assert png.size == page.size and np.array_equal(np.asarray(png.convert("RGB")), np.asarray(page))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["comic.pdf", "comic.png"]  # no temp files left
    assert [p.name for p in save_page(page, tmp_path / "only")] == ["only.png"]
    with pytest.raises(InputError):
        save_page(page, tmp_path / "comic.jpg")
