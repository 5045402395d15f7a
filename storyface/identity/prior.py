"""The two priors of StableIdentity: face features in, word embeddings that live among celebrity names out.

Identity prior: a face encoder's feature vector feeds one small MLP per text encoder.
Editability prior: AdaIN lands each MLP output on the per-dimension mean/std of the first two
token embeddings of ~350 well-known full names, so the learned words behave like a person's name.
"""

from __future__ import annotations

from importlib import resources

import torch
from torch import nn

from ..models import EncoderSlot

TOKENS = 2


def celeb_names() -> list[str]:
    """The editability prior's name list (package data, one full name a line)."""
    text = resources.files("storyface").joinpath("data/celeb_names.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@torch.no_grad()
def celeb_stats(slot: EncoderSlot, names: list[str], n_tokens: int = TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over names of each of the first ``n_tokens`` token embeddings: ([n, D], [n, D])."""
    table = slot.text_encoder.get_input_embeddings().weight  # [V, D]
    rows = []
    for name in names:
        ids = slot.tokenizer(name, add_special_tokens=False).input_ids
        if len(ids) >= n_tokens:
            rows.append(table[torch.tensor(ids[:n_tokens], device=table.device)])  # [n, D]
    stack = torch.stack(rows).float()  # [names, n, D]
    return stack.mean(0).cpu(), stack.std(0).cpu()


class IdentityMLP(nn.Module):
    """Face feature [B, F] -> ``n_tokens`` word embeddings [B, n, D], AdaIN'd onto the name statistics."""

    def __init__(self, in_dim: int, mean: torch.Tensor, std: torch.Tensor, hidden: int = 1024) -> None:
        super().__init__()
        self.n_tokens, self.dim = mean.shape
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.LayerNorm(hidden),
            nn.LeakyReLU(),
            nn.Linear(hidden, self.n_tokens * self.dim),
        )
        self.register_buffer("mean", mean.clone().float())  # [n, D]
        self.register_buffer("std", std.clone().float())  # [n, D]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.net(features.float()).view(-1, self.n_tokens, self.dim)  # [B, n, D]
        x = (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + 1e-5)  # instance-normalise each token
        return self.mean + x * self.std  # AdaIN: land on the celebrity-name distribution


class IdentityPrior(nn.Module):
    """One :class:`IdentityMLP` per text encoder, keyed like the identity file (clip_l, clip_g / emb_params)."""

    def __init__(self, in_dim: int, stats: dict[str, tuple[torch.Tensor, torch.Tensor]], hidden: int = 1024) -> None:
        super().__init__()
        self.mlps = nn.ModuleDict({key: IdentityMLP(in_dim, m, s, hidden) for key, (m, s) in stats.items()})

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {key: mlp(features) for key, mlp in self.mlps.items()}  # key -> [B, n, D]
