"""Saving pages: one PNG per page, one PDF of all pages, a CBZ comic book with ComicInfo.xml.

Every file is written to a temporary file in the target folder and moved into place with
``os.replace`` (atomic on one filesystem), so a crash or a full disk never leaves half a comic
where a reader or the web app would pick it up.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

from PIL import Image

from ...errors import InputError

PRINT_DPI = 300
PDF_JPEG_QUALITY = 95  # Pillow stores RGB pages in a PDF as JPEG; 95 with no chroma subsampling keeps lettering crisp
CBZ_PAGE_DIGITS = 3  # 001.png ...: readers sort page files by name


@dataclass(frozen=True)
class ComicInfo:
    """What a comic reader shows about the book (a subset of the ComicRack ComicInfo 2.0 schema)."""

    title: str | None = None
    characters: Sequence[str] = field(default_factory=tuple)
    summary: str | None = None
    writer: str | None = None
    notes: str | None = None  # e.g. the tiny-model notice
    rtl: bool = False  # right-to-left reading: Manga=YesAndRightToLeft, which readers honour
    language: str | None = None  # ISO code, e.g. "en"


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``, on failure it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write(path: Path, writer: Callable[[Path], None]) -> Path:
    with _atomic(path) as tmp:
        writer(tmp)
    return path


def _check(pages: Sequence[Image.Image]) -> None:
    if not pages:
        raise InputError("there are no pages to save")


def save_pngs(pages: Sequence[Image.Image], folder: str | os.PathLike, stem: str = "page") -> list[Path]:
    """``folder/page-01.png``, ``page-02.png`` ... (numbered so a file browser sorts them in order)."""
    _check(pages)
    digits = max(2, len(str(len(pages))))
    out = Path(folder)
    return [
        _write(out / f"{stem}-{i:0{digits}d}.png", lambda tmp, page=page: page.save(tmp, "PNG", dpi=_dpi(page)))
        for i, page in enumerate(pages, start=1)
    ]


def _dpi(page: Image.Image) -> tuple[int, int]:
    dpi = page.info.get("dpi", (PRINT_DPI, PRINT_DPI))
    return (round(dpi[0]), round(dpi[1]))


def save_pdf(pages: Sequence[Image.Image], path: str | os.PathLike, dpi: int = PRINT_DPI, title: str | None = None) -> Path:
    """All pages in one PDF, each page printed at ``dpi`` (a 1988 x 3075 px page at 300 dpi is 6.625 x 10.25 in)."""
    _check(pages)
    if dpi <= 0:
        raise InputError(f"dpi must be positive, got {dpi}")
    rgb = [p.convert("RGB") for p in pages]
    meta = {"title": title} if title else {}

    def write(tmp: Path) -> None:
        rgb[0].save(tmp, "PDF", save_all=True, append_images=rgb[1:], resolution=float(dpi),
                    quality=PDF_JPEG_QUALITY, subsampling=0, **meta)

    return _write(Path(path), write)


def save_cbz(pages: Sequence[Image.Image], path: str | os.PathLike, info: ComicInfo | None = None) -> Path:
    """A comic book archive: the pages as PNGs in reading order plus ``ComicInfo.xml``."""
    _check(pages)
    info = info or ComicInfo()
    encoded = []
    for page in pages:
        buffer = io.BytesIO()
        page.convert("RGB").save(buffer, "PNG")
        encoded.append((page.size, buffer.getvalue()))
    names = [f"{i:0{CBZ_PAGE_DIGITS}d}.png" for i in range(1, len(pages) + 1)]

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name, (_, data) in zip(names, encoded):
                archive.writestr(zipfile.ZipInfo(name, (2000, 1, 1, 0, 0, 0)), data, zipfile.ZIP_STORED)  # PNG is compressed already
            archive.writestr("ComicInfo.xml", comic_info_xml(info, [(size, len(data)) for size, data in encoded]),
                             zipfile.ZIP_DEFLATED)

    return _write(Path(path), write)


def comic_info_xml(info: ComicInfo, pages: Sequence[tuple[tuple[int, int], int]]) -> str:
    """ComicInfo.xml (schema 2.0) for pages given as ((width, height), bytes); elements in the schema's order."""
    root = ET.Element("ComicInfo", {
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xmlns:xsd": "http://www.w3.org/2001/XMLSchema",
    })
    fields = [
        ("Title", info.title),
        ("Summary", info.summary),
        ("Notes", info.notes),
        ("Writer", info.writer),
        ("PageCount", str(len(pages))),
        ("LanguageISO", info.language),
        ("Manga", "YesAndRightToLeft" if info.rtl else None),
        ("Characters", ", ".join(info.characters) if info.characters else None),
    ]
    for tag, value in fields:
        if value:
            ET.SubElement(root, tag).text = value
    listing = ET.SubElement(root, "Pages")
    for i, ((width, height), size) in enumerate(pages):
        ET.SubElement(listing, "Page", {
            "Image": str(i),
            "Type": "FrontCover" if i == 0 else "Story",
            "ImageSize": str(size),
            "ImageWidth": str(width),
            "ImageHeight": str(height),
        })
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
