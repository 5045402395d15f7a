"""Placing a panel's lettering: narration box first, then one balloon per line in reading order.

The rules are the ones letterers follow (and readers expect):
1. The narration box sits in the panel's top-left corner (top-right when reading right to left);
   if a face is there it gets narrower, then moves to the bottom corner.
2. Balloons never cover a face (plus a margin that grows with the face), each other, the caption
   or an earlier balloon's tail, and stay inside the panel.
3. Reading order: each balloon starts no higher than every earlier one, and when it sits beside
   one (their heights overlap) it is to its right (left for right-to-left).
4. A balloon sits near and preferably above its speaker; its tail points at the speaker's mouth
   and stops just outside the face. A speaker whose face was not found gets a short tail toward
   their side of the panel (``side_of``, from the scene's order of names) and ``saw_face=False``.
5. Every line on the panel is set at one size: the largest from MAX_PT down to MIN_PT at which
   everything fits. Text that does not fit at MIN_PT is an error naming the line; it is never clipped.

Search: a beam search over lines (BEAM_WIDTH partial layouts, BRANCHES new positions each), so an
early balloon does not take the only spot a later one could use. Positions are scored on a grid
(occupancy + summed-area table), so a 10-line page plans in tens of milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..fonts import missing_glyphs, points_to_px
from .geometry import Occupancy, PointF, clip_segment, ellipse_edge, expand, overlaps, segment_distance, segment_hits
from .model import Balloon, Box, Caption, Face, LetteringError, LetteringPlan, Line, TextDoesNotFitError
from .text import CAPTION_STYLE, KIND_STYLE, Shape, balloon_shapes, body_axes, caption_shape

DEFAULT_DPI = 300.0  # print resolution: pages are composed at 300 dpi
# Lettering size. Mixed-case comic lettering is set at about 8-10 pt on a US comic page; 9.5 pt
# Comic Neue Bold reads comfortably at arm's length. Below 6.5 pt print turns into fine print
# (footnotes and legal text run 6-7 pt), so that is the legible minimum.
MAX_PT = 9.5
MIN_PT = 6.5
PT_STEP = 0.5
GRID_IN = 0.025  # placement grid step (7.5 px at 300 dpi): finer moves nothing a reader would see
EDGE_IN = 0.06  # balloons keep this far inside the panel border
GAP_IN = 0.05  # between two balloons, or a balloon and the caption
FACE_MARGIN_IN = 0.08  # a balloon keeps at least this far from a head (Face.head) ...
FACE_MARGIN_REL = 0.10  # ... or a tenth of the face's size, whichever is more (close-ups need more air)
TAIL_GAP_IN = 0.02  # a tail tip stops this far outside its speaker's head ...
TAIL_GAP_REL = 0.05  # ... or 5 % of the face size: aimed at the mouth, never drawn over the face
MIN_TAIL_IN = 0.07  # shorter tails disappear under the outline
THOUGHT_TRAIL = 2.5  # a thought's trail of bubbles needs this many times the shortest tail to show three bubbles
BLIND_TAIL_IN = 0.22  # a blind tail's length: clearly a tail, too short to point at anyone in particular
MAX_TAIL_IN = 1.0  # longer tails wander across the art: a balloon belongs near its speaker
TAIL_CLEAR_IN = 0.02  # tails keep this far from other faces and balloons
TAIL_APART_IN = 0.12  # two tails keep this far apart, so each clearly belongs to its own balloon
MAX_BALLOON_FRAC = (0.92, 0.75)  # a balloon's box may take this much of the panel's width, height
CAPTION_MIN_EM = 7  # a narration box narrower than 7 font sizes is a column of one-word lines
BEAM_WIDTH = 4
BRANCHES = 3
CHECKED = 60  # best-scoring free positions whose tails are checked per shape and state
# Scoring weights (lower cost wins); distances are in panel diagonals, heights in panel heights.
W_NEAR = 1.0  # balloon centre to the speaker's mouth (or side, when blind)
W_HIGH = 1.0  # prefer the top of the panel: reading order fills a panel top-down, so high balloons leave room
W_BELOW_MOUTH = 0.8  # a balloon below its speaker's mouth reads as coming from someone else
W_TAIL = 0.4  # long tails cross the art
W_AREA = 0.6  # covering less art is better
W_HEAD = 1.5  # per fraction of a balloon lying on hair/head around a face (allowed when nothing else is)
W_ASPECT = 0.15  # ovals near 1.6:1 look like balloons; very long or round ones less so
IDEAL_ASPECT = 1.6


@dataclass(frozen=True)
class _Metrics:
    """The inch constants above in pixels at one dpi."""

    cell: int
    edge: float
    gap: float
    tail_gap: float
    min_tail: float
    blind_tail: float
    max_tail: float
    tail_clear: float
    tail_apart: float
    face_margin: float

    @classmethod
    def at(cls, dpi: float) -> _Metrics:
        px = lambda inches: inches * dpi  # noqa: E731
        return cls(max(2, round(px(GRID_IN))), px(EDGE_IN), px(GAP_IN), px(TAIL_GAP_IN), px(MIN_TAIL_IN),
                   px(BLIND_TAIL_IN), px(MAX_TAIL_IN), px(TAIL_CLEAR_IN), px(TAIL_APART_IN), px(FACE_MARGIN_IN))

    def margin_of(self, face: Face) -> float:
        gap = self.gap_of(face)
        return max(self.face_margin, FACE_MARGIN_REL * face.size, gap + self.min_tail + self.cell)

    def gap_of(self, face: Face) -> float:
        return max(self.tail_gap, TAIL_GAP_REL * face.size)


@dataclass(frozen=True)
class _Target:
    """Where a line's tail goes: a face's mouth, or (blind) a point on the speaker's side of the panel."""

    face: Face | None
    point: PointF


