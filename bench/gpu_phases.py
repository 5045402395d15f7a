"""The phases of bench_gpu.py: each measures one group of table figures and returns a JSON-able dict.

Every phase takes the shared :class:`Bench` (plan, device, the fast model loaded once, the random
LoRA file, the compile-cache folders) and can run alone (``--phases``): what it needs it builds.
Fresh-process figures come from a child Python process (``bench_gpu.py --child``) so that imports,
model build, compilation and capture are all inside the timing.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from gpu_common import (
    LORA_NAME,
    Plan,
    Records,
    diff_report,
    free,
    page_config,
    peak,
    public,
    render_page,
    reset_peak,
    synthetic_subject,
    timed,
    train_run,
    write_random_lora,
)

log = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parents[1]
PROMPTS = (
    "a comic panel of a woman reading a map in a train station, ink and flat colour",
    "a comic panel of two friends laughing at a kitchen table, warm light",
    "a comic panel of a detective in the rain under a street lamp",
    "a comic panel of a child flying a red kite on a hill",
    "a comic panel of an old sailor steering a boat through a storm",
    "a comic panel of a scientist looking at a glowing test tube",
)
CHILD_MARK = "CHILD_RESULT "


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
    prompts, cfg = list(PROMPTS[: plan.panels]), page_config(plan, plan.panels, fast=True)
    # 1. as the web app fuses (PEFT wrappers kept, so the LoRA can be taken off again)
    fuse_s, loaded = timed(b.device, lambda: apply_loras(model, [str(path)]))
    try:
        render_page(model, prompts, cfg)
        wrapped = statistics.median([render_page(model, prompts, cfg) for _ in range(plan.fast_pages)])
    finally:
        unfuse_s, _ = timed(b.device, lambda: remove_loras(model))
    # 2. as the CLI fuses (permanently: plain layers, nothing per step pays for the LoRA)
    apply_loras(model, [str(path)], permanent=True)
    warm = render_page(model, prompts, cfg)
    reset_peak(b.device)
    pages = [render_page(model, prompts, cfg) for _ in range(plan.fast_pages)]
    mem = peak(b.device)
    return {
        "lora": {**(b.lora or {}), "kind": loaded[0].kind, "fused_layers": loaded[0].layers, "fuse_s": fuse_s, "unfuse_s": unfuse_s},
        "steps": cfg.steps, "scheduler": cfg.scheduler, "guidance": cfg.guidance, "wrapped_page_s": wrapped,
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
    fuse_s, _ = timed(device, functools.partial(apply_loras, ref, [str(lora)]))  # no closure: `del ref` frees it
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
