"""The content policy's word list: parsing it, reading text the way an obfuscation would hide in it,
and finding its terms fast.

A term is compiled once into a regex that sees through leetspeak and repeated letters; checking a
text would then cost one regex search per term and reading of the text (75 s for 1 MB with ~250
terms). Instead every reading is split into words once and each word is looked up by a *key* (the
word with leetspeak mapped to letters and letter runs collapsed): only terms whose first word has
that key are searched for with their regex, which keeps the exact matching rules while the cost
grows with the text's length, not with length x terms. Words in scripts written without spaces
(Chinese, Japanese, Thai, Korean with its attached particles) are matched anywhere inside a word.

Format of the list: ``[category]`` or ``[category lang]`` starts a section; one term per line; ``#``
starts a comment. Inside a term, ``a/b`` means either word, ``*`` up to two words of anything, and a
word ending in ``~`` is a stem that matches any ending ("nackt~": nackte, Nacktheit). The ``allow``
category lists phrases whose words are not read as listed terms ("naked eye", "oilseed rape").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache

from ..errors import InputError

ALLOW = "allow"  # the category of allowed phrases
SOURCE_MARK = "ldnoobw"  # a term ending in "^" comes from LDNOOBW (see the word list's header)
MAX_PIECES = 6  # longest run of short pieces rejoined ("n ak ed")
MAX_SYMBOL_SPLITS = 6  # a word with more leet symbols than this is searched for every term, not looked up
# Leetspeak and look-alike symbols a term letter may be written as ("n4k3d", "$ex", "n!pple", "pørn").
LEET = {
    "a": "a4@", "b": "b8", "e": "e3", "g": "g96", "i": "i1!|", "l": "l1!|", "o": "o0ø", "s": "s5$", "t": "t7+", "z": "z2",
}  # fmt: skip
LEET_SYMBOLS = "@$!|+"
# The lookup key of a word: every leet character as its letter; "l" and "i" share "1", "!" and "|".
KEY_MAP = str.maketrans(
    {c: letter for letter, chars in LEET.items() for c in chars} | {"l": "i", "1": "i", "!": "i", "|": "i"}
)
# Letters from other alphabets that look Latin. They are made Latin only inside a word that has a
# Latin letter ("nаked" with a Cyrillic а) or is made of look-alikes only ("ѕех"); a Russian or Greek
# word keeps its own letters, so Cyrillic terms match Cyrillic text and never Latin look-alikes.
CONFUSABLES = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "ɑ": "a", "ɡ": "g", "ı": "i",
    # small capitals ("ɴᴜᴅᴇ")
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ғ": "f", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
    "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ǫ": "q", "ʀ": "r", "ꜱ": "s", "ᴛ": "t",
    "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "×": "x",
}  # fmt: skip
LATIN_LETTERS = {"đ": "d", "ł": "l", "ß": "ss", "æ": "ae", "œ": "oe"}  # Latin letters NFKD leaves alone
DROPPED = "\u0640"  # Arabic tatweel stretches a word ("ســـكس") without changing it
# Scripts written without spaces between words: a term in them matches anywhere inside a word.
CONTINUOUS = (
    "\u0e00-\u0e7f"  # Thai
    "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"  # Hangul (particles attach to the noun)
    "\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f"  # Hiragana, Katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
)
ARABIC = "\u0600-\u06ff\u0750-\u077f"
# Arabic attaches "and", "by", "for", "like" and the article to the next word ("والعارية").
ARABIC_CLITICS = "(?:[وف]?(?:[بلك]?ال|لل|[بلك]))?"
_ARABIC_CLITIC = re.compile("(?:[وف](?:[بلك]?ال|لل|[بلك])?|[بلك]?ال|لل|[بلك])")
_ARABIC_WORD = re.compile(f"[{ARABIC}]{{2}}")
_CONTINUOUS = re.compile(f"[{CONTINUOUS}]")
_SCRIPT_EDGE = re.compile(rf"(?<=[{CONTINUOUS}])(?=[^\s{CONTINUOUS}])|(?<=[^\s{CONTINUOUS}])(?=[{CONTINUOUS}])")
_LOOKALIKES = frozenset(CONFUSABLES)
_WITH_LOOKALIKE = re.compile(r"\w*[" + "".join(CONFUSABLES) + r"]\w*")
_SEPARATOR = re.compile(rf"[^\w{re.escape(LEET_SYMBOLS)}]|_")
_WORD = re.compile(r"\w+")
_REPEATS = re.compile(r"(.)\1+", re.DOTALL)


# -- normalising text --------------------------------------------------------------------------


def _latinise(match: re.Match) -> str:
    word = match.group(0)
    has_latin = any("a" <= c <= "z" for c in word)
    letters = [c for c in word if c.isalpha()]
    if has_latin or (letters and all(c in _LOOKALIKES for c in letters)):
        return "".join(CONFUSABLES.get(c, c) for c in word)
    return word


@lru_cache(maxsize=4096)
def _kept(ch: str) -> str:
    """A non-ASCII character after folding: marks, zero-width and direction characters dropped."""
    if unicodedata.category(ch) in ("Mn", "Me", "Cf") or ch in DROPPED:
        return ""
    return "".join(LATIN_LETTERS.get(c, c) for c in ch.casefold())


def fold(text: str) -> str:
    """Lower case, no accents, no zero-width or direction marks; look-alike letters made Latin where
    the word is Latin (see :data:`CONFUSABLES`)."""
    if text.isascii():  # most prompts: nothing to decompose, drop or make Latin
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c if c < "\x80" else _kept(c) for c in decomposed).lower()
    return _WITH_LOOKALIKE.sub(_latinise, kept)


def views(text: str) -> list[tuple[str, bool]]:
    """The readings of a text an obfuscation could hide in: ``(text, whole words only)``.

    1. words: punctuation as spaces ("semi-nude" -> "semi nude"), a space where the script changes
       ("她是nude模特" -> "她是 nude 模特");
    2. joined: punctuation inside a word dropped ("n-a-k-e-d", "n.a.k.e.d" -> "naked");
    3. spaced: runs of 3+ single letters joined ("n a k e d" -> "naked"), matched anywhere in the run;
    4. split: a word joined to a neighbour of at most 2 letters ("na ked" -> "naked"), and runs of such
       short pieces joined ("n ak ed" -> "naked");
    5. rejoined: the words with each run of 3+ single letters as one word, for phrases
       ("s k i n n y dipping" -> "skinny dipping").
    """
    folded = _SCRIPT_EDGE.sub(" ", fold(text))
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
        (" ".join(_rejoined(words)) if singles else "", True),
    ]


def _rejoined(words: list[str]) -> list[str]:
    """The words with every run of 3+ single letters joined into one word."""
    out: list[str] = []
    run: list[str] = []
    for word in [*words, "  "]:
        if len(word) == 1:
            run.append(word)
            continue
        out += ["".join(run)] if len(run) >= 3 else run
        run = []
        out.append(word)
    return out[:-1]


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


def key(word: str) -> str:
    """The lookup key of a folded word: leetspeak as letters, runs of a letter as one ("n4aak3d" -> "naked")."""
    return _REPEATS.sub(r"\1", word.translate(KEY_MAP))


# -- compiling terms ---------------------------------------------------------------------------


def _letter(ch: str) -> str:
    return "[" + re.escape(LEET.get(ch, ch)) + "]"


def _word_regex(word: str) -> str:
    """One word of a term: each run of a letter may repeat ("naaaked") or be leetspeak ("n4k3d")."""
    if word == "*":
        return r"(?:\S+\s+){0,2}"
    alternatives = []
    for alt in word.split("/"):
        stem = alt.endswith("~")
        alt = alt.rstrip("~")
        runs = [(m.group(0)[0], len(m.group(0))) for m in re.finditer(r"(.)\1*", alt)]
        body = "".join(_letter(c) + ("+" if n == 1 else f"{{{n},}}") for c, n in runs) + (r"\w*" if stem else "")
        alternatives.append((ARABIC_CLITICS if re.search(f"[{ARABIC}]", alt) else "") + body)
    return "(?:" + "|".join(alternatives) + ")"


def compile_term(term: str, whole: bool = True) -> re.Pattern:
    """A term of the word list as a regex over :func:`views`; a Latin word may take an English plural."""
    words = fold(term).split()
    body = ""
    for i, word in enumerate(words):
        part = _word_regex(word)
        body += part if word == "*" else part + (r"\s+" if i < len(words) - 1 else "")
    last = words[-1] if words else ""
    if re.fullmatch(r"[a-z/]+", last):
        body += "(?:" + _letter("e") + "?" + _letter("s") + "+)?"
    if _CONTINUOUS.search(term) or not whole:
        return re.compile(body)
    return re.compile(rf"(?<!\w){body}(?!\w)")


@dataclass(frozen=True)
class Term:
    category: str
    text: str  # as written in the list, for messages
    lang: str = ""  # the section's language tag ("de", "zh"); "" for terms of any language
    keys: tuple[str, ...] = ()  # lookup keys of the first word (one per "/" alternative)
    stem: bool = False  # the first word is a stem: its key is a prefix of the word's key
    continuous: bool = False  # written without spaces: its key may sit anywhere inside a word
    source: str = ""  # "ldnoobw" for a term taken from that list (marked "^" in the file)

    @classmethod
    def build(cls, category: str, text: str, lang: str = "", source: str = "") -> Term:
        first = fold(text).split()[0]
        if first == "*":
            raise InputError(f"content policy word list: the term {text!r} starts with '*'")
        alternatives = first.split("/")
        stem = any(a.endswith("~") for a in alternatives)
        continuous = bool(_CONTINUOUS.search(text))
        keys = tuple(dict.fromkeys(key(a.rstrip("~")) for a in alternatives))
        return cls(category, text, lang, keys, stem, continuous, source)

    # compiled on first use: most terms are never a candidate in a given process, and compiling
    # ~1,500 terms up front would cost most of a second at start-up
    @cached_property
    def whole(self) -> re.Pattern:
        return compile_term(self.text)

    @cached_property
    def anywhere(self) -> re.Pattern:
        """For runs of spaced-out letters, where word edges are lost."""
        return compile_term(self.text, whole=False)


# -- finding terms -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    term: Term
    seen: str  # the text it matched, in the reading it was found in
    start: int  # where, in that reading
    view: int  # which reading of :func:`views`


class WordList:
    """Terms by section of the word list, indexed by key for fast lookup."""

    def __init__(self, terms: Mapping[str, tuple[Term, ...]]) -> None:
        self.terms = dict(terms)
        self._order = [t for ts in self.terms.values() for t in ts]
        self._words: dict[str, list[int]] = {}
        self._stems: dict[str, list[int]] = {}
        self._inside: dict[str, list[int]] = {}
        for i, term in enumerate(self._order):
            index = self._inside if term.continuous else self._stems if term.stem else self._words
            for k in term.keys:
                index.setdefault(k, []).append(i)
        self._stem_lengths = sorted({len(k) for k in self._stems})
        self._inside_lengths = sorted({len(k) for k in self._inside})
        self._all_lengths = sorted({len(k) for index in (self._words, self._stems, self._inside) for k in index})

    @classmethod
    def parse(cls, text: str) -> WordList:
        sections: dict[str, list[Term]] = {}
        current, lang = None, ""
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("[") and line.endswith("]"):
                current, _, lang = line[1:-1].strip().partition(" ")
                lang = lang.strip()
                sections.setdefault(current, [])
            elif current is None:
                raise InputError(f"content policy word list, line {number}: {line!r} comes before any [section]")
            elif current == ALLOW and "*" in line.split():
                raise InputError(
                    f"content policy word list, line {number}: an allowed phrase cannot have '*' ({line!r}): "
                    "a gap could hide a listed word inside it"
                )
            else:
                marked = line.endswith("^")
                term = line.rstrip("^").strip()
                sections[current].append(Term.build(current, term, lang, SOURCE_MARK if marked else ""))
        return cls({name: tuple(terms) for name, terms in sections.items()})

    def languages(self) -> list[str]:
        """The language tags of the list's sections, sorted."""
        return sorted({t.lang for t in self._order if t.lang})

    # -- lookup ---------------------------------------------------------------------------------

    def _candidates(self, view: str, whole: bool) -> set[int] | None:
        """Indices of terms that may match in ``view``; None when every term must be searched."""
        found: set[int] = set()
        for token in set(view.split()):
            if _CONTINUOUS.search(token) or not whole:
                self._inside_lookup(key(token), found, anywhere=not whole)
                continue
            pieces = _trimmed(token)
            if pieces is None:
                return None
            for piece in pieces:
                self._word_lookup(key(piece), found)
        return found

    def _word_lookup(self, k: str, found: set[int]) -> None:
        for variant in _variants(k):
            found.update(self._words.get(variant, ()))
            for n in self._stem_lengths:
                if n > len(variant):
                    break
                found.update(self._stems.get(variant[:n], ()))

    def _inside_lookup(self, k: str, found: set[int], anywhere: bool) -> None:
        indexes = (self._words, self._stems, self._inside) if anywhere else (self._inside,)
        lengths = self._all_lengths if anywhere else self._inside_lengths
        for start in range(len(k)):
            for n in lengths:
                if start + n > len(k):
                    break
                piece = k[start : start + n]
                for index in indexes:
                    found.update(index.get(piece, ()))

    def hits(self, text: str, categories: Iterable[str]) -> list[Hit]:
        """Every listed term of ``categories`` found in the text (once per term), in list order.

        A match lying wholly inside an allowed phrase ("naked eye") does not count; a listed word
        next to it ("naked eye naked") still does.
        """
        wanted = set(categories)
        found: dict[int, Hit] = {}
        for number, (view, whole) in enumerate(views(text)):
            if not view:
                continue
            candidates = self._candidates(view, whole)
            indices = range(len(self._order)) if candidates is None else sorted(candidates)
            allowed = [
                m.span()
                for i in indices
                if self._order[i].category == ALLOW
                for m in (self._order[i].whole if whole else self._order[i].anywhere).finditer(view)
            ]
            for i in indices:
                term = self._order[i]
                if i in found or term.category not in wanted:
                    continue
                pattern = term.whole if whole else term.anywhere
                for m in pattern.finditer(view):
                    if not any(a <= m.start() and m.end() <= b for a, b in allowed):
                        found[i] = Hit(term, m.group(0), m.start(), number)
                        break
        return [found[i] for i in sorted(found)]

    def matches(self, text: str, categories: Iterable[str]) -> dict[str, list[tuple[Term, str]]]:
        """(term, the text it matched) per category, through every obfuscation :func:`views` undoes."""
        found: dict[str, list[tuple[Term, str]]] = {}
        for hit in self.hits(text, categories):
            found.setdefault(hit.term.category, []).append((hit.term, hit.seen))
        return found

    def scan(self, text: str, categories: Iterable[str]) -> dict[str, list[str]]:
        """Like :meth:`matches`, each shown as written ("n4k3d, read as naked") so a person sees what to change."""
        return {c: [_shown(t.text, seen) for t, seen in hits] for c, hits in self.matches(text, categories).items()}


