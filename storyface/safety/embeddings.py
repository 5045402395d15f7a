"""Identity rows that are a banned word in disguise: an identity file whose vectors sit on the model's
own word embeddings of a term the content policy bans acts exactly like that term in every prompt,
under an innocent name. This module refuses such rows before they reach a text encoder.

For each text encoder the *banned table* holds the model's token-embedding rows of the policy's words
(:func:`storyface.safety.policy.default_word_list`, categories sexual, nudity and revealing, every
language): each single-word term, tokenized by that encoder's tokenizer. CLIP's vocabulary holds few
such words whole ("nude", "sexy"); most become pieces ("por" + "n", "ma" + "stur" + "bate"), and an
identity's consecutive vectors could spell those pieces out, since the trigger token expands to all of
them in order. So the table holds *runs*: a one-token word, and every run of two or more consecutive
pieces of a longer word. A single piece ("ma") is no evidence; the run is. Runs that also occur in
a real name (the celebrity and first-name lists, tokenized the same way) are left out: a row that *is*
a name's token is how a name looks.

An identity matches a run when its consecutive rows each sit within the limit of the run's pieces, by
cosine after both are centred on the mean of celebrity-name token embeddings, the point StableIdentity's
AdaIN lands rows on (so the direction every token embedding shares does not count as likeness). A
trained identity is a draw around that mean and sits at chance cosine from every word; a banned word,
a small perturbation of one or a mix of a few does not. The limit is the larger of:

* :data:`COS_FLOOR` (0.5): a row at least as close to the word as to anything else, i.e. a mix in
  which the banned word weighs more than about a third, or an even mix of up to four banned words; and
* the chance limit: the cosine a random direction in the encoder's width exceeds against any of the
  table's rows with probability :data:`FALSE_ALARM` (union bound), from the exact law of the cosine of
  a uniform direction (a Beta law). At real widths (768, 1,024, 1,280) it is ~0.2, so the floor rules;
  on the tiny test model (widths 32-64) it is ~0.65-0.85, where chance alone comes close to 0.5.

``tests/test_embedding_safety.py`` measures both sides; ``bench/bench_identity_rows.py`` prints them.
The table is built once per text encoder and kept with it (a weak reference: it goes with the model).
"""

from __future__ import annotations

import logging
import math
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import torch

from .policy import LABELS, README_HINT, ContentPolicyError, default_word_list

if TYPE_CHECKING:
    from ..models import EncoderSlot, LoadedModel

log = logging.getLogger(__name__)

BANNED_CATEGORIES = ("sexual", "nudity", "revealing")  # what the policy refuses in a prompt
COS_FLOOR = 0.5  # see the module docstring
FALSE_ALARM = 1e-6  # chance that one honest row passes the limit against any table row by chance alone
NAME_LISTS = ("data/celeb_names.txt", "data/first_names.txt")


def chance_limit(dim: int, n_rows: int, false_alarm: float = FALSE_ALARM) -> float:
    """The cosine a uniformly random direction in ``dim`` dimensions exceeds against any of ``n_rows``
    fixed directions with probability ``false_alarm`` (union bound over the rows).

    For a uniform unit vector x and a fixed unit u, P(x.u > c) = I_{1-c^2}((dim-1)/2, 1/2) / 2, the
    regularised incomplete Beta function; solved for c with its inverse.
    """
    from scipy.special import betaincinv

    p = false_alarm / max(n_rows, 1)
    x = float(betaincinv((dim - 1) / 2, 0.5, 2 * p))
    return math.sqrt(max(0.0, 1.0 - x))


def limit_for(dim: int, n_rows: int) -> float:
    """The cosine at which a row counts as a banned word's (see the module docstring)."""
    return max(COS_FLOOR, chance_limit(dim, n_rows))


# -- the banned runs of a tokenizer ------------------------------------------------------------------


