"""Synthetic training subjects for tests that train on the tiny model without dlib: seeded noise
images with rectangular face (and hair) masks, enough for the loss to have something to fit."""

from __future__ import annotations

import numpy as np
from PIL import Image

from storyface.identity.train import Subject


def synthetic_subject(name: str, seed: int) -> Subject:
    """A 256-px textured 'face' with face and hair masks."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    face = np.zeros((256, 256), np.float32)
    face[70:190, 80:176] = 1
    hair = np.zeros((256, 256), np.float32)
    hair[30:70, 70:186] = 1
    return Subject(name, Image.fromarray(img), face, hair, rng.standard_normal(128).astype(np.float32))


def small_subject(name: str, seed: int) -> Subject:
    """A 64-px one without hair: for the training-step tests, where only speed and shapes matter."""
    rng = np.random.default_rng(seed)
    face = np.zeros((64, 64), np.float32)
    face[16:48, 20:44] = 1
    image = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    return Subject(name, image, face, np.zeros_like(face), rng.standard_normal(128).astype(np.float32))
