"""Finding the one face in a headshot with dlib's HOG detector and its 68 landmarks.

Why ``upsample=1`` and ``min_score=0.5``: without upsampling HOG misses faces under ~80 px, and with
it dlib also reports weak false faces (on skimage's astronaut photo a patch of the suit scores
about 0.1, another about -0.15, while real faces score above 1.1 in all our sample photos).
Filtering at 0.5 sits in the middle of that gap, so each sample photo yields exactly one face and
the two-photo composite yields two.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import FaceError, ModelError, NoFaceError, SeveralFacesError

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]  # (left, top, right, bottom), pixels of the source photo

UPSAMPLE = 1  # one 2x pyramid step: finds faces down to ~40 px
MIN_SCORE = 0.5  # HOG margin; see the module docstring for why this value
MIN_FACE_PX = 40  # narrower faces carry too little detail to learn an identity from
DETECT_MAX_SIDE = (
    1024  # larger photos are shrunk for detection only (speed); landmarks use full res
)


@dataclass(frozen=True)
class DetectedFace:
    """One face: where it is, how sure the detector is, its 68 landmarks (x, y) in photo pixels."""

    box: Box
    score: float
    landmarks: np.ndarray  # [68, 2] float32, (x, y)

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


def face_model_file(filename: str) -> Path:
    """A model file shipped by face_recognition_models, found by path.

    The package's own ``__init__`` imports ``pkg_resources`` (gone from new setuptools), so it is
    located with ``find_spec`` and never imported.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "face_recognition_models is not installed; run `pip install face_recognition_models`."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / filename
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall face_recognition_models.")
    return path


@lru_cache(maxsize=1)
def _hog_detector() -> tuple[object, threading.Lock]:
    """The detector and a lock: one instance serves every thread (web app, job worker)."""
    import dlib

    return dlib.get_frontal_face_detector(), threading.Lock()


@lru_cache(maxsize=1)
def _shape_predictor() -> object:
    import dlib

    return dlib.shape_predictor(str(face_model_file("shape_predictor_68_face_landmarks.dat")))


def as_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 C-contiguous, the only layout dlib accepts."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def detect_faces(
    image: Image.Image | np.ndarray,
    *,
    upsample: int = UPSAMPLE,
    min_score: float = MIN_SCORE,
    max_side: int = DETECT_MAX_SIDE,
) -> list[DetectedFace]:
    """All faces scoring at least ``min_score``, best first."""
    import dlib

    rgb = as_rgb_array(image)  # [H, W, 3]
    scale = min(1.0, max_side / max(rgb.shape[:2]))
    small = rgb if scale == 1.0 else _shrink(rgb, scale)
    detector, lock = _hog_detector()
    with lock:
        rects, scores, _ = detector.run(small, upsample, 0.0)
    faces = []
    for rect, score in zip(rects, scores, strict=True):
        if score < min_score:
            log.debug("dropping weak face candidate (score %.2f < %.2f)", score, min_score)
            continue
        ltrb = (rect.left(), rect.top(), rect.right(), rect.bottom())
        full = dlib.rectangle(*(int(round(v / scale)) for v in ltrb))
        faces.append(DetectedFace(_clamp(full, rgb.shape), float(score), _landmarks(rgb, full)))
    return sorted(faces, key=lambda f: f.score, reverse=True)


def detect_one_face(
    image: Image.Image | np.ndarray,
    *,
    min_face_px: int = MIN_FACE_PX,
    upsample: int = UPSAMPLE,
    min_score: float = MIN_SCORE,
) -> DetectedFace:
    """The single face of a headshot; anything else is a :class:`FaceError` the user can fix."""
    faces = detect_faces(image, upsample=upsample, min_score=min_score)
    if not faces:
        raise NoFaceError("No face found in the photo; use a clear, front-facing headshot.")
    if len(faces) > 1:
        where = ", ".join(str(f.box) for f in faces)
        raise SeveralFacesError(
            f"Found {len(faces)} faces in the photo, at {where} (left, top, right, bottom); "
            "use a photo of one person, or crop it to the face you want."
        )
    face = faces[0]
    if face.width < min_face_px:
        raise FaceError(
            f"The face is only {face.width} px wide; use a photo where the face is at least "
            f"{min_face_px} px wide (200 px or more works best)."
        )
    return face


def _landmarks(rgb: np.ndarray, rect: object) -> np.ndarray:
    shape = _shape_predictor()(rgb, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)  # [68, 2]


def _shrink(rgb: np.ndarray, scale: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def _clamp(rect: object, shape: tuple[int, ...]) -> Box:
    h, w = shape[:2]
    return (max(0, rect.left()), max(0, rect.top()), min(w, rect.right()), min(h, rect.bottom()))
