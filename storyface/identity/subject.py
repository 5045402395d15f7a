"""Photo -> training subject: aligned headshot, masks and face features (the identity prior's input)."""

from __future__ import annotations

import os

from PIL import Image

from ..faces import FaceEncoder, Headshot, get_face_encoder, photo_sha256, prepare_headshot
from .train import Subject

PhotoSource = str | os.PathLike | bytes | Image.Image


def subject_from_photo(
    photo: PhotoSource,
    name: str,
    encoder: FaceEncoder | str = "dlib",
    size: int = 512,
    parsing_model: str | None = None,
) -> tuple[Subject, Headshot]:
    """Everything the trainer needs of one person; raises a clear error for a bad photo."""
    encoder = get_face_encoder(encoder) if isinstance(encoder, str) else encoder
    headshot = prepare_headshot(photo, size, parsing_model=parsing_model)
    subject = Subject(
        name=name,
        image=headshot.image,
        face_mask=headshot.face_mask,
        hair_mask=headshot.hair_mask,
        features=encoder.encode(headshot),
        face_encoder=encoder.name,
        photo_sha256=photo_sha256(photo),
    )
    return subject, headshot
