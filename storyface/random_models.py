"""Random-weight pipelines built in code: the tiny test models and full-size SDXL for benchmarks.

Weights cannot be downloaded here, but everything but the pictures depends only on the architecture:
``tiny`` / ``tiny-sd2`` are the real SDXL / SD 2.x architectures with tiny widths (tests, the offline
demo), ``random-sdxl`` is SDXL base 1.0's full architecture (speed and memory benchmarks). Both carry
the real CLIP BPE tokenizer, rebuilt from the merges file open_clip ships (MIT, OpenAI). Everything
they draw is noise; the product says so wherever their output appears.
"""

from __future__ import annotations

import gzip
import logging
from functools import lru_cache
from importlib import resources
from typing import Literal

import torch

from .errors import ModelError

log = logging.getLogger(__name__)

Family = Literal["sdxl", "sd2"]

# Text-encoder widths, keyed like an identity file: the real base models' and the tiny test models'.
REAL_WIDTHS: dict[str, dict[str, int]] = {"sdxl": {"clip_l": 768, "clip_g": 1280}, "sd2": {"emb_params": 1024}}
TINY_WIDTHS: dict[str, dict[str, int]] = {"sdxl": {"clip_l": 32, "clip_g": 64}, "sd2": {"emb_params": 48}}


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
            widths = TINY_WIDTHS["sdxl"]
            te1 = CLIPTextModel(_tiny_text_config(widths["clip_l"], 32))
            te2 = CLIPTextModelWithProjection(_tiny_text_config(widths["clip_g"], 32))
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
            width = TINY_WIDTHS["sd2"]["emb_params"]
            te = CLIPTextModel(_tiny_text_config(width, width))
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



# --------------------------------------------------------------------------- full-size SDXL


def _full_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(  # stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
        sample_size=128,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(320, 640, 1280),
        layers_per_block=2,
        transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20),
        cross_attention_dim=2048,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816,  # 6 time ids x 256 + pooled 1280
        norm_num_groups=32,
    )


def _full_text_config(hidden: int, layers: int, heads: int, intermediate: int, projection: int, act: str):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_attention_heads=heads,
        num_hidden_layers=layers,
        projection_dim=projection,
        max_position_embeddings=77,
        hidden_act=act,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=1,
    )


def _full_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(  # SDXL's VAE: 8x downscale, 4 latent channels
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=32,
        sample_size=1024,
        scaling_factor=0.13025,
    )


def random_sdxl_pipeline(device: torch.device | str, dtype: torch.dtype, seed: int = 0):
    """SDXL base's architecture with seeded random weights, created directly on ``device``.

    Each module is initialised on the device (fast on a GPU, nothing on ``meta``) and cast to
    ``dtype`` before the next is built, so peak memory stays near one fp32 UNet plus the rest.
    """
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    device = torch.device(device)
    builders = {
        "unet": _full_unet,
        "text_encoder": lambda: CLIPTextModel(_full_text_config(768, 12, 12, 3072, 768, "quick_gelu")),
        "text_encoder_2": lambda: CLIPTextModelWithProjection(_full_text_config(1280, 32, 20, 5120, 1280, "gelu")),
        "vae": _full_vae,
    }
    modules = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for name, build in builders.items():
            with device:
                modules[name] = build().to(dtype=dtype)
    log.info("built random-weight SDXL on %s in %s", device, dtype)
    return StableDiffusionXLPipeline(
        **modules,
        tokenizer=clip_tokenizer(),
        tokenizer_2=clip_tokenizer(pad_token="!"),
        scheduler=sdxl_scheduler(),
    )
