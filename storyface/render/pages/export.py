"""Saving pages: one PNG per page, one PDF of all pages, a CBZ comic book with ComicInfo.xml.

Every file is written through :func:`storyface.files.write_atomic`, so a crash or a full disk never
leaves half a comic where a reader or the web app would pick it up. Each page is PNG-encoded once
(:func:`encode_pages`) and those bytes serve both the page files and the CBZ.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

from PIL import Image

from ...errors import InputError
from ...files import write_atomic

PRINT_DPI = 300
PDF_JPEG_QUALITY = 95  # Pillow stores RGB pages in a PDF as JPEG; 95 with no chroma subsampling keeps lettering crisp
CBZ_PAGE_DIGITS = 3  # 001.png ...: readers sort page files by name
# zlib level 1: pages are written again after every text edit, and level 1 encodes a print-size page
# several times faster than Pillow's default 6 for files only slightly larger (flat comic colours).
PNG_COMPRESS_LEVEL = 1


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


def _check(pages: Sequence[Image.Image]) -> None:
    if not pages:
        raise InputError("there are no pages to save")


def encode_pages(pages: Sequence[Image.Image]) -> list[bytes]:
    """Each page as PNG bytes (RGB, with its print dpi), encoded once for every export that needs them."""
    encoded = []
    for page in pages:
        buffer = io.BytesIO()
        page.convert("RGB").save(buffer, "PNG", dpi=_dpi(page), compress_level=PNG_COMPRESS_LEVEL)
        encoded.append(buffer.getvalue())
    return encoded


def save_pngs(
    pages: Sequence[Image.Image], folder: str | os.PathLike, stem: str = "page", encoded: Sequence[bytes] | None = None
) -> list[Path]:
    """``folder/page-01.png``, ``page-02.png`` ... (numbered so a file browser sorts them in order)."""
    _check(pages)
    data = list(encoded) if encoded is not None else encode_pages(pages)
    digits = max(2, len(str(len(pages))))
    return [write_atomic(Path(folder) / f"{stem}-{i:0{digits}d}.png", png) for i, png in enumerate(data, start=1)]


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

    return write_atomic(Path(path), write)


def save_cbz(
    pages: Sequence[Image.Image], path: str | os.PathLike, info: ComicInfo | None = None,
    encoded: Sequence[bytes] | None = None,
) -> Path:
    """A comic book archive: the pages as PNGs in reading order plus ``ComicInfo.xml``."""
    _check(pages)
    info = info or ComicInfo()
    data = list(encoded) if encoded is not None else encode_pages(pages)
    encoded = [(page.size, png) for page, png in zip(pages, data)]
    names = [f"{i:0{CBZ_PAGE_DIGITS}d}.png" for i in range(1, len(pages) + 1)]

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w") as archive:
            for name, (_, data) in zip(names, encoded):
                archive.writestr(zipfile.ZipInfo(name, (2000, 1, 1, 0, 0, 0)), data, zipfile.ZIP_STORED)  # PNG is compressed already
            archive.writestr("ComicInfo.xml", comic_info_xml(info, [(size, len(data)) for size, data in encoded]),
                             zipfile.ZIP_DEFLATED)

    return write_atomic(Path(path), write)


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
