"""Training-step variants for bench/explore.py: compiled blocks (which ones pay) and activation
checkpointing (memory against time), each through the trainer's own options on the loaded model."""

from __future__ import annotations

import time

from gpu_common import peak, per_call, reset_peak


def compile_train_group(model, plan, subjects, out_dir) -> list[tuple[str, str]]:
    """The trainer's compiled step (TrainConfig.compile) against plain graphs, and which blocks pay:
    transformer blocks only (the product's choice) or the ResNet blocks too (GroupNorm + SiLU fused)."""
    from storyface.identity.train import TrainingRun

    rows, dev = [], model.device
    variants = (
        ("graph, not compiled", False, ("BasicTransformerBlock",)),
        ("graph + compiled transformer blocks", True, ("BasicTransformerBlock",)),
        ("graph + compiled transformer and ResNet blocks", True, ("BasicTransformerBlock", "ResnetBlock2D")),
    )
    for n_subj in sorted({1, plan.together}):
        for name, compile, types in variants:
            reset_peak(dev)
            run = TrainingRun(model, subjects[:n_subj], plan.train_config(10, compile=compile, checkpoint=False))
            run.block_types = types
            t0 = time.perf_counter()
            step = run.step_fn()
            setup = time.perf_counter() - t0
            s = per_call(dev, step, warm=2, n=50)
            rows.append((f"train step, {n_subj} id(s), {name}",
                         f"{s * 1e3:.1f} ms/step; compile+capture {setup:.1f} s; peak {peak(dev)['alloc_gib']:.2f} GiB"))
            del step, run
    return rows


def checkpoint_group(model, plan, subjects, out_dir) -> list[tuple[str, str]]:
    """Activation checkpointing of the transformer blocks at several people: memory and step time,
    compiled and not (the memory phase measures the product's default, compiled)."""
    from storyface.identity.train import TrainingRun

    rows, dev = [], model.device
    for compile in (False, True):
        for checkpoint in (False, True):
            reset_peak(dev)
            run = TrainingRun(model, subjects[: plan.together], plan.train_config(10, compile=compile, checkpoint=checkpoint))
            step = run.step_fn()
            s = per_call(dev, step, warm=2, n=30)
            mem = peak(dev)
            rows.append((f"train step, {plan.together} ids, compile {compile}, checkpoint {checkpoint}",
                         f"{s * 1e3:.1f} ms/step; peak {mem['alloc_gib']:.2f} GiB allocated, {mem['reserved_gib']:.2f} GiB reserved"))
            del step, run
    return rows
