"""The LLM story parser: any OpenAI-compatible chat-completions server (OpenAI, Gemini's OpenAI
endpoint, OpenRouter, Ollama, vLLM, llama.cpp server).

The model only proposes panels; everything it says is checked here like user input (names against the
cast, panel count, JSON shape, every text field grounded in the story). One bad answer is retried once,
then :class:`LLMError` says why. The API key travels only in the Authorization header and is scrubbed
from every message we make.

The request asks for structured output built from the answer's pydantic model (``response_format`` of
type ``json_schema``, strict); a server that refuses it (HTTP 400) is asked again with ``json_object``,
then with no ``response_format`` at all. Those refusals are not counted as bad answers.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ..errors import InputError, StoryError
from ..limits import MAX_LLM_REPLY_BYTES, MAX_PANELS
from ..names import tidy
from .answer import Answer, check_panels, structured_schema
from .schema import Panel, PanelScript, cap_panels, check_story, clean_cast, missing_cast_warning

log = logging.getLogger(__name__)

ATTEMPTS = 2  # the first answer and one retry
FORMATS = ("json_schema", "json_object", None)  # what to ask for, best first; an HTTP 400 steps down
SCHEMA_NAME = "comic_panel_script"

SYSTEM_PROMPT = """You turn a short story into the script of a comic. Reply with JSON only, in this shape:
{"panels": [{"sentence": "...", "characters": ["Full Name"], "caption": "..." or null, \
"dialogue": [{"speaker": "Full Name", "text": "...", "kind": "speech"}]}]}
Rules:
1. One panel per action or moment, in story order, at most %(max_panels)d panels.
2. "sentence" is what the panel shows, short and self-contained, without needing the others. Never put \
quoted speech in it: say who speaks to whom instead ("Eileen Collins speaks to Grace Hopper.").
3. Write each person's full name exactly as in the cast list. Never refer to them with pronouns \
(he, she, they, him, her, them, his, their) or with a first or last name alone.
4. Name only people in the cast: %(cast)s. Anyone else appears only as a plain description ("a cashier").
5. "characters" lists the cast members named in that sentence, in the order they appear; [] for a panel \
that shows none of them (a place, the weather, a crowd).
6. "caption" is the story's own sentence for that moment, copied word for word, without the quoted speech \
that goes into "dialogue"; null when nothing is left.
7. "dialogue" holds the quoted speech of that moment: "speaker" is the full cast name of who says it, \
"text" the words inside the quotation marks, copied exactly, "kind" is "thought" for a thought, "whisper" \
for a whisper, else "speech". Leave a line out when the story does not make clear which cast member \
says it (it stays in the caption). Words in quotation marks that nobody says (titles, \
so-called "words") are not dialogue.
8. Do not add events, people, words or details the story does not contain."""


class LLMError(StoryError):
    """The LLM server gave no usable answer (unreachable, refused, timed out, or nonsense twice)."""


class LLMSettings(BaseModel):
    """Where the chat-completions server is; the key is a SecretStr so reprs and logs show ``****``."""

    model_config = ConfigDict(frozen=True)

    base_url: str  # e.g. https://api.openai.com/v1, http://localhost:11434/v1
    model: str
    api_key: SecretStr = SecretStr("")  # local servers (Ollama, llama.cpp) need none
    timeout_s: float = Field(default=30, gt=0, le=600)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc:
            raise ValueError("base_url must be an http(s) URL such as http://localhost:11434/v1")
        return value

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LLMSettings | None:
        """Read STORYFACE_LLM_BASE_URL / _MODEL / _API_KEY (or OPENAI_API_KEY); None when unset."""
        env = os.environ if env is None else env
        base_url = env.get("STORYFACE_LLM_BASE_URL", "").strip()
        model = env.get("STORYFACE_LLM_MODEL", "").strip()
        if not base_url or not model:
            return None
        key = env.get("STORYFACE_LLM_API_KEY") or env.get("OPENAI_API_KEY") or ""
        timeout = env.get("STORYFACE_LLM_TIMEOUT_S", "30")
        try:
            return cls(base_url=base_url, model=model, api_key=SecretStr(key.strip()), timeout_s=float(timeout))
        except ValidationError as exc:
            problem = _scrub("; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors()), key)
        except ValueError:
            problem = f"STORYFACE_LLM_TIMEOUT_S must be a number of seconds, not {timeout!r}"
        raise InputError(f"LLM settings from the environment are invalid: {problem}")  # outside: no chained input


class _BadAnswer(Exception):
    """One attempt failed in a way another attempt might not."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.status = status


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text


def _short(text: str, limit: int = 200) -> str:
    text = tidy(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _request_body(story: str, cast: list[str], settings: LLMSettings, answer_format: str | None) -> dict:
    system = SYSTEM_PROMPT % {"max_panels": MAX_PANELS, "cast": "; ".join(cast)}
    body = {
        "model": settings.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": f"Cast: {'; '.join(cast)}\n\nStory:\n{story}"},
        ],
    }
    if answer_format == "json_schema":
        schema = {"name": SCHEMA_NAME, "schema": structured_schema(), "strict": True}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif answer_format == "json_object":
        body["response_format"] = {"type": "json_object"}
    return body


