"""The phases of bench_gpu.py: each measures one group of table figures and returns a JSON-able dict.

Every phase takes the shared :class:`Bench` (plan, device, the fast model loaded once, the random
LoRA file, the compile-cache folders) and can run alone (``--phases``): what it needs it builds.
Fresh-process figures come from a child Python process (``bench_gpu.py --child``) so that imports,
model build, compilation and capture are all inside the timing.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
PROMPTS = (
    "a comic panel of a woman reading a map in a train station, ink and flat colour",
    "a comic panel of two friends laughing at a kitchen table, warm light",
    "a comic panel of a detective in the rain under a street lamp",
    "a comic panel of a child flying a red kite on a hill",
    "a comic panel of an old sailor steering a boat through a storm",
    "a comic panel of a scientist looking at a glowing test tube",
)
LORA_NAME = "bench_random_lightning_4step_lora.safetensors"  # the name says its kind and steps, as real files do
CHILD_MARK = "CHILD_RESULT "



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


# ----------------------------------------------------------------------------- shared state


@dataclass
class Bench:
    """What the phases share: the plan, the fast model (built once), the LoRA file, cache folders."""

    plan: Any
    device: torch.device
    out: Path
    cache_root: Path  # compile caches: parent/ for this process, fresh/ for the child processes
    records: Records
    subjects: list = field(default_factory=list)
    model: Any = None
    build_s: float | None = None
    lora: dict | None = None
    kept: dict = field(default_factory=dict)  # tensors the table's checks compare, never written out

    def fast_model(self):
        """The product's model (bf16 on CUDA), built on first use and kept."""
        if self.model is None:
            from storyface.models import load_model

            self.build_s, self.model = timed(
                self.device, lambda: load_model(self.plan.model, self.device, getattr(torch, self.plan.fast_dtype))
            )
        return self.model

    def lora_file(self) -> Path:
        path = self.cache_root / "lora" / LORA_NAME
        if self.lora is None:
            model = self.fast_model()
            t0 = time.perf_counter()
            self.lora = write_random_lora(model.pipe.unet, path, self.plan.lora_rank)
            self.lora["write_s"] = time.perf_counter() - t0
        return path

    def compare_reference(self, results: dict) -> None:
        """Fast 1-person check vs the fp32 reference, once both ran (either order)."""
        fast, ref = self.kept.get("fast_check"), self.kept.get("reference_train")
        if fast is not None and ref is not None and results.get("reference"):
            results["reference"]["fast_vs_fp32"] = diff_report(fast, ref)


# ----------------------------------------------------------------------------- phases


def phase_train(b: Bench, results: dict) -> dict:
    """Fast vs plain checks (1 and several people; these also warm the compiled shapes), then one
    identity and several together with the product's defaults, each with its peak memory."""
    plan, device, records = b.plan, b.device, b.records
    model = b.fast_model()
    res: dict = {"build_s": b.build_s, "check": {}}
    for n in sorted({1, plan.together}):
        plain = train_run(model, b.subjects[:n], plan.train_config(plan.sample_steps, graph=False, compile=False, checkpoint=False), device, records)
        fast = train_run(model, b.subjects[:n], plan.train_config(plan.sample_steps), device, records)
        res["check"][str(n)] = {
            "fast_vs_plain": diff_report(fast, plain), "plain_step_s": plain["step_s"], "fast_step_s": fast["step_s"],
            "fast_total_s": fast["total_s"], "fast_modes": fast["modes"], "fast_log": fast["log"],
        }  # fmt: skip
        if n == 1:
            b.kept["fast_check"] = fast
    full = plan.train_config(plan.steps)
    for key, n in (("one", 1), ("together", plan.together)):
        reset_peak(device)
        res[key] = public(train_run(model, b.subjects[:n], full, device, records))
        res[f"{key}_peak"] = peak(device)
    return res


