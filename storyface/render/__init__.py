"""Render stage: panel prompts -> seeded images (generate) -> a comic page (layout)."""

from __future__ import annotations

from .generate import SCHEDULERS, PanelImage, RenderCancelled, RenderConfig, Renderer
from .layout import compose_page, load_font, save_page, wrap_text

__all__ = [
    "SCHEDULERS",
    "PanelImage",
    "RenderCancelled",
    "RenderConfig",
    "Renderer",
    "compose_page",
    "load_font",
    "save_page",
    "wrap_text",
]
