"""Load the base diffusion model once: hub id, local folder, single-file checkpoint, or ``tiny``.

``tiny`` is a random-weight pipeline with the real SDXL (or SD 2.x) architecture and the real
CLIP BPE tokenizer, built in code so tests and the offline demo run without downloading weights.
Everything it draws is noise-like; the product says so wherever its output appears.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import torch

from .errors import ModelError
from .fullsize import contiguous_vae_mid_blocks, random_sdxl_pipeline

log = logging.getLogger(__name__)

Family = Literal["sdxl", "sd2"]
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


# --------------------------------------------------------------------------- tokenizer


@lru_cache(maxsize=1)
def _clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Rebuild CLIP's vocab.json/merges.txt from the BPE file open_clip ships (MIT, OpenAI)."""
    raw = resources.files("storyface").joinpath("data/bpe_simple_vocab_16e6.txt.gz").read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]  # CLIP keeps the first 48894 merges
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, [tuple(m.split()) for m in merges]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable-character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def clip_tokenizer(pad_token: str = "<|endoftext|>"):
    """The real CLIP BPE tokenizer; SDXL's second tokenizer (and SD 2.x's) pads with ``!``."""
    from transformers import CLIPTokenizer

    vocab, merges = _clip_vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), pad_token=pad_token, model_max_length=77)


# --------------------------------------------------------------------------- tiny builder


def _tiny_text_config(hidden: int, projection: int):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_attention_heads=4,
        num_hidden_layers=3,
        projection_dim=projection,
        max_position_embeddings=77,
        hidden_act="gelu",
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=1,
    )


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(  # 4 blocks: the real 8x downscale, with tiny widths
        block_out_channels=(8, 16, 16, 16),
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        layers_per_block=1,
        sample_size=128,
    )


def _tiny_unet(**conditioning):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        norm_num_groups=16,
        **conditioning,
    )


def sdxl_scheduler():
    """SDXL base's scheduler_config.json (also SD 2.x base's schedule)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
    )


def build_tiny_pipeline(family: Family = "sdxl", seed: int = 0):
    """A random-weight pipeline of the real architecture, deterministic for a seed."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "sdxl":
            te1 = CLIPTextModel(_tiny_text_config(32, 32))
            te2 = CLIPTextModelWithProjection(_tiny_text_config(64, 32))
            unet = _tiny_unet(
                cross_attention_dim=32 + 64,
                addition_embed_type="text_time",
                addition_time_embed_dim=8,
                projection_class_embeddings_input_dim=6 * 8 + 32,  # 6 time ids + pooled
            )
            pipe = StableDiffusionXLPipeline(
                vae=_tiny_vae(),
                text_encoder=te1,
                text_encoder_2=te2,
                tokenizer=clip_tokenizer(),
                tokenizer_2=clip_tokenizer(pad_token="!"),
                unet=unet,
                scheduler=sdxl_scheduler(),
            )
        elif family == "sd2":
            te = CLIPTextModel(_tiny_text_config(48, 48))
            unet = _tiny_unet(cross_attention_dim=48)
            pipe = StableDiffusionPipeline(
                vae=_tiny_vae(),
                text_encoder=te,
                tokenizer=clip_tokenizer(pad_token="!"),
                unet=unet,
                scheduler=sdxl_scheduler(),
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
            )
        else:
            raise ModelError(f"unknown model family {family!r}; choose 'sdxl' or 'sd2'")
    return pipe


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


def _offline_hint() -> str:
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
            raise ModelError(f"could not load checkpoint {path.name}{_offline_hint()}: {exc}") from exc
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
        raise ModelError(f"could not load model {model!r}{_offline_hint()}: {exc}") from exc
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