@dataclass
class _State:
    balloons: tuple[Balloon, ...]
    occupancy: Occupancy
    cost: float
    tails: tuple[tuple[PointF, PointF], ...]


def plan_lettering(
    size: tuple[int, int],
    caption: str | None,
    lines: Sequence[Line],
    faces: Sequence[Face],
    side_of: Mapping[str, float],
    rtl: bool = False,
    dpi: float = DEFAULT_DPI,
    *,
    max_pt: float = MAX_PT,
    min_pt: float = MIN_PT,
) -> LetteringPlan:
    """Place a panel's narration box and balloons (pure: no drawing, no files).

    ``size`` is the panel as it will be printed, in pixels at ``dpi``; ``faces`` are in those pixels.
    ``side_of`` maps a speaker to an x position 0..1 for speakers whose face is not in ``faces``.
    ``max_pt`` lets a caller set a whole page at one size (plan once, take the smallest ``font_pt``).
    Raises :class:`LetteringError` (an InputError) naming the line that cannot be lettered.
    """
    if size[0] < 1 or size[1] < 1 or dpi <= 0:
        raise LetteringError(f"a panel of {size[0]}x{size[1]} px at {dpi} dpi cannot be lettered", None)
    if not min_pt <= max_pt:
        raise LetteringError(f"max_pt {max_pt} is below min_pt {min_pt}", None)
    _check_text(caption, lines)
    sizes = [max_pt - i * PT_STEP for i in range(int((max_pt - min_pt) / PT_STEP + 1e-9) + 1)]
    error: TextDoesNotFitError | None = None
    for pt in sizes:  # largest first; most panels fit at once, a crowded one steps down
        try:
            return _plan_at(pt, size, caption, lines, faces, side_of, rtl, dpi)
        except TextDoesNotFitError as exc:
            error = exc
    assert error is not None
    raise error  # from the legible minimum: the line that does not fit even there


