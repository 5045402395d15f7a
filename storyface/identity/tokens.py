"""An identity as a standard textual-inversion file, and putting it into a pipeline.

SDXL identities are saved with ``clip_l`` [2, 768] and ``clip_g`` [2, 1280] rows, SD 2.x ones with
``emb_params`` [2, 1024]: the layout diffusers' ``load_textual_inversion``, A1111 and ComfyUI read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import FamilyMismatchError, IdentityFileError, InputError
from ..files import write_atomic
from ..limits import (
    FLOAT_TENSOR_DTYPES,
    MAX_EMBEDDING_ABS,
    MAX_IMPORT_BYTES,
    MAX_IMPORT_TOKENS,
    MAX_META_CHARS,
    MAX_META_KEY_CHARS,
    MAX_META_KEYS,
    MIN_ROW_NORM,
)
from ..names import identity_token
from ..random_models import REAL_WIDTHS, TINY_WIDTHS

if TYPE_CHECKING:
    from ..models import LoadedModel

log = logging.getLogger(__name__)

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
    """Write atomically (temp file + rename), so a crash never leaves half a file. A failed write is an
    ``OSError`` with its errno (safetensors reports one as text), so callers can say "disk full"."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in identity.embeddings.items()}
    meta = {**identity.metadata, "format": FORMAT, "name": identity.name, "family": identity.family}

    def write(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=meta)
        except SafetensorError as exc:
            found = re.search(r"os error (\d+)", str(exc))
            if found is None:
                raise
            code = int(found.group(1))
            raise OSError(code, os.strerror(code), str(tmp)) from exc

    return write_atomic(path, write)


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
    """Read and validate an identity file; only ``.safetensors`` (pickles can run code).

    Everything is checked from the file's own header and numbers, never from what its metadata claims:
    size, metadata lengths, each tensor's dtype and shape (before any tensor is read), then the values
    (finite as float32, no zero rows, no absurd magnitudes). Any failure is an :class:`IdentityFileError`.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
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
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            _check_metadata(path.name, meta)
            keys = list(f.keys())
            for key in keys:
                piece = f.get_slice(key)
                _check_header(path.name, key, piece.get_dtype(), list(piece.get_shape()))
            tensors = {k: f.get_tensor(k) for k in keys}
    except IdentityFileError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise IdentityFileError(f"{path.name} is not a readable .safetensors file: {exc}") from exc
    if not tensors:
        raise IdentityFileError(f"{path.name} holds no embeddings")
    family = _family_from_keys(set(tensors))
    if meta.get("family") and meta["family"] != family:
        raise IdentityFileError(f"{path.name} says family {meta['family']!r} but holds {family} embeddings")
    rows = {key: _checked_rows(path.name, key, t) for key, t in tensors.items()}
    counts = {t.shape[0] for t in rows.values()}
    if len(counts) != 1:
        raise IdentityFileError(f"{path.name}: encoders hold different token counts {sorted(counts)}")
    _check_widths(path.name, family, {key: int(t.shape[1]) for key, t in rows.items()})
    person = name or meta.get("name") or path.stem
    return Identity(person, family, rows, meta)


def _check_metadata(filename: str, meta: dict[str, str]) -> None:
    if len(meta) > MAX_META_KEYS:
        raise IdentityFileError(f"{filename} has {len(meta)} metadata entries; an identity file has at most {MAX_META_KEYS}")
    for key, value in meta.items():
        if len(key) > MAX_META_KEY_CHARS:
            raise IdentityFileError(f"{filename}: a metadata key is {len(key):,} characters; keep keys to {MAX_META_KEY_CHARS}")
        if len(value) > MAX_META_CHARS:
            raise IdentityFileError(
                f"{filename}: metadata {key[:40]!r} is {len(value):,} characters; keep each value to {MAX_META_CHARS:,}"
            )


def _check_header(filename: str, key: str, dtype: str, shape: list[int]) -> None:
    """Dtype and shape as the file's header states them, before the tensor is read."""
    if dtype not in FLOAT_TENSOR_DTYPES:
        raise IdentityFileError(
            f"{filename}: {key} holds {dtype} values; identity rows are floating-point numbers "
            f"({', '.join(FLOAT_TENSOR_DTYPES)}), so this is not an identity file"
        )
    if len(shape) not in (1, 2):
        raise IdentityFileError(f"{filename}: {key} has shape {shape}; an identity holds a [tokens, width] matrix")
    tokens = shape[0] if len(shape) == 2 else 1
    if not 1 <= tokens <= MAX_IMPORT_TOKENS:
        raise IdentityFileError(f"{filename}: {key} holds {tokens} vectors; an identity has 1 to {MAX_IMPORT_TOKENS}")


