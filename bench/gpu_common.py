"""What bench_gpu.py's phases and bench/explore.py share: the plan, timing and memory helpers, the
synthetic subjects, a timed training run, and the random distillation LoRA."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

GIB = 2**30
LORA_NAME = "bench_random_lightning_4step_lora.safetensors"  # the name says its kind and steps, as real files do


@dataclass(frozen=True)
class Plan:
    """What to measure; FULL is the issue's setting, SMOKE the same code shrunk for a CPU."""

    model: str
    device: str
    fast_dtype: str
    steps: int  # identity-training steps (the 500)
    sample_steps: int  # steps actually run for the fp32 reference and the fast-vs-plain checks
    bank_size: int
    together: int  # identities trained together
    panels: int
    side: int
    render_steps: int
    guidance: float
    timed_pages: int
    photo_side: int
    resolution: int | None = None  # training side; None: the model's (512 for SDXL)
    mlp_hidden: int = 1024
    probe_samples: int = 4
    compile: bool | None = None  # the trainer's setting; None: its default (compiled blocks on CUDA)
    mem_steps: int = 40  # steps of each memory run (checkpointing on / off): peak and ms/step settle early
    steady_steps: int = 40  # steps of each compile on / off run
    fast_steps: int = 4  # the fast page (SDXL-Lightning 4-step)
    fast_pages: int = 3
    lora_rank: int = 64  # SDXL-Lightning's LoRAs are rank 64

    def train_config(self, steps: int, graph: bool | None = None, **options: Any):
        """The trainer's config for this plan; ``options``: compile / checkpoint (None: the defaults)."""
        from storyface.identity.train import TrainConfig

        options.setdefault("compile", self.compile)
        return TrainConfig(
            steps=steps, bank_size=self.bank_size, graph=graph, resolution=self.resolution,
            mlp_hidden=self.mlp_hidden, probe_samples=self.probe_samples, **options,
        )  # fmt: skip


FULL = Plan("random-sdxl", "cuda", "bfloat16", 500, 20, 48, 4, 6, 1024, 30, 5.0, 2, 512)
SMOKE = Plan(
    "tiny", "cpu", "float32", 3, 2, 2, 2, 2, 32, 1, 5.0, 1, 64, resolution=64, mlp_hidden=32, probe_samples=1,
    mem_steps=3, steady_steps=3, fast_pages=1, lora_rank=4,
)

# ----------------------------------------------------------------------------- helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of ``fn`` with the device drained before and after."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak(device: torch.device) -> dict[str, float]:
    """Peak allocated and reserved GiB since the last reset (0 on CPU)."""
    if device.type != "cuda":
        return {"alloc_gib": 0.0, "reserved_gib": 0.0}
    return {
        "alloc_gib": torch.cuda.max_memory_allocated(device) / GIB,
        "reserved_gib": torch.cuda.max_memory_reserved(device) / GIB,
    }


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class Records(logging.Handler):
    """Keeps library log messages (graph capture, compile fallbacks) for the report."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def take(self) -> list[str]:
        out, self.messages = self.messages, []
        return out


def modes_from_log(lines: list[str]) -> str:
    """How the step ran, from the trainer's own log: 'graph+compile', 'graph+checkpoint', 'eager', ..."""
    graph = compile_ = checkpoint = False
    for line in lines:
        if line.startswith("training step: graph"):
            words = line.replace(",", "").split()
            graph, compile_, checkpoint = words[3] == "True", words[6] == "True", words[9] == "True"
        if "capturing it uncompiled" in line:
            compile_ = False
        if "training eagerly" in line:
            graph = False
    parts = [name for name, on in (("graph", graph), ("compile", compile_), ("checkpoint", checkpoint)) if on]
    return "+".join(parts) or "eager"


