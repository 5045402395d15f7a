"""Page geometry: presets, panel shapes, native render sizes, and flowing panels onto pages (pure).

A page is a stack of rows; a row holds 1-3 panels side by side, justified to the page width, so
every panel in a row shares its height and the widths follow the panels' aspect ratios. Rows go
onto a page until the next one would overflow it; the page's rows are then stretched or squeezed
a little (at most MAX_SQUEEZE / MAX_STRETCH, which the art absorbs by a small centred crop) so the
page is filled edge to edge. ``grid`` rows hold a fixed number of equal panels; ``dynamic`` rows
follow a cycle of comic-page patterns (a wide establishing panel, tall and square ones);
``webtoon`` is one full-width column in a single tall strip for phones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ...errors import InputError

Layout = Literal["grid", "dynamic", "webtoon"]
LAYOUTS: tuple[str, ...] = ("grid", "dynamic", "webtoon")
Shape = Literal["wide", "square", "tall"]
Box = tuple[int, int, int, int]

# SDXL's trained buckets near one megapixel for each shape; SD 2.x (768 px) uses the same aspect
# ratios at 3/4 the side, and any other base side scales them (rounded to the VAE's multiple of 8).
NATIVE_SDXL: dict[str, tuple[int, int]] = {"wide": (1344, 768), "square": (1024, 1024), "tall": (832, 1216)}
FAMILY_SIDE = {"sdxl": 1024, "sd2": 768}
MAX_SQUEEZE = 0.12  # a page may take rows 12 % taller than it, squeezed (crops the art's top/bottom a little)
MAX_STRETCH = 0.15  # ... or stretch its rows up to 15 % (crops the art's sides a little); past that, white space
WEBTOON_MAX_IN = 40.0  # a strip longer than this (16,000 px at 400 dpi) is cut between panels into several strips
# Dynamic pages cycle through these rows: an establishing wide panel, then mixed rows of 2 and 3.
DYNAMIC_ROWS: tuple[tuple[str, ...], ...] = (
    ("wide",),
    ("tall", "square"),
    ("square", "square", "square"),
    ("square", "tall"),
    ("wide", "square"),
    ("tall", "tall", "tall"),
)
DYNAMIC_TAIL_ROWS = {1: ("wide",), 2: ("square", "square")}  # a short last row
WEBTOON_SHAPES: tuple[str, ...] = ("tall", "square")  # after a wide first panel; phones scroll vertically


@dataclass(frozen=True)
class PagePreset:
    """A page size in inches at a print resolution; ``height_in=None`` is an endless strip (webtoon)."""

    name: str
    width_in: float
    height_in: float | None
    dpi: int = 300
    margin_in: float = 0.375  # inside the trim: text and panels stay clear of the guillotine
    gutter_in: float = 0.125  # the white between panels (1/8 in is the usual comic gutter)
    columns: int = 2  # grid layout: panels per row

    def px(self, inches: float) -> int:
        return round(inches * self.dpi)

    @property
    def size(self) -> tuple[int, int | None]:
        return self.px(self.width_in), (self.px(self.height_in) if self.height_in else None)


PRESETS: dict[str, PagePreset] = {
    "us-comic": PagePreset("us-comic", 6.625, 10.25),  # US comic book trim size
    "a4": PagePreset("a4", 8.27, 11.69),  # 210 x 297 mm
    "square": PagePreset("square", 8.0, 8.0),
    # A phone screen is about 2.7 in wide; 400 dpi gives 1080 px, the usual phone width.
    "phone": PagePreset("phone", 2.7, None, dpi=400, margin_in=0.08, gutter_in=0.3, columns=1),
}
DEFAULT_PRESET = {"grid": "us-comic", "dynamic": "us-comic", "webtoon": "phone"}


def get_preset(name: str | PagePreset | None, layout: Layout = "grid") -> PagePreset:
    if isinstance(name, PagePreset):
        return name
    name = name or DEFAULT_PRESET[check_layout(layout)]
    if name not in PRESETS:
        raise InputError(f"unknown page size {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def check_layout(layout: str) -> str:
    if layout not in LAYOUTS:
        raise InputError(f"unknown page layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    return layout


# --------------------------------------------------------------------------- shapes and sizes


def dynamic_rows(n: int) -> list[tuple[str, ...]]:
    """The row pattern of a dynamic layout for ``n`` panels (the last row shortened to what is left)."""
    rows, left, k = [], n, 0
    while left > 0:
        row = DYNAMIC_ROWS[k % len(DYNAMIC_ROWS)]
        if len(row) > left:
            row = DYNAMIC_TAIL_ROWS[left]
        rows.append(row)
        left -= len(row)
        k += 1
    return rows


def panel_shapes(n: int, layout: Layout = "grid") -> list[str]:
    """The shape each of ``n`` panels should be rendered at, so the page never has to crop it much."""
    check_layout(layout)
    if n < 0:
        raise InputError(f"panel count must be 0 or more, got {n}")
    if layout == "grid":
        return ["square"] * n
    if layout == "webtoon":
        return [("wide" if i == 0 else WEBTOON_SHAPES[(i - 1) % len(WEBTOON_SHAPES)]) for i in range(n)]
    return [shape for row in dynamic_rows(n) for shape in row]


def native_size(shape: str, family: str = "sdxl", side: int | None = None) -> tuple[int, int]:
    """(width, height) to render a panel of ``shape`` at: SDXL 1344x768 / 1024x1024 / 832x1216,
    SD 2.x 1008x576 / 768x768 / 624x912; ``side`` (a model's square render size) scales them."""
    if shape not in NATIVE_SDXL:
        raise InputError(f"unknown panel shape {shape!r}; choose one of {', '.join(NATIVE_SDXL)}")
    if side is None:
        if family not in FAMILY_SIDE:
            raise InputError(f"unknown model family {family!r}; choose one of {', '.join(FAMILY_SIDE)}")
        side = FAMILY_SIDE[family]
    w, h = NATIVE_SDXL[shape]
    scale = side / 1024
    return max(8, round(w * scale / 8) * 8), max(8, round(h * scale / 8) * 8)


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Slot:
    """Where panel ``panel`` goes on its page: the art ``box`` and, with captions under panels,
    the ``caption_box`` below it and the caption's wrapped lines."""

    panel: int
    box: Box
    caption_box: Box | None = None
    caption_lines: tuple[str, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        return self.box[2] - self.box[0], self.box[3] - self.box[1]

    @property
    def frame(self) -> Box:
        """Art plus caption band: what the panel border goes around."""
        bottom = self.caption_box[3] if self.caption_box else self.box[3]
        return (self.box[0], self.box[1], self.box[2], bottom)


@dataclass(frozen=True)
class PagePlan:
    """One page: its pixel size at ``dpi``, its panel slots in reading order, title and notice text."""

    number: int
    size: tuple[int, int]
    dpi: int
    slots: tuple[Slot, ...]
    border: int
    title_lines: tuple[str, ...] = ()
    title_box: Box | None = None
    notice_lines: tuple[str, ...] = ()
    notice_box: Box | None = None

    @property
    def panels(self) -> list[int]:
        return [s.panel for s in self.slots]


@dataclass(frozen=True)
class Row:
    panels: tuple[int, ...]
    widths: tuple[float, ...]  # slot widths, px
    height: float  # natural art height (no crop), px
    band: int  # caption band height, px (0 without captions)
    caption_lines: tuple[tuple[str, ...], ...]


def row_groups(n: int, layout: Layout, columns: int) -> list[tuple[int, ...]]:
    """Panel indices per row, in reading order."""
    if layout == "webtoon":
        return [(i,) for i in range(n)]
    if layout == "dynamic":
        groups, start = [], 0
        for row in dynamic_rows(n):
            groups.append(tuple(range(start, start + len(row))))
            start += len(row)
        return groups
    cols = 1 if n == 1 else columns
    return [tuple(range(s, min(s + cols, n))) for s in range(0, n, cols)]
