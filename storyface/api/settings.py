"""How to render, as a person chooses it: quality preset (standard or fast), LoRAs, steps, size, sampler.

One function turns those choices into the renderer's settings, so the CLI, the web app and the
Python API pick steps, scheduler and guidance for a distillation LoRA the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..render.compile import check_compile_mode
from ..render.generate import RenderConfig, Renderer
from ..render.panel import check_decoder
from ..render.quality import QualityPreset, quality_preset


def render_settings(
    renderer: Renderer,
    quality: str = "standard",
    loras: Sequence[str] = (),
    *,
    steps: int | None = None,
    guidance: float | None = None,
    size: int | None = None,
    scheduler: str | None = None,
    kind: str | None = None,
    permanent: bool = False,
    decoder: str = "full",
    decoder_source: str | None = None,
    compile: str | None = None,
) -> tuple[RenderConfig, QualityPreset, list[Any]]:
    """Fuse ``loras`` (``SOURCE[:WEIGHT][:KIND]`` each) into the renderer's model and return the render
    settings for ``quality`` (the preset's steps, sampler and guidance; explicit ``steps``, ``guidance``
    and ``scheduler`` win), the preset (recorded in comic.json) and the LoRAs fused.

    ``decoder="tiny"`` loads TAESD (``decoder_source``: its folder or hub id) for a faster, softer
    decode; ``compile`` ("regional" or "whole") compiles the UNet after the LoRAs are fused, with the
    compile cache under the data folder. Both are checked before any LoRA is read.
    """
    check_decoder(decoder)
    if compile is not None:
        check_compile_mode(compile)
    fused = renderer.use_loras(list(loras), permanent=permanent) if loras or renderer.model.loras else []
    preset = quality_preset(quality, fused, steps=steps, kind=kind)
    config = preset.render_config(RenderConfig(width=size, height=size, decoder=decoder))
    if decoder == "tiny":
        renderer.use_tiny_decoder(decoder_source)
    if compile is not None:
        renderer.compile(compile)
    changes = {k: v for k, v in (("guidance", guidance), ("scheduler", scheduler)) if v is not None}
    return (dataclasses.replace(config, **changes) if changes else config), preset, fused
