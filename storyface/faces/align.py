"""Cutting an aligned, FFHQ-like square headshot out of a photo.

The framing follows the FFHQ alignment script (the data SDXL identity methods are tuned on): the
crop is centred a little below the eyes and is about four eye-distances wide, so the face takes
roughly 40-50% of the width and there is room for hair above. Unlike FFHQ we rotate only by the
eye line, so the eyes end up exactly level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .detect import Box, DetectedFace
from .masks import landmark_masks

LEFT_EYE = slice(36, 42)  # the eye on the image's left (the person's right eye)
RIGHT_EYE = slice(42, 48)
MOUTH_CORNERS = (48, 54)
# FFHQ's crop side is 4 * max(eye distance, 0.9 * eye-to-mouth); 4.6 puts the jaw at ~47% of the
# width instead of ~54%, leaving more room for hair and chin.
CROP_EYE_DISTANCES = 4.6


@dataclass
class Headshot:
    """A square, aligned face crop with where the face and hair are; what identity training eats."""

    image: Image.Image  # size x size RGB
    face_mask: np.ndarray  # [size, size] float32 in [0, 1]
    hair_mask: np.ndarray  # [size, size] float32 in [0, 1]
    landmarks: np.ndarray  # [68, 2] float32, (x, y) in crop pixels
    source_box: Box  # the detector's box in the original photo

    @property
    def size(self) -> int:
        return self.image.size[0]


@dataclass(frozen=True)
class Similarity:
    """Maps crop pixels to photo pixels: photo = centre + scale * R(angle) @ (crop - size / 2)."""

    centre: np.ndarray  # [2] photo pixels
    scale: float  # photo pixels per crop pixel
    angle: float  # radians, the eye line's tilt in the photo
    size: int

    def rotation(self) -> np.ndarray:
        c, s = np.cos(self.angle), np.sin(self.angle)
        return np.array([[c, -s], [s, c]])  # [2, 2]

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """[N, 2] photo (x, y) -> [N, 2] crop (x, y)."""
        local = (points - self.centre) @ self.rotation() / self.scale  # row-vector form of R^T
        return (local + self.size / 2).astype(np.float32)

    def corners(self) -> np.ndarray:
        """[4, 2] photo positions of the crop's corners."""
        square = np.array([[0, 0], [self.size, 0], [self.size, self.size], [0, self.size]], float)
        return self.centre + (square - self.size / 2) * self.scale @ self.rotation().T


def face_frame(landmarks: np.ndarray, size: int) -> Similarity:
    """Where the crop sits in the photo, from the eye and mouth landmarks alone (pure)."""
    eye_l, eye_r = landmarks[LEFT_EYE].mean(0), landmarks[RIGHT_EYE].mean(0)  # [2] each
    mouth = landmarks[list(MOUTH_CORNERS)].mean(0)
    eye_mid = (eye_l + eye_r) / 2
    eye_to_eye, eye_to_mouth = eye_r - eye_l, mouth - eye_mid
    side = CROP_EYE_DISTANCES * max(np.hypot(*eye_to_eye), 0.9 * np.hypot(*eye_to_mouth))
    angle = float(np.arctan2(eye_to_eye[1], eye_to_eye[0]))
    return Similarity(eye_mid + 0.1 * eye_to_mouth, side / size, angle, size)


def crop_headshot(
    image: Image.Image, face: DetectedFace, size: int = 512, *, pad: str = "edge"
) -> Headshot:
    """The aligned ``size`` x ``size`` headshot with landmark masks.

    Where the crop leaves the photo it is filled by repeating the edge pixels (``pad="edge"``,
    no hard border for the model to learn) or with white (``pad="white"``).
    """
    if pad not in ("edge", "white"):
        raise ValueError(f"pad must be 'edge' or 'white', got {pad!r}")
    frame = face_frame(face.landmarks, size)
    crop = _warp(image.convert("RGB"), frame, pad)
    landmarks = frame.to_crop(face.landmarks)
    face_mask, hair_mask = landmark_masks(landmarks, size)
    return Headshot(crop, face_mask, hair_mask, landmarks, face.box)


def _warp(image: Image.Image, frame: Similarity, pad: str) -> Image.Image:
    """Resample the rotated square; the photo is cut, padded and pre-shrunk first to stay cheap."""
    # 1. the photo region under the rotated square, plus a margin for the resampling kernel
    corners = frame.corners()  # [4, 2]
    left, top = np.floor(corners.min(0)).astype(int) - 4
    right, bottom = np.ceil(corners.max(0)).astype(int) + 4
    region = _padded_region(image, (left, top, right, bottom), pad)
    # 2. shrink big regions with an antialiasing filter so the warp below samples ~1:1
    shrink = max(1.0, frame.scale)
    if shrink > 1.0:
        w, h = region.size
        region = region.resize(
            (max(1, round(w / shrink)), max(1, round(h / shrink))), Image.Resampling.LANCZOS
        )
    # 3. crop pixel (u, v) -> region pixel: ((photo - region origin) / shrink)
    rot = frame.rotation() * frame.scale / shrink  # [2, 2]
    offset = (frame.centre - (left, top)) / shrink - rot @ (frame.size / 2, frame.size / 2)
    coeffs = (rot[0, 0], rot[0, 1], offset[0], rot[1, 0], rot[1, 1], offset[1])
    return region.transform(
        (frame.size, frame.size), Image.Transform.AFFINE, coeffs, Image.Resampling.BICUBIC
    )


def _padded_region(image: Image.Image, box: tuple[int, int, int, int], pad: str) -> Image.Image:
    """``image.crop(box)`` where the part outside the photo is edge-repeated or white, not black."""
    left, top, right, bottom = box
    w, h = image.size
    inner = image.crop((max(0, left), max(0, top), min(w, right), min(h, bottom)))
    pads = ((max(0, -top), max(0, bottom - h)), (max(0, -left), max(0, right - w)), (0, 0))
    if not any(any(p) for p in pads):
        return inner
    arr = np.asarray(inner)  # [h', w', 3]
    if arr.size == 0:  # the square lies wholly outside the photo: nothing to repeat
        return Image.new("RGB", (right - left, bottom - top), "white")
    if pad == "edge":
        return Image.fromarray(np.pad(arr, pads, mode="edge"))
    return Image.fromarray(np.pad(arr, pads, mode="constant", constant_values=255))
