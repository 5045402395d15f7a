"""The content policy: what StoryFace refuses to draw, checked on every prompt before anything renders.

StoryFace learns real people's faces, so by default it refuses sexual or nude content for any prompt
with a cast identity in it, and sexual content, nudity or undressing next to anyone who may be a minor
always. Terms come from the word list ``storyface/data/content_policy.txt`` (17 languages; selected
from LDNOOBW, CC BY 4.0, plus StoryFace's own phrases and an allow-list of ordinary phrases such as
"naked eye"); :mod:`storyface.safety.wordlist` reads text through case, accents, look-alike letters,
zero-width characters, leetspeak, repeated letters and spaced-out or dotted letters. The prompt is
read for sexual content, nudity and revealing clothing; the negative prompt for clothing left out
(one garment that covers the body is enough when the prompt shows a person). Text rules cannot catch
everything: :mod:`storyface.safety.images` offers an image classifier for rendered panels.

Modes (``STORYFACE_CONTENT_POLICY`` or the ``mode`` argument):

* ``strict`` (default): no sexual content, no nudity or undressing, in any prompt.
* ``fictional``: also allows non-explicit nudity in prompts that name no cast identity and no
  well-known person. Sexual content, real people and minors stay refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from ..errors import InputError, StoryFaceError
from .wordlist import CONFUSABLES, LEET, LEET_SYMBOLS, MAX_PIECES, Term, WordList, compile_term, fold, views

__all__ = [
    "CONFUSABLES", "LEET", "LEET_SYMBOLS", "MAX_PIECES", "ContentPolicy", "ContentPolicyError", "Finding", "Term",
    "WordList", "check_prompt", "compile_term", "default_word_list", "fold", "minor_age", "names_known_person",
    "refusal_message", "views",
]  # fmt: skip

ENV_VAR = "STORYFACE_CONTENT_POLICY"
MODES = ("strict", "fictional")
WORD_LIST = "data/content_policy.txt"
CELEB_LIST = "data/celeb_names.txt"
POSITIVE = ("sexual", "nudity", "revealing", "minors", "person")  # sections checked in the prompt
NEGATIVE = ("undress", "garments", "aging")  # sections checked in the negative prompt
README_HINT = "see README 'Safety'"

LABELS = {
    "sexual": "sexual content",
    "nudity": "nudity or undressing",
    "revealing": "underwear or see-through clothing",
    "undress": "clothing to leave out, i.e. undressing",
    "garments": "a garment to leave out of a picture of a person, i.e. undressing",
}
NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"
).split()
# "years old" in the list's languages, folded (no accents): "15 Jahre alt", "15 años", "15 лет", "15 yaşında".
AGE_UNITS = (
    r"years?\s*old|yrs?\s*old|yo|y\s*o|jahre?\s*alt|jahrige\w*|anos?|anni|ans|jaar|ar|lat|let|лет|года?"
    r"|yasinda|yas|tahun|سنة|سنوات|عاما?"
)
AGE_PATTERNS = (
    re.compile(rf"(?<!\w)(\d{{1,2}})\s*(?:{AGE_UNITS})(?!\w)"),
    re.compile(r"(?<!\w)(\d{1,2})\s*(?:岁|歲|歳|才)"),  # Chinese, Japanese: no space after the unit
    re.compile(r"(?<!\w)aged?\s*(\d{1,2})(?!\w)"),
    re.compile(rf"(?<!\w)({'|'.join(NUMBER_WORDS)})\s*(?:years?|yrs?)\s*old(?!\w)"),
)


class ContentPolicyError(StoryFaceError):
    """A prompt the content policy refuses; the message names the policy and what to change."""


@lru_cache(maxsize=1)
def default_word_list() -> WordList:
    """The shipped word list, parsed once per process on first use."""
    return WordList.parse(resources.files("storyface").joinpath(WORD_LIST).read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _celebrities() -> re.Pattern:
    lines = resources.files("storyface").joinpath(CELEB_LIST).read_text(encoding="utf-8").splitlines()
    names = [fold(n).split() for n in lines if n.strip() and not n.lstrip().startswith("#")]
    return re.compile(r"(?<!\w)(?:" + "|".join(r"\s+".join(map(re.escape, n)) for n in names) + r")(?!\w)")


def names_known_person(text: str) -> bool:
    """Whether the text names a well-known real person (the celebrity list of the identity prior)."""
    return bool(_celebrities().search(views(text)[0][0]))


def minor_age(text: str) -> str | None:
    """An age under 18 written in the text ("12 year old", "aged 15", "13yo"), or None."""
    words = views(text)[0][0]
    for pattern in AGE_PATTERNS:
        for match in pattern.finditer(words):
            value = match.group(1)
            age = NUMBER_WORDS.index(value) + 1 if value in NUMBER_WORDS else int(value)
            if age < 18:
                return match.group(0)
    return None


# -- the policy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """Why a prompt is refused: which rule, which category, the listed term, and where it was."""

    rule: str  # "minors" | "real people" | "explicit content" | "strict"
    category: str
    term: str
    where: str  # "the prompt" | "the negative prompt"
    minor: str | None = None  # the word or age that makes it about a minor


@dataclass(frozen=True)
class ContentPolicy:
    """What to refuse; ``mode`` is ``strict`` (default) or ``fictional`` (see the module docstring)."""

    mode: str = "strict"
    words: WordList = field(default_factory=default_word_list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(
                f"unknown content policy {self.mode!r}; choose one of: {', '.join(MODES)} "
                f"(set {ENV_VAR} or the policy option); {README_HINT}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, mode: str | None = None) -> ContentPolicy:
        """``mode`` if given, else ``STORYFACE_CONTENT_POLICY``, else strict."""
        env = os.environ if env is None else env
        chosen = mode if mode is not None else env.get(ENV_VAR, "")
        return cls(chosen.strip().lower() or "strict")

    def finding(
        self,
        prompt: str,
        negative_prompt: str = "",
        has_identity: bool = True,
        tokens: Iterable[str] = (),
        where: str = "the prompt",
    ) -> Finding | None:
        """The first reason to refuse, or None; ``tokens`` (identity trigger words) are not read as words.

        ``where`` names the text in the message: "the prompt", or for text drawn on the page "the
        title", "the caption of panel 2", ... (checked like a prompt with no negative prompt).
        """
        for token in tokens:
            prompt = prompt.replace(token, " ")
        pos = self.words.scan(prompt, POSITIVE)
        neg = self.words.scan(negative_prompt, NEGATIVE) if negative_prompt.strip() else {}
        hits = [(c, pos[c][0], where) for c in ("sexual", "nudity", "revealing") if c in pos]
        if "undress" in neg:
            hits.append(("undress", neg["undress"][0], "the negative prompt"))
        if "garments" in neg and (has_identity or "person" in pos or "minors" in pos or names_known_person(prompt)):
            # one garment that covers the body is enough: left out of a person, it undresses them
            hits.append(("garments", ", ".join(neg["garments"][:3]), "the negative prompt"))
        if not hits:
            return None
        category, term, found_in = hits[0]
        minor = (pos.get("minors") or [None])[0] or minor_age(prompt) or (neg.get("aging") or [None])[0]
        if minor is not None:
            return Finding("minors", category, term, found_in, minor)
        real = has_identity or names_known_person(prompt)
        if real:
            return Finding("real people", category, term, found_in)
        if category == "sexual":
            return Finding("explicit content", category, term, found_in)
        return Finding("strict", category, term, found_in) if self.mode == "strict" else None

    def check(
        self,
        prompt: str,
        negative_prompt: str = "",
        has_identity: bool = True,
        tokens: Iterable[str] = (),
        where: str = "the prompt",
    ) -> None:
        """Raise :class:`ContentPolicyError` if the policy refuses this prompt pair."""
        found = self.finding(prompt, negative_prompt, has_identity, tokens, where)
        if found is not None:
            raise ContentPolicyError(refusal_message(found, self.mode))

    def check_text(self, text: str, where: str, has_identity: bool = True) -> None:
        """Refuse text drawn on the page (a title, a caption, a dialogue line) like a prompt; ``where``
        names it in the message ("the title")."""
        self.check(text, "", has_identity, where=where)


def refusal_message(found: Finding, mode: str) -> str:
    """Names the policy and what was found; says what to do, without a lecture or an accusation.

    The minors rule fires on words ("kids", "a 15-year-old") next to a listed term, not on what
    the writer meant, so its message states the rule and the two words and leaves intent alone.
    """
    what = f"{found.where} has {LABELS[found.category]} ('{found.term}')"
    head = f"refused by StoryFace's content policy ({found.rule}"
    if found.rule == "minors":
        return (
            f"{head}): in any mode, StoryFace draws no sexual content, nudity or undressing in a prompt that "
            f"also mentions a child, a teenager or an age under 18 — {what} and mentions '{found.minor}'. "
            f"Reword the panel so the two do not meet; {README_HINT}"
        )
    if found.rule == "real people":
        return (
            f"{head}, mode {mode}): sexual or nude content is never drawn for a cast identity or a real person — "
            f"{what}. Rewrite the panel without it; {README_HINT}"
        )
    if found.rule == "explicit content":
        return f"{head}): sexual content is not drawn in any mode — {what}. Rewrite it; {README_HINT}"
    return (
        f"{head}, mode strict): nudity is not drawn by default — {what}. For fiction without real people set "
        f"{ENV_VAR}=fictional; {README_HINT}"
    )


def check_prompt(
    prompt: str,
    negative_prompt: str = "",
    has_identity: bool = True,
    policy: ContentPolicy | None = None,
    tokens: Iterable[str] = (),
) -> None:
    """Refuse a prompt the policy forbids (``policy=None``: from the environment, strict by default)."""
    (policy or ContentPolicy.from_env()).check(prompt, negative_prompt, has_identity, tokens)
