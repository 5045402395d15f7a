"""Photo -> training subject (aligned headshot, masks, face features), and the settings a person picks.

:class:`LearnSettings` is the one schema for "how to learn this face": the CLI's options, the job
queue's params and the Python API all pass through it, so a bad value is refused where it enters
(an unknown key, steps out of range), never later in a worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import InputError
from ..faces import FaceEncoder, Headshot, get_face_encoder, photo_sha256, prepare_headshot
from ..limits import MAX_META_CHARS
from .train import Subject, TrainConfig

PhotoSource = str | os.PathLike | bytes | Image.Image
ENCODER_KEYS = ("face_encoder", "face_encoder_model", "parsing_model")


class LearnSettings(BaseModel):
    """Which face encoder (and its model), which face-parsing model, and the training config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    face_encoder: str = Field("dlib", min_length=1, max_length=40)
    face_encoder_model: str | None = Field(None, max_length=MAX_META_CHARS)
    parsing_model: str | None = Field(None, max_length=MAX_META_CHARS)
    train: TrainConfig = TrainConfig()

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> LearnSettings:
        """From the flat mapping a job stores (encoder keys plus TrainConfig fields)."""
        if params is None:
            return cls()
        if not isinstance(params, Mapping):
            raise InputError(f"training settings must be a mapping, got {type(params).__name__}")
        encoder = {k: params[k] for k in ENCODER_KEYS if params.get(k) is not None}
        train = {k: v for k, v in params.items() if k not in ENCODER_KEYS}
        try:
            return cls(**encoder, train=TrainConfig(**train))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "settings"
            raise InputError(f"bad training setting {where!r}: {first['msg']}") from None

    def params(self) -> dict[str, Any]:
        """The flat, JSON-ready form a job stores; only what differs from the defaults."""
        out = self.train.model_dump(exclude_defaults=True)
        out.update({k: getattr(self, k) for k in ENCODER_KEYS if getattr(self, k) not in (None, "dlib")})
        return out

    def encoder(self) -> FaceEncoder:
        return get_face_encoder(self.face_encoder, **({"model": self.face_encoder_model} if self.face_encoder_model else {}))


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
