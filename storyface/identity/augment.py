"""StableIdentity's augmentations of the one training photo, applied to image and masks alike.

Colour jitter, horizontal flip, random crop, and rescale onto a plain background: one photo becomes
a bank of views, so the learned words carry the face and not one pose, framing or light.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance


@dataclass(frozen=True)
class AugmentConfig:
    flip_p: float = 0.5
    jitter: float = 0.15  # brightness/contrast/saturation factors in [1 - j, 1 + j]
    crop_min: float = 0.85  # random square crop, side as a fraction of the image
    rescale_p: float = 0.3  # chance of shrinking the face onto a plain background
    rescale_min: float = 0.6


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))


def augment_view(
    image: Image.Image, face: np.ndarray, hair: np.ndarray, size: int, rng: np.random.Generator,
    cfg: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented view: (RGB uint8 [size, size, 3], face [size, size] float32, hair [size, size] float32)."""
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhance(image).enhance(float(rng.uniform(1 - cfg.jitter, 1 + cfg.jitter)))
    img = np.asarray(image.convert("RGB"))
    face, hair = face.astype(np.float32), hair.astype(np.float32)
    if rng.random() < cfg.flip_p:
        img, face, hair = img[:, ::-1], face[:, ::-1], hair[:, ::-1]
    h = img.shape[0]
    side = int(h * rng.uniform(cfg.crop_min, 1.0))
    y, x = rng.integers(0, h - side + 1, size=2)
    img, face, hair = (a[y : y + side, x : x + side] for a in (img, face, hair))
    img = _resize(np.ascontiguousarray(img), size)
    face = _resize(np.ascontiguousarray(face), size)
    hair = _resize(np.ascontiguousarray(hair), size)
    if rng.random() < cfg.rescale_p:
        img, face, hair = _onto_background(img, face, hair, rng, cfg)
    return img, face, hair


def _onto_background(
    img: np.ndarray, face: np.ndarray, hair: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size = img.shape[0]
    small = int(size * rng.uniform(cfg.rescale_min, 1.0))
    y, x = rng.integers(0, size - small + 1, size=2)
    grey = int(rng.integers(180, 256))
    canvas = np.full_like(img, grey)
    masks = [np.zeros_like(face), np.zeros_like(hair)]
    canvas[y : y + small, x : x + small] = _resize(img, small)
    for out, src in zip(masks, (face, hair)):
        out[y : y + small, x : x + small] = _resize(src, small)
    return canvas, masks[0], masks[1]


def augment_bank(
    image: Image.Image, face: np.ndarray, hair: np.ndarray, size: int, n: int, seed: int,
    cfg: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` views, the first unaugmented: images [n, size, size, 3] uint8, masks [n, 2, size, size] (face, hair)."""
    rng = np.random.default_rng(seed)
    first = image.resize((size, size), Image.BICUBIC)
    views = [(np.asarray(first.convert("RGB")), _resize(face.astype(np.float32), size), _resize(hair.astype(np.float32), size))]
    views += [augment_view(image, face, hair, size, rng, cfg) for _ in range(n - 1)]
    images = np.stack([v[0] for v in views])
    masks = np.stack([np.stack([v[1], v[2]]) for v in views]).clip(0, 1).astype(np.float32)
    return images, masks