def synthetic_subject(name: str, seed: int, side: int):
    """A textured 'face' with face/hair masks and a 128-d feature: the trainer's full workload."""
    from PIL import Image

    from storyface.identity.train import Subject

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    face = np.zeros((side, side), np.float32)
    face[side // 4 : 3 * side // 4, side // 3 : 2 * side // 3] = 1
    hair = np.zeros((side, side), np.float32)
    hair[side // 8 : side // 4, side // 3 : 2 * side // 3] = 1
    return Subject(name, Image.fromarray(img), face, hair, rng.standard_normal(128).astype(np.float32))


def train_run(model, subjects: list, cfg, device: torch.device, records: Records | None = None) -> dict:
    """Train and time it: total seconds, median seconds per step, per-step losses, final rows, modes."""
    from storyface.identity.train import train_identities

    stamps: list[float] = []
    losses: list[float] = []

    def progress(step: int, total: int, loss: float) -> None:  # loss.item() already synced
        stamps.append(time.perf_counter())
        losses.append(loss)

    if records is not None:
        records.take()
    total, identities = timed(device, lambda: train_identities(model, subjects, cfg, progress=progress))
    gaps = np.diff(stamps)
    step_s = float(np.median(gaps[1:] if len(gaps) > 2 else gaps)) if len(gaps) else total
    steps_s = float(stamps[-1] - stamps[0]) + step_s
    rows = {k: torch.stack([i.embeddings[k] for i in identities]) for k in identities[0].embeddings}
    out = {"total_s": total, "step_s": step_s, "overhead_s": total - steps_s, "losses": losses, "rows": rows}
    if records is not None:
        out["log"] = records.take()
        out["modes"] = modes_from_log(out["log"])
    return out


def public(run: dict) -> dict:
    """A training result without its tensors (for results.json)."""
    return {k: v for k, v in run.items() if k != "rows"}


def diff_report(a: dict, b: dict) -> dict:
    """How far two training runs drift apart: loss per step and final rows, both relative."""
    la, lb = np.array(a["losses"]), np.array(b["losses"])
    loss_rel = float(np.max(np.abs(la - lb) / np.maximum(np.abs(lb), 1e-12)))
    rows_rel = max(
        float((a["rows"][k].float() - b["rows"][k].float()).norm() / b["rows"][k].float().norm()) for k in a["rows"]
    )
    return {"loss_rel": loss_rel, "rows_rel": rows_rel}


def render_page(model, prompts: list[str], config) -> float:
    from storyface.render import Renderer

    renderer = Renderer(model)
    return timed(model.device, lambda: renderer.render(prompts, "", config=config))[0]


def page_config(plan, panels: int, fast: bool = False):
    """The standard page (30 steps, CFG) or the fast one (the Lightning preset: 4 steps, trailing Euler, no CFG)."""
    from storyface.render import RenderConfig
    from storyface.render.quality import fast_preset

    base = RenderConfig(steps=plan.render_steps, guidance=plan.guidance, width=plan.side, height=plan.side, batch_size=panels)
    return fast_preset("lightning", LORA_NAME, plan.fast_steps).render_config(base) if fast else base


def write_random_lora(unet: torch.nn.Module, path: Path, rank: int, seed: int = 0) -> dict:
    """A random LoRA of ``rank`` on every Linear inside the UNet's attention modules, as fp16 safetensors.

    Distillation LoRAs for SDXL (Lightning, Hyper-SD, LCM) adapt these layers (attention projections,
    feed-forward, proj_in/out), at rank 64 for Lightning; the values are small so the fused model stays
    numerically sane. Made on the CPU with a seeded generator: the same file in every run.
    """
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in unet.named_modules():
        if isinstance(module, torch.nn.Linear) and ".attentions." in f".{name}":
            tensors[f"unet.{name}.lora_A.weight"] = (torch.randn(rank, module.in_features, generator=gen) * 0.01).half()
            tensors[f"unet.{name}.lora_B.weight"] = (torch.randn(module.out_features, rank, generator=gen) * 0.01).half()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return {"rank": rank, "layers": len(tensors) // 2, "file_mb": path.stat().st_size / 2**20}


def per_call(device: torch.device, fn: Callable[[], object], warm: int, n: int) -> float:
    """Mean seconds per call over ``n`` calls after ``warm`` calls (device drained)."""
    for _ in range(warm):
        fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / n
