"""LoRAs on the base model: few-step distillation LoRAs (fast mode) and style LoRAs, fused at load.

diffusers does the loading (``load_lora_weights``: diffusers/PEFT keys, and kohya/A1111 keys such as
``lora_unet_input_blocks_4_1_..._to_q.lora_down.weight`` + ``.alpha``, SGM block numbers included),
the weighting (``set_adapters``) and the fusing (``fuse_lora``: W += weight * alpha/r * B @ A). This
module adds what StoryFace needs around it: files only as ``.safetensors`` (a pickle can run code),
errors a person can act on, a check that every LoRA layer in the file found its layer in this model
(PEFT otherwise skips what it cannot place, and an SD 1.5 LoRA half-applied to SDXL draws garbage
without a word), and a JSON-able record of what was fused, for ``comic.json``.

Why fuse: an unfused LoRA adds two small matmuls to every adapted layer on every step. Fused, the
layers compute with the merged weight; the PEFT wrapper that stays around each layer (so that
:func:`remove_loras` can subtract the LoRA again) costs one Python branch per layer and call, and
vanishes under ``torch.compile``. ``permanent=True`` drops the wrappers too (diffusers' "fuse, then
unload" recipe): the UNet is then the plain base architecture with changed weights, and going back
to the base weights means reloading the model.

Identity tokens live in the text encoders' embedding tables, which LoRAs never touch, so an
identity loaded before or after fusing gives the same prompt embeddings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, ModelError
from ..limits import FLOAT_TENSOR_DTYPES, MAX_LORA_BYTES, MAX_LORA_WEIGHT, MAX_LORAS
from .quality import DISTILL_KINDS, STYLE_KIND, check_kind, detect_kind

if TYPE_CHECKING:
    import torch

    from ..models import LoadedModel

log = logging.getLogger(__name__)

DIGEST_CHARS = 16  # 64 bits of sha256: tells files apart in a record, short enough to read
HASH_CHUNK = 8 * 2**20  # read 8 MiB at a time: a 400 MB LoRA hashes without holding it twice
DEFAULT_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' name for a hub LoRA's file
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl", ".pickle")
ADAPTER_PREFIX = "storyface_lora_"
COMPONENTS = ("unet", "text_encoder", "text_encoder_2")
_HUB_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_QUIET_NOTES = ("No LoRA keys associated to",)  # diffusers' note for a LoRA without text-encoder keys


class LoraFileError(InputError):
    """A LoRA file that is missing, unreadable, a pickle, or holds no LoRA weights."""


class LoraMismatchError(ModelError):
    """A LoRA whose layers do not fit the loaded base model (made for another family or size)."""


def _check_weight(weight: object) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise InputError(f"LoRA weight must be a number, got {weight!r}")
    if abs(weight) > MAX_LORA_WEIGHT:
        raise InputError(f"LoRA weight {weight} is outside -{MAX_LORA_WEIGHT:g}..{MAX_LORA_WEIGHT:g} (style LoRAs use 0.3 to 1.5)")
    return float(weight)


@dataclass(frozen=True)
class LoraSpec:
    """What a person asked for: a local ``.safetensors`` file or folder, or a hub id.

    A hub LoRA is ``owner/repo`` plus ``weight_name`` (default ``pytorch_lora_weights.safetensors``),
    or ``owner/repo/path/in/repo.safetensors``. ``kind=None`` reads it from the name (``lightning``,
    ``hyper``, ``lcm``, ``tcd``), else ``style``; after construction ``kind`` is always one of those.
    """

    source: str
    weight: float = 1.0
    weight_name: str | None = None
    kind: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise InputError("a LoRA needs a file path or a hub id")
        object.__setattr__(self, "weight", _check_weight(self.weight))
        kind = check_kind(self.kind) if self.kind is not None else detect_kind(self.name) or STYLE_KIND
        object.__setattr__(self, "kind", kind)

    @property
    def name(self) -> str:
        """How the LoRA is called in messages and matched for its kind: file name or repo/file."""
        if self.weight_name:
            return f"{self.source.rstrip('/')}/{self.weight_name}"
        path = Path(self.source)
        return path.name if path.suffix else self.source


def parse_lora_spec(text: str) -> LoraSpec:
    """``SOURCE[:WEIGHT][:KIND]`` as typed on a command line: ``comic.safetensors:0.8``,
    ``ByteDance/SDXL-Lightning/sdxl_lightning_4step_lora.safetensors``, ``merged.safetensors:1:lightning``.

    A tail is only taken off when it is a number or a kind, so ``C:\\loras\\x.safetensors`` stays whole.
    """
    source, weight, kind = text.strip(), 1.0, None
    head, sep, tail = source.rpartition(":")
    if sep and head and tail.strip().lower() in (STYLE_KIND, *DISTILL_KINDS):
        source, kind = head, tail.strip()
        head, sep, tail = source.rpartition(":")
    if sep and head:
        try:
            weight, source = float(tail), head
        except ValueError:
            pass
    return LoraSpec(source, weight, kind=kind)


@dataclass(frozen=True)
class LoadedLora:
    """One LoRA fused into the model, and everything a record needs to say what it was."""

    spec: LoraSpec
    path: str  # the local file read (the hub cache's copy for a hub id)
    digest: str  # first DIGEST_CHARS hex of the file's sha256
    adapter: str  # diffusers' adapter name
    components: tuple[str, ...]  # which of unet / text_encoder / text_encoder_2 it changed
    layers: int  # layers changed, over all components
    permanent: bool = False

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def weight(self) -> float:
        return self.spec.weight

    def record(self) -> dict[str, Any]:
        """JSON-able provenance for ``comic.json``."""
        return {
            "source": self.spec.source,
            "weight_name": self.spec.weight_name,
            "weight": self.spec.weight,
            "kind": self.kind,
            "sha256": self.digest,
            "components": list(self.components),
            "layers": self.layers,
        }


# --------------------------------------------------------------------------- files


def resolve_lora_file(spec: LoraSpec) -> Path:
    """The local ``.safetensors`` file for a spec (downloading a hub id, or taking it from the hub cache)."""
    source = spec.source.strip()
    path = Path(source).expanduser()
    for name in (path.name, spec.weight_name or ""):
        if Path(name).suffix.lower() in PICKLE_SUFFIXES:
            raise LoraFileError(f"{name}: pickle files are not loaded (they can run code); use the .safetensors version")
    if path.is_dir():
        path = path / (spec.weight_name or DEFAULT_WEIGHT_NAME)
        if not path.is_file():
            raise LoraFileError(f"{path.parent} holds no {path.name}; give the LoRA file itself or its weight_name")
    elif not path.is_file():
        path = _from_hub(source, spec.weight_name)
    if path.suffix.lower() != ".safetensors":
        raise LoraFileError(f"{path.name}: only .safetensors LoRA files are loaded")
    return path


def _from_hub(source: str, weight_name: str | None) -> Path:
    parts = source.split("/")
    if len(parts) > 2 and parts[-1].endswith(".safetensors"):
        if weight_name:
            raise InputError(f"{source} already names a file; leave weight_name out")
        repo, weight_name = "/".join(parts[:2]), "/".join(parts[2:])
    else:
        repo = source
    if (source.endswith(".safetensors") and len(parts) <= 2) or not _HUB_REPO.match(repo):
        raise LoraFileError(f"no LoRA file {Path(source).expanduser()} (and {source!r} is not a hub id owner/repo)")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    filename = weight_name or DEFAULT_WEIGHT_NAME
    try:
        return Path(hf_hub_download(repo, filename))
    except (OSError, ValueError, HfHubHTTPError) as exc:
        raise LoraFileError(
            f"no local file {source!r}, and {repo}/{filename} could not be had from the hub ({type(exc).__name__}); "
            "download it first or give a local .safetensors file (the hub may be offline)"
        ) from exc


def file_digest(path: Path) -> str:
    """Short sha256 of the file's bytes: the same file gives the same record on any machine."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(HASH_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()[:DIGEST_CHARS]


