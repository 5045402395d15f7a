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


def train_step_variants(model, plan, subjects, graph_only: bool = False) -> list[tuple[str, str]]:
    from storyface.identity.train import TrainConfig, TrainingRun

    rows = []
    dev, unet = model.device, model.pipe.unet
    for n_subj in sorted({1, plan.together}):
        for name, graph, channels_last in (
            ("eager", False, False),
            ("CUDA graph", True, False),
            ("CUDA graph + channels_last", True, True),
        ):
            if (graph and dev.type != "cuda") or (graph_only and (not graph or channels_last)):
                continue
            unet.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            _reset(dev)
            run = TrainingRun(model, subjects[:n_subj], TrainConfig(steps=10, bank_size=8, graph=graph, compile=False, checkpoint=False))
            t0 = time.perf_counter()
            step = run.step_fn()
            setup = time.perf_counter() - t0
            n = 50 if graph else 5
            s = _per_call(dev, step, warm=2, n=n)
            rows.append((f"train step, {n_subj} id(s), {name}", f"{s * 1e3:.1f} ms/step ({n} steps; "
                         f"capture/setup {setup:.1f} s; peak {_peak_gib(dev):.2f} GiB)"))
            del step, run
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


def render_variants(model, plan, basic: bool = False) -> list[tuple[str, str]]:
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
    for name, setup, fn in steps[:1] if basic else steps:
        setup()
        s = _per_call(dev, fn, warm=2, n=5)
        rows.append((f"render UNet batch {b}, {name}", f"{s * 1e3:.1f} ms/call = {s * plan.render_steps:.2f} s/page"))
    if dev.type == "cuda" and not basic:
        t0 = time.perf_counter()
        unet.compile_repeated_blocks(fullgraph=True)
        call()
        torch.cuda.synchronize()
        first = time.perf_counter() - t0
        s = _per_call(dev, call, warm=1, n=5)
        rows.append((f"render UNet batch {b}, + regional compile (no cuDNN-first)",
                     f"{s * 1e3:.1f} ms/call = {s * plan.render_steps:.2f} s/page; first call {first:.1f} s"))
    lat = torch.randn(plan.panels, 4, plan.side // 8, plan.side // 8, device=dev, dtype=model.dtype)
    for name, fmt in (("NCHW", torch.contiguous_format), ("channels_last", torch.channels_last))[: 1 if basic else 2]:
        vae.to(memory_format=fmt)

        def decode() -> None:
            with torch.inference_mode():
                vae.decode(lat / vae.config.scaling_factor)

        s = _per_call(dev, decode, warm=1, n=3)
        rows.append((f"VAE decode {plan.panels} x {plan.side}², {name}", f"{s * 1e3:.0f} ms"))
    return rows


def _category(name: str) -> str:
    n = name.lower()
    for cat, keys in (
        ("conv", ("fprop", "dgrad", "wgrad", "conv", "cudnn")),
        ("attention", ("flash", "fmha", "attention", "sdpa")),
        ("gemm", ("gemm", "cutlass", "nvjet", "cublas", "xmma")),
        ("norm", ("norm",)),
        ("copy", ("copy", "cat", "index")),
        ("reduce", ("reduce",)),
        ("elementwise", ("elementwise", "vectorized", "unrolled")),
    ):
        if any(k in n for k in keys):
            return cat
    return "other"


def _profile(device: torch.device, fn: Callable[[], object], label: str, out_dir) -> list[tuple[str, str]]:
    """GPU kernel time of one call: busy time, kernel count, time per category, top kernels to a file."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy: dict[str, float] = {}
    by_name: dict[str, float] = {}
    for e in kernels:
        us = e.time_range.elapsed_us()
        busy[_category(e.name)] = busy.get(_category(e.name), 0.0) + us
        by_name[e.name] = by_name.get(e.name, 0.0) + us
    total = sum(busy.values())
    cats = ", ".join(f"{k} {v / 1e3:.1f}" for k, v in sorted(busy.items(), key=lambda kv: -kv[1]))
    if out_dir is not None:
        top = sorted(by_name.items(), key=lambda kv: -kv[1])[:40]
        with open(f"{out_dir}/profile.txt", "a") as f:
            f.write(f"## {label}: {len(kernels)} kernels, {total / 1e3:.1f} ms busy\n")
            f.writelines(f"{us / 1e3:9.2f} ms  {name[:160]}\n" for name, us in top)
    return [(f"profile {label}", f"{len(kernels)} kernels, GPU busy {total / 1e3:.1f} ms of {wall * 1e3:.0f} ms "
             f"wall (profiled); ms by kind: {cats}")]


def profile_group(model, plan, subjects, out_dir) -> list[tuple[str, str]]:
    from storyface.identity.train import TrainingRun

    dev = model.device
    rows = []
    for n_subj in sorted({1, plan.together}):
        step = TrainingRun(model, subjects[:n_subj], plan.train_config(10, graph=False, compile=False, checkpoint=False)).step_fn()
        rows += _profile(dev, step, f"train step eager, {n_subj} id(s)", out_dir)
        run = TrainingRun(model, subjects[:n_subj], plan.train_config(10))  # the product's step: graph, compiled
        rows += _profile(dev, run.step_fn(), f"train step as trained (graph, compile {run.compile}, "
                         f"checkpoint {run.checkpoint}), {n_subj} id(s)", out_dir)
    args, kwargs = _unet_inputs(model, plan)

    def unet_call() -> None:
        with torch.inference_mode():
            model.pipe.unet(*args, **kwargs)

    rows += _profile(dev, unet_call, f"render UNet call, batch {args[0].shape[0]}", out_dir)
    vae = model.pipe.vae
    lat = torch.randn(plan.panels, 4, plan.side // 8, plan.side // 8, device=dev, dtype=model.dtype)

    def decode() -> None:
        with torch.inference_mode():
            vae.decode(lat)

    rows += _profile(dev, decode, f"VAE decode {plan.panels} x {plan.side}", out_dir)
    return rows


def _clock(dev: torch.device, parts: dict[str, float]) -> Callable[[str, Callable[[], object]], object]:
    """A timer that records each named call's seconds (device synchronised) into ``parts``."""

    def clock(name: str, fn: Callable[[], object]) -> object:
        torch.cuda.synchronize() if dev.type == "cuda" else None
        t0 = time.perf_counter()
        out = fn()
        torch.cuda.synchronize() if dev.type == "cuda" else None
        parts[name] = time.perf_counter() - t0
        return out

    return clock


def overhead_group(model, plan, subjects, out_dir) -> list[tuple[str, str]]:
    """Where the seconds outside the 500 steps go, for one identity."""
    from storyface.identity import train as T
    from storyface.identity.augment import augment_bank
    from storyface.identity.prior import celeb_names, celeb_stats
    from storyface.identity.tokens import load_into_pipeline

    dev, subject = model.device, subjects[0]
    cfg = plan.train_config(plan.steps).resolved(model)
    parts = {}

    clock = _clock(dev, parts)

    clock("celeb_stats (both encoders)", lambda: [celeb_stats(s, celeb_names()) for s in model.encoders])
    images, _ = clock("augment_bank", lambda: augment_bank(
        subject.image, subject.face_mask, subject.hair_mask, cfg.resolution, cfg.bank_size, 0))
    clock("VAE encode bank", lambda: T.encode_bank(model, images, 0))
    run = clock("TrainingRun (prepare total)", lambda: T.TrainingRun(model, [subject], cfg))
    clock("probe loss", run.probe)
    step = clock("step_fn (warm-up + capture)", run.step_fn)
    clock("10 steps", lambda: [step() for _ in range(10)])
    [ident] = clock("identities", run.identities)
    clock("load_into_pipeline", lambda: load_into_pipeline(model, ident))
    return [(f"overhead: {k}", f"{v:.2f} s") for k, v in parts.items()]


def cudnn_group(model, plan, subjects, out_dir) -> list[tuple[str, str]]:
    torch.backends.cudnn.benchmark = True
    return [(f"cudnn.benchmark=True: {a}", b) for a, b in train_step_variants(model, plan, subjects, graph_only=True)
            ] + [(f"cudnn.benchmark=True: {a}", b) for a, b in render_variants(model, plan, basic=True)]


def compile_render_group(model, plan, subjects, out_dir) -> list[tuple[str, str]]:
    dev = model.device
    args, kwargs = _unet_inputs(model, plan)
    compiled = torch.compile(model.pipe.unet)

    def call() -> None:
        with torch.inference_mode():
            compiled(*args, **kwargs)

    t0 = time.perf_counter()
    call()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    s = _per_call(dev, call, warm=1, n=5)
    return [(f"render UNet batch {args[0].shape[0]}, torch.compile(unet) whole",
             f"{s * 1e3:.1f} ms/call = {s * plan.render_steps:.2f} s/page; first call {first:.1f} s")]


def vae_group(model, plan, subjects, out_dir) -> list[tuple[str, str]]:
    """The decoder's mid-block attention hands back a channels_last-strided tensor; load_model makes
    it contiguous with a hook (storyface.models). Time the decode with and without that hook."""
    from storyface.models import contiguous_vae_mid_blocks

    dev, vae = model.device, model.pipe.vae
    lat = torch.randn(plan.panels, 4, plan.side // 8, plan.side // 8, device=dev, dtype=model.dtype)

    def decode() -> None:
        with torch.inference_mode():
            vae.decode(lat)

    rows = [(f"VAE decode {plan.panels} x {plan.side}², as loaded (contiguous mid-block hook)",
             f"{_per_call(dev, decode, 1, 3) * 1e3:.0f} ms")]
    contiguous_vae_mid_blocks(model.pipe, enable=False)  # the layout diffusers leaves
    rows.append((f"VAE decode {plan.panels} x {plan.side}², hook removed", f"{_per_call(dev, decode, 1, 3) * 1e3:.0f} ms"))
    contiguous_vae_mid_blocks(model.pipe)
    return rows


def overhead4_group(model, plan, subjects, out_dir) -> list[tuple[str, str]]:
    """Seconds outside the steps when several identities train together, in a warm process."""
    from storyface.identity import train as T
    from storyface.identity.tokens import load_into_pipeline

    dev, rows = model.device, []
    for n in sorted({1, plan.together}):
        cfg = plan.train_config(plan.steps).resolved(model)
        parts: dict[str, float] = {}
        _reset(dev)

        clock = _clock(dev, parts)

        run = clock("TrainingRun (prepare)", lambda: T.TrainingRun(model, subjects[:n], cfg))
        clock("probe loss", run.probe)
        step = clock("step_fn (warm-up + capture)", run.step_fn)
        clock("10 steps", lambda: [step() for _ in range(10)])
        idents = clock("identities", run.identities)
        clock("load_into_pipeline (replace rows)", lambda: [load_into_pipeline(model, i) for i in idents])
        rows += [(f"overhead, {n} id(s), warm: {k}", f"{v:.2f} s") for k, v in parts.items()]
        if dev.type == "cuda":
            rows.append((f"overhead, {n} id(s): peak memory", f"{_peak_gib(dev):.2f} GiB allocated, "
                         f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB reserved"))
        del step
    return rows


def cprofile_group(model, plan, subjects, out_dir) -> list[tuple[str, str]]:
    """Host-side profile of whole training runs (few steps): where the seconds outside the steps go."""
    import cProfile
    import io
    import pstats

    from storyface.identity.train import train_identities

    rows = []
    cfg = plan.train_config(3)
    train_identities(model, subjects[:1], cfg)  # warm: first-call costs are not overhead
    for n in sorted({1, plan.together}):
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.runcall(train_identities, model, subjects[:n], plan.train_config(20))
        total = time.perf_counter() - t0
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(45)
        if out_dir is not None:
            with open(f"{out_dir}/cprofile.txt", "a") as f:
                f.write(f"## train_identities, {n} id(s), 20 steps: {total:.2f} s\n{buf.getvalue()}\n")
        rows.append((f"train_identities, {n} id(s), 20 steps (cProfile)", f"{total:.2f} s"))
    return rows


from explore_train import checkpoint_group, compile_train_group  # noqa: E402

GROUPS = {
    "cprofile": cprofile_group,
    "vae": vae_group,
    "overhead4": overhead4_group,
    "train": lambda m, p, s, o: train_step_variants(m, p, s),
    "render": lambda m, p, s, o: render_variants(m, p),
    "profile": profile_group,
    "overhead": overhead_group,
    "cudnn": cudnn_group,
    "compile_render": compile_render_group,
    "compile_train": compile_train_group,
    "checkpoint": checkpoint_group,
}


def explore_variants(model, plan, subjects, groups: str = "train,render", out_dir=None) -> tuple[dict, str]:
    """Run each group in order, keep going past failures; returns (results, markdown table)."""
    rows: list[tuple[str, str]] = []
    for name in groups.split(","):
        t0 = time.perf_counter()
        try:
            rows += GROUPS[name](model, plan, subjects, out_dir)
        except Exception as exc:  # a variant that fails is a finding, not the end of the run
            log.error("variant group %s failed: %s", name, traceback.format_exc())
            rows.append((f"FAILED {name}", f"{type(exc).__name__}: {str(exc)[:300]}"))
        log.info("group %s took %.1f s; so far: %s", name, time.perf_counter() - t0, rows)
    table = "| variant | time |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    return {"rows": rows}, table
