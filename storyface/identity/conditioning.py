"""The UNet conditioning for training, built exactly as the pipeline builds it at inference.

SDXL: penultimate hidden states of both text encoders, concatenated; pooled embeds from encoder 2;
``add_time_ids`` = (original size, crop top-left, target size). SD 2.x: the last hidden state.
The learned rows enter through ``torch.func.functional_call`` with a substituted embedding table, so
transformers stays untouched and the tokens are the very ids ``load_textual_inversion`` creates.
"""

from __future__ import annotations

import torch
from torch.func import functional_call

from ..models import EncoderSlot, LoadedModel


def _embedding_param_name(module: torch.nn.Module) -> str:
    weight = module.get_input_embeddings().weight
    return next(name for name, p in module.named_parameters() if p is weight)


def tokenize(model: LoadedModel, prompts: list[str]) -> dict[str, torch.Tensor]:
    """Token ids per encoder [B, 77], with multi-vector tokens expanded as the pipeline expands them."""
    ids = {}
    for slot in model.encoders:
        texts = model.pipe.maybe_convert_prompt(list(prompts), slot.tokenizer)
        tok = slot.tokenizer(
            texts, padding="max_length", max_length=slot.tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        ids[slot.key] = tok.input_ids.to(model.device)
    return ids


def token_ids(slot: EncoderSlot, token: str, n: int) -> torch.Tensor:
    """Vocabulary ids of an identity's ``n`` added tokens in one tokenizer: [n]."""
    from .tokens import added_tokens

    return torch.tensor(slot.tokenizer.convert_tokens_to_ids(added_tokens(token, n)), dtype=torch.long)


def _encode_one(
    slot: EncoderSlot, family: str, ids: torch.Tensor, rows: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    te = slot.text_encoder
    params = {}
    if rows is not None:
        row_ids, values = rows  # [k], [k, D]
        table = te.get_input_embeddings().weight  # [V, D], frozen
        params[_embedding_param_name(te)] = table.index_put((row_ids.to(table.device),), values.to(table.dtype))
    out = functional_call(te, params, (ids,), {"output_hidden_states": True})
    if family == "sdxl":
        pooled = out[0] if out[0].ndim == 2 else None  # CLIPTextModelWithProjection.text_embeds [B, P]
        return out.hidden_states[-2], pooled  # [B, 77, D]
    return out[0], None  # SD 2.x: last_hidden_state [B, 77, D]


def encode_prompts(
    model: LoadedModel,
    ids: dict[str, torch.Tensor],
    rows: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(prompt_embeds [B, 77, sum D], pooled [B, P] or None) with ``rows`` substituted per encoder.

    Equals ``pipe.encode_prompt`` for the same prompt once the rows are loaded (tests check it).
    """
    hidden, pooled = [], None
    for slot in model.encoders:
        h, p = _encode_one(slot, model.family, ids[slot.key], (rows or {}).get(slot.key))
        hidden.append(h)
        pooled = p if p is not None else pooled
    embeds = torch.cat(hidden, dim=-1).to(model.dtype)
    return embeds, (pooled.to(model.dtype) if pooled is not None else None)


def add_time_ids(model: LoadedModel, height: int, width: int, batch: int) -> torch.Tensor:
    """SDXL micro-conditioning for an uncropped square crop: [B, 6]."""
    ids = torch.tensor([[height, width, 0, 0, height, width]], device=model.device, dtype=model.dtype)
    return ids.expand(batch, -1)


def unet_kwargs(embeds: torch.Tensor, pooled: torch.Tensor | None, time_ids: torch.Tensor | None) -> dict:
    """Keyword arguments for ``pipe.unet`` besides the latents and timesteps.

    ``time_ids`` from :func:`add_time_ids` for SDXL, built once by the trainer (a host-to-device copy
    inside the step could not be captured in a CUDA graph); ``None`` for SD 2.x.
    """
    kwargs: dict = {"encoder_hidden_states": embeds}
    if time_ids is not None:
        kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
    return kwargs
