"""What may enter the library, checked before anything is written: identity files, appearance notes."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ..errors import IdentityFileError, InputError
from ..identity.tokens import Identity, load_identity
from ..limits import MAX_APPEARANCE_CHARS, MAX_IMPORT_BYTES, MAX_IMPORT_TOKENS
from ..names import normalize_name, tidy

# Widths of the real base models' text encoders. Tiny test models differ, hence ``expect_dims``.
FAMILY_DIMS: dict[str, dict[str, int]] = {"sdxl": {"clip_l": 768, "clip_g": 1280}, "sd2": {"emb_params": 1024}}


def check_import(identity: Identity, expect_family: str | None, expect_dims: dict[str, int] | None) -> None:
    """Refuse an identity that cannot work with the models the caller will use it on."""
    if expect_family is not None and identity.family != expect_family:
        raise IdentityFileError(
            f"{identity.name!r} holds {identity.family.upper()} embeddings, but {expect_family.upper()} ones are expected"
        )
    want = expect_dims if expect_dims is not None else (None if identity.is_tiny else FAMILY_DIMS.get(identity.family))
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

    Only ``.safetensors`` (pickles can run code), at most a few MB, a valid name.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() != ".safetensors":
        raise IdentityFileError(
            f"{path.name}: only .safetensors identity files can be used; "
            ".pt/.bin/.ckpt files are Python pickles, which can run code when opened"
        )
    try:
        if not path.is_file():
            raise IdentityFileError(f"{path}: no such file")
        size = path.stat().st_size
    except OSError as exc:
        raise IdentityFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if size > MAX_IMPORT_BYTES:
        raise IdentityFileError(f"{path.name} is {size:,} bytes; an identity file is a few KB")
    identity = load_identity(path)
    return dataclasses.replace(identity, name=normalize_name(name if name is not None else identity.name))

