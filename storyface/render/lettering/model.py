"""Lettering records: what to letter (Line, Face) and where it went (Balloon, Caption, LetteringPlan).

Plain frozen dataclasses with ``to_dict``/``from_dict`` so a plan can be stored in ``comic.json``
and drawn again later without re-planning. Boxes are ``(left, top, right, bottom)`` in panel
pixels, right/bottom exclusive, as everywhere in StoryFace.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ...errors import InputError

Kind = Literal["speech", "thought", "whisper"]
KINDS: tuple[str, ...] = get_args(Kind)
Box = tuple[int, int, int, int]
Point = tuple[int, int]

# Where the mouth sits in a face box when no landmarks are known: dlib's HOG box runs from the
# eyebrows to the chin, and its 68-landmark mouth centre averages 0.75-0.8 of the box height
# over our sample photos; 0.75 keeps an estimated tail tip off the chin.
MOUTH_DEPTH = 0.75
# The head around a detected face box, as fractions of the box's width/height added on each side
# (left, top, right, bottom): the HOG box stops at the eyebrows and the cheeks, and hair reaches about
# half a box height above it. Balloons keep off the whole head; tails stop at its edge.
HEAD_EXTENT = (0.15, 0.45, 0.15, 0.05)


class LetteringError(InputError):
    """A line (or the narration caption) that cannot be lettered; ``line`` is its index, None for the caption.

    The message names the line but not the panel: the caller prefixes "panel N: ".
    """

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


class TextDoesNotFitError(LetteringError):
    """Text that does not fit legibly: too long for the panel, or no room left beside the faces."""


@dataclass(frozen=True)
class Line:
    """One line of dialogue: who says it, the words, and how (speech, thought or whisper)."""

    speaker: str
    text: str
    kind: Kind = "speech"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"unknown balloon kind {self.kind!r}; choose one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Face:
    """A face found in the art and whom it shows (None: someone we could not tell, still kept clear).

    ``mouth`` comes from landmarks when the detector gave them; otherwise it is estimated from the box.
    """

    box: Box
    name: str | None = None
    mouth: Point | None = None

    @property
    def mouth_point(self) -> Point:
        if self.mouth is not None:
            return self.mouth
        left, top, right, bottom = self.box
        return ((left + right) // 2, round(top + MOUTH_DEPTH * (bottom - top)))

    @property
    def head(self) -> Box:
        """The face box grown to the whole head (hair, ears, chin): what balloons keep clear of."""
        left, top, right, bottom = self.box
        w, h = right - left, bottom - top
        el, et, er, eb = HEAD_EXTENT
        return (round(left - el * w), round(top - et * h), round(right + er * w), round(bottom + eb * h))

    @property
    def size(self) -> int:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "name": self.name, "mouth": list(self.mouth) if self.mouth else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Face:
        mouth = data.get("mouth")
        return cls(_box(data["box"]), data.get("name"), tuple(mouth) if mouth else None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Balloon:
    """A placed balloon: ``box`` is its outer outline's bounding box (a thought cloud's bumps included),
    ``lines`` the wrapped text, ``font_size`` in pixels, ``saw_face`` False when placed blind."""

    kind: Kind
    speaker: str
    text: str
    box: Box
    tail_tip: Point | None
    font_size: int
    saw_face: bool
    lines: tuple[str, ...] = ()
    line: int = 0  # index of the dialogue line it letters

    @property
    def center(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "speaker": self.speaker,
            "text": self.text,
            "box": list(self.box),
            "tail_tip": list(self.tail_tip) if self.tail_tip else None,
            "font_size": self.font_size,
            "saw_face": self.saw_face,
            "lines": list(self.lines),
            "line": self.line,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Balloon:
        tip = data.get("tail_tip")
        return cls(
            kind=data["kind"],
            speaker=data["speaker"],
            text=data["text"],
            box=_box(data["box"]),
            tail_tip=(int(tip[0]), int(tip[1])) if tip else None,
            font_size=int(data["font_size"]),
            saw_face=bool(data["saw_face"]),
            lines=tuple(data.get("lines", ())),
            line=int(data.get("line", 0)),
        )


@dataclass(frozen=True)
class Caption:
    """A narration box: rectangle ``box``, wrapped ``lines``, ``font_size`` in pixels."""

    text: str
    box: Box
    font_size: int
    lines: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "box": list(self.box), "font_size": self.font_size, "lines": list(self.lines)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Caption:
        return cls(data["text"], _box(data["box"]), int(data["font_size"]), tuple(data.get("lines", ())))


@dataclass(frozen=True)
class LetteringPlan:
    """Everything lettered on one panel, in reading order; ``font_pt`` is the size it was set in."""

    size: tuple[int, int]
    dpi: float
    rtl: bool
    font_pt: float
    caption: Caption | None = None
    balloons: tuple[Balloon, ...] = field(default_factory=tuple)

    @property
    def blind(self) -> bool:
        """True when some balloon was placed without seeing its speaker's face."""
        return any(not b.saw_face for b in self.balloons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "dpi": self.dpi,
            "rtl": self.rtl,
            "font_pt": self.font_pt,
            "caption": self.caption.to_dict() if self.caption else None,
            "balloons": [b.to_dict() for b in self.balloons],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LetteringPlan:
        caption = data.get("caption")
        return cls(
            size=(int(data["size"][0]), int(data["size"][1])),
            dpi=float(data["dpi"]),
            rtl=bool(data["rtl"]),
            font_pt=float(data["font_pt"]),
            caption=Caption.from_dict(caption) if caption else None,
            balloons=tuple(Balloon.from_dict(b) for b in data.get("balloons", ())),
        )


def _box(values: Any) -> Box:
    left, top, right, bottom = (int(v) for v in values)
    return (left, top, right, bottom)