def _trimmed(token: str) -> list[str] | None:
    """The parts of a word a term could match whole: leet symbols may also be punctuation around it
    ("sexy!", "@sex"), so every cut at a symbol is tried; None when there are too many to try."""
    cuts = [i for i, c in enumerate(token) if c in LEET_SYMBOLS]
    if not cuts:
        pieces = [token]
    elif len(cuts) > MAX_SYMBOL_SPLITS:
        return None
    else:
        starts, ends = [0, *(i + 1 for i in cuts)], [*cuts, len(token)]
        pieces = [token[s:e] for s in starts for e in ends if e > s]
    clitic = [
        p[n:] for p in pieces if _ARABIC_WORD.match(p) for n in range(1, 5) if _ARABIC_CLITIC.fullmatch(p[:n])
    ]
    return pieces + [p for p in clitic if _ARABIC_WORD.match(p)]


def _variants(k: str) -> list[str]:
    """A key, and the key less an English plural ending ("nudes" -> "nude", "sexes" -> "sex")."""
    out = [k]
    if len(k) > 2 and k.endswith("s"):
        out.append(k[:-1])
        if len(k) > 3 and k[-2] == "e":
            out.append(k[:-2])
    return out


def _shown(term: str, seen: str) -> str:
    if seen == fold(term):
        return term
    if any(c in term for c in "/*~"):
        return seen
    return f"{seen}, read as {term}"