def _checked_rows(filename: str, key: str, t: torch.Tensor) -> torch.Tensor:
    """The rows as float32 [tokens, width], or an error: non-finite as float32, zero rows, huge values."""
    rows = (t[None] if t.ndim == 1 else t).to(torch.float32)  # [tokens, width]; float64 overflow becomes inf
    if not torch.isfinite(rows).all():
        raise IdentityFileError(
            f"{filename}: {key} holds values that are not finite numbers as float32 (NaN, infinite, or beyond "
            "±3.4e38); this is not an identity"
        )
    biggest = float(rows.abs().max())
    if biggest > MAX_EMBEDDING_ABS:
        raise IdentityFileError(
            f"{filename}: {key} holds values up to {biggest:.3g}; word embeddings stay far below {MAX_EMBEDDING_ABS:g}"
        )
    norms = rows.norm(dim=1)  # [tokens]
    if bool((norms < MIN_ROW_NORM).any()):
        row = int(torch.nonzero(norms < MIN_ROW_NORM)[0]) + 1
        raise IdentityFileError(f"{filename}: {key} vector {row} is all zeros (or nearly): it encodes nothing")
    return rows


def _check_widths(filename: str, family: str, widths: dict[str, int]) -> None:
    """Every encoder's width from one model StoryFace runs: the real base model or the tiny test model."""
    known = [REAL_WIDTHS[family], TINY_WIDTHS[family]]
    if family == "sd2" and widths.keys() != REAL_WIDTHS["sd2"].keys():  # a single tensor under another key
        widths = {"emb_params": next(iter(widths.values()))}
    if widths in known:
        return
    real = ", ".join(f"{k} {v}" for k, v in REAL_WIDTHS[family].items())
    tiny = ", ".join(f"{k} {v}" for k, v in TINY_WIDTHS[family].items())
    raise IdentityFileError(
        f"{filename}: its rows are {widths} wide, which fits no model StoryFace runs "
        f"({family.upper()} needs {real}; the tiny test model {tiny})"
    )


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


def by_trigger_token(identities: Sequence[Identity], model: Any) -> dict[str, Identity]:
    """Each identity checked against ``model`` (family, widths), keyed by its trigger token; two
    different people whose names make the same token are refused (one would silently replace the other)."""
    for identity in identities:
        check_compatible(identity, model)
    by_token: dict[str, Identity] = {}
    for identity in identities:
        other = by_token.setdefault(identity.token, identity)
        if other is not identity and other.digest() != identity.digest():
            raise InputError(
                f"{other.name!r} and {identity.name!r} share the trigger token {identity.token}; rename one of them"
            )
    return by_token


def load_identities(model: LoadedModel, identities: Sequence[Identity]) -> list[str]:
    """Put every identity's rows into every text encoder; returns each one's trigger token.

    All or nothing: every identity is checked first (base family and widths, a trigger token shared by
    two people, rows that sit on a word the content policy bans), and if anything fails part-way (an
    error in one encoder, out of memory) the tokenizers, embedding tables and ``model.loaded_tokens``
    are put back exactly as they were, so an earlier identity keeps working.

    New tokens go in through diffusers' own ``load_textual_inversion``, all of them in one call per
    encoder (each call resizes the embedding table). Rows that change under a token already loaded
    with as many vectors are written in place, which is what re-training and re-loading need; the
    same rows twice are a no-op.
    """
    from ..safety.embeddings import check_identity_rows

    by_token = by_trigger_token(identities, model)
    changed = {t: i for t, i in by_token.items() if model.loaded_tokens.get(t) != (i.digest(), _vectors(i))}
    for identity in changed.values():
        check_identity_rows(model, identity.name, identity.embeddings)  # refuses before anything is changed
    if changed:
        saved = [_snapshot(slot) for slot in model.encoders]
        try:
            _apply(model, changed)
        except BaseException:
            try:
                _restore(model, saved)
            except Exception:  # the undo failed too: claim nothing the encoders may not hold
                log.exception("could not undo a failed identity load; every identity will be loaded afresh")
                _forget_all(model)
            raise
        for token, identity in changed.items():
            model.loaded_tokens[token] = (identity.digest(), _vectors(identity))
    return [identity.token for identity in identities]


