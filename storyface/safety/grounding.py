"""Is a panel sentence the LLM wrote grounded in the story the user wrote?

An LLM may rephrase ("selects" for "was selecting") and spell out names for pronouns, but what it
adds must not become a prompt or a caption: a URL, an injected instruction, a word the content policy
lists, or more than a couple of words the story never used. Two rules keep that from being laundered:

* only the user's cast counts as names; words the LLM puts in its own ``characters`` list do not (else
  any new word could be declared a "name");
* new content words are counted, not compared with the sentence's length: padding an invented
  phrase with enough story words must not dilute it.

Every text field an LLM returns (panel sentence, caption, dialogue line) goes through
:func:`grounding_problems`. Pure functions, so the rules are testable alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from .policy import ContentPolicy, fold

MAX_NOVEL_WORDS = 2  # a rephrasing adds a verb or two ("chats", "talk"); a third new word is made up
PREFIX = 5  # "conversation" and "conversed" share a root; 5 letters is enough to say so
LINK = re.compile(
    r"https?://\S+|www\.\S+|\b[\w-]+\.(?:com|net|org|io|ru|xyz|info|biz|ly|me|app|dev|co)\b"  # links, bare domains
    r"|\b[\w.+-]+@[\w-]+\.\w+"  # e-mail addresses
)
INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget)\b.{0,30}\b(?:instructions?|rules?|prompts?)\b|\bsystem prompt\b|\bas an ai\b"
    r"|\bjailbreak\b|\bdo anything now\b",
    re.IGNORECASE,
)
STOPWORDS = frozenset(
    """the and but for nor yet with without within into onto from over under about above below after before
    during while when where then than that this these those there here who whom whose which what why how
    was were are is been being be has have had having does did doing done not all any some each every both
    more most other such only own same too very can could will would shall should may might must also again
    just still even ever never now next near nearby later soon once together each their them they his her
    him she he its it our ours your yours you one two three four five six seven eight nine ten first last
    scene panel picture image shows showing shown appears stands standing sits sitting""".split()
)


def _stem(word: str) -> str:
    for suffix in ("ingly", "edly", "ies", "ing", "ed", "es", "ly", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    if len(word) > 3 and word[-1] == word[-2]:
        word = word[:-1]  # shopp(ing) -> shop
    return word[:-1] if len(word) > 3 and word.endswith("e") else word  # dislike/dislik(ed)


def content_words(text: str) -> list[str]:
    """Folded words of 3+ letters that carry meaning (no function words)."""
    return [w for w in re.findall(r"[^\W\d_]{3,}", fold(text)) if w not in STOPWORDS]


def added_text(sentence: str, story: str, names: Iterable[str] = (), policy: ContentPolicy | None = None) -> str | None:
    """Why ``sentence`` says more than ``story`` (a short reason), or None when it is grounded in it.

    ``names`` must be the user's cast only, never names the LLM reported: those are its own words.
    """
    for pattern, what in ((LINK, "a link"), (INSTRUCTION, "an instruction to the model")):
        found = pattern.search(sentence)
        if found and not pattern.search(story):
            return f"it adds {what} ({found.group(0)!r}) the story does not contain"
    policy = policy or ContentPolicy()
    categories = ("sexual", "nudity", "revealing")
    said = {term.text for hits in policy.words.matches(story, categories).values() for term, _ in hits}
    for hits in policy.words.matches(sentence, categories).values():
        extra = [seen for term, seen in hits if term.text not in said]
        if extra:
            return f"it adds {extra[0]!r}, which the story does not say"
    known_names = {w for n in names for w in content_words(n)}
    story_words = {_stem(w) for w in content_words(story)}
    prefixes = {w[:PREFIX] for w in story_words if len(w) >= PREFIX}
    words = [w for w in content_words(sentence) if w not in known_names]
    novel = list(dict.fromkeys(w for w in words if _stem(w) not in story_words and w[:PREFIX] not in prefixes))
    if len(novel) > MAX_NOVEL_WORDS:
        return "it adds words the story does not contain (" + ", ".join(novel[:6]) + ")"
    return None


def grounding_problems(
    fields: Mapping[str, str], story: str, cast: Iterable[str], policy: ContentPolicy | None = None
) -> dict[str, str]:
    """For each text field an LLM returned (``{"panel 2 caption": "...", ...}``), why it is not grounded
    in ``story``; an empty dict when all are. ``cast`` is the user's cast, the only names allowed.

    The caller drops (or replaces with the offline parser's text) every field named in the result.
    """
    names = list(cast)
    policy = policy or ContentPolicy()
    problems = {}
    for field_name, text in fields.items():
        reason = added_text(text, story, names, policy) if text.strip() else None
        if reason:
            problems[field_name] = reason
    return problems
