"""Region-bound identity tokens: a cross-attention processor that keeps each person in their region.

With plain prompts every identity's tokens attend to the whole image, so two people in one panel
come out blended, or one face twice. :class:`RegionalAttention` replaces the processor of every
cross-attention layer of the UNet (``attn2`` of each transformer block; every other processor is
kept as it was) through diffusers' own ``unet.set_attn_processor``. While a render is inside
``regional.active(...)``, it adds a mask to the attention scores of the panels that show two or
more identities:

    mask[row, 0, q, k] = -inf   if key k is one of person P's token positions and image position q
                                lies outside P's region,
                         0      otherwise.

What "inside the region" means: the layer's image positions form an h x w grid over the panel
(h, w derived from the query length and the panel's latent size, so every resolution of the UNet
is covered); cell (i, j) is inside region R when its centre ((j + 0.5) / w, (i + 0.5) / h) lies in
R (half-open, see :meth:`Region.contains`), and the cell holding R's centre always counts as
inside, so a thin region still owns a cell on the coarsest grid. Because the mask is additive
inside softmax, a masked key gets probability exactly 0 and the remaining keys of that query share
what it had: p'_k = p_k / (1 - sum of the masked p_j). So P's tokens keep, inside P's region, the
attention they had without the processor, renormalised over the keys left unmasked there (the other
people's tokens are masked there if it lies outside their regions); outside every region no
identity token is attended at all, and every other token (the scene, the style, BOS, padding) is
attended as before up to the same renormalisation.

Panels with fewer than two identities get no mask. When no panel of a batch needs one, each layer
calls the processor it replaced (diffusers' ``AttnProcessor2_0`` on SDXL) with the very same
arguments, so a one-person render is bit-identical to a render without this module. Under
classifier-free guidance the UNet's batch is ``[negative prompts; prompts]``; the negative rows get
a mask only where the negative prompt itself holds identity tokens.

Usage (the renderer; see :func:`panel_masks`)::

    regional = RegionalAttention.install(pipe.unet)              # once, after loading
    plans = [token_plan(plan_regions(names)) for names in cast]  # per panel: trigger token -> Region
    masks = panel_masks(pipe, prompts, negatives, plans)          # None for panels with < 2 people
    with regional.active(masks, latent_hw=(height // 8, width // 8)):
        pipe(prompt=prompts, negative_prompt=negatives, ...)

Masks are built once per pipe call for each resolution (cached by query length) and reused by every
layer and step; the cache is dropped when ``active`` exits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from .regions import Region

if TYPE_CHECKING:
    from diffusers.models.attention_processor import Attention

log = logging.getLogger(__name__)

MIN_IDENTITIES = 2  # one person alone has nobody to blend with: no mask, the stock path
MAX_LEVELS = 8  # the latent is halved at most this many times looking for a layer's grid (SDXL: 2)
MASK_ALIGN = 16  # SDPA's memory-efficient kernel wants mask rows 16-element aligned, or it pads a copy per call
CROSS_ATTENTION = "attn2.processor"  # diffusers' name for a transformer block's cross-attention

Group = tuple[tuple[int, ...], Region]  # one identity: its token positions in the prompt, its region


@dataclass(frozen=True)
class PanelMask:
    """One panel's identities as the processor needs them: token positions and region per person."""

    positive: tuple[Group, ...]  # identities found in the prompt
    negative: tuple[Group, ...] = ()  # identities found in the negative prompt (usually none)

    @property
    def needed(self) -> bool:
        return len(self.positive) >= MIN_IDENTITIES