def _is_lora_key(key: str) -> bool:
    return "lora" in key.lower()


def _down_keys(keys: Iterator[str] | Sequence[str]) -> int:
    """How many LoRA layers a state dict describes: one down/A matrix per layer, in every key format."""
    return sum(1 for k in keys if _is_lora_key(k) and k.endswith(("down.weight", "lora_A.weight")))


def read_lora_file(path: Path) -> dict[str, torch.Tensor]:
    """The LoRA tensors of a ``.safetensors`` file; refuses files too big to be a LoRA or holding none."""
    import torch
    from safetensors import SafetensorError, safe_open

    size = path.stat().st_size
    if size > MAX_LORA_BYTES:
        raise LoraFileError(f"{path.name} is {size / 2**30:.1f} GiB, too big for a LoRA; a full checkpoint goes in --model")
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            wanted = [k for k in keys if _is_lora_key(k)]
            for key in wanted:  # from the header, before any tensor is read
                dtype = f.get_slice(key).get_dtype()
                if dtype not in FLOAT_TENSOR_DTYPES:
                    raise LoraFileError(f"{path.name}: {key} holds {dtype} values; LoRA weights are read in "
                                        f"{', '.join(FLOAT_TENSOR_DTYPES)} (convert a float8 or quantised file first)")  # fmt: skip
            tensors = {k: f.get_tensor(k) for k in wanted}
    except LoraFileError:
        raise
    except (SafetensorError, OSError, ValueError) as exc:
        raise LoraFileError(f"{path.name} is not a readable .safetensors file: {exc}") from exc
    bad = next((k for k, t in tensors.items() if not bool(torch.isfinite(t.float()).all())), None)
    if bad is not None:  # fused, one NaN would spread through every later image
        raise LoraFileError(f"{path.name}: {bad} holds values that are not finite numbers (NaN or infinity)")
    if not tensors:
        hint = ""
        if any(k.startswith(("model.diffusion_model.", "down_blocks.", "conditioner.")) for k in keys):
            hint = " (it looks like a full model or UNet checkpoint: load that with --model instead)"
        elif keys and all(k in ("clip_l", "clip_g", "emb_params") for k in keys):
            hint = " (it looks like a textual-inversion embedding or identity file)"
        raise LoraFileError(f"{path.name} holds no LoRA weights{hint}")
    if len(tensors) < len(keys):
        log.warning("%s: ignoring %d tensors that are not LoRA weights", path.name, len(keys) - len(tensors))
    return tensors


