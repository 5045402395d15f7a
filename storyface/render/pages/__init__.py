"""Pages: layouts (grid, dynamic, webtoon), flowing panels onto pages, drawing them, and exports (PNG, PDF, CBZ).

    shapes = panel_shapes(n, "dynamic")                       # before rendering: the shape of each panel
    sizes = [native_size(s, model.family) for s in shapes]    # render each panel at its shape
    plans = plan_pages([a.size for a in art], "dynamic", "us-comic", title=..., notice=...)
    pages = compose_pages(plans, lettered_or_clean_art)
    save_pngs(pages, out); save_pdf(pages, out / "comic.pdf"); save_cbz(pages, out / "comic.cbz", ComicInfo(...))
"""

from __future__ import annotations

from .compose import compose_pages, fit_art, fit_crop
from .export import ComicInfo, comic_info_xml, save_cbz, save_pdf, save_pngs
from .flow import plan_pages
from .layouts import LAYOUTS, PRESETS, Layout, PagePlan, PagePreset, Slot, get_preset, native_size, panel_shapes

__all__ = [
    "LAYOUTS",
    "PRESETS",
    "ComicInfo",
    "Layout",
    "PagePlan",
    "PagePreset",
    "Slot",
    "comic_info_xml",
    "compose_pages",
    "fit_art",
    "fit_crop",
    "get_preset",
    "native_size",
    "panel_shapes",
    "plan_pages",
    "save_cbz",
    "save_pdf",
    "save_pngs",
]
