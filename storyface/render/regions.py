"""Where each person stands in a panel: a region per cast member, as fractions of the panel.

A panel with two or more people gets a *plan*: one :class:`Region` per name. By default the scene's
order of names is read left to right (two people: the left and right halves; three or four: equal
columns), the way a reader meets them. Any person can be placed by hand per panel with an override:
a named place (``"left"``, ``"right-third"``, ``"center"``, ...) or explicit fractions
``[x0, y0, x1, y1]``. The people without an override take the default columns the overrides leave
free, in scene order.

The plan is used three times: the regional attention processor (:mod:`storyface.render.attention`)
keeps each identity's tokens inside its region, lettering aims a balloon's tail at the region's
centre when no face is found (:func:`side_of`), and the eval flags a face in A's region that looks
like B (:mod:`storyface.eval.swaps`). Pure module: no torch, no files.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from ..errors import InputError
from ..limits import MAX_PEOPLE_PER_PANEL

MAX_PEOPLE = MAX_PEOPLE_PER_PANEL  # limits.py says why four
# A region narrower or shorter than a tenth of the panel holds about 3 cells of the coarsest attention
# grid at 1024 px (1 cell on a 512 px panel): too little room to draw a face in.
MIN_SIDE = 0.1
# Two people may share some of the panel (one in the centre, one on the right), but when more than
# half of the smaller region is shared their tokens attend to mostly the same pixels and blend again.
MAX_SHARED = 0.5

Override = Union[str, Sequence[float], Mapping[str, float], "Region"]  # what a user may write per person


@dataclass(frozen=True)
class Region:
    """A rectangle of the panel in fractions: (0, 0) is the top-left corner, (1, 1) the bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        values = (self.x0, self.y0, self.x1, self.y1)
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise InputError(f"a region needs four numbers x0, y0, x1, y1 from 0 to 1, got {list(values)}")
        for side, value in zip(("x0", "y0", "x1", "y1"), values):  # numpy and int values -> plain floats
            object.__setattr__(self, side, float(value))
        if not (0 <= self.x0 < self.x1 <= 1 and 0 <= self.y0 < self.y1 <= 1):
            raise InputError(
                f"region {self.to_list()} must have 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
                "(fractions of the panel, left/top first)"
            )
        if self.width < MIN_SIDE or self.height < MIN_SIDE:
            raise InputError(
                f"region {self.to_list()} is {self.width:.2f} x {self.height:.2f} of the panel; each side must be "
                f"at least {MIN_SIDE} so a face fits in it"
            )

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return self.width * self.height

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2

    def contains(self, x: float, y: float) -> bool:
        """Half-open, so side-by-side regions never share a point; the panel's right and bottom edges count as inside."""
        in_x = self.x0 <= x < self.x1 or x == self.x1 == 1.0
        in_y = self.y0 <= y < self.y1 or y == self.y1 == 1.0
        return in_x and in_y

    def shared(self, other: Region) -> float:
        """Area both regions cover."""
        w = min(self.x1, other.x1) - max(self.x0, other.x0)
        h = min(self.y1, other.y1) - max(self.y0, other.y0)
        return max(0.0, w) * max(0.0, h)

    def to_list(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]


def _column(i: int, n: int) -> Region:
    return Region(i / n, 0.0, (i + 1) / n, 1.0)


PLACES: dict[str, Region] = {
    "full": Region(0.0, 0.0, 1.0, 1.0),
    "left": Region(0.0, 0.0, 0.5, 1.0),
    "right": Region(0.5, 0.0, 1.0, 1.0),
    "center": Region(0.25, 0.0, 0.75, 1.0),
    "top": Region(0.0, 0.0, 1.0, 0.5),
    "bottom": Region(0.0, 0.5, 1.0, 1.0),
    "left-third": _column(0, 3),
    "center-third": _column(1, 3),
    "right-third": _column(2, 3),
    "left-quarter": _column(0, 4),
    "right-quarter": _column(3, 4),
}
SYNONYMS = {"centre": "center", "middle": "center", "middle-third": "center-third", "centre-third": "center-third",
            "left-half": "left", "right-half": "right", "whole": "full"}


