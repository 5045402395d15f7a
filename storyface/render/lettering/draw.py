"""Drawing a LetteringPlan over clean panel art: balloons, tails, thought clouds, whispers, narration boxes.

Each balloon is one closed outline (the oval with its tail spliced in), so the tail joins the
balloon without a seam, as an inked balloon does. Outlines are drawn SUPERSAMPLE times larger into
masks and box-filtered down, which gives smooth edges without touching the art around them; text
is drawn at full size (FreeType anti-aliases it). The art passed in is never modified.
"""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from ...errors import InputError
from .geometry import PointF, ellipse_edge
from .model import Balloon, Caption, LetteringPlan
from .text import THOUGHT_BUMP, body_axes, item_font, line_origins, stroke_px

INK = (20, 20, 20)
BALLOON_FILL = (255, 255, 255)
CAPTION_FILL = (255, 243, 196)  # the pale yellow of a classic narration box: lighter than art, not a balloon
SUPERSAMPLE = 3  # 3x masks: smooth outlines; 4x looks the same in print and costs twice as much
OVAL_POINTS = 160  # polygon points around an oval: no visible facets at 300 dpi
TAIL_BASE_REL = 0.24  # tail width where it leaves the oval, relative to the oval's short semi-axis ...
TAIL_BASE_PER_LENGTH = 0.12  # ... or to the tail's length, so a long tail still reads as a wedge, not a line ...
TAIL_BASE_MAX = 0.7  # ... but never wider than this (relative to the short semi-axis)
TAIL_BEND = 0.10  # sideways bow of the tail, relative to its length: a drawn tail is rarely straight
DASH_ON, DASH_OFF = 3.0, 2.2  # whisper outline dash and gap, in stroke widths
CLOUD_BUMP_LEN = 0.55  # scallop chord length of a thought cloud, relative to the oval's short semi-axis
TRAIL = ((0.22, 1.0), (0.58, 0.72), (0.9, 0.48))  # thought trail: (position along the tail, relative radius)


def draw_lettering(art: Image.Image, plan: LetteringPlan) -> Image.Image:
    """A new RGB image: ``art`` with the plan's narration box and balloons drawn on it."""
    if art.size != tuple(plan.size):
        raise InputError(f"the lettering was planned for a {plan.size[0]}x{plan.size[1]} panel, got {art.size[0]}x{art.size[1]}")
    page = art.convert("RGB")  # always a new image (a copy when already RGB): the clean art stays clean
    if plan.caption is not None:
        _draw_caption(page, plan.caption, plan.dpi)
    for balloon in plan.balloons:
        _draw_balloon(page, balloon, plan.dpi)
    return page


def _draw_caption(page: Image.Image, caption: Caption, dpi: float) -> None:
    draw = ImageDraw.Draw(page)
    left, top, right, bottom = caption.box
    draw.rectangle((left, top, right - 1, bottom - 1), fill=CAPTION_FILL, outline=INK, width=stroke_px(dpi))
    _draw_text(draw, caption)


def _draw_text(draw: ImageDraw.ImageDraw, item: Balloon | Caption) -> None:
    font = item_font(item)
    for line, (x, y) in line_origins(item):
        draw.text((x, y), line, font=font, fill=INK, anchor="la")


# --------------------------------------------------------------------------- outlines (pure geometry)


def oval(center: PointF, a: float, b: float, t_from: float = 0.0, t_to: float = 2 * math.pi, n: int = OVAL_POINTS) -> list[PointF]:
    steps = max(2, round(n * (t_to - t_from) / (2 * math.pi)))
    return [(center[0] + a * math.cos(t), center[1] + b * math.sin(t))
            for t in (t_from + (t_to - t_from) * i / steps for i in range(steps + 1))]