def _post(client: httpx.Client, settings: LLMSettings, body: dict) -> str:
    """One chat-completions call; returns the assistant's text. Every message it makes is scrubbed of
    the key, and raised outside ``except`` blocks so no exception holding the request is chained."""
    url, key = f"{settings.base_url}/chat/completions", _key(settings)
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    failure = None
    try:
        response = client.post(url, json=body, headers=headers, timeout=settings.timeout_s)
    except httpx.TimeoutException:
        failure = f"no answer within {settings.timeout_s:g} s"
    except httpx.HTTPError as exc:
        failure = f"could not reach {url} ({type(exc).__name__}: {_scrub(str(exc), key)})"
    if failure:
        raise _BadAnswer(failure)
    if len(response.content) > MAX_LLM_REPLY_BYTES:
        raise _BadAnswer(f"the reply is {len(response.content):,} bytes; a panel script is a few KB")
    said = _short(_scrub(response.text, key))
    if response.status_code in (401, 403):
        raise LLMError(
            f"the LLM server at {url} refused the request (HTTP {response.status_code}: {said}); "
            "check STORYFACE_LLM_API_KEY"
        )
    if response.status_code >= 400:
        raise _BadAnswer(f"HTTP {response.status_code}: {said}", response.status_code)
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except RecursionError:  # "[[[[...": json gives up on deep nesting with RecursionError, not ValueError
        content = None
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str) or not content.strip():
        raise _BadAnswer(f"not a chat-completions reply with message content: {said}")
    return content


def _loads(text: str) -> object:
    """json.loads, with deep nesting (a RecursionError) reported as a bad answer like any broken JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        pass
    raise _BadAnswer("the reply's JSON is nested too deeply to be a panel script")


def _json_from(content: str) -> object:
    """The JSON in a reply, tolerating ```json fences and chatter around one object."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", content, re.DOTALL | re.IGNORECASE)
    text = (fenced.group(1) if fenced else content).strip()
    try:
        return _loads(text)
    except json.JSONDecodeError:
        start, end = text.find("{"), text.rfind("}")
        try:
            return _loads(text[start : end + 1]) if 0 <= start < end else _loads(text)
        except json.JSONDecodeError as exc:
            raise _BadAnswer(f"the reply is not valid JSON ({exc.msg} at character {exc.pos})") from None


def _check_answer(content: str, cast: list[str], story: str = "") -> tuple[list[Panel], list[str]]:
    """Validate the model's panels against the cast and the story; raises _BadAnswer when nothing usable is left.

    Every text field (sentence, caption, each line) must be grounded in the story
    (:func:`storyface.safety.grounding.grounding_problems`): a panel whose sentence is not is left out, a
    caption or line that is not is dropped, each with a warning. See :func:`.answer.check_panels`.
    """
    obj = _json_from(content)
    try:
        answer = Answer.model_validate({"panels": obj} if isinstance(obj, list) else obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _BadAnswer(f"the JSON does not match the panel schema ({where}: {first['msg']})") from None
    except RecursionError:  # a deep structure that json could still read
        raise _BadAnswer("the reply's JSON is nested too deeply to be a panel script") from None
    panels, warnings = check_panels(answer.panels, cast, story)
    if not any(p.characters for p in panels):
        dropped = [w for w in warnings if w.startswith("left out")]
        raise _BadAnswer(dropped[0] if dropped else "no panel names anyone in the cast")
    return cap_panels(panels, warnings), warnings


def _ask(client: httpx.Client, story: str, cast: list[str], settings: LLMSettings) -> tuple[list[Panel], list[str]]:
    reasons: list[str] = []
    formats = list(FORMATS)
    attempt = 0
    while attempt < ATTEMPTS:
        try:
            content = _post(client, settings, _request_body(story, cast, settings, formats[0]))
            return _check_answer(content, cast, story)
        except _BadAnswer as bad:
            if bad.status == 400 and len(formats) > 1:  # the server refuses this response_format: step down
                log.warning("LLM server refused response_format %s (%s); asking without it", formats[0], bad)
                formats.pop(0)
                continue
            attempt += 1
            reasons.append(str(bad))
            log.warning("LLM attempt %d/%d unusable: %s", attempt, ATTEMPTS, bad)
    where = f"{settings.model} at {settings.base_url}"
    raise LLMError(f"the LLM ({where}) gave no usable answer: " + "; then ".join(reasons))


def _key(settings: LLMSettings) -> str:
    return settings.api_key.get_secret_value()


def parse_story_llm(
    story: str, cast: list[str], settings: LLMSettings, client: httpx.Client | None = None
) -> PanelScript:
    """Ask the LLM for panels and check them; one retry, then :class:`LLMError`."""
    text, names = check_story(story), clean_cast(cast)
    log.info("asking %s at %s for panels", settings.model, settings.base_url)
    if client is not None:
        panels, warnings = _ask(client, text, names, settings)
    else:
        with httpx.Client() as own:
            panels, warnings = _ask(own, text, names, settings)
    note = missing_cast_warning(names, panels)
    return PanelScript(panels=panels, backend="llm", warnings=[*([note] if note else []), *warnings], cast=names)
