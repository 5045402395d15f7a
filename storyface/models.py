"""Load the base diffusion model once: hub id, local diffusers folder, single-file checkpoint, or a
random-weight pipeline built in code (``tiny`` for tests and the offline demo, ``random-sdxl`` for
benchmarks; see :mod:`storyface.random_models`), and fix what every loaded SDXL needs fixed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import ModelError
from .random_models import Family, build_tiny_pipeline, random_sdxl_pipeline

log = logging.getLogger(__name__)

DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"
TINY_MODELS = {"tiny": "sdxl", "tiny-sdxl": "sdxl", "tiny-sd2": "sd2"}
RANDOM_MODELS = {"random-sdxl"}
TINY_NOTICE = "running on the tiny random-weight test model: images are noise, not people"


@dataclass(frozen=True)
class EncoderSlot:
    """One text encoder of a pipeline and the key its rows take in an identity file."""

    key: str  # "clip_l" / "clip_g" for SDXL (the A1111/ComfyUI names), "emb_params" for SD 2.x
    tokenizer: object
    text_encoder: torch.nn.Module

    @property
    def dim(self) -> int:
        return int(self.text_encoder.get_input_embeddings().weight.shape[1])


@dataclass
class LoadedModel:
    """A pipeline plus what StoryFace needs to know about it; load once per process, pass around."""

    pipe: object  # StableDiffusionXLPipeline | StableDiffusionPipeline
    family: Family
    source: str
    is_tiny: bool
    train_resolution: int  # side of the square crop the identity is trained on
    render_size: int  # default panel side
    loaded_tokens: dict[str, tuple[str, int]] = field(default_factory=dict)  # token -> (digest, vectors)
    loras: list = field(default_factory=list)  # render.adapters.LoadedLora fused into the weights now

    @property
    def device(self) -> torch.device:
        return self.pipe.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.unet.dtype

    @property
    def encoders(self) -> list[EncoderSlot]:
        return encoder_slots(self.pipe, self.family)

    @property
    def random_weights(self) -> bool:
        """The tiny test model or the full-size benchmark model: its pictures are noise."""
        return self.is_tiny or self.source in RANDOM_MODELS

    @property
    def notice(self) -> str:
        """A line to show next to anything this model made."""
        if self.is_tiny:
            return TINY_NOTICE
        if self.random_weights:
            return "running on full-size SDXL with random weights (the benchmark model): images are noise, not people"
        return f"base model: {self.source}"


def encoder_slots(pipe: object, family: Family) -> list[EncoderSlot]:
    """The text encoders in the order the pipeline concatenates them."""
    if family == "sdxl":
        return [
            EncoderSlot("clip_l", pipe.tokenizer, pipe.text_encoder),
            EncoderSlot("clip_g", pipe.tokenizer_2, pipe.text_encoder_2),
        ]
    return [EncoderSlot("emb_params", pipe.tokenizer, pipe.text_encoder)]


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPU (fp16 overflows in the SDXL VAE), fp32 on CPU where bf16 is slow."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _contiguous(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output.contiguous()


def contiguous_vae_mid_blocks(pipe: object, enable: bool = True) -> None:
    """Make the VAE's mid-blocks hand back NCHW-contiguous tensors (values unchanged); ``enable=False``
    takes the fix off again (for comparisons).

    diffusers' spatial attention returns a transposed view (channels_last strides), so every later
    GroupNorm, residual add and conv of the decoder ran on mixed layouts, with strided copies and
    cuDNN layout conversions: a third of a 6-panel 1024x1024 decode (see BENCHMARKS.md). A forward
    hook fixes it from outside diffusers; applying it twice is a no-op.
    """
    for coder in (pipe.vae.encoder, pipe.vae.decoder):
        block = getattr(coder, "mid_block", None)
        handle = getattr(block, "_storyface_contiguous", None)
        if block is None or (handle is not None) == enable:
            continue
        if enable:
            block._storyface_contiguous = block.register_forward_hook(_contiguous, prepend=True)  # before any other hook
        else:
            handle.remove()
            block._storyface_contiguous = None


# --------------------------------------------------------------------------- real loading


def family_of(pipe: object) -> Family:
    return "sdxl" if hasattr(pipe, "text_encoder_2") else "sd2"


def fix_eos_token_ids(pipe: object) -> None:
    """Point every copy of a text encoder's end-of-text id at the tokenizer's real one.

    Old CLIP configs (SDXL base's and SD 2.x's as published) say ``eos_token_id = 2``; transformers then
    pools at ``argmax(input_ids)``, the highest id, which is an added identity token. Because CLIP is
    causal, the pooled vector (SDXL's ``text_embeds``) would then ignore everything written after the
    name. Transformers keeps the id in several places (the config, each sub-config, and the
    ``text_model``'s own attribute inside ``CLIPTextModelWithProjection``), so every module and config
    that carries one is set. Plain prompts pool at the same place either way.
    """
    for slot in encoder_slots(pipe, family_of(pipe)):
        eos = slot.tokenizer.eos_token_id
        for module in slot.text_encoder.modules():
            if isinstance(getattr(module, "eos_token_id", None), int):
                module.eos_token_id = eos
            config = getattr(module, "config", None)
            for cfg in (config, getattr(config, "text_config", None)):
                if cfg is not None and isinstance(getattr(cfg, "eos_token_id", None), int):
                    cfg.eos_token_id = eos


def _single_file_family(path: Path) -> Family:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = f.keys()
        return "sdxl" if any(k.startswith("conditioner.embedders.1") for k in keys) else "sd2"


def offline_hint() -> str:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return " (HF_HUB_OFFLINE=1: put the model in the hub cache first, or pass a local diffusers folder)"
    return ""


def _from_source(model: str, dtype: torch.dtype):
    from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline

    path = Path(model).expanduser()
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise ModelError(f"checkpoint {path} does not exist")
        cls = StableDiffusionXLPipeline if _single_file_family(path) == "sdxl" else StableDiffusionPipeline
        try:
            return cls.from_single_file(str(path), dtype=dtype)
        except (OSError, ValueError) as exc:  # its component configs come from the hub (or its cache)
            raise ModelError(f"could not load checkpoint {path.name}{offline_hint()}: {exc}") from exc
    if path.suffix in {".ckpt", ".pt", ".bin"}:
        raise ModelError(f"{path.name}: pickle checkpoints are not loaded (they can run code); convert to .safetensors")
    kwargs: dict = {"dtype": dtype}
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelError(f"{path} is not a diffusers folder (no model_index.json)")
        cls_name = json.loads((path / "model_index.json").read_text()).get("_class_name", "")
        if "XL" not in cls_name and "StableDiffusionPipeline" not in cls_name:
            raise ModelError(f"{path} holds a {cls_name}; StoryFace needs an SDXL or SD 2.x pipeline")
        model = str(path)
    try:
        pipe = DiffusionPipeline.from_pretrained(model, **kwargs)
    except OSError as exc:
        raise ModelError(f"could not load model {model!r}{offline_hint()}: {exc}") from exc
    if not isinstance(pipe, (StableDiffusionXLPipeline, StableDiffusionPipeline)):
        raise ModelError(f"{model} is a {type(pipe).__name__}; StoryFace needs an SDXL or SD 2.x pipeline")
    return pipe


def load_model(
    model: str = DEFAULT_MODEL,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> LoadedModel:
    """Load a base model for training and rendering; call once per process and keep the result."""
    device = torch.device(device) if device is not None else default_device()
    dtype = dtype or default_dtype(device)
    if model in TINY_MODELS:
        pipe = build_tiny_pipeline(TINY_MODELS[model])
        is_tiny, train_res, render = True, 128, 128
        log.info("StoryFace is %s", TINY_NOTICE)
    elif model in RANDOM_MODELS:  # full-size architecture, random weights: for speed benchmarks
        pipe = random_sdxl_pipeline(device, dtype)
        is_tiny, train_res, render = False, 512, 1024
    else:
        pipe = _from_source(model, dtype)
        is_tiny = False
        train_res = 512
        render = 1024 if family_of(pipe) == "sdxl" else 768
    fix_eos_token_ids(pipe)
    contiguous_vae_mid_blocks(pipe)
    pipe.to(device=device)
    if pipe.unet.dtype != dtype:
        pipe.to(dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.unet, pipe.vae, *[s.text_encoder for s in encoder_slots(pipe, family_of(pipe))]):
        module.requires_grad_(False).eval()
    return LoadedModel(pipe, family_of(pipe), model, is_tiny, train_res, render)
