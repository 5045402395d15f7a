"""Swapped people: a face in person A's region that looks more like person B than like A.

The likeness matching (:func:`~storyface.eval.likeness.match_faces`) pairs faces with characters
wherever they stand, so a panel that drew Grace on the left and Eileen on the right when the plan
said the opposite still scores well there. With the panel's region plan
(:mod:`storyface.render.regions`) each face has an expected owner: the person whose region holds
the face's centre. A face whose similarity to another person of the plan is higher than to its
owner is a swap, and the panel is redrawn like a weak one (:meth:`PanelScore.passes` fails).

Pure module: it reads boxes and similarities that the matching already computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..render.regions import Region
    from .likeness import FaceMatch

# How much better the other person must match before it counts as a swap. 0: any face that matches
# someone else of the plan better than its region's owner is one, as the issue defines it. A close
# call between two poorly drawn faces is then flagged too; such a panel is usually below the
# likeness bar anyway, and the retry loop keeps the best attempt, so a false flag costs one re-draw.
SWAP_MARGIN = 0.0


@dataclass(frozen=True)
class Swap:
    """One face standing in ``owner``'s region that matches ``looks_like`` better."""

    owner: str  # whose region holds the face
    looks_like: str  # the other person of the plan it matches best
    box: tuple[int, int, int, int]  # the face, (left, top, right, bottom) in panel pixels
    owner_similarity: float
    other_similarity: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "looks_like": self.looks_like,
            "box": list(self.box),
            "owner_similarity": round(self.owner_similarity, 4),
            "other_similarity": round(self.other_similarity, 4),
        }


def region_owner(point: tuple[float, float], plan: Mapping[str, Region]) -> str | None:
    """Whose region holds ``point`` (panel fractions); where regions overlap, the nearest region centre."""
    x, y = point
    owners = [name for name, region in plan.items() if region.contains(x, y)]
    if not owners:
        return None
    return min(owners, key=lambda n: (plan[n].centre[0] - x) ** 2 + (plan[n].centre[1] - y) ** 2)


def find_swaps(
    faces: Sequence[FaceMatch],
    plan: Mapping[str, Region],
    image_size: tuple[int, int],
    margin: float = SWAP_MARGIN,
) -> list[Swap]:
    """Every face in one person's region that matches another person of the plan better (by ``margin``).

    ``faces`` carry similarities to every cast member (``FaceMatch.similarities``); a face outside
    every region, or whose owner has no reference, cannot be judged and is skipped. Only people of
    the plan count as "another person": a face resembling someone not in the panel is an extra
    face, which the likeness score already reports.
    """
    if len(plan) < 2:
        return []
    width, height = image_size
    swaps = []
    for face in faces:
        left, top, right, bottom = face.box
        owner = region_owner(((left + right) / 2 / width, (top + bottom) / 2 / height), plan)
        sims = face.similarities
        if owner is None or owner not in sims:
            continue
        others = [name for name in plan if name != owner and name in sims]
        if not others:
            continue
        best = max(others, key=sims.__getitem__)
        if sims[best] > sims[owner] + margin:
            swaps.append(Swap(owner, best, tuple(face.box), float(sims[owner]), float(sims[best])))
    return swaps