def banned_words() -> list[tuple[str, str]]:
    """(word, category) for every single-word term of the banned categories, alternatives spelled out."""
    words = default_word_list()
    out: dict[str, str] = {}
    for category in BANNED_CATEGORIES:
        for term in words.terms.get(category, ()):
            parts = term.text.split()
            if len(parts) != 1:  # a phrase: its words are ordinary ("in the buff")
                continue
            for word in parts[0].split("/"):
                word = word.rstrip("~").strip()
                if word:
                    out.setdefault(word, category)
    return list(out.items())


@lru_cache(maxsize=1)
def name_words() -> tuple[str, ...]:
    """Every word of the celebrity and first-name lists (package data)."""
    words: set[str] = set()
    for data in NAME_LISTS:
        text = resources.files("storyface").joinpath(data).read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                fields = line.split()
                words.update(fields[:1] if data.endswith("first_names.txt") else fields)  # "aaron m": the name
    return tuple(sorted(words))


def pieces_of(tokenizer: object, texts: Sequence[str]) -> list[list[str]]:
    """Each text's BPE tokens, as the encoder would read them (no start or end token)."""
    ids = tokenizer(list(texts), add_special_tokens=False).input_ids
    return [tokenizer.convert_ids_to_tokens(i) for i in ids]


def runs_of(pieces: Sequence[str]) -> Iterator[tuple[str, ...]]:
    """A one-token word itself; of a longer word, every run of two or more consecutive pieces."""
    if len(pieces) == 1:
        yield (pieces[0],)
        return
    for size in range(2, len(pieces) + 1):
        for start in range(len(pieces) - size + 1):
            yield tuple(pieces[start : start + size])


def banned_runs(tokenizer: object) -> dict[tuple[str, ...], tuple[str, str]]:
    """Run of BPE tokens -> (word, category): what a banned word feeds this tokenizer's encoder."""
    named: set[tuple[str, ...]] = set()
    for pieces in pieces_of(tokenizer, name_words()):
        named.update(tuple(pieces[a:b]) for a in range(len(pieces)) for b in range(a + 1, len(pieces) + 1))
    words = banned_words()
    out: dict[tuple[str, ...], tuple[str, str]] = {}
    for (word, category), pieces in zip(words, pieces_of(tokenizer, [w for w, _ in words])):
        if tokenizer.unk_token in pieces:
            continue
        for run in runs_of(pieces):
            if run not in named:
                out.setdefault(run, (word, category))
    return out


# -- the table ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    """The identity rows closest to one banned run: how close (the weakest row's cosine), where, what."""

    score: float
    start: int  # 0-based row where the run starts
    word: str
    category: str


