"""Render stage: panel prompts -> seeded clean art (generate); lettering and pages live in subpackages."""

from __future__ import annotations

from .generate import SCHEDULERS, PanelImage, RenderCancelled, RenderConfig, Renderer

__all__ = ["SCHEDULERS", "PanelImage", "RenderCancelled", "RenderConfig", "Renderer"]
