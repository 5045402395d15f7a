"""Face identity vectors: the encoder protocol and the arithmetic on unit vectors every encoder shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from .align import Headshot


@runtime_checkable
class FaceEncoder(Protocol):
    """Turns a headshot into a unit-length identity vector; same person -> nearby vectors."""

    name: str
    dim: int

    def encode(self, headshot: Headshot) -> np.ndarray:
        """float32 [dim], L2-normalised."""
        ...


def l2_normalise(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """In [-1, 1]; 1 means the same direction."""
    return float(l2_normalise(a) @ l2_normalise(b))
