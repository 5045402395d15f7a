"""What may enter the library, checked before anything is written: identity files, appearance notes."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..errors import IdentityFileError, InputError
from ..identity.tokens import Identity, load_identity
from ..limits import MAX_APPEARANCE_CHARS, MAX_IMPORT_TOKENS
from ..names import normalize_name, tidy
from ..random_models import REAL_WIDTHS



def check_import(identity: Identity, expect_family: str | None, expect_dims: dict[str, int] | None) -> None:
    """Refuse an identity that cannot work with the models the caller will use it on."""
    if expect_family is not None and identity.family != expect_family:
        raise IdentityFileError(
            f"{identity.name!r} holds {identity.family.upper()} embeddings, but {expect_family.upper()} ones are expected"
        )
    # the real base models' widths; tiny test models differ, hence ``expect_dims``
    want = expect_dims if expect_dims is not None else (None if identity.is_tiny else REAL_WIDTHS.get(identity.family))
    if want is not None and identity.dims() != dict(want):
        raise IdentityFileError(
            f"{identity.name!r} has embedding widths {identity.dims()}, expected {dict(want)}; "
            "it was made for a different base model"
        )
    rows = next(iter(identity.embeddings.values())).shape[0]
    if rows > MAX_IMPORT_TOKENS:
        raise IdentityFileError(f"{identity.name!r} has {rows} vectors per encoder; at most {MAX_IMPORT_TOKENS} are supported")


def clean_appearance(notes: object) -> str | None:
    """Appearance notes tidied and limited; None when there are none."""
    if notes is None:
        return None
    text = tidy(str(notes))
    if len(text) > MAX_APPEARANCE_CHARS:
        raise InputError(f"appearance notes are {len(text)} characters; keep them to {MAX_APPEARANCE_CHARS}")
    return text or None


def read_identity_file(path: str | os.PathLike, name: str | None = None) -> Identity:
    """An identity file a person hands us, checked like every door's input before it is used.

    The file itself is checked by :func:`~storyface.identity.tokens.load_identity` (only
    ``.safetensors``, size, dtypes, shapes, values); the name here, by the library's name rules.
    """
    identity = load_identity(Path(path).expanduser())
    return dataclasses.replace(identity, name=normalize_name(name if name is not None else identity.name))