@dataclass(frozen=True)
class AttentionCapture:
    """What one masked cross-attention call saw; handed to :attr:`RegionalAttention.capture` (tests)."""

    layer: str
    query: torch.Tensor  # [rows, heads, Q, d]
    key: torch.Tensor  # [rows, heads, K, d]
    value: torch.Tensor  # [rows, heads, K, d]
    mask: torch.Tensor  # [rows, 1, Q, K] additive
    output: torch.Tensor  # [rows, heads, Q, d], what SDPA returned
    grid: tuple[int, int]  # (h, w) of this layer's image positions

    def probs(self, masked: bool = True) -> torch.Tensor:
        """[rows, heads, Q, K] softmax(q k^T / sqrt(d) (+ mask)): what SDPA computes internally."""
        scores = self.query.float() @ self.key.float().transpose(-1, -2) / self.query.shape[-1] ** 0.5
        return torch.softmax(scores + self.mask.float() if masked else scores, dim=-1)


# -- token positions ---------------------------------------------------------------------------


def identity_ids(tokenizer: Any, token: str) -> list[int]:
    """The ids of a trigger token's added tokens (``<t>``, ``<t>_1``, ...), as diffusers expands them."""
    added = tokenizer.added_tokens_encoder
    if token not in added:
        return []
    ids, i = [added[token]], 1
    while f"{token}_{i}" in added:
        ids.append(added[f"{token}_{i}"])
        i += 1
    return ids


