"""The face stage: photo -> Headshot (aligned 512² crop, face and hair masks) -> identity vector."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PIL import Image

from .align import Headshot, crop_headshot
from .detect import DetectedFace, detect_faces, detect_one_face
from .encoders import FACE_ENCODERS, get_face_encoder
from .vectors import FaceEncoder, cosine_similarity
from .io import load_image, photo_sha256
from .masks import landmark_masks, parsing_masks

__all__ = [
    "FACE_ENCODERS",
    "DetectedFace",
    "FaceEncoder",
    "Headshot",
    "cosine_similarity",
    "crop_headshot",
    "detect_faces",
    "detect_one_face",
    "get_face_encoder",
    "landmark_masks",
    "load_image",
    "parsing_masks",
    "photo_sha256",
    "prepare_headshot",
]


def prepare_headshot(
    photo: str | Path | bytes | Image.Image, size: int = 512, *, parsing_model: str | None = None
) -> Headshot:
    """Photo -> Headshot: load, find exactly one face, align and crop, mask.

    With ``parsing_model`` (a face-parsing segmentation model) the masks come from that model
    instead of the landmark geometry.
    """
    image = load_image(photo)
    headshot = crop_headshot(image, detect_one_face(image), size)
    if parsing_model:
        face_mask, hair_mask = parsing_masks(headshot.image, parsing_model)
        headshot = replace(headshot, face_mask=face_mask, hair_mask=hair_mask)
    return headshot
