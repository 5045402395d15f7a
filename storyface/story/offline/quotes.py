"""Where the quotations in a text are: the one scanner the sentence splitter and the dialogue rules share.

Handles straight and curly double quotes, curly and straight single quotes (told apart from
apostrophes: "don't", "O'Brien", "’90s"), German „…“, French/Arabic «…», Scandinavian ”…” and »…«, and
CJK corner brackets 「…」『…』. Only top-level quotations are returned (a quote inside a quote is part
of its text). A quotation that never closes is not one (a stray mark must not swallow a paragraph).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

# opening mark -> the marks that may close it
PAIRS = {
    '"': '"', "“": "”", "„": "“”", "«": "»", "‹": "›", "»": "«", "”": "”", "「": "」", "『": "』",
    "﹁": "﹂", "﹃": "﹄", "‘": "’", "‚": "‘’", "'": "'",
}  # fmt: skip
SINGLE = "'‘’‚"
ALL_MARKS = frozenset("".join(PAIRS) + "".join(PAIRS.values()))
OPEN_BEFORE = " \t\n([{—–-/\u00a0\u3000" + "".join(PAIRS)  # what may stand right before a single opening quote
CLOSING = "\"'”’»›«」』﹂﹄“"  # marks that may end a quotation (for trailing-punctuation rules)


@dataclass(frozen=True)
class Quote:
    """``text[start]`` opens it and ``text[end - 1]`` closes it."""

    start: int
    end: int
    inner: str

    def contains(self, pos: int) -> bool:
        return self.start < pos < self.end


def _letter(ch: str) -> bool:
    return ch.isalnum()


def _may_open(text: str, i: int) -> bool:
    ch = text[i]
    after = text[i + 1] if i + 1 < len(text) else ""
    if not after or (after.isspace() and ch in "\"”»" + SINGLE):  # « Bonjour » keeps its spaces
        return False
    if ch in SINGLE:  # an apostrophe inside or after a word ("don't", "boys'") opens nothing
        before = text[i - 1] if i else " "
        return before in OPEN_BEFORE and (after.isalnum() or after in "¿¡…")
    if ch in "”»":  # these open only where they cannot be closing something: at a word start
        return not i or text[i - 1] in OPEN_BEFORE
    return True


def _may_close(text: str, i: int, opener: str) -> bool:
    ch = text[i]
    if ch not in PAIRS[opener]:
        return False
    if ch in SINGLE:
        before = text[i - 1] if i else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if before.isspace() or (_letter(before) and _letter(after)):
            return False  # "‘Don’t go’": the first ’ is an apostrophe
        return not _letter(after)
    return True


def find_quotes(text: str) -> list[Quote]:
    """The top-level quotations in ``text``, left to right. Linear in the text (plus a log): whether a
    mark can close a quotation depends only on the mark and its neighbours, so each kind's closing
    positions are listed once and the next one after an opening mark is a bisection away."""
    found: list[Quote] = []
    closers: dict[str, list[int]] = {}
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in PAIRS and _may_open(text, i):
            if ch not in closers:
                closers[ch] = [j for j, c in enumerate(text) if c in PAIRS[ch] and _may_close(text, j, ch)]
            k = bisect_right(closers[ch], i)
            if k < len(closers[ch]):
                j = closers[ch][k]
                found.append(Quote(i, j + 1, text[i + 1 : j]))
                i = j + 1
                continue
        i += 1
    return found


def inside_quotes(quotes: list[Quote], pos: int) -> bool:
    """Is ``pos`` strictly inside one of the quotations (between its marks)? ``quotes`` as found: in order."""
    k = _bisect_starts(quotes, pos)
    return k >= 0 and quotes[k].contains(pos)


def _bisect_starts(quotes: list[Quote], pos: int) -> int:
    lo, hi = 0, len(quotes)
    while lo < hi:  # the last quotation starting before pos
        mid = (lo + hi) // 2
        if quotes[mid].start < pos:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1
