"""Honest and attack identity rows for the banned-word check (:mod:`storyface.safety.embeddings`), and
the distribution of their scores (how closely each set of rows spells its nearest banned word: the
weakest row's cosine, over runs and starts; an identity is refused at the table's threshold).

Honest rows: draws from the celebrity-name statistics StableIdentity's AdaIN lands rows on, the rows of
real names' tokens (two-token celebrity names), the standard-normal rows the tests use as identities,
and (passed in) rows of identities trained on the tiny model. Attack rows: the model's own embeddings
of banned words (one-token words, with an honest second row, and two-piece words spelled out), the
same with noise of 30% / 50% of their length, scaled up, 50/50 mixed with an honest row, and even
mixes of two or three banned words. Used by tests/test_embedding_safety.py (asserts) and
bench/bench_identity_rows.py (prints).
"""

from __future__ import annotations

import statistics

import torch

from storyface.identity.prior import celeb_names, celeb_stats, two_token_names
from storyface.models import EncoderSlot
from storyface.safety.embeddings import BannedTable

HONEST = ("celebrity-stat draws", "real names' tokens", "standard normal", "trained identities")
ALWAYS_CAUGHT = ("banned words", "banned + 30% noise", "banned x3", "banned 50/50 honest")
CAUGHT_AT_REAL_WIDTHS = ("banned + 50% noise", "mix of 2 banned", "mix of 3 banned")


class RandomTable(torch.nn.Module):
    """A text encoder's token table at a real width, drawn as CLIP initialises it (N(0, 0.02))."""

    def __init__(self, width: int, seed: int) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(49408, width)
        self.embedding.weight.data = torch.randn(49408, width, generator=torch.Generator().manual_seed(seed)) * 0.02

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embedding


def _table(slot: EncoderSlot) -> torch.Tensor:
    return slot.text_encoder.get_input_embeddings().weight.detach().float().cpu()  # [V, D]


def celeb_draws(slot: EncoderSlot, n: int, gen: torch.Generator) -> torch.Tensor:
    """Rows as StableIdentity's AdaIN makes them: per position mean + N(0, 1) x std: [n, 2, D]."""
    mean, std = celeb_stats(slot, celeb_names())  # [2, D] each
    return mean + torch.randn(n, *mean.shape, generator=gen) * std


def name_rows(slot: EncoderSlot) -> torch.Tensor:
    """The token rows of every name the tokenizer reads as two whole words: [names, 2, D]."""
    names = two_token_names(slot.tokenizer, celeb_names())
    ids = torch.tensor([slot.tokenizer(n, add_special_tokens=False).input_ids for n in names])  # [names, 2]
    return _table(slot)[ids]


def banned_rows(slot: EncoderSlot, table: BannedTable, honest: torch.Tensor, gen: torch.Generator, n: int = 200) -> torch.Tensor:
    """Banned words in the model's own embeddings: each one-token word (second row honest) and up to
    ``n`` two-piece runs, spelled out as two rows: [B, 2, D]."""
    emb = _table(slot)
    singles = [table.pieces[int(i[0])] for i in table.runs[1]]
    ids = slot.tokenizer.convert_tokens_to_ids(singles)
    one = torch.stack([emb[ids], honest[: len(ids), 1]], dim=1)  # [S, 2, D]
    pairs = table.runs[2][torch.randperm(len(table.runs[2]), generator=gen)[:n]]  # [n, 2] piece indices
    pair_ids = torch.tensor([slot.tokenizer.convert_tokens_to_ids([table.pieces[int(j)] for j in p]) for p in pairs])
    return torch.cat([one, emb[pair_ids]])  # [S + n, 2, D]


def _centred(rows: torch.Tensor, table: BannedTable) -> torch.Tensor:
    return rows - table.center


def noisy(rows: torch.Tensor, table: BannedTable, r: float, gen: torch.Generator) -> torch.Tensor:
    """Each row plus noise of ``r`` times its centred length: cosine ~ 1 / sqrt(1 + r^2)."""
    c = _centred(rows, table)
    noise = torch.randn(c.shape, generator=gen)
    noise = noise / noise.norm(dim=-1, keepdim=True) * c.norm(dim=-1, keepdim=True) * r
    return rows + noise


def mixes(rows: torch.Tensor, table: BannedTable, k: int, gen: torch.Generator) -> torch.Tensor:
    """Even mixes of ``k`` banned rows (centred, same length each): cosine ~ 1 / sqrt(k) with each."""
    c = _centred(rows, table)
    c = c / c.norm(dim=-1, keepdim=True)
    picks = torch.stack([c[torch.randperm(len(c), generator=gen)] for _ in range(k)])  # [k, B, 2, D]
    return table.center + picks.mean(0) * _centred(rows, table).norm(dim=-1, keepdim=True)


def measure(slot: EncoderSlot, table: BannedTable, trained: torch.Tensor | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Scores of every honest and attack set for one encoder: name -> [B]."""
    gen = torch.Generator().manual_seed(seed)
    draws = celeb_draws(slot, 300, gen)
    banned = banned_rows(slot, table, draws, gen)
    sets = {
        "celebrity-stat draws": draws,
        "real names' tokens": name_rows(slot),
        "standard normal": torch.randn(100, 2, draws.shape[-1], generator=gen),
        "banned words": banned,
        "banned + 30% noise": noisy(banned, table, 0.3, gen),
        "banned + 50% noise": noisy(banned, table, 0.5, gen),
        "banned x3": table.center + 3 * _centred(banned, table),
        "banned 50/50 honest": table.center + (_centred(banned, table) + _centred(draws[: len(banned)], table)) / 2,
        "mix of 2 banned": mixes(banned, table, 2, gen),
        "mix of 3 banned": mixes(banned, table, 3, gen),
    }
    if trained is not None:
        sets["trained identities"] = trained
    return {name: table.scores(rows)[0] for name, rows in sets.items()}


def summary(key: str, threshold: float, scores: dict[str, torch.Tensor]) -> list[str]:
    """One line per set: count, min, median, p99, max of the score."""
    lines = [f"{key}: threshold {threshold:.3f}", f"  {'set':24s} {'n':>5s} {'min':>6s} {'median':>6s} {'p99':>6s} {'max':>6s}"]
    for name, s in scores.items():
        values = sorted(s.tolist())
        p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
        lines.append(
            f"  {name:24s} {len(values):5d} {values[0]:6.3f} {statistics.median(values):6.3f} {p99:6.3f} {values[-1]:6.3f}"
        )
    return lines
