"""Where the face and the hair are in a headshot: from landmarks (always) or a face-parsing model.

The landmark masks are geometric priors, good enough to weight a training loss towards the face;
a face-parsing segmentation model (e.g. a SegFormer trained on CelebAMask-HQ) gives exact ones.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import ModelError

log = logging.getLogger(__name__)

JAW = slice(0, 17)
BROWS = slice(17, 27)
FOREHEAD_RAISE = 0.4  # of the brow-to-chin height; the hairline sits ~0.5 above, bangs often lower
HEAD_WIDTH = 1.35  # head ellipse width / jaw width: room for hair at the sides
HEAD_HEIGHT = 1.2  # head ellipse height / face height (chin to raised forehead)
BLUR = 1 / 128  # Gaussian radius as a fraction of the side: soft edges, no halo

# CelebAMask-HQ label names, as face-parsing models (e.g. SegFormer ones) spell them in id2label.
FACE_LABELS = frozenset(
    {"skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "mouth", "u_lip", "l_lip"}
)
HAIR_LABELS = frozenset({"hair"})


def landmark_masks(landmarks: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(face, hair) masks, [size, size] float32 in [0, 1], from 68 landmarks in the same pixels.

    Face: hull of the jaw line and the brows raised to the hairline. Hair: a head ellipse around
    and above that, minus the face, so the two barely overlap.
    """
    from scipy.spatial import ConvexHull  # lazy: scipy.spatial costs 0.2 s to import

    landmarks = np.asarray(landmarks, dtype=np.float64)  # [68, 2]
    up, chin_to_brow = _face_axes(landmarks)
    forehead = landmarks[BROWS] + up * FOREHEAD_RAISE * chin_to_brow  # [10, 2]
    outline = np.concatenate([landmarks[JAW], forehead])  # [27, 2]
    hull = outline[ConvexHull(outline).vertices]
    face = _fill([hull], size)
    hair = _fill([_head_ellipse(landmarks, forehead, up)], size) * (1.0 - face)
    return face, hair.astype(np.float32)


def _face_axes(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """(unit vector pointing up the face, brow-to-chin height in pixels)."""
    across = landmarks[45] - landmarks[36]  # outer eye corners, image-left to image-right
    up = np.array([across[1], -across[0]]) / np.hypot(*across)  # rotate -90 deg: up in image
    chin_to_brow = float((landmarks[BROWS].mean(0) - landmarks[8]) @ up)
    return up, max(chin_to_brow, 1.0)


def _head_ellipse(landmarks: np.ndarray, forehead: np.ndarray, up: np.ndarray) -> np.ndarray:
    """[64, 2] polygon: an ellipse from just above the chin (no neck) to well above the forehead."""
    chin = landmarks[8]
    top = float(((forehead - chin) @ up).max())  # face height along `up`
    right = np.array([-up[1], up[0]])  # unit vector across the face
    width = float(np.hypot(*(landmarks[16] - landmarks[0])))
    centre = chin + up * (HEAD_HEIGHT * top / 2 + 0.1 * top)
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)[:, None]  # [64, 1]
    return (
        centre + np.cos(t) * right * HEAD_WIDTH * width / 2 + np.sin(t) * up * HEAD_HEIGHT * top / 2
    )


def _fill(polygons: list[np.ndarray], size: int) -> np.ndarray:
    """Rasterise polygons into a softly edged [size, size] float32 mask."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        draw.polygon([tuple(p) for p in poly.tolist()], fill=255)
    canvas = canvas.filter(ImageFilter.GaussianBlur(radius=max(1.0, size * BLUR)))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def parsing_masks(
    image: Image.Image, model_path_or_id: str, *, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(face, hair) soft masks, [H, W] float32 in [0, 1], from a face-parsing segmentation model.

    Labels are matched by name (``skin``, ``nose``, ``l_eye``, ..., ``hair``), so any model trained
    on CelebAMask-HQ-style classes works whatever its label order.
    """
    import torch

    model, processor = _load_parser(model_path_or_id, device)
    face_ids, hair_ids = _label_groups(model.config.id2label, model_path_or_id)
    inputs = processor(images=image.convert("RGB"), return_tensors="pt").to(device)
    with torch.no_grad():
        logits = model(**inputs).logits  # [1, labels, h, w], h and w ~ input / 4 for SegFormer
    logits = torch.nn.functional.interpolate(
        logits.float(), size=(image.height, image.width), mode="bilinear", align_corners=False
    )  # [1, labels, H, W]
    probs = logits.softmax(dim=1)[0]  # [labels, H, W]
    face = probs[face_ids].sum(0).clamp(0, 1).cpu().numpy().astype(np.float32)
    hair = probs[hair_ids].sum(0).clamp(0, 1).cpu().numpy().astype(np.float32)
    return face, hair


def _label_groups(id2label: dict, source: str) -> tuple[list[int], list[int]]:
    names = {int(i): str(n).lower() for i, n in id2label.items()}
    face = sorted(i for i, n in names.items() if n in FACE_LABELS)
    hair = sorted(i for i, n in names.items() if n in HAIR_LABELS)
    if "skin" not in names.values() or not hair:
        raise ModelError(
            f"{source} is not a face-parsing model: its labels {sorted(names.values())} lack "
            "'skin' or 'hair'. Use one trained on CelebAMask-HQ classes."
        )
    return face, hair


@lru_cache(maxsize=2)
def _load_parser(model_path_or_id: str, device: str) -> tuple[object, object]:
    """Load once per process; a bad id/path becomes a ModelError naming it."""
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation

    from ..hub import load_pretrained

    return load_pretrained(
        "face-parsing model", model_path_or_id, device, AutoModelForSemanticSegmentation, AutoImageProcessor
    )
