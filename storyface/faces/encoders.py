"""Identity priors: face encoders behind one small protocol and a registry with an offline default.

StableIdentity feeds a face-recognition embedding to small MLPs that produce word embeddings.
``dlib`` (128-d, ships with face_recognition_models) works offline; ``vit`` loads a Hugging Face
ViT face-recognition model (e.g. FR-ViT, 768-d) from a local folder or a downloaded hub id;
``arcface`` runs an ArcFace-style ``.onnx`` recogniser (e.g. AuraFace) with onnxruntime.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import lru_cache

import numpy as np
from PIL import Image

from ..errors import InputError
from .align import Headshot
from .vectors import FaceEncoder, l2_normalise
from .detect import as_rgb_array, face_model_file

log = logging.getLogger(__name__)


class DlibEncoder:
    """dlib's ResNet face descriptor (128-d); raw vectors are < 0.6 apart for the same person."""

    name = "dlib"
    dim = 128

    def __init__(self, num_jitters: int = 0) -> None:
        if num_jitters < 0:
            raise InputError(f"num_jitters must be 0 or more, got {num_jitters}")
        self.num_jitters = num_jitters  # >1 averages over jittered copies: steadier, slower

    def descriptor(self, headshot: Headshot) -> np.ndarray:
        """The raw float32 [128] descriptor, for dlib's distance rule (< 0.6: same person)."""
        import dlib

        lm = headshot.landmarks  # [68, 2] crop pixels
        rect = dlib.rectangle(*(int(round(v)) for v in (*lm.min(0), *lm.max(0))))
        shape = dlib.full_object_detection(
            rect, [dlib.point(int(round(x)), int(round(y))) for x, y in lm]
        )
        recognizer, lock = _dlib_recognizer()
        with lock:
            vec = recognizer.compute_face_descriptor(
                as_rgb_array(headshot.image), shape, self.num_jitters
            )
        return np.asarray(vec, dtype=np.float32)

    def encode(self, headshot: Headshot) -> np.ndarray:
        return l2_normalise(self.descriptor(headshot))


@lru_cache(maxsize=1)
def _dlib_recognizer() -> tuple[object, threading.Lock]:
    """The network and a lock: dlib nets keep per-call state, so threads take turns."""
    import dlib

    path = face_model_file("dlib_face_recognition_resnet_model_v1.dat")
    return dlib.face_recognition_model_v1(str(path)), threading.Lock()


class ViTEncoder:
    """A Hugging Face ViT face-recognition model; the last layer's CLS token is the identity."""

    name = "vit"

    def __init__(
        self, model: str | None = None, *, device: str = "cpu", face_margin: float = 0.25
    ) -> None:
        if not model:
            raise InputError(
                "The 'vit' face encoder needs model=<local folder or downloaded Hugging Face id> "
                "of a ViT face-recognition model (e.g. FR-ViT)."
            )
        self.model_id, self.device, self.face_margin = model, device, face_margin
        self._model, self._processor = _load_vit(model, device)
        self.dim = int(self._model.config.hidden_size)

    def encode(self, headshot: Headshot) -> np.ndarray:
        import torch

        face = face_region(headshot, self.face_margin)
        inputs = self._processor(images=face, return_tensors="pt").to(self.device)
        with torch.no_grad():
            hidden = self._model(**inputs).last_hidden_state  # [1, 1 + patches, hidden]
        return l2_normalise(hidden[0, 0].float().cpu().numpy())  # CLS token, [hidden]


def face_region(headshot: Headshot, margin: float = 0.25) -> Image.Image:
    """The landmarks' square plus ``margin`` per side: the tight crop recognisers train on."""
    lm = headshot.landmarks  # [68, 2]
    centre = (lm.min(0) + lm.max(0)) / 2
    half = float((lm.max(0) - lm.min(0)).max()) * (0.5 + margin)
    left, top = (centre - half).round().astype(int)
    right, bottom = (centre + half).round().astype(int)
    return headshot.image.crop((left, top, right, bottom))


@lru_cache(maxsize=2)
def _load_vit(model_id: str, device: str) -> tuple[object, object]:
    """Load once per process; a bad id/path becomes a ModelError naming it."""
    from transformers import AutoImageProcessor, ViTModel

    from ..hub import load_pretrained

    return load_pretrained("ViT face encoder", model_id, device, ViTModel, AutoImageProcessor, add_pooling_layer=False)


def _arcface(**kwargs: object) -> FaceEncoder:
    """ArcFace-style ONNX recogniser (:mod:`storyface.faces.arcface`), imported only when asked for."""
    from .arcface import ArcFaceEncoder

    return ArcFaceEncoder(**kwargs)


FACE_ENCODERS: dict[str, Callable[..., FaceEncoder]] = {"dlib": DlibEncoder, "vit": ViTEncoder, "arcface": _arcface}


def get_face_encoder(name: str = "dlib", **kwargs: object) -> FaceEncoder:
    """Build an encoder by registry name; options (``num_jitters``, ``model``, ...) pass through."""
    factory = FACE_ENCODERS.get(name)
    if factory is None:
        raise InputError(
            f"Unknown face encoder {name!r}; choose one of: {', '.join(sorted(FACE_ENCODERS))}."
        )
    return factory(**kwargs)
