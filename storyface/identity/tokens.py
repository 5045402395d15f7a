"""An identity as a standard textual-inversion file, and putting it into a pipeline.

SDXL identities are saved with ``clip_l`` [2, 768] and ``clip_g`` [2, 1280] rows, SD 2.x ones with
``emb_params`` [2, 1024]: the layout diffusers' ``load_textual_inversion``, A1111 and ComfyUI read.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import FamilyMismatchError, IdentityFileError, InputError
from ..files import write_atomic
from ..names import identity_token

if TYPE_CHECKING:
    from ..models import LoadedModel

FORMAT = "storyface-identity/1"
FAMILY_KEYS = {"sdxl": ("clip_l", "clip_g"), "sd2": ("emb_params",)}
TOKENS_PER_ENCODER = 2


@dataclass(frozen=True)
class Identity:
    """A learned person: 2 word embeddings per text encoder, plus where they came from."""

    name: str
    family: str  # "sdxl" | "sd2"
    embeddings: dict[str, torch.Tensor]  # encoder key -> [2, dim], float32, CPU
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return identity_token(self.name)

    @property
    def is_tiny(self) -> bool:
        return self.metadata.get("tiny") == "true"

    def dims(self) -> dict[str, int]:
        return {k: int(v.shape[1]) for k, v in self.embeddings.items()}

    def digest(self) -> str:
        """Content hash of the rows: tells a reloaded identity from a changed one."""
        h = hashlib.sha256()
        for key in sorted(self.embeddings):
            h.update(key.encode())
            h.update(self.embeddings[key].to(torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


def save_identity(identity: Identity, path: str | os.PathLike) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves half a file."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in identity.embeddings.items()}
    meta = {**identity.metadata, "format": FORMAT, "name": identity.name, "family": identity.family}
    return write_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def _family_from_keys(keys: set[str]) -> str:
    for family, fam_keys in FAMILY_KEYS.items():
        if keys == set(fam_keys):
            return family
    if len(keys) == 1:
        return "sd2"  # single-tensor textual-inversion files from other tools
    raise IdentityFileError(
        f"embedding keys {sorted(keys)} match no base family: SDXL needs clip_l and clip_g, SD 2.x emb_params"
    )


def load_identity(path: str | os.PathLike, name: str | None = None) -> Identity:
    """Read and validate an identity file; only ``.safetensors`` (pickles can run code)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise IdentityFileError(f"{path.name}: only .safetensors identity files are accepted (pickle files can run code)")
    if not path.is_file():
        raise IdentityFileError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise IdentityFileError(f"{path.name} is not a readable .safetensors file: {exc}") from exc
    if not tensors:
        raise IdentityFileError(f"{path.name} holds no embeddings")
    family = _family_from_keys(set(tensors))
    if meta.get("family") and meta["family"] != family:
        raise IdentityFileError(f"{path.name} says family {meta['family']!r} but holds {family} embeddings")
    for key, t in tensors.items():
        if t.ndim == 1:
            tensors[key] = t = t[None]
        if t.ndim != 2 or not t.is_floating_point() or not torch.isfinite(t).all():
            raise IdentityFileError(f"{path.name}: {key} must be a finite float matrix [tokens, dim], got {tuple(t.shape)}")
    counts = {t.shape[0] for t in tensors.values()}
    if len(counts) != 1:
        raise IdentityFileError(f"{path.name}: encoders hold different token counts {sorted(counts)}")
    person = name or meta.get("name") or path.stem
    return Identity(person, family, {k: t.to(torch.float32) for k, t in tensors.items()}, meta)


def check_compatible(identity: Identity, model: LoadedModel) -> None:
    """Refuse, before any rendering, an identity made for another base family or width."""
    if identity.family != model.family:
        raise FamilyMismatchError(
            f"{identity.name!r} was trained for {identity.family.upper()}, but the loaded model is "
            f"{model.family.upper()} ({model.source}); retrain it on this model"
        )
    want = {slot.key: slot.dim for slot in model.encoders}
    if identity.dims() != want:
        raise FamilyMismatchError(
            f"{identity.name!r} has embedding widths {identity.dims()}, the loaded model needs {want}"
            + (" (it was trained on the tiny test model)" if identity.is_tiny and not model.is_tiny else "")
        )


def added_tokens(token: str, n: int) -> list[str]:
    """diffusers' names for a multi-vector token: ``<t>``, ``<t>_1``, ..."""
    return [token] + [f"{token}_{i}" for i in range(1, n)]


def load_identities(model: LoadedModel, identities: Sequence[Identity]) -> list[str]:
    """Put every identity's rows into every text encoder; returns each one's trigger token.

    New tokens go in through diffusers' own ``load_textual_inversion``, all of them in one call per
    encoder (each call resizes the embedding table). Rows that change under a token already loaded
    with as many vectors are written in place, which is what re-training and re-loading need; the
    same rows twice are a no-op.
    """
    for identity in identities:
        check_compatible(identity, model)
    by_token: dict[str, Identity] = {}
    for identity in identities:
        other = by_token.setdefault(identity.token, identity)
        if other is not identity and other.digest() != identity.digest():
            raise InputError(
                f"{other.name!r} and {identity.name!r} share the trigger token {identity.token}; rename one of them"
            )
    fresh = []
    for token, identity in by_token.items():
        n, digest = _vectors(identity), identity.digest()
        state = model.loaded_tokens.get(token)
        if state == (digest, n):
            continue
        if state is not None and state[1] == n:
            _write_rows(model, token, identity)
        else:
            if state is not None:
                _unload(model, token, state[1])
            fresh.append((token, identity))
        model.loaded_tokens[token] = (digest, n)
    if fresh:
        for slot in model.encoders:
            rows = [identity.embeddings[slot.key].to(model.device, model.dtype) for _, identity in fresh]
            model.pipe.load_textual_inversion(
                rows, token=[t for t, _ in fresh], tokenizer=slot.tokenizer, text_encoder=slot.text_encoder
            )
            slot.text_encoder.requires_grad_(False)  # resizing the table made a fresh, trainable one
    return [identity.token for identity in identities]


def load_into_pipeline(model: LoadedModel, identity: Identity) -> str:
    """One identity; see :func:`load_identities`."""
    return load_identities(model, [identity])[0]


def _vectors(identity: Identity) -> int:
    return int(next(iter(identity.embeddings.values())).shape[0])


@torch.no_grad()
def _write_rows(model: LoadedModel, token: str, identity: Identity) -> None:
    for slot in model.encoders:
        ids = slot.tokenizer.convert_tokens_to_ids(added_tokens(token, _vectors(identity)))
        table = slot.text_encoder.get_input_embeddings().weight  # [V, D]
        table[ids] = identity.embeddings[slot.key].to(table.device, table.dtype)


def _unload(model: LoadedModel, token: str, n: int) -> None:
    for slot in model.encoders:
        model.pipe.unload_textual_inversion(added_tokens(token, n), tokenizer=slot.tokenizer, text_encoder=slot.text_encoder)
