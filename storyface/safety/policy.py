"""The content policy: what StoryFace refuses to draw, checked on every prompt before anything renders.

StoryFace learns real people's faces, so by default it refuses sexual or nude content for any prompt
with a cast identity in it, and sexualised content of anyone who may be a minor always. Terms come from
the maintained word list ``storyface/data/content_policy.txt``; matching sees through case, accents,
look-alike letters from other alphabets, zero-width characters, leetspeak, repeated letters and
spaced-out or dotted letters, in the prompt and the negative prompt.

Modes (``STORYFACE_CONTENT_POLICY`` or the ``mode`` argument):

* ``strict`` (default): no sexual content, no nudity or undressing, in any prompt.
* ``fictional``: also allows non-explicit nudity in prompts that name no cast identity and no
  well-known person. Sexual content, real people and minors stay refused.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from ..errors import InputError, StoryFaceError

ENV_VAR = "STORYFACE_CONTENT_POLICY"
MODES = ("strict", "fictional")
WORD_LIST = "data/content_policy.txt"
CELEB_LIST = "data/celeb_names.txt"
POSITIVE = ("sexual", "nudity", "revealing", "minors")  # sections checked in the prompt
NEGATIVE = ("undress", "garments", "aging")  # sections checked in the negative prompt
README_HINT = "see README 'Safety'"
MAX_PIECES = 6  # longest run of short pieces rejoined ("n ak ed")

LABELS = {
    "sexual": "sexual content",
    "nudity": "nudity or undressing",
    "revealing": "underwear or see-through clothing",
    "undress": "clothing to leave out, i.e. undressing",
    "garments": "garments to leave out, i.e. undressing",
}
# Leetspeak and look-alike symbols a term letter may be written as ("n4k3d", "$ex", "n!pple").
LEET = {"a": "a4@", "b": "b8", "e": "e3", "g": "g96", "i": "i1!|", "l": "l1!|", "o": "o0", "s": "s5$", "t": "t7+", "z": "z2"}
LEET_SYMBOLS = "@$!|+"
# Letters from other alphabets that look Latin (NFKD keeps them apart): Cyrillic, Greek, symbols.
CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
        "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
        "ɑ": "a", "ɡ": "g", "ı": "i", "ʀ": "r", "ᴅ": "d", "ɴ": "n", "ᴋ": "k", "ᴇ": "e",
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
        "υ": "u", "χ": "x", "×": "x", "ø": "o", "đ": "d", "ł": "l", "ß": "ss", "æ": "ae", "œ": "oe",
    }
)  # fmt: skip
NUMBER_WORDS = (
    "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"
).split()
AGE_PATTERNS = (
    re.compile(r"(?<!\w)(\d{1,2})\s*(?:years?\s*old|yrs?\s*old|yo|y\s*o)(?!\w)"),
    re.compile(r"(?<!\w)aged?\s*(\d{1,2})(?!\w)"),
    re.compile(rf"(?<!\w)({'|'.join(NUMBER_WORDS)})\s*(?:years?|yrs?)\s*old(?!\w)"),
)


class ContentPolicyError(StoryFaceError):
    """A prompt the content policy refuses; the message names the policy and what to change."""


# -- normalising text --------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower case, no accents, no zero-width or direction marks, look-alike letters made Latin."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me", "Cf"))
    return kept.casefold().translate(CONFUSABLES)


_SEPARATOR = re.compile(rf"[^\w{re.escape(LEET_SYMBOLS)}]|_")


def views(text: str) -> list[tuple[str, bool]]:
    """The readings of a text an obfuscation could hide in: ``(text, whole words only)``.

    1. words: punctuation as spaces ("semi-nude" -> "semi nude");
    2. joined: punctuation inside a word dropped ("n-a-k-e-d", "n.a.k.e.d" -> "naked");
    3. spaced: runs of 3+ single letters joined ("n a k e d" -> "naked"), matched anywhere in the run;
    4. split: a word joined to a neighbour of at most 2 letters ("na ked" -> "naked"), and runs of such
       short pieces joined ("n ak ed" -> "naked").
    """
    folded = fold(text)
    words = _SEPARATOR.sub(" ", folded).split()
    joined = [w for w in (_SEPARATOR.sub("", t) for t in folded.split()) if w]
    singles = [run for run in _runs(words, 1) if len(run) >= 3]
    pieces = [a + b for a, b in zip(words, words[1:]) if min(len(a), len(b)) <= 2]
    for run in _runs(words, 2):
        pieces += ["".join(run[i:j]) for i in range(len(run)) for j in range(i + 3, min(i + MAX_PIECES, len(run)) + 1)]
    # " / " between runs and pieces: a multi-word term needs plain spaces, so it never spans two of them
    return [
        (" ".join(words), True),
        (" ".join(joined), True),
        (" / ".join("".join(r) for r in singles), False),
        (" / ".join(pieces), True),
    ]


def _runs(words: list[str], longest: int) -> list[list[str]]:
    """Maximal runs of consecutive words no longer than ``longest`` characters."""
    runs, run = [], []
    for word in [*words, " " * (longest + 1)]:
        if len(word) <= longest:
            run.append(word)
        else:
            if run:
                runs.append(run)
            run = []
    return runs


# -- the word list -----------------------------------------------------------------------------


def _letter(ch: str) -> str:
    return "[" + re.escape(LEET.get(ch, ch)) + "]"


def _word_regex(word: str) -> str:
    """One word of a term: each run of a letter may repeat ("naaaked") or be leetspeak ("n4k3d")."""
    if word == "*":
        return r"(?:\S+\s+){0,2}"
    alternatives = []
    for alt in word.split("/"):
        runs = [(m.group(0)[0], len(m.group(0))) for m in re.finditer(r"(.)\1*", alt)]
        alternatives.append("".join(_letter(c) + ("+" if n == 1 else f"{{{n},}}") for c, n in runs))
    return "(?:" + "|".join(alternatives) + ")"


def compile_term(term: str, whole: bool = True) -> re.Pattern:
    """A term of the word list as a regex over :func:`views`; an English plural is allowed."""
    words = fold(term).split()
    body = ""
    for i, word in enumerate(words):
        part = _word_regex(word)
        body += part if word == "*" else part + (r"\s+" if i < len(words) - 1 else "")
    body += "(?:" + _letter("e") + "?" + _letter("s") + "+)?"
    return re.compile(rf"(?<!\w){body}(?!\w)" if whole else body)


@dataclass(frozen=True)
class Term:
    category: str
    text: str  # as written in the list, for messages
    whole: re.Pattern
    anywhere: re.Pattern  # for runs of spaced-out letters, where word edges are lost


@dataclass(frozen=True)
class WordList:
    """Terms by section of the word list."""

    terms: Mapping[str, tuple[Term, ...]]

    @classmethod
    def parse(cls, text: str) -> WordList:
        sections: dict[str, list[Term]] = {}
        current = None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                current = line[1:-1].strip()
                sections.setdefault(current, [])
            elif current is None:
                raise InputError(f"content policy word list, line {number}: {line!r} comes before any [section]")
            else:
                sections[current].append(Term(current, line, compile_term(line), compile_term(line, whole=False)))
        return cls({name: tuple(terms) for name, terms in sections.items()})

    def matches(self, text: str, categories: Iterable[str]) -> dict[str, list[tuple[Term, str]]]:
        """(term, the text it matched) per category, through every obfuscation :func:`views` undoes."""
        readings = [(view, whole) for view, whole in views(text) if view]
        found: dict[str, list[tuple[Term, str]]] = {}
        for category in categories:
            for term in self.terms.get(category, ()):
                for view, whole in readings:
                    match = (term.whole if whole else term.anywhere).search(view)
                    if match:
                        found.setdefault(category, []).append((term, match.group(0)))
                        break
        return found

    def scan(self, text: str, categories: Iterable[str]) -> dict[str, list[str]]:
        """Like :meth:`matches`, each shown as written ("n4k3d, read as naked") so a person sees what to change."""
        return {c: [_shown(t.text, seen) for t, seen in hits] for c, hits in self.matches(text, categories).items()}


def _shown(term: str, seen: str) -> str:
    if seen == fold(term) or "/" in term or "*" in term:
        return seen
    return f"{seen}, read as {term}"


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
        self, prompt: str, negative_prompt: str = "", has_identity: bool = True, tokens: Iterable[str] = ()
    ) -> Finding | None:
        """The first reason to refuse, or None; ``tokens`` (identity trigger words) are not read as words."""
        for token in tokens:
            prompt = prompt.replace(token, " ")
        pos = self.words.scan(prompt, POSITIVE)
        neg = self.words.scan(negative_prompt, NEGATIVE)
        hits = [(c, pos[c][0], "the prompt") for c in ("sexual", "nudity", "revealing") if c in pos]
        if "undress" in neg:
            hits.append(("undress", neg["undress"][0], "the negative prompt"))
        if len(neg.get("garments", ())) >= 2:
            hits.append(("garments", ", ".join(neg["garments"][:3]), "the negative prompt"))
        if not hits:
            return None
        category, term, where = hits[0]
        minor = (pos.get("minors") or [None])[0] or minor_age(prompt) or (neg.get("aging") or [None])[0]
        if minor is not None:
            return Finding("minors", category, term, where, minor)
        real = has_identity or names_known_person(prompt)
        if real:
            return Finding("real people", category, term, where)
        if category == "sexual":
            return Finding("explicit content", category, term, where)
        return Finding("strict", category, term, where) if self.mode == "strict" else None

    def check(
        self, prompt: str, negative_prompt: str = "", has_identity: bool = True, tokens: Iterable[str] = ()
    ) -> None:
        """Raise :class:`ContentPolicyError` if the policy refuses this prompt pair."""
        found = self.finding(prompt, negative_prompt, has_identity, tokens)
        if found is not None:
            raise ContentPolicyError(refusal_message(found, self.mode))


def refusal_message(found: Finding, mode: str) -> str:
    """Names the policy and what was found; says what to do, without a lecture."""
    what = f"{found.where} has {LABELS[found.category]} ('{found.term}')"
    head = f"refused by StoryFace's content policy ({found.rule}"
    if found.rule == "minors":
        return (
            f"{head}): sexual or nude content of anyone who may be a minor is never drawn, in any mode — "
            f"{what} and names someone who may be a minor ('{found.minor}'). Remove it; {README_HINT}"
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