def _apply(model: LoadedModel, changed: dict[str, Identity]) -> None:
    fresh = []
    for token, identity in changed.items():
        state = model.loaded_tokens.get(token)
        if state is not None and state[1] == _vectors(identity):
            _write_rows(model, token, identity)
        else:
            _unload(model, token, state[1] if state is not None else _vectors(identity))
            fresh.append((token, identity))
    if fresh:
        for slot in model.encoders:
            rows = [identity.embeddings[slot.key].to(model.device, model.dtype) for _, identity in fresh]
            model.pipe.load_textual_inversion(
                rows, token=[t for t, _ in fresh], tokenizer=slot.tokenizer, text_encoder=slot.text_encoder
            )
            slot.text_encoder.requires_grad_(False)  # resizing the table made a fresh, trainable one


@dataclass(frozen=True)
class _Saved:
    """One encoder's added (non-special) tokens in id order and their rows, to roll a failed load back."""

    slot: object  # models.EncoderSlot
    tokens: list[str]
    ids: list[int]
    rows: torch.Tensor  # [len(tokens), D], a copy


def _added(tokenizer: object) -> dict[int, str]:
    return {i: t.content for i, t in sorted(tokenizer.added_tokens_decoder.items()) if not t.special}


@torch.no_grad()
def _snapshot(slot: object) -> _Saved:
    added = _added(slot.tokenizer)
    table = slot.text_encoder.get_input_embeddings().weight  # [V, D]
    ids = list(added)
    return _Saved(slot, list(added.values()), ids, table[ids].detach().clone())


@torch.no_grad()
def _restore(model: LoadedModel, saved: Sequence[_Saved]) -> None:
    """Put each encoder back as :func:`_snapshot` found it: the same added tokens, ids and rows."""
    for state in saved:
        slot = state.slot
        present = list(_added(slot.tokenizer).values())
        if present:
            model.pipe.unload_textual_inversion(present, tokenizer=slot.tokenizer, text_encoder=slot.text_encoder)
        if state.tokens:
            slot.tokenizer.add_tokens(state.tokens)
        if slot.text_encoder.get_input_embeddings().weight.shape[0] != len(slot.tokenizer):  # a half-done resize
            slot.text_encoder.resize_token_embeddings(len(slot.tokenizer), mean_resizing=False)
        table = slot.text_encoder.get_input_embeddings().weight  # [V, D]
        ids = slot.tokenizer.convert_tokens_to_ids(state.tokens)
        table[ids] = state.rows.to(table.device, table.dtype)
        slot.text_encoder.requires_grad_(False)


def load_into_pipeline(model: LoadedModel, identity: Identity) -> str:
    """One identity; see :func:`load_identities`."""
    return load_identities(model, [identity])[0]


def _forget_all(model: LoadedModel) -> None:
    """Last resort after a failed undo: take out every identity token (as far as possible) and claim none,
    so nothing half-works and the next :func:`load_identities` loads each identity from scratch."""
    claimed = dict(model.loaded_tokens)
    model.loaded_tokens.clear()
    for token, (_, n) in claimed.items():
        try:
            _unload(model, token, n)
        except Exception:
            log.exception("could not take %s out of the text encoders", token)


def _vectors(identity: Identity) -> int:
    return int(next(iter(identity.embeddings.values())).shape[0])


@torch.no_grad()
def _write_rows(model: LoadedModel, token: str, identity: Identity) -> None:
    for slot in model.encoders:
        ids = slot.tokenizer.convert_tokens_to_ids(added_tokens(token, _vectors(identity)))
        table = slot.text_encoder.get_input_embeddings().weight  # [V, D]
        table[ids] = identity.embeddings[slot.key].to(table.device, table.dtype)


def _unload(model: LoadedModel, token: str, n: int) -> None:
    """Take a token's vectors out of every encoder that has them (a stale half-load included)."""
    for slot in model.encoders:
        names = set(added_tokens(token, n)) | {t for t in _added(slot.tokenizer).values() if t == token or t.startswith(f"{token}_")}
        present = [t for t in _added(slot.tokenizer).values() if t in names]
        if present:
            model.pipe.unload_textual_inversion(present, tokenizer=slot.tokenizer, text_encoder=slot.text_encoder)