def _check_text(caption: str | None, lines: Sequence[Line]) -> None:
    if caption is not None and not caption.strip():
        raise LetteringError("the narration caption is empty; give it text or leave it out", None)
    if caption and (missing := missing_glyphs(caption, CAPTION_STYLE)):
        raise LetteringError(f"the narration caption uses characters the lettering font lacks: {''.join(missing)}", None)
    for i, line in enumerate(lines):
        if not line.text.strip():
            raise LetteringError(f"line {i + 1} ({line.speaker}) is empty; give it words or remove it", i)
        if missing := missing_glyphs(line.text, KIND_STYLE[line.kind]):
            raise LetteringError(
                f"{describe(i, line)} uses characters the lettering font (Comic Neue) lacks: {''.join(missing)}", i
            )


def describe(index: int, line: Line) -> str:
    """How an error names a line: 'line 2 (Grace Hopper: "It's a moth...")'."""
    excerpt = line.text if len(line.text) <= 40 else line.text[:37].rstrip() + "..."
    return f'line {index + 1} ({line.speaker}: "{excerpt}")'


def _plan_at(
    pt: float,
    size: tuple[int, int],
    caption: str | None,
    lines: Sequence[Line],
    faces: Sequence[Face],
    side_of: Mapping[str, float],
    rtl: bool,
    dpi: float,
) -> LetteringPlan:
    """One attempt at one font size; TextDoesNotFitError when something has no room."""
    m = _Metrics.at(dpi)
    px = points_to_px(pt, dpi)
    occupancy = Occupancy(size, m.cell, m.edge)
    for face in faces:
        occupancy.block_box(expand(face.box, m.margin_of(face)))
        occupancy.avoid_box(expand(face.head, m.gap))
    placed_caption = _place_caption(caption, px, size, faces, rtl, m) if caption else None
    if placed_caption:
        occupancy.block_box(expand(placed_caption.box, m.gap))
    beam = [_State((), occupancy, 0.0, ())]
    for i, line in enumerate(lines):
        max_size = (int(size[0] * MAX_BALLOON_FRAC[0]), int(size[1] * MAX_BALLOON_FRAC[1]))
        shapes = balloon_shapes(line.text, line.kind, px, dpi, max_size)
        if not shapes:
            raise TextDoesNotFitError(
                f"{describe(i, line)} is too long for a {size[0]}x{size[1]} px panel even at {pt:g} pt "
                f"(the legible minimum is {MIN_PT:g} pt); shorten it or split it over two panels", i
            )
        target = _target(line, faces, side_of, size)
        grown = [s for state in beam for s in _extend(state, i, line, shapes, target, placed_caption, faces, rtl, px, dpi, m)]
        if not grown:
            raise TextDoesNotFitError(
                f"{describe(i, line)} has no room at {pt:g} pt: every place for it would cover a face, an "
                "earlier balloon or break the reading order; shorten the dialogue or move a line to another panel", i
            )
        beam = _best_distinct(grown)
    best = min(beam, key=lambda s: s.cost)
    return LetteringPlan(size, dpi, rtl, pt, placed_caption, best.balloons)


def _best_distinct(states: list[_State]) -> list[_State]:
    kept: list[_State] = []
    seen: set[tuple[tuple[int, int, int, int], ...]] = set()
    for state in sorted(states, key=lambda s: s.cost):
        key = tuple(b.box for b in state.balloons)
        if key not in seen:
            seen.add(key)
            kept.append(state)
        if len(kept) == BEAM_WIDTH:
            break
    return kept


# --------------------------------------------------------------------------- caption


def _place_caption(text: str, px: int, size: tuple[int, int], faces: Sequence[Face], rtl: bool, m: _Metrics) -> Caption:
    """The top corner where reading starts, clear of heads; else the bottom corner; else clear of faces only.

    Shapes are tried from the fewest lines (widest) to the most, so a caption squeezes beside a head
    before it moves.
    """
    inset = round(m.edge)
    shapes = _caption_shapes(text, px, size[0] - 2 * inset)
    for keep_clear in ("head", "box"):  # covering someone's hair is worse than narration at the bottom
        for at_top in (True, False):
            for shape in shapes:
                if shape.height > size[1] * 0.4 - 2 * inset:
                    continue  # a caption taller than 40 % of the panel buries the art
                left = size[0] - inset - shape.width if rtl else inset
                top = inset if at_top else size[1] - inset - shape.height
                box = (left, top, left + shape.width, top + shape.height)
                if not any(overlaps(box, expand(getattr(f, keep_clear), m.margin_of(f))) for f in faces):
                    return Caption(text, box, px, shape.lines)
    raise TextDoesNotFitError(
        f"the narration caption ({text[:40]!r}) does not fit in a corner of the panel without covering a face; "
        "shorten it", None
    )