def parse_region(value: Override) -> Region:
    """One person's override -> a Region.

    Accepts a named place (see :data:`PLACES`; ``"centre"``, ``"middle"``, ``"left-half"`` are
    synonyms), four fractions as a list or a ``"x0,y0,x1,y1"`` string (what a CLI flag or a table
    cell holds), a ``{"x0":…, "y0":…, "x1":…, "y1":…}`` dict (comic.json), or a Region.
    """
    if isinstance(value, Region):
        return value
    if isinstance(value, str):
        key = value.strip().lower().replace("_", "-").replace(" ", "-")
        key = SYNONYMS.get(key, key)
        if key in PLACES:
            return PLACES[key]
        parts = [p for p in value.replace(";", ",").split(",") if p.strip()]
        if len(parts) == 4:
            try:
                return Region(*(float(p) for p in parts))
            except ValueError:
                pass
        raise InputError(
            f"unknown place {value!r}; use one of {', '.join(PLACES)} or four fractions 'x0,y0,x1,y1' "
            "(e.g. '0,0,0.5,1' for the left half)"
        )
    if isinstance(value, Mapping):
        if set(value) != {"x0", "y0", "x1", "y1"}:
            raise InputError(f"a region dict needs exactly the keys x0, y0, x1, y1, got {sorted(value)}")
        return Region(value["x0"], value["y0"], value["x1"], value["y1"])
    if isinstance(value, Sequence) and len(value) == 4:
        return Region(*value)
    raise InputError(f"a place must be a name like 'left' or four fractions [x0, y0, x1, y1], got {value!r}")


def plan_regions(names_in_scene_order: Sequence[str], overrides: Mapping[str, Override] | None = None) -> dict[str, Region]:
    """name -> Region for everyone in the panel, in scene order (repeats dropped).

    One person takes the full panel, two the left and right halves, three or four equal columns.
    ``overrides`` places named people by hand; the others fill, in scene order, the default
    columns that no override mostly covers. Raises :class:`InputError` for more than
    :data:`MAX_PEOPLE` people, an override for someone not in the panel, a bad place, or two
    people sharing more than :data:`MAX_SHARED` of the smaller one's region.
    """
    names = list(dict.fromkeys(names_in_scene_order))
    overrides = dict(overrides or {})
    if len(names) > MAX_PEOPLE:
        raise InputError(
            f"a panel can place at most {MAX_PEOPLE} people, this one has {len(names)} ({', '.join(names)}); "
            "split the scene into two panels"
        )
    stray = [name for name in overrides if name not in names]
    if stray:
        raise InputError(
            f"place given for {', '.join(map(repr, stray))}, who is not in this panel "
            f"(it shows: {', '.join(names) or 'nobody'})"
        )
    placed: dict[str, Region] = {}
    for name, value in overrides.items():
        try:
            placed[name] = parse_region(value)
        except InputError as exc:
            raise InputError(f"place for {name!r}: {exc}") from exc
    free = [_column(i, len(names)) for i in range(len(names))]
    for region in placed.values():  # an override takes the default column it covers most
        best = max(free, key=region.shared, default=None)
        if best is not None and region.shared(best) > 0:
            free.remove(best)
    rest = iter(free)
    plan = {name: placed[name] if name in placed else next(rest) for name in names}
    check_plan(plan)
    return plan


def check_plan(plan: Mapping[str, Region]) -> None:
    """Refuse two people who share most of a region: their tokens would attend the same pixels."""
    items = list(plan.items())
    for i, (a, ra) in enumerate(items):
        for b, rb in items[i + 1 :]:
            if ra.shared(rb) > MAX_SHARED * min(ra.area, rb.area) + 1e-9:
                raise InputError(
                    f"{a} ({_describe(ra)}) and {b} ({_describe(rb)}) share most of the same part of the panel, "
                    "so their faces would blend; give them different places"
                )


def _describe(region: Region) -> str:
    for name, place in PLACES.items():
        if place == region:
            return name
    return ",".join(f"{v:g}" for v in region.to_list())


def side_of(plan: Mapping[str, Region]) -> dict[str, float]:
    """name -> x of the region's centre (0 = left edge, 1 = right edge), for aiming balloon tails."""
    return {name: region.centre[0] for name, region in plan.items()}


def plan_to_dict(plan: Mapping[str, Region]) -> dict[str, list[float]]:
    """JSON-able form for comic.json: name -> [x0, y0, x1, y1] (floats round-trip exactly through JSON)."""
    return {name: region.to_list() for name, region in plan.items()}


def plan_from_dict(data: Mapping[str, Any]) -> dict[str, Region]:
    """The inverse of :func:`plan_to_dict` (also takes named places and x0..y1 dicts), checked."""
    if not isinstance(data, Mapping):
        raise InputError(f"a region plan must map names to places, got {type(data).__name__}")
    plan = {}
    for name, value in data.items():
        try:
            plan[str(name)] = parse_region(value)
        except InputError as exc:
            raise InputError(f"place for {name!r}: {exc}") from exc
    check_plan(plan)
    return plan


def override_to_json(value: Override) -> str | list[float]:
    """An override as comic.json keeps it: a named place stays a name (readable), anything else fractions."""
    if isinstance(value, str):
        key = value.strip().lower().replace("_", "-").replace(" ", "-")
        key = SYNONYMS.get(key, key)
        if key in PLACES:
            return key
    return parse_region(value).to_list()
