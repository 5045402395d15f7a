"""ArcFace-style face recognition from a local ``.onnx`` file, run with onnxruntime on the CPU.

ArcFace models (InsightFace's recognition models, AuraFace, and most face recognisers trained since
2019) all expect the same input: the face warped so its eyes, nose tip and mouth corners land on
InsightFace's 112 x 112 five-point template, RGB, scaled to [-1, 1] with (x - 127.5) / 127.5, NCHW
float32. They output one embedding (usually 512-d), compared by cosine similarity.

StoryFace ships no weights for this encoder and downloads none: pass ``model=<path to .onnx>``, e.g.
AuraFace (Apache-2.0, licence-clean) or your own InsightFace-format recognition model. The tests run
it on a small random-weight model they build, which checks the plumbing only: real weights are
needed for real likeness scores. With real weights, same-person cosines are typically 0.5-0.8 and
different people below 0.3, a much wider gap than dlib's 0.95 vs 0.88.

Registered as ``"arcface"`` in :data:`storyface.faces.encoders.FACE_ENCODERS`, so it serves as the
identity prior (the trainer takes any registered encoder's features) and for eval (``--eval-encoder``).
"""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InputError, ModelError
from .align import LEFT_EYE, MOUTH_CORNERS, RIGHT_EYE, Headshot
from .encoders import l2_normalise

log = logging.getLogger(__name__)

INPUT_SIZE = 112  # every ArcFace recogniser takes 112 x 112 faces
# InsightFace's reference positions (``arcface_dst``) for a 112 x 112 crop, pixel-index coordinates:
# the image-left eye, the image-right eye, the nose tip, the image-left and image-right mouth corners.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
NOSE_TIP = 30  # dlib's 68-point index of the nose tip
INPUT_MEAN = 127.5  # InsightFace's normalisation: (x - 127.5) / 127.5 maps 0..255 to -1..1
INPUT_STD = 127.5


# -- alignment (pure) ----------------------------------------------------------------------------


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks [68, 2] -> the template's 5 points [5, 2]: eye centres, nose tip, mouth corners."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected dlib's 68 landmarks [68, 2], got {lm.shape}")
    return np.stack([lm[LEFT_EYE].mean(0), lm[RIGHT_EYE].mean(0), lm[NOSE_TIP], lm[MOUTH_CORNERS[0]], lm[MOUTH_CORNERS[1]]])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """[2, 3] least-squares similarity (rotation, uniform scale, translation) taking ``src`` to ``dst``.

    Umeyama's closed form (1991), the estimate InsightFace's ``norm_crop`` makes with scikit-image:
    ``dst ~= M[:, :2] @ p + M[:, 2]``. Reflections are excluded.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)  # [N, 2] each
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)  # [2, 2]
    u, sv, vt = np.linalg.svd(cov)
    sign = np.array([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rotation = u @ np.diag(sign) @ vt
    scale = float((sv * sign).sum() / (s**2).sum(1).mean())
    translation = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(image: Image.Image, landmarks: np.ndarray, size: int = INPUT_SIZE) -> Image.Image:
    """The ``size`` x ``size`` ArcFace crop: the 5 points warped onto the template (bilinear, black outside).

    Landmarks are pixel indices (dlib's and OpenCV's convention); PIL samples at pixel centres
    (index + 0.5), so the inverse map is shifted by half a pixel on both sides.
    """
    template = ARCFACE_TEMPLATE * (size / INPUT_SIZE)
    m = similarity_transform(five_points(landmarks), template)  # photo index -> crop index
    a, t = m[:, :2], m[:, 2]
    inv = np.linalg.inv(a)  # crop -> photo
    offset = inv @ (np.full(2, -0.5) - t) + 0.5  # continuous coordinates on both sides
    coeffs = (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1], offset[1])
    return image.convert("RGB").transform((size, size), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)


def to_blob(face: Image.Image, mean: float = INPUT_MEAN, std: float = INPUT_STD) -> np.ndarray:
    """[1, 3, H, W] float32, RGB, (x - mean) / std: what ArcFace models read."""
    rgb = np.asarray(face.convert("RGB"), dtype=np.float32)  # [H, W, 3]
    return ((rgb - mean) / std).transpose(2, 0, 1)[None].copy()


# -- the encoder ---------------------------------------------------------------------------------


class ArcFaceEncoder:
    """An ArcFace-style ONNX recogniser; ``model`` is the path to its ``.onnx`` file (see the module doc)."""

    name = "arcface"

    def __init__(self, model: str | os.PathLike[str] | None = None, *, input_mean: float = INPUT_MEAN,
                 input_std: float = INPUT_STD) -> None:
        if not model:
            raise InputError(
                "The 'arcface' face encoder needs model=<path to an ArcFace-style .onnx file>, e.g. AuraFace "
                "(Apache-2.0) or your own InsightFace-format recognition model; StoryFace ships no weights."
            )
        self.path = Path(model).expanduser().resolve()
        self.input_mean, self.input_std = float(input_mean), float(input_std)
        self._session, self._input, self.dim = _load_session(str(self.path), _mtime(self.path))

    def encode(self, headshot: Headshot) -> np.ndarray:
        """float32 [dim], L2-normalised embedding of the headshot's face."""
        blob = to_blob(align_face(headshot.image, headshot.landmarks), self.input_mean, self.input_std)
        [out] = self._session.run(None, {self._input: blob})[:1]  # [1, dim]
        return l2_normalise(out[0])


def _mtime(path: Path) -> float:
    if not path.is_file():
        raise ModelError(f"ArcFace model {path}: no such file; pass the path of a local .onnx face recognition model")
    return path.stat().st_mtime


@lru_cache(maxsize=2)
def _load_session(path: str, mtime: float) -> tuple[Any, str, int]:
    """(session, input name, embedding size), checked; cached per file version (``mtime``)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ModelError("the 'arcface' encoder needs onnxruntime: pip install 'storyface[faces]'") from exc
    name = Path(path).name
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise here
        session = ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidProtobuf/InvalidGraph types
        raise ModelError(f"{name} is not a usable ONNX model: {str(exc).splitlines()[0][:300]}") from exc
    inputs = session.get_inputs()
    if len(inputs) != 1 or list(inputs[0].shape[1:]) != [3, INPUT_SIZE, INPUT_SIZE] or inputs[0].type != "tensor(float)":
        got = ", ".join(f"{i.name} {i.shape} {i.type}" for i in inputs)
        raise ModelError(
            f"{name} takes {got}; an ArcFace-style recogniser takes one float input [N, 3, {INPUT_SIZE}, {INPUT_SIZE}]"
        )
    probe = np.zeros((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
    try:
        out = np.asarray(session.run(None, {inputs[0].name: probe})[0])
    except Exception as exc:
        raise ModelError(f"{name} failed on a {INPUT_SIZE}x{INPUT_SIZE} face: {str(exc).splitlines()[0][:300]}") from exc
    if out.ndim != 2 or out.shape[0] != 1 or out.shape[1] < 1 or not np.issubdtype(out.dtype, np.floating):
        raise ModelError(f"{name} outputs {out.dtype} {list(out.shape)} for one face; a recogniser outputs one vector [1, dim]")
    log.info("ArcFace model %s: %d-d embeddings", name, out.shape[1])
    return session, inputs[0].name, int(out.shape[1])