def _caption_shapes(text: str, px: int, max_width: int) -> list[Shape]:
    """Distinct wrappings of the caption, widest first: one line, then 2, 3 ... lines of about equal width."""
    widest = caption_shape(text, px, max_width)
    shapes = {widest.lines: widest}
    for k in range(2, 9):
        width = min(max_width, round(widest.width * 1.08 / k) + 2 * px)
        if width < CAPTION_MIN_EM * px:
            break
        shape = caption_shape(text, px, width, max_width)
        if shape.width <= max_width:
            shapes.setdefault(shape.lines, shape)
    return sorted(shapes.values(), key=lambda s: (len(s.lines), s.width))


# --------------------------------------------------------------------------- balloons


def _target(line: Line, faces: Sequence[Face], side_of: Mapping[str, float], size: tuple[int, int]) -> _Target:
    mine = [f for f in faces if f.name == line.speaker]
    if mine:
        face = max(mine, key=lambda f: f.size)
        return _Target(face, tuple(map(float, face.mouth_point)))  # type: ignore[arg-type]
    side = min(1.0, max(0.0, float(side_of.get(line.speaker, 0.5))))
    return _Target(None, (side * size[0], size[1] * 0.8))


def _extend(
    state: _State,
    index: int,
    line: Line,
    shapes: Sequence[Shape],
    target: _Target,
    caption: Caption | None,
    faces: Sequence[Face],
    rtl: bool,
    px: int,
    dpi: float,
    m: _Metrics,
) -> list[_State]:
    """Up to BRANCHES new states, each with this line's balloon at a distinct good position."""
    W, H = state.occupancy.size
    diag = math.hypot(W, H)
    earlier = [b.box for b in state.balloons] + ([caption.box] if caption and caption.box[1] < H / 2 else [])
    options: list[tuple[float, Balloon, tuple[PointF, PointF]]] = []
    for shape in shapes:
        free, on_head = state.occupancy.free_windows(shape.width, shape.height)  # [rows, cols] each
        if not free.any():
            continue
        rows, cols = np.nonzero(free)
        on_head = on_head[rows, cols]
        x, y = cols * m.cell, rows * m.cell
        cx, cy = x + shape.width / 2, y + shape.height / 2
        ok = np.ones(len(x), bool)
        for box in earlier:  # reading order
            beside = (y >= box[1]) & ((cx < (box[0] + box[2]) / 2) if rtl else (cx > (box[0] + box[2]) / 2))
            ok &= (y >= box[3]) | beside
        if not ok.any():
            continue
        x, y, cx, cy, on_head = x[ok], y[ok], cx[ok], cy[ok], on_head[ok]
        tx, ty = target.point
        if target.face is not None:  # near the top of the speaker's head: balloons float above, tails reach down
            hx, hy = (target.face.head[0] + target.face.head[2]) / 2, target.face.head[1]
            cost = W_NEAR * np.hypot(cx - hx, cy - hy) / diag + W_BELOW_MOUTH * np.maximum(0, cy - ty) / H
        else:
            cost = W_NEAR * np.abs(cx - tx) / diag
        cost = cost + W_HIGH * y / H + W_HEAD * on_head
        cost += W_AREA * shape.width * shape.height / (W * H) + W_ASPECT * abs(math.log(shape.aspect / IDEAL_ASPECT))
        found: list[tuple[float, Balloon, tuple[PointF, PointF]]] = []
        for k in np.argsort(cost, kind="stable")[:CHECKED]:
            box = (int(x[k]), int(y[k]), int(x[k]) + shape.width, int(y[k]) + shape.height)
            tail = _tail(box, line.kind, target, faces, state, caption, dpi, m)
            if tail is None:
                continue
            balloon = Balloon(line.kind, line.speaker, line.text, box, (round(tail[1][0]), round(tail[1][1])),
                              px, target.face is not None, shape.lines, index)
            found.append((float(cost[k]) + W_TAIL * math.dist(*tail) / diag, balloon, tail))
            if len(found) >= 2 * BRANCHES and len(_spread(found, m)) == BRANCHES:
                break
        options += _spread(found, m)  # this shape's best few positions whose tails work
    return [_grow(state, cost, balloon, tail, m) for cost, balloon, tail in _spread(options, m)]


