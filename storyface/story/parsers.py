"""Story backends behind one signature, and the choice between them.

Like simonw/llm's model registry: a name -> function table with an offline default, and an error that
lists the choices for an unknown name. ``auto`` uses the LLM when one is configured and falls back to
the offline parser (with a warning saying so) when the LLM gives no usable answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import InputError
from .llm import LLMError, LLMSettings, parse_story_llm
from .offline import parse_story_offline
from .schema import PanelScript

log = logging.getLogger(__name__)

Backend = Callable[[str, list[str], "LLMSettings | None"], PanelScript]


def _offline(story: str, cast: list[str], settings: LLMSettings | None) -> PanelScript:
    return parse_story_offline(story, cast)


def _llm(story: str, cast: list[str], settings: LLMSettings | None) -> PanelScript:
    settings = settings or LLMSettings.from_env()
    if settings is None:
        raise InputError(
            "the llm story backend is not configured: set STORYFACE_LLM_BASE_URL and STORYFACE_LLM_MODEL "
            "(and STORYFACE_LLM_API_KEY if the server needs one), or use --backend offline"
        )
    return parse_story_llm(story, cast, settings)


PARSERS: dict[str, Backend] = {"offline": _offline, "llm": _llm}


def parse_story(
    story: str, cast: list[str], backend: str = "auto", settings: LLMSettings | None = None
) -> PanelScript:
    """Story -> panels with the chosen backend; ``auto`` prefers a configured LLM, else offline.

    An explicit ``llm`` raises :class:`LLMError` on failure (the user asked for it); ``auto`` falls back.
    """
    if backend == "auto":
        settings = settings or LLMSettings.from_env()
        if settings is None:
            return parse_story_offline(story, cast)
        try:
            return parse_story_llm(story, cast, settings)
        except LLMError as exc:
            log.warning("LLM story parser failed, using the offline parser: %s", exc)
            script = parse_story_offline(story, cast)
            note = f"LLM answer unusable ({exc}); used the offline parser"
            return script.model_copy(update={"warnings": [note, *script.warnings]})
    if backend not in PARSERS:
        choices = ", ".join(["auto", *PARSERS])
        raise InputError(f"unknown story backend {backend!r}; choose one of: {choices}")
    return PARSERS[backend](story, cast, settings)
