"""How the frozen UNet runs inside the training step: compiled blocks, checkpointed blocks, or plain.

Two trades, both on the UNet's repeated transformer blocks (``BasicTransformerBlock``), both set
only for the step (warm-up and graph capture, or each eager step) and put back afterwards, so the
renderer and the probe losses see the UNet exactly as they left it:

- **Regional compilation** (``compile``): default-mode ``torch.compile`` of each transformer block,
  never autotuning. Inductor fuses the LayerNorms, GEGLU and residual adds that the step's profile
  shows as memory-bound kernels (issue 13: 36.1 -> 33.3 ms a step on an H200). Shapes are fixed for
  a run, so blocks compile static (``dynamic=False``): no dynamic-shape guards to re-evaluate, and
  the same shapes in the next process hit inductor's on-disk caches (:func:`ensure_compile_cache`).
  The CUDA graph is captured after the warm-up step compiled forward and backward, so replays run
  the compiled kernels with no Python at all.
- **Activation checkpointing** (``checkpoint``): each transformer block keeps only its input for the
  backward pass and runs its forward again there. The UNet's weights are frozen, so autograd already
  skips the inputs of its linear layers and convolutions (they only serve weight gradients); what it
  keeps inside a block is what the gradient *to the block's input* needs: LayerNorm inputs and
  statistics, attention's q, k, v, output and log-sum-exp, GEGLU's two halves and the GELU output,
  about 21 values per token and channel. The gradient reaches the MLPs only through the encoder
  hidden states, but it must pass back through every block from the output to the first
  cross-attention, so these activations are most of the step's memory: SDXL at 512x512 has 60
  blocks of 256 tokens x 1280 and 10 of 1024 x 640, about 26M token-channels, so ~1.1 GB a person
  in bf16 (BENCHMARKS.md: one identity 9.6 GiB allocated, four 12.5 GiB). The ResNet blocks keep
  ~0.15 GB and the text encoders (77 tokens) ~0.1 GB. :func:`saved_bytes` counts this on any
  device, ``meta`` included (there attention takes the math path and keeps fp32 scores, so the
  blocks look ~2.5x heavier than with flash/cuDNN attention on a GPU). Checkpointing the blocks
  frees nearly all of it for one extra forward of the blocks.

Non-reentrant ``torch.utils.checkpoint`` (keyword arguments work; nothing host-side, so a CUDA graph
captures it); no RNG state is saved because the blocks draw no random numbers (dropout is 0 and the
UNet is in eval mode), which also keeps the capture free of generator reads. Under compilation the
checkpoint is traced into the block's graph, where AOT autograd recomputes it in the backward graph.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

log = logging.getLogger(__name__)

BLOCK_TYPES = ("BasicTransformerBlock",)  # the UNet's repeated transformer block (diffusers' _repeated_blocks)
CHECKPOINT_FROM_IDENTITIES = 2  # "several people together": measured on an H100 (BENCHMARKS.md) one identity
#   peaks at 10.5 GiB reserved, four at 14.0 GiB (~1.15 GiB a person), so two already sit at the 12 GiB line
RECOMPILE_LIMIT = 64  # dynamo's default (8 per code object) is shared by every block compiled with
#   Module.compile (they share Module._call_impl): 2 block widths x batch sizes x grad/no-grad x the
#   renderer's own shapes pass 8, after which dynamo silently runs the block eagerly
_COMPILED_ATTR = "_storyface_train_compiled"  # a block's own compiled callable, made once and reused


def wants_compile(setting: bool | None) -> bool:
    """``None`` means off: measured on the H200 (2026-11-29), compiled blocks save 8-11% a step (33.4 vs
    36.4 ms at one identity) but a fresh process pays for them at capture (3.8 s with a warm cache,
    15-19 s cold), so it trains faster without (41.5-44.8 s wall vs 48.2 s with a warm cache); ask for
    it (``compile=True``) in a long-lived worker."""
    return False if setting is None else bool(setting)


def wants_checkpoint(setting: bool | None, people: int, device: torch.device) -> bool:
    """``None`` means: checkpoint on CUDA when several people train together (memory, not speed)."""
    if setting is not None:
        return bool(setting)
    return device.type == "cuda" and people >= CHECKPOINT_FROM_IDENTITIES


def repeated_blocks(unet: torch.nn.Module, types: tuple[str, ...] = BLOCK_TYPES) -> list[torch.nn.Module]:
    """The UNet's modules whose class name is in ``types`` (70 transformer blocks in SDXL's UNet)."""
    return [m for m in unet.modules() if type(m).__name__ in types]


def ensure_compile_cache() -> None:
    """Keep compiled artifacts on disk so the next process reuses them.

    Leaves an inductor cache folder already chosen (``TORCHINDUCTOR_CACHE_DIR``, set by the user or
    by an earlier ``enable_compile_cache``) alone; otherwise points inductor at the StoryFace data
    folder's compile cache, the one the renderer uses. Torch writes its own default (``/tmp/
    torchinductor_<user>``) into that variable the first time anything asks inductor for its folder,
    so that value counts as "not chosen" (measured on the H200: the first fresh process had filled
    torch's default, not the data folder).
    """
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir as torch_default

    chosen = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if chosen and os.path.abspath(chosen) != os.path.abspath(torch_default()):
        return
    from ..render.compile import enable_compile_cache

    enable_compile_cache()


def _raise_recompile_limit() -> None:
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):  # renamed in torch 2.6; either may exist
        if hasattr(dynamo_config, name) and getattr(dynamo_config, name) < RECOMPILE_LIMIT:
            setattr(dynamo_config, name, RECOMPILE_LIMIT)


def _compiled(block: torch.nn.Module) -> object:
    """The block's compiled call, made once: default inductor mode, static shapes, graph breaks allowed."""
    fn = block.__dict__.get(_COMPILED_ATTR)
    if fn is None:
        fn = torch.compile(block._call_impl, dynamic=False)
        block.__dict__[_COMPILED_ATTR] = fn
    return fn


def _checkpointed(forward: Callable[..., Any]) -> Callable[..., Any]:
    """``forward`` under non-reentrant checkpointing, as a plain function.

    Not a ``functools.partial`` of ``checkpoint``: checkpoint is marked dynamo-disabled, and a
    block whose ``forward`` is such a partial runs eagerly even when compiled; called from a
    function, dynamo turns it into its checkpoint operator and compiles the block around it.
    """
    from torch.utils.checkpoint import checkpoint

    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        return checkpoint(forward, *args, use_reentrant=False, preserve_rng_state=False, **kwargs)

    return run


_MISSING = object()


@contextmanager
def unet_modes(
    unet: torch.nn.Module, compile: bool = False, checkpoint: bool = False, types: tuple[str, ...] = BLOCK_TYPES
) -> Iterator[None]:
    """Inside: the UNet's blocks of ``types`` compiled and/or checkpointed, everything else eager.

    Whatever compiled state the UNet had (the renderer's whole-UNet or regional compile) is set
    aside for the duration, so training never triggers a compile it did not ask for, and put back
    on exit together with each block's own ``forward``. Cheap to enter (attribute writes on ~70
    modules), so an eager step can enter it on every call.
    """
    blocks = repeated_blocks(unet, types)
    compiled_before = [(m, m._compiled_call_impl) for m in unet.modules() if getattr(m, "_compiled_call_impl", None)]
    forwards_before = [(b, b.__dict__.get("forward", _MISSING)) for b in blocks]
    if compile:
        _raise_recompile_limit()
    try:
        for module, _ in compiled_before:
            module._compiled_call_impl = None
        for block in blocks:
            if checkpoint:
                block.forward = _checkpointed(block.forward)
            if compile:
                block._compiled_call_impl = _compiled(block)
        yield
    finally:
        for block, forward in forwards_before:
            block._compiled_call_impl = None
            if forward is _MISSING:
                block.__dict__.pop("forward", None)
            else:
                block.forward = forward
        for module, impl in compiled_before:
            module._compiled_call_impl = impl


@contextmanager
def saved_bytes() -> Iterator[dict[str, int]]:
    """Count the bytes autograd keeps for the backward pass inside the context (works on ``meta`` too).

    Tensors saved twice (the same storage) count once; parameters and views of them (a frozen
    linear layer saves ``weight.t()`` for the input's gradient) count never: they exist anyway.
    Tensors a checkpointed block keeps for its recompute go through checkpoint's own hooks, not
    these, so under checkpointing only what lies outside the blocks is counted (the blocks' inputs,
    one activation each, are not).
    Yields a dict whose ``"bytes"`` is filled as the forward runs.
    """
    seen: set[tuple[int, int]] = set()
    counter = {"bytes": 0, "tensors": 0}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter) and not isinstance(t._base, torch.nn.Parameter):
            try:
                key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
            except (RuntimeError, NotImplementedError):  # meta and some wrappers have no real storage
                key = (id(t), t.numel() * t.element_size())
            if t.device.type == "meta" or key not in seen:
                seen.add(key)
                counter["bytes"] += t.numel() * t.element_size()
                counter["tensors"] += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield counter
