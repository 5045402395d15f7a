"""The two priors of StableIdentity: face features in, word embeddings that live among celebrity names out.

Identity prior: a face encoder's feature vector feeds one mapping network per text encoder, ported from
the official code (``StyleVectorizer`` of qinghew/StableIdentity, ``models/id_embedding/meta_net.py``):
equal-lr linear layers (weights drawn N(0, 0.02), biases 0, both scaled by 0.1 at run time, so the
effective weights start at std 0.002 and move at a tenth of the learning rate), LeakyReLU(0.2), a
LayerNorm before the second linear, and a final affine LayerNorm over both output tokens together.
Hidden width = output width = 2 x the text encoder's embedding width.

Editability prior: AdaIN lands that normalised output on the per-position mean/std of the first two
token embeddings of well-known full names (``mean + x * std``), so the learned words behave like a
person's name. Only names that are exactly two whole words to the tokenizer count: a longer name cut
to two tokens would put word pieces ("kate wins") into the statistics.
"""

from __future__ import annotations

import math
from importlib import resources

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ModelError
from ..models import EncoderSlot

TOKENS = 2
LR_MUL = 0.1  # official EqualLinear lr_mul: weights and biases scaled at run time
INIT_STD = 0.02  # official weights_init_normal for every linear layer
LEAKY_SLOPE = 0.2
WORD_END = "</w>"  # CLIP BPE marks the last piece of a word with this suffix


def celeb_names() -> list[str]:
    """The editability prior's name list (package data, one full name a line)."""
    text = resources.files("storyface").joinpath("data/celeb_names.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def two_token_names(tokenizer: object, names: list[str], n_tokens: int = TOKENS) -> list[str]:
    """The names this tokenizer reads as exactly ``n_tokens`` whole words (each token ends a word)."""
    kept = []
    for name in names:
        ids = tokenizer(name, add_special_tokens=False).input_ids
        pieces = tokenizer.convert_ids_to_tokens(ids)
        if len(ids) == n_tokens and all(p.endswith(WORD_END) for p in pieces):
            kept.append(name)
    return kept


@torch.no_grad()
def celeb_stats(slot: EncoderSlot, names: list[str], n_tokens: int = TOKENS) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) std over two-word names of each token position's embedding: ([n, D], [n, D])."""
    kept = two_token_names(slot.tokenizer, names, n_tokens)
    if len(kept) < 2:
        raise ModelError(f"the {slot.key} tokenizer reads fewer than two celebrity names as two whole words")
    table = slot.text_encoder.get_input_embeddings().weight  # [V, D]
    ids = torch.tensor([slot.tokenizer(n, add_special_tokens=False).input_ids for n in kept], device=table.device)
    stack = table[ids].float()  # [names, n, D]
    return stack.mean(0).cpu(), stack.std(0).cpu()


class EqualLinear(nn.Module):
    """StyleGAN-style linear layer with a run-time learning-rate multiplier (the official ``EqualLinear``)."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = LR_MUL) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) * INIT_STD)  # [out, in]
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.lr_mul, self.bias * self.lr_mul)


class IdentityMLP(nn.Module):
    """Face feature [B, F] -> ``n_tokens`` word embeddings [B, n, D], AdaIN'd onto the name statistics.

    ``hidden`` defaults to the official width (n * D); a smaller one only makes tests faster.
    """

    def __init__(self, in_dim: int, mean: torch.Tensor, std: torch.Tensor, hidden: int | None = None) -> None:
        super().__init__()
        self.n_tokens, self.dim = mean.shape
        width = self.n_tokens * self.dim
        hidden = hidden or width
        self.in_scale = math.sqrt(in_dim)  # see forward
        self.fc1 = EqualLinear(in_dim, hidden)
        self.norm1 = nn.LayerNorm(hidden)
        self.fc2 = EqualLinear(hidden, width)
        self.norm_out = nn.LayerNorm(width)  # the "instance norm" of AdaIN: over both tokens together, affine
        self.register_buffer("mean", mean.clone().float())  # [n, D]
        self.register_buffer("std", std.clone().float())  # [n, D]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # Our encoders give unit vectors; the official input is a ViT's post-LayerNorm CLS token, whose
        # entries have about unit variance. Scaling by sqrt(F) gives the same per-entry scale, so the first
        # layer's tiny (std 0.002) initial weights produce activations well above LayerNorm's eps.
        x = features.float() * self.in_scale  # [B, F]
        x = F.leaky_relu(self.fc1(x), LEAKY_SLOPE)  # [B, H]
        x = self.norm_out(self.fc2(self.norm1(x)))  # [B, n * D]
        return self.mean + x.view(-1, self.n_tokens, self.dim) * self.std  # AdaIN -> [B, n, D]


class IdentityPrior(nn.Module):
    """One :class:`IdentityMLP` per text encoder, keyed like the identity file (clip_l, clip_g / emb_params)."""

    def __init__(
        self, in_dim: int, stats: dict[str, tuple[torch.Tensor, torch.Tensor]], hidden: int | None = None
    ) -> None:
        super().__init__()
        self.mlps = nn.ModuleDict({key: IdentityMLP(in_dim, m, s, hidden) for key, (m, s) in stats.items()})

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {key: mlp(features) for key, mlp in self.mlps.items()}  # key -> [B, n, D]
