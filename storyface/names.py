"""Person names: the one owner of every rule about them.

A name is typed by a person (web app, CLI, an identity file's metadata) and then decides three things:
how it is shown (:func:`normalize_name`), which names are the same person (:func:`name_key`), and the
trigger word the text encoders learn (:func:`identity_token`, also the file slug). Everything else in
StoryFace asks this module, so "Grace-Hopper" and "grace  hopper" are one person in the library, in a
cast and in a prompt alike.

Same person means: equal after Unicode compatibility folding, case folding, Latin accents dropped, and
Unicode's confusable skeleton (UTS #39, through ICU), with spacing and punctuation ignored. So a
Cyrillic "а" cannot make a second "Grace Hopper", while every script's letters count ("Nikos Γεωργίου"
and "Nikos Παπαδόπουλος" are two people).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from .errors import InputError
from .limits import MAX_NAME_CHARS

# Letters that render as nothing yet are not format characters (so category checks miss them).
INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e\u17b4\u17b5")
JOINERS = "\u200c\u200d"  # ZWNJ/ZWJ: some scripts need them inside words; they never change who is meant
# "Swift's", "James'": the possessive endings a name may carry in a sentence.
POSSESSIVE = r"['’]s(?![\w'’-])|(?<=[sS])['’](?![\w'’-])"
_KEY_WORD = re.compile(r"[^\W_]+")


def tidy(text: str) -> str:
    """Runs of whitespace as one space, no space at the ends: how every typed text is compared."""
    return " ".join(str(text).split())


def _invisible(ch: str) -> bool:
    if ch in JOINERS:
        return False
    return ch in INVISIBLE_LETTERS or unicodedata.category(ch) in ("Cf", "Cs", "Co", "Cn") or _ignorable(ch)


@lru_cache(maxsize=4096)
def _ignorable(ch: str) -> bool:
    import icu

    return bool(icu.Char.hasBinaryProperty(ch, icu.UProperty.DEFAULT_IGNORABLE_CODE_POINT))


def normalize_name(name: object, what: str = "name") -> str:
    """The display form of a person's name, or an :class:`InputError` saying what to fix."""
    if not isinstance(name, str):
        raise InputError(f"a {what} must be text, got {type(name).__name__}")
    text = unicodedata.normalize("NFC", name).strip()
    bad = sorted({repr(c) for c in text if unicodedata.category(c) == "Cc"})
    if bad:
        raise InputError(f"{what} {name!r} contains control characters ({', '.join(bad)}); type it on one line")
    # invisible marks and filler letters make one name look like another (or like nothing)
    hidden = sorted({f"U+{ord(c):04X}" for c in text if _invisible(c)})
    if hidden:
        raise InputError(f"{what} {name!r} contains invisible or invalid characters ({', '.join(hidden)}); retype it")
    if "/" in text or "\\" in text:
        raise InputError(f"{what} {name!r} contains a slash; use letters, digits, spaces, '-' or '.'")
    text = tidy(text)
    if not _KEY_WORD.search(text):
        raise InputError(f"a {what} is required (it was empty or had no letters)")
    if len(text) > MAX_NAME_CHARS:
        raise InputError(f"{what} is {len(text)} characters long; keep it to {MAX_NAME_CHARS}")
    return text


def _fold_latin(word: str) -> str:
    """Drop accents where that leaves plain ASCII ("zoë" -> "zoe"); other scripts keep their marks."""
    stripped = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return stripped if stripped.isascii() else unicodedata.normalize("NFC", word)


def _words(name: str) -> list[str]:
    """Case-folded, compatibility-folded words (letters and digits of any script), accents dropped in Latin."""
    folded = unicodedata.normalize("NFKC", name).casefold().replace("\u200c", "").replace("\u200d", "")
    return [_fold_latin(w) for w in _KEY_WORD.findall(folded)]


@lru_cache(maxsize=4096)
def _skeleton(text: str) -> str:
    import icu

    return icu.SpoofChecker().getSkeleton(0, text)


def name_key(name: str) -> str:
    """What two names must share to be the same person (see the module docstring)."""
    skeleton = unicodedata.normalize("NFC", _skeleton(" ".join(_words(name))))  # marks back on their letters
    return "-".join(_KEY_WORD.findall(skeleton.casefold()))


def same_person(a: str, b: str) -> bool:
    return name_key(a) == name_key(b)


def identity_token(name: str) -> str:
    """The trigger word for a person: ``"Grace Hopper"`` -> ``"<grace-hopper>"``.

    Latin names (accents folded) give their words; a name with letters of another script keeps what
    is ASCII and adds a short hash of its key (``"<nikos-3f2a9c1d>"``), so different people never share
    a token and names that share one are always the same person.
    """
    words = _words(name)
    ascii_words = [w for w in words if w.isascii()]
    slug = "-".join(ascii_words)
    if len(ascii_words) < len(words) or not slug:
        digest = hashlib.sha1(name_key(name).encode()).hexdigest()[:8]
        slug = f"{slug}-{digest}" if slug else f"id-{digest}"
    return f"<{slug}>"


def file_slug(name: str) -> str:
    """A file-name-safe stem for a person's files (``grace-hopper``): the token without brackets."""
    return identity_token(name).strip("<>")


def unique_names(names: Iterable[object]) -> list[str]:
    """Tidied names, empty ones and repeats of the same person dropped; the first spelling is kept."""
    seen: set[str] = set()
    kept: list[str] = []
    for raw in names:
        name = tidy(raw)
        if name and _KEY_WORD.search(name) and (key := name_key(name)) not in seen:
            seen.add(key)
            kept.append(name)
    return kept
