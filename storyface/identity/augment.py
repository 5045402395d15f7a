"""StableIdentity's augmentations of the one training photo, applied to image and masks alike.

Matched to the official data pipeline (``datasets_face/face_id.py``): colour jitter (brightness,
contrast, saturation in [0.8, 1.2], hue +-0.01, in random order), a horizontal flip half the time, a
random square crop of 3/4 of the side resized back, and then, always, the person shrunk to 0.5-1.0 of
the height (width +-10%) onto a black background. The last step matters for comics: faces in story
panels are small, so the learned words must carry a small face too. One photo becomes a bank of views,
so the learned words carry the face and not one pose, framing or light.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance


@dataclass(frozen=True)
class AugmentConfig:
    flip_p: float = 0.5
    jitter: float = 0.2  # brightness/contrast/saturation factors in [1 - j, 1 + j]
    hue: float = 0.01  # hue shift in [-hue, hue] of a full turn
    crop: float = 0.75  # random square crop, side as a fraction of the image (official: 1 - 1/4)
    rescale_p: float = 1.0  # chance of shrinking onto the background (official: always)
    rescale_min: float = 0.5
    aspect_jitter: float = 0.1  # the shrunk width is the height times U(1 - a, 1 + a)
    background: int = 0  # black, as the official canvas of -1


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``size`` is (width, height), as PIL counts."""
    return np.asarray(Image.fromarray(arr).resize(size, Image.BILINEAR))


def _shift_hue(image: Image.Image, shift: float) -> Image.Image:
    """Rotate the hue by ``shift`` of a full turn (torchvision's adjust_hue, in PIL's HSV)."""
    h, s, v = image.convert("HSV").split()
    turned = ((np.asarray(h, dtype=np.int16) + round(shift * 255)) % 256).astype(np.uint8)
    return Image.merge("HSV", (Image.fromarray(turned), s, v)).convert("RGB")


def _jitter(image: Image.Image, rng: np.random.Generator, cfg: AugmentConfig) -> Image.Image:
    ops = [
        lambda im: ImageEnhance.Brightness(im).enhance(float(rng.uniform(1 - cfg.jitter, 1 + cfg.jitter))),
        lambda im: ImageEnhance.Contrast(im).enhance(float(rng.uniform(1 - cfg.jitter, 1 + cfg.jitter))),
        lambda im: ImageEnhance.Color(im).enhance(float(rng.uniform(1 - cfg.jitter, 1 + cfg.jitter))),
        lambda im: _shift_hue(im, float(rng.uniform(-cfg.hue, cfg.hue))),
    ]
    for i in rng.permutation(len(ops)):
        image = ops[i](image)
    return image


def augment_view(
    image: Image.Image, face: np.ndarray, hair: np.ndarray, size: int, rng: np.random.Generator,
    cfg: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented view: (RGB uint8 [size, size, 3], face [size, size] float32, hair [size, size] float32)."""
    img = np.asarray(_jitter(image.convert("RGB"), rng, cfg))
    face, hair = face.astype(np.float32), hair.astype(np.float32)
    if rng.random() < cfg.flip_p:
        img, face, hair = img[:, ::-1], face[:, ::-1], hair[:, ::-1]
    h = img.shape[0]
    side = int(h * cfg.crop)
    y, x = rng.integers(0, h - side + 1, size=2)
    img, face, hair = (np.ascontiguousarray(a[y : y + side, x : x + side]) for a in (img, face, hair))
    img, face, hair = (_resize(a, (size, size)) for a in (img, face, hair))
    if rng.random() < cfg.rescale_p:
        img, face, hair = _onto_background(img, face, hair, rng, cfg)
    return img, face, hair


def _onto_background(
    img: np.ndarray, face: np.ndarray, hair: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size = img.shape[0]
    rh = int(size * rng.uniform(cfg.rescale_min, 1.0))
    rw = min(int(rh * rng.uniform(1 - cfg.aspect_jitter, 1 + cfg.aspect_jitter)), size)
    y, x = int(rng.integers(0, size - rh + 1)), int(rng.integers(0, size - rw + 1))
    canvas = np.full_like(img, cfg.background)
    masks = [np.zeros_like(face), np.zeros_like(hair)]
    canvas[y : y + rh, x : x + rw] = _resize(img, (rw, rh))
    for out, src in zip(masks, (face, hair)):
        out[y : y + rh, x : x + rw] = _resize(src, (rw, rh))
    return canvas, masks[0], masks[1]


def augment_bank(
    image: Image.Image, face: np.ndarray, hair: np.ndarray, size: int, n: int, seed: int,
    cfg: AugmentConfig = AugmentConfig(),
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` augmented views: images [n, size, size, 3] uint8, masks [n, 2, size, size] (face, hair) in [0, 1].

    The photo is first resized to ``size`` (the official pipeline resizes to 512 before augmenting).
    """
    rng = np.random.default_rng(seed)
    base = image.convert("RGB").resize((size, size), Image.BICUBIC)
    face0, hair0 = (_resize(m.astype(np.float32), (size, size)) for m in (face, hair))
    views = [augment_view(base, face0, hair0, size, rng, cfg) for _ in range(n)]
    images = np.stack([v[0] for v in views])
    masks = np.stack([np.stack([v[1], v[2]]) for v in views]).clip(0, 1).astype(np.float32)
    return images, masks
