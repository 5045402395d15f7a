"""Speed variants behind bench_gpu.py's choices, each timed on the same loaded pipeline.

Training step (eager, one CUDA graph, graph + channels_last) at 1 and several identities; the
render UNet at page batch (default, channels_last, fused QKV, cuDNN attention first, regional
compile), and the VAE decode. Variants mutate the pipeline, so this runs last.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable

import torch

log = logging.getLogger("bench.explore")


def _per_call(device: torch.device, fn: Callable[[], object], warm: int, n: int) -> float:
    """Mean seconds per call over ``n`` calls after ``warm`` calls (device drained)."""
    for _ in range(warm):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n


def _peak_gib(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0


def _reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def train_step_variants(model, plan, subjects) -> list[tuple[str, str]]:
    from storyface.identity.train import TrainConfig, _make_step, _prepare

    rows = []
    dev, unet = model.device, model.pipe.unet
    for n_subj in sorted({1, plan.together}):
        for name, graph, channels_last in (
            ("eager", False, False),
            ("CUDA graph", True, False),
            ("CUDA graph + channels_last", True, True),
        ):
            if graph and dev.type != "cuda":
                continue
            unet.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            _reset(dev)
            cfg = TrainConfig(steps=10, bank_size=8, graph=graph).resolved(model)
            priors, batch = _prepare(model, subjects[:n_subj], cfg)
            t0 = time.perf_counter()
            step = _make_step(model, priors, batch, cfg)
            setup = time.perf_counter() - t0
            n = 50 if graph else 5
            s = _per_call(dev, step, warm=2, n=n)
            rows.append((f"train step, {n_subj} id(s), {name}", f"{s * 1e3:.1f} ms/step ({n} steps; "
                         f"capture/setup {setup:.1f} s; peak {_peak_gib(dev):.2f} GiB)"))
            del step, priors, batch
    unet.to(memory_format=torch.contiguous_format)
    return rows


def _unet_inputs(model, plan) -> tuple[tuple, dict]:
    dev, dt = model.device, model.dtype
    b, h = 2 * plan.panels, plan.side // 8  # CFG doubles the batch
    g = torch.Generator(dev).manual_seed(0)
    dims = sum(s.dim for s in model.encoders)
    pooled = model.encoders[-1].text_encoder.config.projection_dim
    x = torch.randn(b, 4, h, h, device=dev, dtype=dt, generator=g)
    t = torch.full((b,), 500.0, device=dev)
    kwargs = {
        "encoder_hidden_states": torch.randn(b, 77, dims, device=dev, dtype=dt, generator=g),
        "added_cond_kwargs": {
            "text_embeds": torch.randn(b, pooled, device=dev, dtype=dt, generator=g),
            "time_ids": torch.tensor([[plan.side, plan.side, 0, 0, plan.side, plan.side]], device=dev, dtype=dt).expand(
                b, -1
            ),
        },
    }
    return (x, t), kwargs


def render_variants(model, plan) -> list[tuple[str, str]]:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    rows = []
    dev, unet, vae = model.device, model.pipe.unet, model.pipe.vae
    args, kwargs = _unet_inputs(model, plan)
    b = args[0].shape[0]

    def call() -> None:
        with torch.inference_mode():
            unet(*args, **kwargs)

    def cudnn_first() -> None:
        with torch.inference_mode(), sdpa_kernel(
            [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
            set_priority=True,
        ):
            unet(*args, **kwargs)

    steps = [
        ("default (bf16, SDPA, NCHW)", lambda: None, call),
        ("+ channels_last", lambda: unet.to(memory_format=torch.channels_last), call),
        ("+ fused QKV", unet.fuse_qkv_projections, call),
        ("+ cuDNN attention first", lambda: None, cudnn_first),
    ]
    for name, setup, fn in steps:
        setup()
        s = _per_call(dev, fn, warm=2, n=5)
        rows.append((f"render UNet batch {b}, {name}", f"{s * 1e3:.1f} ms/call = {s * plan.render_steps:.2f} s/page"))
    if dev.type == "cuda":
        t0 = time.perf_counter()
        unet.compile_repeated_blocks(fullgraph=True)
        call()
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        s = _per_call(dev, call, warm=1, n=5)
        rows.append((f"render UNet batch {b}, + regional compile (no cuDNN-first)",
                     f"{s * 1e3:.1f} ms/call = {s * plan.render_steps:.2f} s/page; first call {first:.1f} s"))
    lat = torch.randn(plan.panels, 4, plan.side // 8, plan.side // 8, device=dev, dtype=model.dtype)
    for name, fmt in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last)):
        vae.to(memory_format=fmt)

        def decode() -> None:
            with torch.inference_mode():
                vae.decode(lat / vae.config.scaling_factor)

        s = _per_call(dev, decode, warm=1, n=3)
        rows.append((f"VAE decode {plan.panels} x {plan.side}², {name}", f"{s * 1e3:.0f} ms"))
    return rows


def explore_variants(model, plan, subjects) -> tuple[dict, str]:
    """Run each group, keep going past failures; returns (results, markdown table)."""
    rows: list[tuple[str, str]] = []
    for group in (lambda: train_step_variants(model, plan, subjects), lambda: render_variants(model, plan)):
        try:
            rows += group()
        except Exception as exc:  # a variant that fails is a finding, not the end of the run
            log.error("variant group failed: %s", traceback.format_exc())
            rows.append(("FAILED", f"{type(exc).__name__}: {str(exc)[:200]}"))
        log.info("explore so far: %s", rows)
    table = "| variant | time |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    return {"rows": rows}, table
