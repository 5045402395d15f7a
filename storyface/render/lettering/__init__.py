"""Lettering: dialogue in balloons with tails to the speaker, narration in boxes; a CPU-only pass over clean art.

    faces = find_faces(art, speakers, references)             # who is where (dlib + likeness matching)
    plan = plan_lettering(art.size, caption, lines, faces, side_of, rtl, dpi)   # pure placement
    lettered = draw_lettering(art, plan)                       # a new image; the art is untouched

The plan is plain data (``plan.to_dict()``), so it can be stored and drawn again without re-planning.
"""

from __future__ import annotations

from .draw import draw_lettering
from .find import find_faces
from .model import Balloon, Caption, Face, Kind, LetteringError, LetteringPlan, Line, TextDoesNotFitError
from .place import DEFAULT_DPI, MAX_PT, MIN_PT, plan_lettering
from .text import text_boxes

__all__ = [
    "DEFAULT_DPI",
    "MAX_PT",
    "MIN_PT",
    "Balloon",
    "Caption",
    "Face",
    "Kind",
    "LetteringError",
    "LetteringPlan",
    "Line",
    "TextDoesNotFitError",
    "draw_lettering",
    "find_faces",
    "plan_lettering",
    "text_boxes",
]
