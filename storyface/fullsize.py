"""Full-size SDXL: its architecture with random weights, and a layout fix full-size decoding needs.

Weights cannot be downloaded here, but speed and memory depend only on the architecture: this is
SDXL base 1.0's UNet, both CLIP text encoders, VAE and scheduler, with the real CLIP tokenizer.
Everything it draws is noise; it exists for benchmarks (``load_model("random-sdxl")``).
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

RANDOM_SDXL = "random-sdxl"


def _unet():
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


def _text_config(hidden: int, layers: int, heads: int, intermediate: int, projection: int, act: str):
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


def _vae():
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


def _contiguous(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
    return output.contiguous()


def contiguous_vae_mid_blocks(pipe: object) -> None:
    """Make the VAE's mid-blocks hand back NCHW-contiguous tensors (values unchanged).

    diffusers' spatial attention returns a transposed view (channels_last strides), so every later
    GroupNorm, residual add and conv of the decoder ran on mixed layouts, with strided copies and
    cuDNN layout conversions: a third of a 6-panel 1024x1024 decode (see BENCHMARKS.md). A forward
    hook fixes it from outside diffusers; applying it twice is a no-op.
    """
    for coder in (pipe.vae.encoder, pipe.vae.decoder):
        block = getattr(coder, "mid_block", None)
        if block is not None and not getattr(block, "_storyface_contiguous", False):
            block.register_forward_hook(_contiguous)
            block._storyface_contiguous = True


def random_sdxl_pipeline(device: torch.device | str, dtype: torch.dtype, seed: int = 0):
    """SDXL base's architecture with seeded random weights, created directly on ``device``.

    Each module is initialised on the device (fast on a GPU, nothing on ``meta``) and cast to
    ``dtype`` before the next is built, so peak memory stays near one fp32 UNet plus the rest.
    """
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from .models import clip_tokenizer, sdxl_scheduler

    device = torch.device(device)
    builders = {
        "unet": _unet,
        "text_encoder": lambda: CLIPTextModel(_text_config(768, 12, 12, 3072, 768, "quick_gelu")),
        "text_encoder_2": lambda: CLIPTextModelWithProjection(_text_config(1280, 32, 20, 5120, 1280, "gelu")),
        "vae": _vae,
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


def build_random_sdxl(dtype: torch.dtype | None = None, device: torch.device | str | None = None):
    """Full-size SDXL with random weights as a :class:`~storyface.models.LoadedModel` (source "random-sdxl")."""
    from .models import load_model

    return load_model(RANDOM_SDXL, device=device, dtype=dtype)