@dataclass(frozen=True)
class BannedTable:
    """One encoder's banned runs over its distinct pieces, centred and unit length."""

    key: str  # the encoder's key in an identity file
    center: torch.Tensor  # [D] mean of celebrity-name token embeddings
    vectors: torch.Tensor  # [P, D] float32 CPU: each distinct piece, centred, unit length
    pieces: list[str]  # [P]
    runs: dict[int, torch.Tensor]  # run length k -> [M_k, k] indices into ``vectors``
    labels: dict[int, list[tuple[str, str]]]  # run length k -> [M_k] (word, category)
    threshold: float

    def cosines(self, rows: torch.Tensor) -> torch.Tensor:
        """Cosine of each identity row with each piece: [..., R, D] -> [..., R, P]."""
        centred = rows.float().cpu() - self.center  # [..., R, D]
        unit = centred / centred.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return unit @ self.vectors.T  # [..., R, P]

    def scores(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """For identities' rows [B, R, D]: how closely each spells its nearest banned run (the weakest row's
        cosine, maxed over runs and starts), and which run (length, index) and start: four [B] tensors."""
        cos = self.cosines(rows)  # [B, R, P]
        n, r = cos.shape[:2]
        best = torch.full((n,), -1.0)
        length, which, start = (torch.zeros(n, dtype=torch.long) for _ in range(3))
        for k, idx in self.runs.items():  # idx [M, k]
            for s in range(r - k + 1):
                window = cos[:, s + torch.arange(k)[None, :], idx]  # [B, M, k]
                score, m = window.min(dim=2).values.max(dim=1)  # [B], [B]
                better = score > best
                best = torch.where(better, score, best)
                length, which = torch.where(better, k, length), torch.where(better, m, which)
                start = torch.where(better, s, start)
        return best, length, which, start

    def closest(self, rows: torch.Tensor) -> Match:
        """The banned run one identity's rows [R, D] come closest to spelling."""
        score, length, which, start = (t[0] for t in self.scores(rows[None]))
        if float(score) < -0.5:  # no run fits in so few rows (cannot happen: one-token words exist)
            return Match(-1.0, 0, "", "")
        return Match(float(score), int(start), *self.labels[int(length)][int(which)])


@torch.no_grad()
def build_table(slot: EncoderSlot) -> BannedTable:
    """The banned runs of one encoder (see the module docstring); well under a second, once per model."""
    from ..identity.prior import celeb_names, celeb_stats

    banned = banned_runs(slot.tokenizer)
    pieces = sorted({p for run in banned for p in run})
    index = {p: i for i, p in enumerate(pieces)}
    table = slot.text_encoder.get_input_embeddings().weight  # [V, D]
    mean, _ = celeb_stats(slot, celeb_names())  # [2, D], per token position
    center = mean.float().mean(0).cpu()  # [D]
    rows = table[slot.tokenizer.convert_tokens_to_ids(pieces)].float().cpu() - center  # [P, D]
    vectors = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
    runs: dict[int, list[list[int]]] = {}
    labels: dict[int, list[tuple[str, str]]] = {}
    for run, label in banned.items():
        runs.setdefault(len(run), []).append([index[p] for p in run])
        labels.setdefault(len(run), []).append(label)
    return BannedTable(
        slot.key, center, vectors, pieces, {k: torch.tensor(v) for k, v in runs.items()}, labels,
        limit_for(vectors.shape[1], len(pieces)),
    )  # fmt: skip


_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # text encoder -> BannedTable


def table_for(slot: EncoderSlot) -> BannedTable:
    """The encoder's banned table, built on first use and kept as long as the encoder lives.

    Keyed by the text encoder (loading identities replaces its embedding module, never the rows of
    the words already in it, so the table stays right).
    """
    table = _TABLES.get(slot.text_encoder)
    if table is None or table.key != slot.key:
        table = _TABLES[slot.text_encoder] = build_table(slot)
    return table


# -- the check ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowFinding:
    """An identity's closest approach to a banned run in one encoder."""

    key: str
    match: Match
    threshold: float

    @property
    def margin(self) -> float:
        return self.match.score - self.threshold


def findings(model: LoadedModel, rows: Mapping[str, torch.Tensor]) -> list[RowFinding]:
    """For each encoder, the banned run the rows (encoder key -> [R, D]) come closest to spelling."""
    out = []
    for slot in model.encoders:
        table = table_for(slot)
        out.append(RowFinding(slot.key, table.closest(rows[slot.key]), table.threshold))
    return out


def check_identity_rows(model: LoadedModel, name: str, rows: Mapping[str, torch.Tensor]) -> None:
    """Refuse (:class:`ContentPolicyError`) identity ``name`` if its rows (encoder key -> [R, D]) sit on a
    banned word's embeddings.

    The message names the category of the word, not the word: the person loading the file never wrote
    it, an explicit word helps nobody fix anything, and echoing it would tell a prober which row hit.
    The log has the word, for whoever runs the service.
    """
    found = max(findings(model, rows), key=lambda f: f.margin)
    if found.margin < 0:
        return
    match = found.match
    log.warning(
        "refused identity %r: its %s rows from %d match the banned word %r (%s) at cosine %.3f (limit %.3f)",
        name, found.key, match.start + 1, match.word, match.category, match.score, found.threshold,
    )  # fmt: skip
    raise ContentPolicyError(
        f"refused by StoryFace's content policy (identity rows): {name!r} holds the model's own word "
        f"embedding of a term for {LABELS[match.category]}, or something close to it (cosine {match.score:.2f} "
        f"in the {found.key} text encoder; the limit is {found.threshold:.2f}, and an identity learned from a "
        f"photo stays far below it). Its rows would act like that word in every prompt. Use an identity "
        f"StoryFace learned from a photo; {README_HINT}"
    )
