"""How to render, as a person chooses it: quality preset (standard or fast), LoRAs, steps, size, sampler.

One function turns those choices into the renderer's settings, so the CLI, the web app and the
Python API pick steps, scheduler and guidance for a distillation LoRA the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..render.generate import RenderConfig, Renderer
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
) -> tuple[RenderConfig, QualityPreset, list[Any]]:
    """Fuse ``loras`` (``SOURCE[:WEIGHT][:KIND]`` each) into the renderer's model and return the render
    settings for ``quality`` (the preset's steps, sampler and guidance; explicit ``steps``, ``guidance``
    and ``scheduler`` win), the preset (recorded in comic.json) and the LoRAs fused."""
    fused = renderer.use_loras(list(loras), permanent=permanent) if loras or renderer.model.loras else []
    preset = quality_preset(quality, fused, steps=steps, kind=kind)
    config = preset.render_config(RenderConfig(width=size, height=size))
    changes = {k: v for k, v in (("guidance", guidance), ("scheduler", scheduler)) if v is not None}
    return (dataclasses.replace(config, **changes) if changes else config), preset, fused