def _spread(options: list[tuple[float, Balloon, tuple[PointF, PointF]]], m: _Metrics) -> list:
    """The BRANCHES cheapest options whose balloons are not near-duplicates of a cheaper one."""
    chosen: list[tuple[float, Balloon, tuple[PointF, PointF]]] = []
    for option in sorted(options, key=lambda o: o[0]):
        c = option[1].center
        if all(math.dist(c, other[1].center) > 4 * m.cell for other in chosen):
            chosen.append(option)
        if len(chosen) == BRANCHES:
            break
    return chosen


def _grow(state: _State, cost: float, balloon: Balloon, tail: tuple[PointF, PointF], m: _Metrics) -> _State:
    occupancy = state.occupancy.copy()
    occupancy.block_box(expand(balloon.box, m.gap))
    occupancy.block_segment(tail[0], tail[1], m.tail_clear + m.cell / 2)
    return _State(state.balloons + (balloon,), occupancy, state.cost + cost, state.tails + (tail,))


def _tail(
    box: Box,
    kind: str,
    target: _Target,
    faces: Sequence[Face],
    state: _State,
    caption: Caption | None,
    dpi: float,
    m: _Metrics,
) -> tuple[PointF, PointF] | None:
    """(start on the balloon's oval, tip) or None when the tail would be too short or cross something."""
    W, H = state.occupancy.size
    center = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    a, b = body_axes(kind, box, dpi)
    if target.face is not None:  # on the way to the mouth, stop just outside the head (or the face)
        tip = None
        for region in (target.face.head, target.face.box):
            clipped = clip_segment(center, target.point, expand(region, m.gap_of(target.face)))
            if clipped is not None and clipped[0] > 0:
                t = clipped[0]
                tip = (center[0] + t * (target.point[0] - center[0]), center[1] + t * (target.point[1] - center[1]))
                start = ellipse_edge(center, a, b, tip)
                if math.dist(start, tip) >= m.min_tail:
                    break
        if tip is None:
            return None
    else:  # blind: a short tail toward the speaker's side
        start = ellipse_edge(center, a, b, target.point)
        dx, dy = target.point[0] - start[0], target.point[1] - start[1]
        norm = math.hypot(dx, dy) or 1.0
        length = min(m.blind_tail, norm)
        tip = (start[0] + dx / norm * length, start[1] + dy / norm * length)
    shortest = m.min_tail * (THOUGHT_TRAIL if kind == "thought" else 1)
    if not shortest <= math.dist(start, tip) <= m.max_tail:
        return None
    if not (m.edge <= tip[0] <= W - m.edge and m.edge <= tip[1] <= H - m.edge):
        return None
    obstacles = [expand(f.head, m.tail_clear) for f in faces if f is not target.face]
    obstacles += [expand(b_.box, m.tail_clear) for b_ in state.balloons]
    if caption is not None:
        obstacles.append(expand(caption.box, m.tail_clear))
    if any(segment_hits(start, tip, o) for o in obstacles):
        return None
    if any(segment_distance(start, tip, *other) < m.tail_apart for other in state.tails):
        return None  # two tails touching read as one balloon pointing twice
    return start, tip
