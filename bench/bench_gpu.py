#!/usr/bin/env python3
"""GPU speed benchmark for issues 6 and 13: an identity in seconds, a page in under a second.

Builds full-size SDXL from config (random weights: speed and memory depend on the architecture,
not on the weights) and prints one table: each figure next to the reference way (fp32, eager,
batch 1, pipeline reloaded) measured in the same run, with ratios, the card and peak memory.

    python bench/bench_gpu.py                          # CUDA machine: every phase, within --budget
    python bench/bench_gpu.py --phases train,page      # a subset, in the order given
    python bench/bench_gpu.py --smoke                  # the same code on the tiny model on CPU
    python bench/bench_gpu.py --explore compile_train  # also time speed variants (bench/explore.py)

Phases run in order of importance (the issue's targets first, explorations last). Each prints its
time as it goes; after each, results.json and table.md in ``--out`` are rewritten, so a run cut off
by a time limit still leaves every finished figure. A phase whose estimated time no longer fits
the ``--budget`` is skipped and the table says so.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # the budget counts from here: imports and model builds are device time too

import argparse  # noqa: E402
import datetime as dt
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "bench"):  # run as a script from anywhere; the phase modules sit beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import torch  # noqa: E402
from gpu_common import FULL, SMOKE, Plan, Records, synthetic_subject  # noqa: E402
from gpu_phases import (  # noqa: E402
    Bench,
    child_main,
    phase_explore,
    phase_fast_page,
    phase_fresh,
    phase_fresh_plain,
    phase_memory,
    phase_page,
    phase_reference,
    phase_steady,
    phase_train,
)
from gpu_table import build_table  # noqa: E402

log = logging.getLogger("bench")

# Phase -> estimated seconds on one H200 for FULL, from BENCHMARKS.md's H100/H200 runs (issue 6 and 13):
# train: build 12 + checks (1 id eager 20 steps ~9, compiled ~20 incl. a cold regional compile of
#   14.5 s; 4 ids eager ~12, compiled ~25) + one 21 + four 38-45 = ~145; page: warm-up 7 + 2 x 7;
# fast_page: LoRA write ~5 + fuse ~5 + 4 pages of ~1.3 s; fresh_cold: 42 s wall today + a cold compile;
# fresh_warm: 42 s + dynamo tracing; memory / steady: short runs (~8 s each, plus one new compile);
# reference: fp32 build 5 + 20 steps 8 + panel 9 + fast panel and fuse 6; fresh_plain: 42 s.
ESTIMATE_S = {
    "train": 145, "page": 22, "fast_page": 25, "fresh_cold": 75, "fresh_warm": 60, "memory": 35,
    "steady": 35, "reference": 35, "fresh_plain": 50, "explore": 120,
}  # fmt: skip
PHASES = tuple(ESTIMATE_S)  # in order of importance
SMOKE_SKIP = ("fresh_plain",)  # on a CPU it repeats fresh_cold's code path: a third child process for nothing
DEFAULT_BUDGET_S = 540  # a device call is at most 600 s, wheels install and interpreter start included
MIN_CHILD_TIMEOUT_S = 60  # a child gets at least this, even when the budget is nearly spent
MAX_CHILD_TIMEOUT_S = 900  # and at most this: a hung child must not hold the run forever


def card_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def environment(device: torch.device) -> dict:
    import diffusers
    import transformers

    return {
        "card": card_name(device),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def write(out: Path, plan: Plan, results: dict) -> str:
    """results.json (everything) and table.md (the table as far as it goes), rewritten after each phase."""
    table = build_table(plan, results)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    (out / "table.md").write_text(table + "\n")
    return table


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(plan: Plan, out: Path, phases: list[str], budget_s: float, explore: str = "", cache_dir: Path | None = None) -> str:
    """Run ``phases`` in order, each within what is left of ``budget_s`` (counted from the process
    start); returns the table."""
    t_start = STARTED
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(plan.device)
    results: dict = {"plan": asdict(plan), "env": environment(device), "phase_s": {}, "skipped": {}, "failed": {}}
    say(f"benchmark on {results['env']['card']}; phases {', '.join(phases)}; budget {budget_s:.0f} s")
    records = Records()
    logging.getLogger("storyface").addHandler(records)
    logging.getLogger("storyface").setLevel(logging.INFO)
    cache_root = cache_dir or Path(tempfile.mkdtemp(prefix="storyface-bench-"))
    from storyface.render.compile import enable_compile_cache

    enable_compile_cache(cache_root / "parent-cache")  # this process's compiled blocks; children get their own
    b = Bench(plan, device, out, cache_root, records)
    b.subjects = [synthetic_subject(f"Person {i}", i, plan.photo_side) for i in range(plan.together)]
    smoke = plan.device == "cpu"
    table = write(out, plan, results)  # even a run killed in its first phase leaves the plan and the card

    def left() -> float:
        return budget_s - (time.perf_counter() - t_start)

    child_timeout = lambda: min(MAX_CHILD_TIMEOUT_S, max(MIN_CHILD_TIMEOUT_S, left()))  # noqa: E731
    steps: dict[str, Callable[[], dict]] = {
        "train": lambda: phase_train(b, results),
        "page": lambda: phase_page(b, results),
        "fast_page": lambda: phase_fast_page(b, results),
        "fresh_cold": lambda: phase_fresh(b, results, cold=True, timeout_s=child_timeout()),
        "fresh_warm": lambda: phase_fresh(b, results, cold=False, timeout_s=child_timeout()),
        "memory": lambda: phase_memory(b, results),
        "steady": lambda: phase_steady(b, results),
        "reference": lambda: phase_reference(b, results),
        "fresh_plain": lambda: phase_fresh_plain(b, results, timeout_s=child_timeout()),
        "explore": lambda: phase_explore(b, results, explore),
    }
    for name in phases:
        estimate = 0 if smoke else ESTIMATE_S[name]
        if estimate > left():
            results["skipped"][name] = f"estimated {estimate} s, {max(0, left()):.0f} s of the budget left"
            say(f"phase {name} SKIPPED: {results['skipped'][name]}")
            table = write(out, plan, results)
            continue
        say(f"phase {name} starting (estimate {estimate} s, {left():.0f} s of the budget left)")
        t0 = time.perf_counter()
        try:
            results[name] = steps[name]()
        except Exception as exc:  # a phase that fails is a finding; the rest still run
            log.exception("phase %s failed", name)
            results["failed"][name] = f"{type(exc).__name__}: {str(exc)[:500]}"
        results["phase_s"][name] = time.perf_counter() - t0
        b.compare_reference(results)
        table = write(out, plan, results)
        say(f"phase {name} took {results['phase_s'][name]:.1f} s; results written to {out}")
    if cache_dir is None:
        shutil.rmtree(cache_root, ignore_errors=True)
    if results.get("explore"):
        table += "\n\n" + results["explore"]["table"]
        (out / "table.md").write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU: checks the code paths")
    parser.add_argument("--phases", help=f"comma-separated phases to run, in order (default: {','.join(PHASES[:-1])})")
    parser.add_argument("--explore", nargs="?", const="train,render", default="",
                        help="also run the explore phase: comma-separated groups of bench/explore.py")
    parser.add_argument("--only-explore", action="store_true", help="run only the explore phase")
    parser.add_argument("--budget", type=float, help=f"seconds for all phases (default {DEFAULT_BUDGET_S}; none with --smoke)")
    parser.add_argument("--cache-dir", type=Path, help="keep compile caches here (default: a temporary folder, removed)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "out" / "bench"))
    parser.add_argument("--steps", type=int, help="override identity steps (default 500)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.child:
        child_main(json.loads(args.child))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("diffusers", "transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    plan = SMOKE if args.smoke else FULL
    if args.steps:
        plan = replace(plan, steps=args.steps)
    if plan.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --smoke on a CPU", file=sys.stderr)
        return 2
    if args.only_explore:
        phases = ["explore"]
    elif args.phases:
        phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    else:
        phases = [p for p in PHASES if p != "explore" and not (args.smoke and p in SMOKE_SKIP)]
        phases += ["explore"] if args.explore else []
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        parser.error(f"unknown phases {unknown}; choose from {', '.join(PHASES)}")
    if "explore" in phases and not args.explore:
        args.explore = "train,render"
    budget = args.budget if args.budget is not None else (float("inf") if args.smoke else DEFAULT_BUDGET_S)
    table = run(plan, args.out, phases, budget, args.explore, args.cache_dir)
    print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
