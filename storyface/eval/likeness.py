"""Scoring a rendered panel: whose faces are in it, how much they look like the cast, how well it fits its text.

Likeness goes through the same face-encoder registry as training (dlib 128-d by default), so a
panel is judged by the yardstick the identity was learned with. Every face found in the panel is
encoded and matched to the panel's expected characters with an optimal one-to-one assignment
(Hungarian method on negative cosine similarity), so two faces never claim the same character
and a character never claims two faces.

What the numbers mean (cosine similarity of L2-normalised face vectors, in [-1, 1]): with dlib,
photos of the same person score about 0.95-1.0 and different people about 0.85-0.9 (dlib
descriptors all point roughly the same way, so the scale is compressed). A character with no
face in the panel scores :data:`MISSING_SCORE` (-1, the lowest cosine there is), so a panel that
lost a face always ranks below one that drew it badly.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from PIL import Image

from ..errors import InputError
from ..faces import FaceEncoder, Headshot, crop_headshot, detect_faces, detect_one_face, get_face_encoder, load_image
from ..faces.detect import Box
from ..faces.encoders import l2_normalise
from .swaps import Swap, find_swaps

if TYPE_CHECKING:
    from ..render.regions import Region

log = logging.getLogger(__name__)

MISSING_SCORE = -1.0  # a character the panel does not show: below any real cosine similarity

ReferenceSource = Union[Image.Image, str, os.PathLike, Headshot]  # a photo, its path, or a prepared headshot


# -- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceMatch:
    """One face found in a panel and whom it was matched to."""

    box: Box  # (left, top, right, bottom) in panel pixels
    detector_score: float
    character: str | None  # the expected character it was assigned to; None: an extra face
    similarity: float | None  # cosine to that character's reference
    nearest: str | None = None  # the cast member it resembles most (of all references)
    nearest_similarity: float | None = None
    similarities: dict[str, float] = field(default_factory=dict)  # cosine to every cast member (swap check)

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": list(self.box),
            "detector_score": round(self.detector_score, 4),
            "character": self.character,
            "similarity": _round(self.similarity),
            "nearest": self.nearest,
            "nearest_similarity": _round(self.nearest_similarity),
            "similarities": {k: _round(v) for k, v in self.similarities.items()},
        }


@dataclass(frozen=True)
class PanelScore:
    """Likeness (and optionally prompt fit) of one panel."""

    expected: list[str]  # characters the panel's text names
    similarities: dict[str, float]  # expected character -> cosine of the face matched to it
    missing: list[str]  # expected characters with no face left to match
    faces: list[FaceMatch] = field(default_factory=list)
    unscored: list[str] = field(default_factory=list)  # expected, but no reference photo to compare with
    prompt_fit: float | None = None  # CLIP image-text cosine, when a CLIP model was given
    swaps: list[Swap] = field(default_factory=list)  # faces in one person's region that look like another

    @property
    def extra(self) -> list[FaceMatch]:
        """Faces not assigned to any expected character (an unknown person, a duplicate)."""
        return [f for f in self.faces if f.character is None]

    @property
    def weakest(self) -> float | None:
        """The worst-drawn expected character; missing ones count as :data:`MISSING_SCORE`.

        ``None`` when the panel names nobody who can be scored: there is nothing to improve.
        """
        scores = list(self.similarities.values()) + [MISSING_SCORE] * len(self.missing)
        return min(scores) if scores else None

    def passes(self, min_likeness: float) -> bool:
        """Likeness at or above the bar and nobody standing in someone else's place."""
        weakest = self.weakest
        return not self.swaps and (weakest is None or weakest >= min_likeness)

    def to_dict(self) -> dict[str, Any]:
        return {
            "expected": list(self.expected),
            "similarities": {k: _round(v) for k, v in self.similarities.items()},
            "missing": list(self.missing),
            "unscored": list(self.unscored),
            "extra_faces": len(self.extra),
            "weakest": _round(self.weakest),
            "prompt_fit": _round(self.prompt_fit),
            "faces": [f.to_dict() for f in self.faces],
            "swaps": [s.to_dict() for s in self.swaps],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


# -- references ----------------------------------------------------------------------------------


def reference_image(source: ReferenceSource) -> Image.Image:
    """The RGB picture behind a reference: a Headshot's crop, an image, or a photo file."""
    if isinstance(source, Headshot):
        return source.image.convert("RGB")
    return load_image(source)


def encode_reference(source: ReferenceSource | np.ndarray, encoder: FaceEncoder) -> np.ndarray:
    """One person's reference vector [dim]; the photo must show exactly one face."""
    if isinstance(source, np.ndarray):
        return l2_normalise(source)
    if isinstance(source, Headshot):
        return encoder.encode(source)
    image = load_image(source)
    return encoder.encode(crop_headshot(image, detect_one_face(image)))


def references_from(
    sources: Mapping[str, ReferenceSource | np.ndarray], encoder: FaceEncoder | str = "dlib"
) -> dict[str, np.ndarray]:
    """name -> unit vector, from headshots, reference photos (paths or images) or ready vectors."""
    encoder = as_encoder(encoder)
    references = {}
    for name, source in sources.items():
        try:
            references[name] = encode_reference(source, encoder)
        except InputError as exc:
            raise type(exc)(f"reference photo for {name!r}: {exc}") from exc
    return references


def as_encoder(encoder: FaceEncoder | str) -> FaceEncoder:
    return get_face_encoder(encoder) if isinstance(encoder, str) else encoder


# -- matching (pure) -----------------------------------------------------------------------------


def assign_faces(similarity: np.ndarray) -> list[tuple[int, int]]:
    """Optimal one-to-one (face, character) pairs maximising total similarity.

    ``similarity`` is [faces, characters]; with more faces than characters the leftovers are
    extra, with fewer some characters go unmatched.
    """
    from scipy.optimize import linear_sum_assignment

    if similarity.size == 0:
        return []
    rows, cols = linear_sum_assignment(-similarity)
    return sorted(zip(rows.tolist(), cols.tolist()))


def similarity_matrix(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """[len(a), len(b)] cosine similarities of unit vectors; empty sides give an empty matrix."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), np.float32)
    return np.stack(a) @ np.stack(b).T  # [A, dim] @ [dim, B]


def match_faces(
    faces: Sequence[tuple[Box, float, np.ndarray]], references: Mapping[str, np.ndarray], expected: Sequence[str]
) -> PanelScore:
    """Faces (box, detector score, unit vector) -> a PanelScore against the expected characters.

    Only expected characters take part in the assignment; ``nearest`` still names the closest of
    the whole cast, so an extra face says whom it looks like.
    """
    expected = list(dict.fromkeys(expected))  # keep order, drop repeats
    scored = [name for name in expected if name in references]
    names = list(references)
    sim = similarity_matrix([v for _, _, v in faces], [references[n] for n in names])  # [faces, cast]
    columns = [names.index(n) for n in scored]
    pairs = dict(assign_faces(sim[:, columns]))  # face -> position in ``scored``
    matches = [
        _face_match(box, det, sim[i], names, scored[pairs[i]] if i in pairs else None)
        for i, (box, det, _) in enumerate(faces)
    ]
    found = {m.character: m.similarity for m in matches if m.character is not None}
    return PanelScore(
        expected=expected,
        similarities={n: found[n] for n in scored if n in found},
        missing=[n for n in scored if n not in found],
        faces=matches,
        unscored=[n for n in expected if n not in references],
    )


def _face_match(box: Box, det: float, sims: np.ndarray, names: list[str], character: str | None) -> FaceMatch:
    """``sims`` is this face's [cast] row of the similarity matrix."""
    nearest = int(np.argmax(sims)) if names else None
    return FaceMatch(
        box=box,
        detector_score=float(det),
        character=character,
        similarity=float(sims[names.index(character)]) if character is not None else None,
        nearest=names[nearest] if nearest is not None else None,
        nearest_similarity=float(sims[nearest]) if nearest is not None else None,
        similarities={name: float(sim) for name, sim in zip(names, sims)},
    )


# -- scoring panels ------------------------------------------------------------------------------


def encode_faces(image: Image.Image, encoder: FaceEncoder) -> list[tuple[Box, float, np.ndarray]]:
    """Every face in a panel as (box, detector score, unit vector), in reading order (left to right)."""
    image = image.convert("RGB")
    faces = sorted(detect_faces(image), key=lambda f: (f.box[0], f.box[1]))
    return [(face.box, face.score, encoder.encode(crop_headshot(image, face))) for face in faces]


def score_panel(
    image: Image.Image,
    references: Mapping[str, np.ndarray],
    expected: Sequence[str],
    encoder: FaceEncoder | str = "dlib",
    *,
    clip: ClipScorer | None = None,
    text: str | None = None,
    plan: Mapping[str, Region] | None = None,
) -> PanelScore:
    """Faces found, matched to the expected cast, similarity each, missing and extra faces.

    With ``clip`` and ``text`` the score also carries the panel's prompt fit; with the panel's
    region ``plan`` (name -> Region) it lists swapped people (:mod:`storyface.eval.swaps`).
    """
    score = match_faces(encode_faces(image, as_encoder(encoder)), references, expected)
    if plan:
        score = replace(score, swaps=find_swaps(score.faces, plan, image.size))
    if clip is not None and text:
        score = replace(score, prompt_fit=clip.score(image, text))
    return score


def score_panels(
    images: Sequence[Image.Image],
    references: Mapping[str, np.ndarray],
    expected: Sequence[Sequence[str]],
    encoder: FaceEncoder | str = "dlib",
    *,
    clip: ClipScorer | None = None,
    texts: Sequence[str] | None = None,
    plans: Sequence[Mapping[str, Region] | None] | None = None,
) -> list[PanelScore]:
    """One PanelScore per image; ``expected[i]`` names the characters of panel i, ``plans[i]`` its regions."""
    if any(x is not None and len(x) != len(images) for x in (expected, texts, plans)):
        raise InputError(f"got {len(images)} panels but {len(expected)} character lists / texts / plans; give one per panel")
    encoder = as_encoder(encoder)
    texts = texts if texts is not None else [None] * len(images)
    plans = plans if plans is not None else [None] * len(images)
    return [
        score_panel(image, references, names, encoder, clip=clip, text=text, plan=plan)
        for image, names, text, plan in zip(images, expected, texts, plans)
    ]


# -- prompt fit ----------------------------------------------------------------------------------


class ClipScorer:
    """CLIP image-text cosine similarity: does the panel show what its sentence says?

    Raw cosine of CLIP's projected embeddings (CLIPScore without its 100x / clipping); on real
    CLIP models a matching caption typically scores 0.25-0.35 and an unrelated one below 0.2.
    """

    def __init__(self, model: str | os.PathLike[str], device: str = "cpu") -> None:
        self.model_id, self.device = str(model), device
        self._model, self._processor, self._lock = _load_clip(self.model_id, device)

    def score(self, image: Image.Image, text: str) -> float:
        import torch

        inputs = self._processor(
            text=[text], images=image.convert("RGB"), return_tensors="pt", padding=True, truncation=True
        ).to(self.device)
        with self._lock, torch.inference_mode():
            out = self._model(**inputs)
        image_embeds, text_embeds = out.image_embeds[0], out.text_embeds[0]  # [proj] each
        return float(torch.nn.functional.cosine_similarity(image_embeds, text_embeds, dim=0))


@lru_cache(maxsize=2)
def _load_clip(model_id: str, device: str) -> tuple[Any, Any, threading.Lock]:
    """Load once per process; the hub is offline, so only local folders or cached ids work."""
    from transformers import CLIPModel, CLIPProcessor

    from ..hub import load_pretrained

    model, processor = load_pretrained("CLIP model", model_id, device, CLIPModel, CLIPProcessor)
    return model, processor, threading.Lock()
