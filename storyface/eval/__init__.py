"""Evaluation: likeness and prompt fit of every panel, reports, and re-rendering the weak ones."""

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

__all__ = [
    "MISSING_SCORE",
    "ClipScorer",
    "FaceMatch",
    "PanelScore",
    "ReferenceSource",
    "match_faces",
    "references_from",
    "score_panel",
    "score_panels",
]
