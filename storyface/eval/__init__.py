"""Evaluation: likeness and prompt fit of every panel, and re-rendering the weak ones.

The comic-folder report (``eval.json``, terminal table, HTML) lives in :mod:`storyface.eval.report`.
"""

from __future__ import annotations

from .likeness import (
    MISSING_SCORE,
    ClipScorer,
    FaceMatch,
    PanelScore,
    ReferenceSource,
    match_faces,
    references_from,
    score_panel,
    score_panels,
)
from .retry import Attempt, PanelAttempts, face_scorer, render_with_retries
from .swaps import Swap, find_swaps

__all__ = [
    "MISSING_SCORE",
    "Attempt",
    "ClipScorer",
    "FaceMatch",
    "PanelAttempts",
    "PanelScore",
    "ReferenceSource",
    "Swap",
    "face_scorer",
    "find_swaps",
    "match_faces",
    "references_from",
    "render_with_retries",
    "score_panel",
    "score_panels",
]