def _quad(p0: PointF, c: PointF, p1: PointF, n: int = 16) -> list[PointF]:
    return [((1 - s) ** 2 * p0[0] + 2 * (1 - s) * s * c[0] + s * s * p1[0],
             (1 - s) ** 2 * p0[1] + 2 * (1 - s) * s * c[1] + s * s * p1[1]) for s in (i / n for i in range(n + 1))]


def speech_outline(center: PointF, a: float, b: float, tip: PointF | None) -> list[PointF]:
    """The oval, with a curved wedge tail spliced in toward ``tip`` when there is one."""
    if tip is None:
        return oval(center, a, b)[:-1]
    t0 = math.atan2((tip[1] - center[1]) / b, (tip[0] - center[0]) / a)
    length = math.dist(ellipse_edge(center, a, b, tip), tip)
    half = min(max(TAIL_BASE_REL * min(a, b), TAIL_BASE_PER_LENGTH * length), TAIL_BASE_MAX * min(a, b)) / 2
    delta = min(0.6, half / math.hypot(a * math.sin(t0), b * math.cos(t0)))
    body = oval(center, a, b, t0 + delta, t0 + 2 * math.pi - delta)
    start, end = body[0], body[-1]  # the tail leaves the oval between end and start
    base = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    length = math.dist(base, tip)
    nx, ny = (-(tip[1] - base[1]) / (length or 1), (tip[0] - base[0]) / (length or 1))
    bend = TAIL_BEND * length * (1 if tip[0] >= center[0] else -1)
    bow = lambda p, q: ((p[0] + q[0]) / 2 + nx * bend, (p[1] + q[1]) / 2 + ny * bend)  # noqa: E731
    return body + _quad(end, bow(end, tip), tip)[1:] + _quad(tip, bow(tip, start), start)[1:-1]


def cloud_outline(center: PointF, a: float, b: float) -> list[PointF]:
    """A thought cloud: scallops bulging out of the oval, meeting in small cusps."""
    depth = THOUGHT_BUMP * min(a, b)
    perimeter = math.pi * (3 * (a + b) - math.sqrt((3 * a + b) * (a + 3 * b)))
    count = max(8, round(perimeter / (CLOUD_BUMP_LEN * min(a, b))))
    ring = _even_points(oval(center, a, b, n=OVAL_POINTS * 2), count)
    points: list[PointF] = []
    for p, q in zip(ring, ring[1:] + ring[:1]):
        chord = math.dist(p, q) or 1.0
        nx, ny = (q[1] - p[1]) / chord, -(q[0] - p[0]) / chord  # outward for a clockwise-in-image ring
        mid = ((p[0] + q[0]) / 2 - center[0], (p[1] + q[1]) / 2 - center[1])
        if nx * mid[0] + ny * mid[1] < 0:
            nx, ny = -nx, -ny
        for i in range(12):
            s = i / 12
            bulge = depth * math.sin(math.pi * s)
            points.append((p[0] + (q[0] - p[0]) * s + nx * bulge, p[1] + (q[1] - p[1]) * s + ny * bulge))
    return points


def _even_points(path: list[PointF], count: int) -> list[PointF]:
    """``count`` points spaced evenly by arc length along a closed ``path``."""
    lengths = [0.0]
    for p, q in zip(path, path[1:]):
        lengths.append(lengths[-1] + math.dist(p, q))
    total, out, j = lengths[-1], [], 0
    for k in range(count):
        want = total * k / count
        while lengths[j + 1] < want:
            j += 1
        seg = (lengths[j + 1] - lengths[j]) or 1.0
        s = (want - lengths[j]) / seg
        out.append((path[j][0] + (path[j + 1][0] - path[j][0]) * s, path[j][1] + (path[j + 1][1] - path[j][1]) * s))
    return out