def phase_page(b: Bench, results: dict) -> dict:
    """The standard page: 6 panels at 1024², 30 Euler steps, CFG, batch 6, VAE decode and PIL included."""
    model, plan = b.fast_model(), b.plan
    prompts, cfg = list(PROMPTS[: plan.panels]), page_config(plan, plan.panels)
    warm = render_page(model, prompts, cfg)  # kernels, cuDNN plans, the scheduler instance
    reset_peak(b.device)
    pages = [render_page(model, prompts, cfg) for _ in range(plan.timed_pages)]
    return {"warmup_s": warm, "page_s": statistics.median(pages), "pages_s": pages, "peak": peak(b.device)}


def phase_fast_page(b: Bench, results: dict) -> dict:
    """The fast page: a random rank-64 'Lightning' LoRA fused through apply_loras, 4 steps, no CFG."""
    from storyface.render.adapters import apply_loras, remove_loras

    model, plan = b.fast_model(), b.plan
    path = b.lora_file()
    fuse_s, loaded = timed(b.device, lambda: apply_loras(model, [str(path)]))
    try:
        prompts, cfg = list(PROMPTS[: plan.panels]), page_config(plan, plan.panels, fast=True)
        warm = render_page(model, prompts, cfg)
        reset_peak(b.device)
        pages = [render_page(model, prompts, cfg) for _ in range(plan.fast_pages)]
        mem = peak(b.device)
    finally:
        unfuse_s, _ = timed(b.device, lambda: remove_loras(model))
    return {
        "lora": {**(b.lora or {}), "kind": loaded[0].kind, "fused_layers": loaded[0].layers, "fuse_s": fuse_s, "unfuse_s": unfuse_s},
        "steps": cfg.steps, "scheduler": cfg.scheduler, "guidance": cfg.guidance,
        "warmup_s": warm, "page_s": statistics.median(pages), "pages_s": pages, "peak": mem,
    }  # fmt: skip