def token_positions(pipe: Any, prompt: str, tokens: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """token -> its positions in the prompt's key sequence, tokenized exactly as the pipeline does.

    The prompt is expanded with ``pipe.maybe_convert_prompt`` and padded/truncated to the tokenizer's
    77 tokens, as ``encode_prompt`` does; a token cut off by truncation has no positions. SDXL's two
    tokenizers share one BPE and the added tokens, so positions from the first hold for both.
    """
    tokenizer = pipe.tokenizer if getattr(pipe, "tokenizer", None) is not None else pipe.tokenizer_2
    text = pipe.maybe_convert_prompt(prompt, tokenizer)
    ids = tokenizer(text, padding="max_length", max_length=tokenizer.model_max_length, truncation=True).input_ids
    positions = {}
    for token in tokens:
        wanted = set(identity_ids(tokenizer, token))
        positions[token] = tuple(i for i, t in enumerate(ids) if t in wanted)
    return positions


def panel_masks(
    pipe: Any,
    prompts: Sequence[str],
    negatives: Sequence[str],
    plans: Sequence[Mapping[str, Region] | None],
) -> list[PanelMask | None]:
    """One entry per panel for :meth:`RegionalAttention.active`; ``plans[i]`` maps trigger tokens to
    regions (:func:`token_plan` turns a plan by name into one).

    ``None`` for a panel with no plan or fewer than two of its planned identities in the prompt. An
    identity in the prompt but not in the plan is left free to attend everywhere.
    """
    if not len(prompts) == len(negatives) == len(plans):
        raise ValueError(f"got {len(prompts)} prompts, {len(negatives)} negatives, {len(plans)} plans")
    masks: list[PanelMask | None] = []
    for prompt, negative, plan in zip(prompts, negatives, plans):
        if not plan or len(plan) < MIN_IDENTITIES:
            masks.append(None)
            continue
        pos = token_positions(pipe, prompt, list(plan))
        neg = token_positions(pipe, negative, list(plan))
        mask = PanelMask(
            tuple((pos[t], plan[t]) for t in plan if pos[t]), tuple((neg[t], plan[t]) for t in plan if neg[t])
        )
        masks.append(mask if mask.needed else None)
    return masks


def token_plan(plan: Mapping[str, Region]) -> dict[str, Region]:
    """A plan by person name (:func:`~storyface.render.regions.plan_regions`) -> by trigger token."""
    from ..identity.tokens import identity_token

    return {identity_token(name): region for name, region in plan.items()}


# -- geometry (pure) ---------------------------------------------------------------------------


def layer_grid(query_len: int, latent_hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of a layer whose image has ``query_len`` positions: the latent halved (rounding up, as a
    stride-2 convolution with padding 1 does) until the sizes match."""
    h, w = latent_hw
    for _ in range(MAX_LEVELS + 1):
        if h * w == query_len:
            return h, w
        h, w = -(-h // 2), -(-w // 2)
    raise ValueError(f"query length {query_len} matches no level of a {latent_hw[0]}x{latent_hw[1]} latent; "
                     "pass latent_hw=(height // 8, width // 8) of the panels being rendered")


def region_cells(region: Region, grid: tuple[int, int]) -> torch.Tensor:
    """[h * w] bool, raster order: the grid cells inside ``region`` (see the module docstring)."""
    h, w = grid
    ys = (torch.arange(h, dtype=torch.float64) + 0.5) / h  # [h] cell centres
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) / w  # [w]
    in_x = (xs >= region.x0) & ((xs < region.x1) | (region.x1 == 1.0))
    in_y = (ys >= region.y0) & ((ys < region.y1) | (region.y1 == 1.0))
    cells = in_y[:, None] & in_x[None, :]  # [h, w]
    cx, cy = region.centre
    cells[min(int(cy * h), h - 1), min(int(cx * w), w - 1)] = True  # the centre's cell, always
    return cells.reshape(-1)


def build_mask(
    rows: Sequence[tuple[Group, ...]], grid: tuple[int, int], keys: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """[len(rows), 1, h * w, keys] additive mask; a row with no groups is all zeros.

    Stored with its last dim padded to :data:`MASK_ALIGN` and returned as a view, so SDPA's
    memory-efficient kernel takes it as is instead of padding a copy at every call.
    """
    q = grid[0] * grid[1]
    padded = -(-keys // MASK_ALIGN) * MASK_ALIGN
    allowed = torch.ones(len(rows), q, keys, dtype=torch.bool)  # [rows, Q, K]
    for r, groups in enumerate(rows):
        for positions, region in groups:
            positions = [p for p in positions if p < keys]
            if positions:
                inside = region_cells(region, grid)  # [Q]
                allowed[r][:, positions] &= inside[:, None]
    mask = torch.zeros(len(rows), 1, q, padded, dtype=dtype, device=device)  # [rows, 1, Q, K_pad]
    mask[:, 0, :, :keys].masked_fill_(~allowed.to(device), float("-inf"))
    return mask[..., :keys]


# -- the processor -----------------------------------------------------------------------------


class RegionalAttention:
    """The shared state of the regional processors of one UNet: which masks are active, and the cache."""

    def __init__(self) -> None:
        self._panels: list[PanelMask | None] | None = None
        self._wants = False  # some panel of the active render needs a mask
        self._latent_hw: tuple[int, int] | None = None
        self._cache: dict[tuple, torch.Tensor] = {}
        self.capture: Callable[[AttentionCapture], None] | None = None  # tests: see every masked call

    # ---------------------------------------------------------------- installing

    @classmethod
    def install(cls, unet: Any) -> RegionalAttention:
        """Put a regional processor on every cross-attention layer; idempotent (returns the one installed)."""
        processors = unet.attn_processors  # name -> processor, every attention layer
        current = [p for n, p in processors.items() if n.endswith(CROSS_ATTENTION)]
        if not current:
            raise ValueError("this UNet has no cross-attention layers (attn2) to bind identity tokens in")
        if all(isinstance(p, RegionalProcessor) for p in current):
            return current[0].controller
        controller = cls()
        unet.set_attn_processor(
            {
                name: RegionalProcessor(controller, name, proc) if name.endswith(CROSS_ATTENTION) else proc
                for name, proc in processors.items()
            }
        )
        return controller

    @staticmethod
    def uninstall(unet: Any) -> None:
        """Put back the processors that :meth:`install` replaced."""
        processors = unet.attn_processors
        unet.set_attn_processor(
            {name: proc.inner if isinstance(proc, RegionalProcessor) else proc for name, proc in processors.items()}
        )

    @staticmethod
    def installed_on(unet: Any) -> bool:
        return any(isinstance(p, RegionalProcessor) for p in unet.attn_processors.values())

    # ---------------------------------------------------------------- one render

    @contextmanager
    def active(self, panels: Sequence[PanelMask | None], latent_hw: tuple[int, int]) -> Iterator[None]:
        """Masks for the pipe call inside: ``panels[i]`` is panel i's (``None``: no mask), in the
        pipeline's prompt order; ``latent_hw`` is (height // 8, width // 8). One call at a time."""
        if self._panels is not None:
            raise RuntimeError("regional attention is already active for another render")
        self._panels, self._latent_hw = list(panels), (int(latent_hw[0]), int(latent_hw[1]))
        self._wants = any(p is not None and p.needed for p in self._panels)
        self._cache.clear()
        try:
            yield
        finally:
            self._panels, self._latent_hw, self._wants = None, None, False
            self._cache.clear()

    @property
    def latent_hw(self) -> tuple[int, int] | None:
        return self._latent_hw

    @property
    def wants_mask(self) -> bool:
        return self._wants

    def mask_for(self, rows: int, query_len: int, keys: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """[rows, 1, Q, K] for this layer's batch; built once per resolution and reused."""
        cache_key = (rows, query_len, keys, dtype, device)
        mask = self._cache.get(cache_key)
        if mask is None:
            mask = build_mask(self._row_groups(rows), layer_grid(query_len, self._latent_hw), keys, dtype, device)
            self._cache[cache_key] = mask
        return mask

    def _row_groups(self, rows: int) -> list[tuple[Group, ...]]:
        """Each UNet batch row's groups: ``[prompts]`` without guidance, ``[negatives; prompts]`` with it."""
        panels = self._panels
        positive = [p.positive if p is not None and p.needed else () for p in panels]
        if rows == len(panels):
            return positive
        if rows == 2 * len(panels):
            negative = [p.negative if p is not None and p.needed else () for p in panels]
            return negative + positive
        raise RuntimeError(
            f"the UNet batch has {rows} rows for {len(panels)} panels; regional attention supports one image "
            "per prompt (num_images_per_prompt=1), with or without classifier-free guidance"
        )


class RegionalProcessor:
    """One cross-attention layer's processor: the masked SDPA path, or the replaced processor unchanged."""

    def __init__(self, controller: RegionalAttention, name: str, inner: Any) -> None:
        from diffusers.models.attention_processor import FusedAttnProcessor2_0

        self.controller, self.name, self.inner = controller, name, inner
        self._fused = isinstance(inner, FusedAttnProcessor2_0)

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> torch.Tensor:
        if encoder_hidden_states is None or not self.controller.wants_mask:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        return self._masked(attn, hidden_states, encoder_hidden_states, attention_mask, temb)

    def _masked(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        temb: torch.Tensor | None,
    ) -> torch.Tensor:
        """diffusers' AttnProcessor2_0 for cross-attention, with the region mask added to SDPA's scores."""
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)  # [B, Q, C]
        batch_size, query_len, _ = hidden_states.shape
        keys = encoder_hidden_states.shape[1]
        mask = self.controller.mask_for(batch_size, query_len, keys, hidden_states.dtype, hidden_states.device)
        if attention_mask is not None:  # a caller's own mask (e.g. encoder_attention_mask) still applies
            attention_mask = attn.prepare_attention_mask(attention_mask, keys, batch_size)
            mask = mask + attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query = attn.to_q(hidden_states)  # [B, Q, inner]
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        if self._fused:  # the replaced processor read the fused K/V projection: so do we
            kv = attn.to_kv(encoder_hidden_states)  # [B, K, 2 * inner]
            key, value = torch.split(kv, kv.shape[-1] // 2, dim=-1)
        else:
            key, value = attn.to_k(encoder_hidden_states), attn.to_v(encoder_hidden_states)  # [B, K, inner]
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # [B, heads, Q, d]
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)  # [B, heads, K, d]
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=False)
        if self.controller.capture is not None:
            grid = layer_grid(query_len, self.controller.latent_hw)
            self.controller.capture(AttentionCapture(self.name, query, key, value, mask, out, grid))

        hidden_states = out.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim).to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)  # linear proj
        hidden_states = attn.to_out[1](hidden_states)  # dropout
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor
