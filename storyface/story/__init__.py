"""Story -> panels -> prompts. Import from here; nothing heavy happens at import time."""

from .llm import LLMError, LLMSettings, parse_story_llm
from .offline import parse_story_offline
from .parsers import PARSERS, parse_story
from .prompts import PanelPrompt, build_prompt, build_prompts, token_counter
from .schema import Panel, PanelScript
from .styles import DEFAULT_NEGATIVE_PROMPT, STYLE_PRESETS, style_suffix

__all__ = [
    "DEFAULT_NEGATIVE_PROMPT",
    "LLMError",
    "LLMSettings",
    "PARSERS",
    "Panel",
    "PanelPrompt",
    "PanelScript",
    "STYLE_PRESETS",
    "build_prompt",
    "build_prompts",
    "parse_story",
    "parse_story_llm",
    "parse_story_offline",
    "style_suffix",
    "token_counter",
]
