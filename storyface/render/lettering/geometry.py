"""Small pure geometry for placement: boxes, segments, and an occupancy grid with O(1) window tests."""

from __future__ import annotations

import math

import numpy as np

from .model import Box

PointF = tuple[float, float]


def expand(box: Box, by: float) -> Box:
    """``box`` grown by ``by`` pixels on every side (rounded outward)."""
    return (math.floor(box[0] - by), math.floor(box[1] - by), math.ceil(box[2] + by), math.ceil(box[3] + by))


def overlaps(a: Box, b: Box) -> bool:
    """True when two boxes share any area (touching edges do not count)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def box_distance(point: PointF, box: Box) -> float:
    """Euclidean distance from a point to a box (0 inside it)."""
    dx = max(box[0] - point[0], 0.0, point[0] - box[2])
    dy = max(box[1] - point[1], 0.0, point[1] - box[3])
    return math.hypot(dx, dy)


def clip_segment(p: PointF, q: PointF, box: Box) -> tuple[float, float] | None:
    """Liang-Barsky: the parameter range [t0, t1] of p + t (q - p), t in [0, 1], inside ``box``; None if it misses."""
    t0, t1 = 0.0, 1.0
    dx, dy = q[0] - p[0], q[1] - p[1]
    for delta, low, high, start in ((dx, box[0], box[2], p[0]), (dy, box[1], box[3], p[1])):
        if abs(delta) < 1e-12:
            if start < low or start > high:
                return None
            continue
        ta, tb = (low - start) / delta, (high - start) / delta
        t0, t1 = max(t0, min(ta, tb)), min(t1, max(ta, tb))
        if t0 > t1:
            return None
    return t0, t1


def segment_hits(p: PointF, q: PointF, box: Box) -> bool:
    clipped = clip_segment(p, q, box)
    return clipped is not None and clipped[1] - clipped[0] > 1e-9


def segment_distance(p1: PointF, q1: PointF, p2: PointF, q2: PointF) -> float:
    """Shortest distance between two segments (0 when they cross)."""

    def cross(o: PointF, a: PointF, b: PointF) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def to_segment(x: PointF, a: PointF, b: PointF) -> float:
        dx, dy = b[0] - a[0], b[1] - a[1]
        t = ((x[0] - a[0]) * dx + (x[1] - a[1]) * dy) / ((dx * dx + dy * dy) or 1.0)
        t = min(1.0, max(0.0, t))
        return math.dist(x, (a[0] + t * dx, a[1] + t * dy))

    d1, d2 = cross(p2, q2, p1), cross(p2, q2, q1)
    d3, d4 = cross(p1, q1, p2), cross(p1, q1, q2)
    if d1 * d2 < 0 and d3 * d4 < 0:
        return 0.0
    return min(to_segment(p1, p2, q2), to_segment(q1, p2, q2), to_segment(p2, p1, q1), to_segment(q2, p1, q1))


def ellipse_edge(center: PointF, a: float, b: float, toward: PointF) -> PointF:
    """Where the ray from an ellipse's centre toward ``toward`` crosses the ellipse."""
    dx, dy = toward[0] - center[0], toward[1] - center[1]
    norm = math.hypot(dx / a, dy / b)
    if norm == 0:
        return center
    return center[0] + dx / norm, center[1] + dy / norm


class Occupancy:
    """What is taken in a panel, on a grid of ``cell``-pixel squares.

    ``free_windows(w, h)`` answers "where can a w x h box go?" for every grid position at once with a
    summed-area table, which keeps a 10-line page well under a second on two CPU cores.
    """

    def __init__(self, size: tuple[int, int], cell: int, edge: float) -> None:
        self.size, self.cell = size, cell
        self.blocked = np.zeros((math.ceil(size[1] / cell), math.ceil(size[0] / cell)), bool)  # [gh, gw]
        band = max(1, math.ceil(edge / cell))
        self.blocked[:band, :] = self.blocked[-band:, :] = True
        self.blocked[:, :band] = self.blocked[:, -band:] = True
        # A partial last row/column lies (partly) outside the panel: never usable.
        if size[1] % cell:
            self.blocked[-1, :] = True
        if size[0] % cell:
            self.blocked[:, -1] = True

        self.avoid = np.zeros_like(self.blocked)  # allowed, but better left clear (hair around a face)

    def copy(self) -> Occupancy:
        clone = object.__new__(Occupancy)
        clone.size, clone.cell = self.size, self.cell
        clone.blocked, clone.avoid = self.blocked.copy(), self.avoid  # ``avoid`` never changes after setup
        return clone

    def _cells(self, box: Box) -> tuple[slice, slice]:
        c = self.cell
        gh, gw = self.blocked.shape
        i0, j0 = max(0, box[0] // c), max(0, box[1] // c)
        i1, j1 = min(gw, -(-box[2] // c)), min(gh, -(-box[3] // c))
        return slice(j0, max(j0, j1)), slice(i0, max(i0, i1))

    def block_box(self, box: Box) -> None:
        self.blocked[self._cells(box)] = True

    def avoid_box(self, box: Box) -> None:
        self.avoid[self._cells(box)] = True

    def block_segment(self, p: PointF, q: PointF, radius: float) -> None:
        steps = max(1, math.ceil(math.dist(p, q) / (self.cell / 2)))
        for s in range(steps + 1):
            x = p[0] + (q[0] - p[0]) * s / steps
            y = p[1] + (q[1] - p[1]) * s / steps
            self.block_box(expand((round(x), round(y), round(x), round(y)), radius))

    def free_windows(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """For every top-left grid position (row, col) of a ``width`` x ``height`` box: is it free
        (bool [rows, cols]), and what fraction of it lies on cells to avoid (float [rows, cols])."""
        c = self.cell
        nw, nh = -(-width // c), -(-height // c)
        gh, gw = self.blocked.shape
        if nw > gw or nh > gh:
            return np.zeros((0, 0), bool), np.zeros((0, 0))
        return _window_sums(self.blocked, nh, nw) == 0, _window_sums(self.avoid, nh, nw) / (nh * nw)


def _window_sums(grid: np.ndarray, nh: int, nw: int) -> np.ndarray:
    """Sum of every nh x nw window of ``grid`` [gh, gw] by a summed-area table: [gh-nh+1, gw-nw+1]."""
    gh, gw = grid.shape
    table = np.zeros((gh + 1, gw + 1), np.int32)
    table[1:, 1:] = grid.cumsum(0).cumsum(1)
    return table[nh:, nw:] - table[:-nh, nw:] - table[nh:, :-nw] + table[:-nh, :-nw]