# --------------------------------------------------------------------------- the model


def _components(pipe: Any) -> list[str]:
    return [c for c in COMPONENTS if getattr(pipe, c, None) is not None]


def _layers_with(pipe: Any, adapter: str) -> dict[str, int]:
    """Per component, how many layers PEFT gave this adapter (a LoRA layer it could place)."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    counts = {}
    for component in _components(pipe):
        n = sum(
            1
            for m in getattr(pipe, component).modules()
            if isinstance(m, BaseTunerLayer) and any(adapter in getattr(m, a, {}) for a in m.adapter_layer_names)
        )
        if n:
            counts[component] = n
    return counts


class _DropNotes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_QUIET_NOTES)


@contextmanager
def _quiet_notes() -> Iterator[None]:
    """Hide notes that are normal here: diffusers' "no text-encoder keys" (a UNet-only LoRA; every layer
    is counted anyway, an unplaced one is an error), PEFT's "several adapters" (on purpose) and
    "already unmerged" (undoing a set that failed before it was fused)."""
    loggers = [logging.getLogger(n) for n in ("diffusers.loaders.lora_base", "diffusers.loaders.peft")]
    note = _DropNotes()
    for logger in loggers:
        logger.addFilter(note)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            warnings.filterwarnings("ignore", message="Already unmerged")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(note)


def _load_one(model: LoadedModel, spec: LoraSpec, path: Path, adapter: str) -> LoadedLora:
    """Put one LoRA into the model as a named, unfused adapter and check every layer found its place."""
    pipe = model.pipe
    tensors = read_lora_file(path)
    digest = file_digest(path)
    wanted = _down_keys(list(tensors))
    tensors = {  # on the model's device and in its dtype; alphas stay the scalars they are
        k: v.to(model.device, model.dtype) if v.is_floating_point() and not k.endswith(".alpha") else v
        for k, v in tensors.items()
    }
    try:
        pipe.load_lora_weights(tensors, adapter_name=adapter)
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise LoraMismatchError(
            f"{spec.name} does not fit this {model.family.upper()} model ({model.source}): {_first_line(exc)}. "
            "Was it made for another base model (SD 1.5, SD 2.x, Pony/Illustrious-sized SDXL variants)?"
        ) from exc
    placed = _layers_with(pipe, adapter)
    total = sum(placed.values())
    if total == 0 or total < wanted:
        raise LoraMismatchError(
            f"{spec.name}: {wanted - total} of {wanted} LoRA layers match no layer of this {model.family.upper()} "
            f"model ({model.source}); it was made for another base model"
        )
    for component in placed:
        getattr(pipe, component).requires_grad_(False)  # PEFT made trainable A/B; nothing here trains them
    return LoadedLora(spec, str(path), digest, adapter, tuple(placed), total)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _drop_adapters(pipe: Any) -> None:
    """Unfuse (W -= the fused deltas) and remove every PEFT layer: the base weights come back."""
    components = _components(pipe)
    pipe.unfuse_lora(components=components)
    pipe.unload_lora_weights()


def apply_loras(model: LoadedModel, specs: Sequence[LoraSpec | str], permanent: bool = False) -> list[LoadedLora]:
    """Fuse these LoRAs, each at its weight, into the model, in place of any applied before.

    All or nothing: every file is found and checked before the model changes, and a LoRA that does
    not fit leaves the model at its base weights. ``specs=[]`` goes back to the base weights.
    ``model.loras`` holds the result; ``loras_record(model)`` is its JSON form.
    """
    specs = [s if isinstance(s, LoraSpec) else parse_lora_spec(s) for s in specs]
    if len(specs) > MAX_LORAS:
        raise InputError(f"at most {MAX_LORAS} LoRAs at once, got {len(specs)}")
    distill = [s.name for s in specs if s.kind in DISTILL_KINDS]
    if len(distill) > 1:
        raise InputError(f"use one distillation LoRA at a time, got {len(distill)}: {', '.join(distill)}")
    paths = [resolve_lora_file(spec) for spec in specs]  # a missing file fails before the model changes
    remove_loras(model)
    if not specs:
        return []
    pipe, loaded = model.pipe, []
    with _quiet_notes():
        try:
            for i, (spec, path) in enumerate(zip(specs, paths)):
                loaded.append(_load_one(model, spec, path, f"{ADAPTER_PREFIX}{i}"))
            names = [lora.adapter for lora in loaded]
            pipe.set_adapters(names, adapter_weights=[lora.weight for lora in loaded])
            components = [c for c in COMPONENTS if any(c in lora.components for lora in loaded)]
            pipe.fuse_lora(components=components, adapter_names=names)
            if permanent:
                pipe.unload_lora_weights()  # the merged weights stay; the wrappers (and the way back) go
        except BaseException:
            _drop_adapters(pipe)
            raise
    if permanent:
        loaded = [dataclasses.replace(lora, permanent=True) for lora in loaded]
    model.loras = loaded
    for lora in loaded:
        log.info("fused LoRA %s (%s, weight %g, %d layers)", lora.name, lora.kind, lora.weight, lora.layers)
    return loaded


def remove_loras(model: LoadedModel) -> None:
    """Back to the base weights: unfuse and unload every LoRA :func:`apply_loras` fused."""
    if not model.loras:
        return
    if any(lora.permanent for lora in model.loras):
        raise ModelError("the LoRAs were fused for good (permanent=True); reload the base model to drop them")
    with _quiet_notes():
        _drop_adapters(model.pipe)
    model.loras = []


def loras_record(model: LoadedModel) -> list[dict[str, Any]]:
    """What is fused into the model now, as JSON-able records (empty for the plain base model)."""
    return [lora.record() for lora in model.loras]
