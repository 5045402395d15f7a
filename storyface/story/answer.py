"""What an LLM must answer for a story, and how that answer is checked before it becomes panels.

One pydantic model, :class:`Answer`, is both the parser of the reply (lenient: a missing caption or
dialogue is fine, an unknown balloon kind is a speech balloon) and the source of the JSON schema sent
as structured output (:func:`structured_schema`, in the strict subset OpenAI, Gemini, vLLM, llama.cpp
and Ollama accept: every property required, no extra properties, no length keywords).

Everything the model wrote is checked like user input (:func:`check_panels`): names against the cast,
every text field grounded in the story (:func:`storyface.safety.grounding.grounding_problems`), sizes
against the limits. What fails is dropped with a warning, never passed on.
"""

from __future__ import annotations

import copy
import logging
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from ..limits import MAX_CAPTION_CHARS, MAX_LINE_CHARS, MAX_LINES_PER_PANEL
from ..names import tidy
from ..safety.grounding import grounding_problems
from .offline import canonical_names, find_cast
from .schema import Kind, Line, Panel

log = logging.getLogger(__name__)

KINDS = ("speech", "thought", "whisper")
# JSON-schema keywords strict structured output refuses or ignores; pydantic still checks them on the reply
UNSUPPORTED_KEYWORDS = frozenset({"title", "default", "minLength", "maxLength", "minItems", "maxItems", "description"})


class AnswerLine(BaseModel):
    speaker: str
    text: str
    kind: Kind = "speech"

    @field_validator("kind", mode="before")
    @classmethod
    def _known_kind(cls, value: object) -> object:
        return value if value in KINDS else "speech"  # a "shout" is still a balloon


class AnswerPanel(BaseModel):
    sentence: str = Field(min_length=1)
    characters: list[str] = Field(default_factory=list)
    caption: str | None = None
    dialogue: list[AnswerLine] = Field(default_factory=list)


class Answer(BaseModel):
    panels: list[AnswerPanel] = Field(min_length=1)


def _strict(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_strict(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:  # inline: some servers' grammar builders do not follow $ref
        return _strict(copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]]), defs)
    out = {k: _strict(v, defs) for k, v in node.items() if k not in UNSUPPORTED_KEYWORDS and k != "$defs"}
    if out.get("type") == "object" and "properties" in out:
        out["required"] = list(out["properties"])
        out["additionalProperties"] = False
    return out


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    schema = Answer.model_json_schema()
    return _strict(schema, schema.get("$defs", {}))


def structured_schema() -> dict[str, Any]:
    """The JSON schema of :class:`Answer` for ``response_format: json_schema`` with ``strict: true``."""
    return copy.deepcopy(_schema())


def _speaker(name: str, cast: list[str]) -> str | None:
    """The cast member a line's speaker means, or None (someone else, several people, nobody)."""
    found = find_cast(canonical_names(tidy(name), cast), cast)
    return found[0] if len(found) == 1 else None


def _lines(item: AnswerPanel, number: int, problems: dict[str, str], cast: list[str], warnings: list[str]) -> list[Line]:
    lines: list[Line] = []
    for i, line in enumerate(item.dialogue, 1):
        text, said = tidy(line.text), repr(tidy(line.text)[:60])
        speaker = _speaker(line.speaker, cast)
        why = (
            problems.get(f"line {i}")
            or (None if speaker else f"its speaker {line.speaker[:60]!r} is not one person of the cast")
            or (f"it is over {MAX_LINE_CHARS} characters" if len(text) > MAX_LINE_CHARS else None)
            or (f"the panel already has {MAX_LINES_PER_PANEL} lines" if len(lines) >= MAX_LINES_PER_PANEL else None)
        )
        if not why:
            try:
                lines.append(Line(speaker=speaker, text=text, kind=line.kind))
                continue
            except ValidationError:
                why = "it is empty"
        warnings.append(f"dropped the LLM's line {said} in panel {number}: {why}")
    return lines


def check_panels(items: list[AnswerPanel], cast: list[str], story: str) -> tuple[list[Panel], list[str]]:
    """The LLM's panels as checked :class:`Panel` objects, and warnings for everything dropped.

    Only the user's cast counts as names: what the model lists in ``characters`` is its own word
    (issue 17 item 6), used only to report invented people.
    """
    known = {name.casefold() for name in cast}
    panels: list[Panel] = []
    warnings: list[str] = []
    invented: list[str] = []
    for number, item in enumerate(items, 1):
        sentence = canonical_names(tidy(item.sentence), cast)
        invented += [c.strip() for c in item.characters if c.strip().casefold() not in known]
        caption = tidy(item.caption) if item.caption else None
        fields = {"sentence": sentence, **({"caption": caption} if caption else {})}
        fields.update({f"line {i}": tidy(line.text) for i, line in enumerate(item.dialogue, 1)})
        problems = grounding_problems(fields, story, cast) if story else {}
        if "sentence" in problems:
            warnings.append(f"left out the LLM's panel {sentence[:60]!r}: {problems['sentence']}")
            log.warning("LLM panel dropped: %s", problems["sentence"])
            continue
        if caption and "caption" in problems:
            warnings.append(f"dropped the LLM's caption {caption[:60]!r} of panel {number}: {problems['caption']}")
            caption = None
        elif caption and len(caption) > MAX_CAPTION_CHARS:
            warnings.append(f"dropped the LLM's caption of panel {number}: it is over {MAX_CAPTION_CHARS} characters")
            caption = None
        lines = _lines(item, number, problems, cast, warnings)
        panels.append(Panel(sentence=sentence, characters=find_cast(sentence, cast), caption=caption, dialogue=lines))
    if invented:
        names = ", ".join(map(repr, dict.fromkeys(invented)))
        warnings.insert(0, f"the LLM named people not in the cast, not drawn as anyone: {names}")
    return panels, warnings
