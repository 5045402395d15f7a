"""Which decoder turns the final latents into pixels: the model's own VAE, or a tiny distilled one.

On the H200 the full SDXL VAE decodes 6 x 1024² in about 0.29 s, a third of a 4-step fast page (issue
13): once the UNet runs 4 steps instead of 60 evaluations, the decode is the next cost. TAESD-XL
(``madebyollin/taesdxl``, diffusers' ``AutoencoderTiny``) is the decoder people use for exactly this:
a small distilled decoder that reads the same latents, much faster, with softer fine detail. It is a
choice (``decoder="tiny"``), never the default: the full VAE stays the one that draws a finished comic
unless the user asks, and every panel records which decoder drew it.

The tiny decoder only decodes; the model's VAE stays on the pipeline (training encodes photos with
it), so nothing is swapped on a shared pipeline: the renderer asks the pipeline for latents and
decodes them here. The pipeline's own safety checker (SD 2.x) still runs on the decoded images.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InputError, ModelError

if TYPE_CHECKING:
    from PIL import Image

    from ..models import LoadedModel

log = logging.getLogger(__name__)

TINY_DECODER_SOURCES = {"sdxl": "madebyollin/taesdxl", "sd2": "madebyollin/taesd"}  # family -> hub id


def _random_tiny_decoder(seed: int = 0) -> Any:
    """AutoencoderTiny's own architecture (the TAESD one) with seeded random weights, for the random-
    and tiny-weight models: it runs at the real cost and draws noise, like the rest of such a model."""
    from diffusers import AutoencoderTiny

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderTiny()


def load_tiny_decoder(model: LoadedModel, source: str | None = None) -> Any:
    """TAESD for ``model``'s family from a hub id or a diffusers folder (default: the family's own);
    random weights when the base model has random weights (no download, same architecture)."""
    from diffusers import AutoencoderTiny

    if source is None and model.random_weights:
        decoder = _random_tiny_decoder()
    else:
        source = source or TINY_DECODER_SOURCES.get(model.family)
        if source is None:
            raise InputError(f"no tiny decoder is known for {model.family} models; pass its folder or hub id")
        path = Path(source).expanduser()
        if path.exists() and not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a diffusers AutoencoderTiny folder (no config.json)")
        try:
            decoder = AutoencoderTiny.from_pretrained(str(path) if path.exists() else source, torch_dtype=model.dtype)
        except OSError as exc:
            from ..models import offline_hint

            raise ModelError(f"could not load the tiny decoder {source!r}{offline_hint()}: {exc}") from exc
    latent = int(model.pipe.vae.config.latent_channels)
    if int(decoder.config.latent_channels) != latent:
        raise ModelError(f"the tiny decoder reads {decoder.config.latent_channels}-channel latents; the model makes {latent}")
    decoder.to(device=model.device).requires_grad_(False).eval()
    if decoder.dtype != model.dtype:  # the random one (built in fp32); a loaded one came in the model's dtype
        decoder.to(dtype=model.dtype)
    log.info("tiny decoder ready (%s)", source or "random weights")
    return decoder


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """PIL images from [0, 1] images ``[B, 3, H, W]`` (``output_type="pt"``), converted to uint8 where
    they are. diffusers' own "pil" output copies the images to the CPU first and scales and rounds
    them there in numpy: on the H200 that took ~0.15 s of a 6 x 1024² page (bench_fast.py). The same
    float32 arithmetic (x 255, round) on the device, then one uint8 copy: the same pixels."""
    from PIL import Image

    pixels = images.float().mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return [Image.fromarray(p) for p in pixels]


@torch.inference_mode()
def decode_latents(pipe: Any, decoder: Any, latents: torch.Tensor) -> tuple[list[Image.Image], list[bool]]:
    """Pixels from the pipeline's final latents (``output_type="latent"``) with ``decoder``, then what
    the pipeline does after its own decode: its safety checker where it has one (flags per image; a
    flagged image stays black) and [-1, 1] -> [0, 1].

    TAESD reads the diffusion latents as they are (its ``scaling_factor`` is 1) and returns images in
    [-1, 1], as the full VAE does.
    """
    images = decoder.decode(latents.to(decoder.dtype) / decoder.config.scaling_factor).sample
    flagged = [False] * images.shape[0]
    if getattr(pipe, "safety_checker", None) is not None:
        images, nsfw = pipe.run_safety_checker(images, images.device, images.dtype)
        flagged = [bool(f) for f in (nsfw or flagged)]
    keep = torch.tensor([not f for f in flagged], device=images.device).view(-1, 1, 1, 1)
    images = torch.where(keep, (images.float() / 2 + 0.5).clamp(0, 1), images.float())
    return to_pil(images), flagged
