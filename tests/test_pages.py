"""Pages: shapes and native sizes, flowing panels over several pages, composing, and the PNG/PDF/CBZ exports."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from storyface.errors import InputError
from storyface.render.book import PanelText, letter_book, map_faces, side_of
from storyface.render.lettering import Face, LetteringError, Line
from storyface.render.pages import (
    PRESETS,
    ComicInfo,
    compose_pages,
    fit_art,
    native_size,
    panel_shapes,
    plan_pages,
    save_cbz,
    save_pdf,
    save_pngs,
)

NOTICE = "running on the tiny random-weight test model: images are noise, not people"


def noise(size: tuple[int, int], seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def flat(size: tuple[int, int], colour: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", size, colour)


def sizes_for(n: int, layout: str, side: int = 128) -> list[tuple[int, int]]:
    return [native_size(s, "sdxl", side) for s in panel_shapes(n, layout)]


# --------------------------------------------------------------------------- shapes


def test_native_sizes_are_the_model_buckets():
    assert [native_size(s) for s in ("wide", "square", "tall")] == [(1344, 768), (1024, 1024), (832, 1216)]
    assert [native_size(s, "sd2") for s in ("wide", "square", "tall")] == [(1008, 576), (768, 768), (624, 912)]
    assert [native_size(s, "sdxl", 128) for s in ("wide", "square", "tall")] == [(168, 96), (128, 128), (104, 152)]
    with pytest.raises(InputError, match="shape"):
        native_size("round")


def test_panel_shapes_per_layout():
    assert panel_shapes(5, "grid") == ["square"] * 5
    dynamic = panel_shapes(13, "dynamic")
    assert dynamic[0] == "wide" and {"wide", "square", "tall"} == set(dynamic) and len(dynamic) == 13
    webtoon = panel_shapes(4, "webtoon")
    assert webtoon[0] == "wide" and set(webtoon[1:]) <= {"tall", "square"}
    assert [len(panel_shapes(n, "dynamic")) for n in range(8)] == list(range(8))
    with pytest.raises(InputError, match="layout"):
        panel_shapes(3, "manga")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- flowing onto pages


def assert_slots_sane(plans, n):
    order = [p for plan in plans for p in plan.panels]
    assert order == list(range(n)), "every panel exactly once, in order"
    for plan in plans:
        w, h = plan.size
        boxes = [s.frame for s in plan.slots]
        for box in boxes:
            assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), "panels overlap"


@pytest.mark.parametrize("layout", ["grid", "dynamic", "webtoon"])
@pytest.mark.parametrize("n", [1, 4, 7, 20])
def test_every_panel_exactly_once_in_order(layout, n):
    plans = plan_pages(sizes_for(n, layout), layout, title="The Moth", notice=NOTICE)
    assert_slots_sane(plans, n)
    assert [p.number for p in plans] == list(range(1, len(plans) + 1))


def test_many_panels_flow_onto_several_pages_of_the_preset_size():
    plans = plan_pages(sizes_for(20, "grid"), "grid", "us-comic")
    assert len(plans) == 4  # 2 columns x 3 rows of squares per US comic page (the first page under a title too)
    assert all(p.size == (1988, 3075) and p.dpi == 300 for p in plans)  # 6.625 x 10.25 in at 300 dpi
    assert [len(p.slots) for p in plans] == [6, 6, 6, 2]
    dynamic = plan_pages(sizes_for(20, "dynamic"), "dynamic", "a4", title="The Moth")
    assert len(dynamic) > 1 and all(p.size == (2481, 3507) for p in dynamic)
    for page in dynamic:  # panels keep their rendered shape: only a small crop absorbs the justification
        for slot in page.slots:
            art = sizes_for(20, "dynamic")[slot.panel]
            ratio = (slot.size[0] / slot.size[1]) / (art[0] / art[1])
            assert 0.85 <= ratio <= 1.2, (slot, art)
    square = plan_pages(sizes_for(9, "grid"), "grid", "square")
    assert all(p.size == (2400, 2400) for p in square) and len(square) == 3


def test_a_dynamic_page_has_panels_of_different_shapes_in_rows_of_one_to_three():
    (page, *_) = plan_pages(sizes_for(6, "dynamic"), "dynamic")
    rows: dict[int, list] = {}
    for slot in page.slots:
        rows.setdefault(slot.box[1], []).append(slot)
    assert sorted(len(r) for r in rows.values()) == [1, 2, 3]
    first = page.slots[0]
    assert first.size[0] / first.size[1] > 1.5  # the wide establishing panel
    assert min(s.size[0] / s.size[1] for s in page.slots) < 0.8  # and a tall one


def test_webtoon_is_one_phone_wide_strip():
    (strip,) = plan_pages(sizes_for(6, "webtoon"), "webtoon")
    assert strip.size[0] == 1080 and strip.size[1] > 4 * 1080
    xs = {(s.box[0], s.box[2]) for s in strip.slots}
    assert len(xs) == 1  # one column
    tops = [s.box[1] for s in strip.slots]
    assert tops == sorted(tops)
    wide = plan_pages(sizes_for(12, "webtoon"), "webtoon", "us-comic")  # a page preset lends its width only
    assert all(s.size[0] == 1988 for s in wide) and wide[0].size[1] > 3075
    assert len(wide) > 1 and all(s.size[1] <= 40 * 300 for s in wide)  # a very long strip is cut between panels


def test_right_to_left_starts_at_the_top_right():
    ltr = plan_pages(sizes_for(6, "dynamic"), "dynamic")[0]
    rtl = plan_pages(sizes_for(6, "dynamic"), "dynamic", rtl=True)[0]
    second_row_ltr = [s for s in ltr.slots if s.panel in (1, 2)]
    second_row_rtl = [s for s in rtl.slots if s.panel in (1, 2)]
    assert second_row_ltr[0].box[0] < second_row_ltr[1].box[0]
    assert second_row_rtl[0].box[0] > second_row_rtl[1].box[0]
    width = rtl.size[0]
    for a, b in zip(ltr.slots, rtl.slots):  # a mirror image
        assert (a.box[0], a.box[2]) == (width - b.box[2], width - b.box[0])


def test_captions_under_panels_take_a_band_below_the_art():
    captions = [f"Grace Hopper finds moth number {i}." for i in range(4)] + [None]
    plans = plan_pages(sizes_for(5, "grid"), "grid", captions=captions)
    slots = [s for p in plans for s in p.slots]
    for slot, text in zip(slots[:4], captions):
        assert slot.caption_box is not None and slot.caption_box[1] == slot.box[3]
        assert " ".join(slot.caption_lines) == text
    assert slots[4].caption_box is None  # alone in its row without a caption: no empty band
    assert all(s.caption_box is None for p in plan_pages(sizes_for(5, "grid"), "grid") for s in p.slots)


def test_bad_page_options_are_input_errors():
    with pytest.raises(InputError, match="page size"):
        plan_pages([(128, 128)], "grid", "letter")
    with pytest.raises(InputError, match="at least one panel"):
        plan_pages([], "grid")
    with pytest.raises(InputError, match="captions"):
        plan_pages([(128, 128)] * 2, "grid", captions=["one"])


# --------------------------------------------------------------------------- composing


def test_composed_pages_show_each_panel_in_its_slot_and_the_notice_on_every_page():
    n = 14
    colours = [(20 * i % 256, 255 - 15 * i, (90 + 37 * i) % 256) for i in range(n)]
    sizes = sizes_for(n, "grid")
    plans = plan_pages(sizes, "grid", title="The Moth", notice=NOTICE)
    pages = compose_pages(plans, [flat(s, c) for s, c in zip(sizes, colours)])
    assert len(pages) == len(plans) == 3
    for plan, page in zip(plans, pages):
        pixels = np.asarray(page)
        assert page.size == plan.size
        for slot in plan.slots:
            cx, cy = (slot.box[0] + slot.box[2]) // 2, (slot.box[1] + slot.box[3]) // 2
            assert tuple(pixels[cy, cx]) == colours[slot.panel]
            assert pixels[slot.box[1], cx].max() < 60  # the border
        l, t, r, b = plan.notice_box
        notice = pixels[t:b, l:r]
        assert ((notice.max(2) < 200) & (notice.max(2) > 40)).sum() > 200  # grey notice text on every page
    pixels = np.asarray(pages[0])
    l, t, r, b = plans[0].title_box
    assert (pixels[t:b, l:r].max(2) < 60).sum() > 500  # the title, on the first page only
    assert plans[1].title_box is None


def test_fit_art_and_map_faces_use_the_same_crop():
    art = Image.new("RGB", (400, 300), "white")
    box = (250, 60, 310, 140)  # a red "face" right of centre
    art.paste((255, 0, 0), box)
    for size in [(200, 300), (300, 150), (400, 300), (123, 77)]:
        fitted = np.asarray(fit_art(art, size))
        (face,) = map_faces([Face(box, "A", (280, 120))], art.size, size)
        red = (fitted[..., 0] > 200) & (fitted[..., 1] < 60)
        ys, xs = np.nonzero(red)
        assert abs(xs.min() - face.box[0]) <= 2 and abs(xs.max() + 1 - face.box[2]) <= 2, size
        assert abs(ys.min() - face.box[1]) <= 2 and abs(ys.max() + 1 - face.box[3]) <= 2, size
        assert face.box[0] <= face.mouth[0] <= face.box[2]
    assert map_faces([Face((0, 0, 40, 40))], (400, 300), (100, 300)) == []  # cropped away


# --------------------------------------------------------------------------- exports


def pdf_page_count(path: Path) -> int:
    """Page objects in the PDF (``/Type /Page``, not ``/Pages``), checked against the page tree's /Count."""
    data = path.read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data))
    counts = [int(c) for c in re.findall(rb"/Count\s+(\d+)", data)]
    assert data.startswith(b"%PDF-") and counts == [pages]
    return pages