def dashes(path: list[PointF], on: float, off: float) -> list[list[PointF]]:
    """Split a closed path into dash polylines of length ``on`` separated by gaps of ``off``."""
    closed = path + path[:1]
    runs: list[list[PointF]] = []
    phase, drawing, current = 0.0, True, [closed[0]]
    for p, q in zip(closed, closed[1:]):
        seg = math.dist(p, q)
        pos = 0.0
        while seg - pos > 1e-9:
            left = (on if drawing else off) - phase
            step = min(left, seg - pos)
            pos += step
            phase += step
            point = (p[0] + (q[0] - p[0]) * pos / seg, p[1] + (q[1] - p[1]) * pos / seg)
            if drawing:
                current.append(point)
            if phase >= (on if drawing else off) - 1e-9:
                if drawing:
                    runs.append(current)
                drawing, phase, current = not drawing, 0.0, [point]
    if drawing and len(current) > 1:
        runs.append(current)
    return runs


# --------------------------------------------------------------------------- balloons


def _draw_balloon(page: Image.Image, balloon: Balloon, dpi: float) -> None:
    center = balloon.center
    a, b = body_axes(balloon.kind, balloon.box, dpi)
    stroke = stroke_px(dpi)
    circles: list[tuple[PointF, float]] = []
    if balloon.kind == "thought":
        outline = cloud_outline(center, a, b)
        if balloon.tail_tip is not None:
            circles = _trail(center, a, b, balloon.tail_tip, dpi)
    else:
        outline = speech_outline(center, a, b, balloon.tail_tip)
    # 1. The region to redraw: outline, trail and stroke, clipped to the panel.
    xs = [p[0] for p in outline] + [c[0] + s * r for c, r in circles for s in (-1, 1)]
    ys = [p[1] for p in outline] + [c[1] + s * r for c, r in circles for s in (-1, 1)]
    pad = stroke + 2
    left, top = max(0, math.floor(min(xs)) - pad), max(0, math.floor(min(ys)) - pad)
    right, bottom = min(page.width, math.ceil(max(xs)) + pad), min(page.height, math.ceil(max(ys)) + pad)
    # 2. Fill and ink masks, SUPERSAMPLE times larger, in region coordinates.
    S = SUPERSAMPLE
    size = ((right - left) * S, (bottom - top) * S)
    fill, ink = Image.new("L", size, 0), Image.new("L", size, 0)
    fdraw, idraw = ImageDraw.Draw(fill), ImageDraw.Draw(ink)
    local = lambda pts: [((x - left) * S, (y - top) * S) for x, y in pts]  # noqa: E731
    fdraw.polygon(local(outline), fill=255)
    if balloon.kind == "whisper":
        for run in dashes(outline, DASH_ON * stroke, DASH_OFF * stroke):
            idraw.line(local(run), fill=255, width=stroke * S, joint="curve")
    else:
        idraw.line(local(outline + outline[:1]), fill=255, width=stroke * S, joint="curve")
    for (cx, cy), r in circles:
        box = [((cx - r) - left) * S, ((cy - r) - top) * S, ((cx + r) - left) * S, ((cy + r) - top) * S]
        fdraw.ellipse(box, fill=255)
        idraw.ellipse(box, outline=255, width=stroke * S)
    # 3. Down to page resolution (box filter = anti-aliasing), then paint fill and ink onto the art.
    region = page.crop((left, top, right, bottom))
    region.paste(BALLOON_FILL, mask=fill.reduce(S))
    region.paste(INK, mask=ink.reduce(S))
    page.paste(region, (left, top))
    _draw_text(ImageDraw.Draw(page), balloon)


def _trail(center: PointF, a: float, b: float, tip: PointF, dpi: float) -> list[tuple[PointF, float]]:
    """Small circles from the cloud toward the thinker, shrinking as they go."""
    start = ellipse_edge(center, a, b, tip)
    length = math.dist(start, tip)
    r0 = max(2.2 * stroke_px(dpi), min(0.14 * min(a, b), 0.3 * length))
    return [((start[0] + (tip[0] - start[0]) * f, start[1] + (tip[1] - start[1]) * f), r0 * s) for f, s in TRAIL]