def fresh_process(b: Bench, label: str, compile: bool | None, home: Path | None, timeout_s: float) -> dict:
    """The first identity in a new Python process: start, imports, model build, compile, capture, train.

    ``home`` is the child's STORYFACE_HOME, so the trainer's own cache choice (its data folder's
    compile cache) is what a user gets; inductor/Triton cache variables from outside are dropped.
    """
    spec = {"plan": asdict(b.plan), "compile": compile}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
        env.pop(var, None)
    cache_files = 0
    if home is not None:
        env["STORYFACE_HOME"] = str(home)
        cache = home / "compile-cache"
        cache_files = sum(1 for p in cache.rglob("*") if p.is_file()) if cache.exists() else 0
    cmd = [sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--child", json.dumps(spec)]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
    wall = time.time() - t0
    (b.out / f"child-{label}.log").write_text(proc.stdout + proc.stderr)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(CHILD_MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(lines[-1].removeprefix(CHILD_MARK))
    result["wall_s"] = wall
    result["import_s"] = result["started"] - t0 + result["import_s"]  # interpreter start + imports
    result["cache_files_before"] = cache_files
    return result


def child_main(spec: dict) -> None:
    """In the child: build the fast model and train one identity with the product's settings."""
    started = time.time()
    t0 = time.perf_counter()
    from storyface.models import load_model

    records = Records()
    logging.getLogger("storyface").addHandler(records)
    logging.getLogger("storyface").setLevel(logging.INFO)
    import_s = time.perf_counter() - t0
    plan = Plan(**spec["plan"])
    device = torch.device(plan.device)
    build_s, model = timed(device, lambda: load_model(plan.model, device, getattr(torch, plan.fast_dtype)))
    reset_peak(device)
    cfg = plan.train_config(plan.steps, compile=spec["compile"])
    run = train_run(model, [synthetic_subject("Ada Fresh", 0, plan.photo_side)], cfg, device, records)
    from torch._dynamo.utils import counters

    capture = [line for line in run["log"] if line.startswith("captured the training step")]
    result = {
        "started": started, "import_s": import_s, "build_s": build_s, "train_s": run["total_s"],
        "step_s": run["step_s"], "overhead_s": run["overhead_s"], "peak": peak(device), "modes": run["modes"],
        "capture": capture, "log": run["log"], "inductor_cache": os.environ.get("TORCHINDUCTOR_CACHE_DIR"),
        "dynamo_counters": {k: dict(v) for k, v in counters.items() if k in ("frames", "aot_autograd", "inductor", "stats")},
    }  # fmt: skip
    print(CHILD_MARK + json.dumps(result, default=str), flush=True)


def phase_fresh(b: Bench, results: dict, cold: bool, timeout_s: float) -> dict:
    """First-ever (``cold``: an empty cache folder) or cache-warm (the folder the cold child filled)."""
    home = b.cache_root / "fresh-home"
    if cold and home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    return fresh_process(b, "cold" if cold else "warm", b.plan.compile, home, timeout_s)


def phase_fresh_plain(b: Bench, results: dict, timeout_s: float) -> dict:
    """The same child with compilation off: what the fresh process costs without any cache."""
    return fresh_process(b, "plain", False, b.cache_root / "plain-home", timeout_s)


def phase_memory(b: Bench, results: dict) -> dict:
    """Several people together with activation checkpointing on and off: peak memory and step time."""
    plan, device = b.plan, b.device
    model = b.fast_model()
    res: dict = {"people": plan.together, "steps": plan.mem_steps}
    for key, checkpoint in (("on", True), ("off", False)):
        reset_peak(device)
        run = train_run(model, b.subjects[: plan.together], plan.train_config(plan.mem_steps, checkpoint=checkpoint), device, b.records)
        res[key] = {"peak": peak(device), **{k: run[k] for k in ("step_s", "total_s", "overhead_s", "modes")}}
    return res


def phase_steady(b: Bench, results: dict) -> dict:
    """Warm steady state: ms a step with the blocks compiled and not, at 1 and several people."""
    from storyface.identity.unet_modes import wants_compile

    plan, device = b.plan, b.device
    model = b.fast_model()
    res: dict = {"steps": plan.steady_steps}
    variants = (True, False) if wants_compile(plan.compile, device) else (False,)
    for n in sorted({1, plan.together}):
        for compile in variants:  # the median step excludes setup, compile and capture: no warm-up run needed
            run = train_run(model, b.subjects[:n], plan.train_config(plan.steady_steps, compile=compile), device, b.records)
            res[f"{n}_{'on' if compile else 'off'}"] = {k: run[k] for k in ("step_s", "total_s", "overhead_s", "modes")}
    return res


def phase_reference(b: Bench, results: dict) -> dict:
    """The reference way: fp32, eager, batch 1, pipeline rebuilt; sampled steps and one panel of each page."""
    from storyface.models import load_model
    from storyface.render.adapters import apply_loras

    plan, device = b.plan, b.device
    lora = b.lora_file()  # made with the fast model, before the fp32 one takes memory
    reset_peak(device)
    build_s, ref = timed(device, lambda: load_model(plan.model, device, torch.float32))
    cfg = plan.train_config(plan.sample_steps, graph=False, compile=False, checkpoint=False)
    reset_peak(device)
    run = train_run(ref, b.subjects[:1], cfg, device)
    mem = peak(device)
    panel_s = render_page(ref, list(PROMPTS[:1]), page_config(plan, 1))
    fuse_s, _ = timed(device, lambda: apply_loras(ref, [str(lora)]))
    fast_panel_s = render_page(ref, list(PROMPTS[:1]), page_config(plan, 1, fast=True))
    b.kept["reference_train"] = run
    del ref
    free(device)
    return {
        "build_s": build_s, "train": public(run), "peak": mem, "panel_s": panel_s,
        "lora_fuse_s": fuse_s, "fast_panel_s": fast_panel_s,
    }  # fmt: skip


def phase_explore(b: Bench, results: dict, groups: str) -> dict:
    from explore import explore_variants

    rows, table = explore_variants(b.fast_model(), b.plan, b.subjects, groups, b.out)
    return {**rows, "table": table}