@pytest.fixture(scope="module")
def three_pages() -> list[Image.Image]:
    sizes = sizes_for(15, "grid", 64)
    plans = plan_pages(sizes, "grid", "square", notice=NOTICE)
    pages = compose_pages(plans, [noise(s, i) for i, s in enumerate(sizes)])
    assert len(pages) == 4
    return pages


def test_png_pdf_and_cbz_exports(tmp_path, three_pages):
    pages = three_pages
    pngs = save_pngs(pages, tmp_path / "pages")
    assert [p.name for p in pngs] == ["page-01.png", "page-02.png", "page-03.png", "page-04.png"]
    assert Image.open(pngs[1]).size == pages[1].size and Image.open(pngs[1]).info["dpi"][0] == pytest.approx(300, abs=1)
    pdf = save_pdf(pages, tmp_path / "comic.pdf", title="The Moth")
    assert pdf_page_count(pdf) == len(pages)
    media = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf.read_bytes())
    assert [(float(w), float(h)) for w, h in media] == [(576.0, 576.0)] * len(pages)  # 8 x 8 in at 72 pt/in
    cbz = save_cbz(pages, tmp_path / "comic.cbz", ComicInfo("The Moth", ["Grace Hopper", "Eileen Collins"], rtl=True, notes=NOTICE))
    with zipfile.ZipFile(cbz) as archive:
        names = archive.namelist()
        assert sorted(n for n in names if n.endswith(".png")) == ["001.png", "002.png", "003.png", "004.png"]
        info = ET.fromstring(archive.read("ComicInfo.xml"))
        for i, page in enumerate(pages, start=1):
            with Image.open(archive.open(f"{i:03d}.png")) as image:
                assert image.size == page.size and image.tobytes() == page.convert("RGB").tobytes()
    assert info.tag == "ComicInfo"
    assert info.findtext("Title") == "The Moth"
    assert int(info.findtext("PageCount")) == len(pages)
    assert info.findtext("Characters") == "Grace Hopper, Eileen Collins"
    assert info.findtext("Manga") == "YesAndRightToLeft"
    entries = info.find("Pages").findall("Page")
    assert [int(e.get("Image")) for e in entries] == list(range(len(pages)))
    assert [e.get("Type") for e in entries] == ["FrontCover"] + ["Story"] * (len(pages) - 1)
    order = [child.tag for child in info]  # ComicInfo 2.0 is an xs:sequence: the order is part of the schema
    schema = ["Title", "Summary", "Notes", "Writer", "PageCount", "LanguageISO", "Manga", "Characters", "Pages"]
    assert order == [tag for tag in schema if tag in order]


