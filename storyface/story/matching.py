"""Finding a person's name inside text, in any script: one rule for the parser and the prompt builder.

A name matches as whole words: not inside a longer word ("Tay Swift" is not in "Tay Swiftly"). What
a "word" is depends on the script. Latin, Greek, Cyrillic, Arabic... separate words with spaces, so a
name must not touch a letter of those scripts. Chinese, Japanese, Thai, Lao, Khmer and Myanmar text has
no spaces (and Korean glues particles to names: "그레이스는"), so letters of those scripts never block
a match: "格蕾丝·霍珀走进博物馆" holds "格蕾丝·霍珀".

Name parts may be separated by spaces or by the middle dots Chinese and Japanese use to write foreign
names ("格蕾丝·霍珀", "グレース・ホッパー"), so a cast name typed with a space matches the dotted
spelling once, never as two names side by side.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..names import POSSESSIVE

# Scripts written without spaces between words (or, for Hangul, with particles glued on).
UNBROKEN = (
    "\u0e00-\u0eff"  # Thai, Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
    "\u31f0-\u31ff\uff66-\uff9f"  # Katakana extensions, half-width Katakana
    "\uac00-\ud7af\u1100-\u11ff"  # Hangul
)
# A letter or digit of a spaced script: what a name must not touch.
SPACED_WORD_CHAR = rf"[^\W{UNBROKEN}]"
BEFORE = rf"(?<!{SPACED_WORD_CHAR})(?<!['’-])"
AFTER = rf"(?!{SPACED_WORD_CHAR})(?!['’-])"
NAME_DOTS = "·・‧•･"  # middle dots between the parts of a transliterated name
SEPARATOR = rf"(?:\s*[{NAME_DOTS}]\s*|\s+)"
_PART_SPLIT = re.compile(SEPARATOR)
_UNBROKEN_CHAR = re.compile(f"[{UNBROKEN}]")


def name_parts(name: str) -> list[str]:
    """ "Grace Hopper" -> ["Grace", "Hopper"]; "格蕾丝·霍珀" -> ["格蕾丝", "霍珀"]."""
    return [p for p in _PART_SPLIT.split(name.strip()) if p]


def squash(text: str) -> str:
    """Case-folded, with every run of spaces or name dots as one space: how two spellings are compared."""
    return " ".join(name_parts(text.casefold()))


def is_unbroken(text: str) -> bool:
    """Does ``text`` contain letters of a script written without spaces?"""
    return bool(_UNBROKEN_CHAR.search(text))


def form_regex(form: str) -> str:
    """A regex for one name form, its parts joined by any separator."""
    return SEPARATOR.join(map(re.escape, name_parts(form)))


def names_regex(forms: Iterable[str]) -> str:
    """An alternation of name forms, longest first (so "Tay Swiftly" wins over "Tay Swift")."""
    ordered = sorted(set(forms), key=lambda f: (-len(f), f))
    return "|".join(form_regex(f) for f in ordered if f.strip())


def name_pattern(forms: Iterable[str]) -> re.Pattern:
    """Whole-word matches of any form, with an optional possessive: groups ``name`` and ``poss``."""
    return re.compile(rf"{BEFORE}(?P<name>{names_regex(forms)})(?P<poss>{POSSESSIVE})?{AFTER}", re.IGNORECASE)