def test_a_failed_save_leaves_the_old_file_and_no_temporary_files(tmp_path, three_pages, monkeypatch):
    target = tmp_path / "comic.cbz"
    save_cbz(three_pages[:1], target, ComicInfo("Old"))
    before = target.read_bytes()

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", full_disk)
    for save in (lambda: save_cbz(three_pages, target, ComicInfo("New")),
                 lambda: save_pdf(three_pages, tmp_path / "comic.pdf"),
                 lambda: save_pngs(three_pages, tmp_path)):
        with pytest.raises(OSError):
            save()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["comic.cbz"]


# --------------------------------------------------------------------------- the whole pass


def test_letter_book_letters_blind_on_noise_and_keeps_one_size():
    n = 5
    sizes = sizes_for(n, "dynamic")
    arts = [noise(s, i) for i, s in enumerate(sizes)]
    cast = ["Grace Hopper", "Eileen Collins"]
    texts = [PanelText("Harvard, 1947." if i == 0 else None,
                       [Line(cast[i % 2], f"Line {i}: the relay is stuck again."), Line(cast[(i + 1) % 2], "Is it?")],
                       cast) for i in range(n)]
    book = letter_book(arts, texts, layout="dynamic", title="The Moth", notice=NOTICE)
    assert len(book.pages) == len(book.page_plans) and len(book.lettering) == n
    assert all(plan and plan.blind for plan in book.lettering)
    assert len({plan.font_pt for plan in book.lettering}) == 1  # one lettering size for the book
    assert book.lettering[0].caption is not None and book.lettering[1].caption is None
    records = book.records()
    assert [r["page"] for r in records] == [p.number for p in book.page_plans for _ in p.slots]
    assert records[0]["lettering"]["balloons"][0]["saw_face"] is False
    assert arts[0].tobytes() == noise(sizes[0], 0).tobytes()  # clean art untouched
    clean = letter_book(arts, texts, layout="dynamic", title="The Moth", notice=NOTICE, lettering=False)
    assert all(p is None for p in clean.lettering)
    assert any(s.caption_lines == ("Harvard, 1947.",) for s in clean.page_plans[0].slots)  # caption under the panel


def test_letter_book_names_the_panel_of_a_line_that_does_not_fit():
    arts = [noise((128, 128), i) for i in range(3)]
    texts = [PanelText(None, [Line("A", "Hi.")], ["A"])] * 2 + [PanelText(None, [Line("A", "Hi."), Line("B", "words " * 200)], ["A", "B"])]
    with pytest.raises(LetteringError) as caught:
        letter_book(arts, texts, preset="square")
    assert str(caught.value).startswith("panel 3: line 2 (B:") and caught.value.line == 1


def test_side_of_spreads_the_cast_in_scene_order():
    assert side_of(["A", "B"]) == {"A": 0.25, "B": 0.75}
    assert side_of(["A", "B", "A", "C"]) == {"A": 1 / 6, "B": 0.5, "C": 5 / 6}
    assert set(PRESETS) >= {"us-comic", "a4", "square"}
