#!/usr/bin/env python3
"""Multi-GPU scaling benchmark (issue 16): identities/min and pages/min on 1, 2, 4, 8 GPUs of one host.

Starts N workers, one process per GPU (``CUDA_VISIBLE_DEVICES``), each on the product's paths (see
``bench/scale_workers.py``): ``run_worker`` over one shared SQLite job queue in a temporary data
folder for training, then ``make_comic`` for page requests from a multiprocessing queue. Feeds them a
fixed mix (default: 16 identities from the two real test photos, alternating, distinct names; then 12
six-panel pages with those people) and times each phase from the first job submitted to the last one
finished, with the workers already started and their model loaded (that cost is its own column).

    python bench/bench_scale.py --gpus 1,2,4,8          # full-size random-weight SDXL on GPUs
    python bench/bench_scale.py --gpus 1 --identities 4 --steps 100 --pages 4   # a few minutes on one GPU
    python bench/bench_scale.py --smoke                 # N = 1 and 2 CPU workers, tiny model, seconds
    python bench/bench_scale.py --prepare-photos FILE   # dlib preprocessing saved for a machine without dlib

Counts above ``torch.cuda.device_count()`` are skipped; N = 1 always runs first, because scaling
efficiency (rate at N / (N x rate at 1)) is only meaningful against a one-GPU rate of the same run.
Prints the table and writes ``results.json`` and ``table.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import multiprocessing as mp
import os
import platform
import queue as queue_lib
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "bench"):  # run as a script from anywhere; scale_workers.py sits beside this file
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import scale_workers  # noqa: E402  (light: imports torch and storyface only inside the workers)

log = logging.getLogger("bench.scale")
CONSENT = "StoryFace benchmark, public-domain photos"
# Distinct made-up first names (not public figures); a 17th identity on would reuse one with a number.
FIRST_NAMES = ("Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hiro",
               "Ines", "Jonas", "Kaia", "Luca", "Mina", "Nils", "Oona", "Pavel")  # fmt: skip
SCENES = (  # panel sentences; {name} is the person shown. No quotes, nothing the content policy refuses.
    "{name} reads a map in a busy train station, ink and flat colour",
    "{name} laughs at a kitchen table in warm light",
    "{name} waits in the rain under a street lamp",
    "{name} flies a red kite on a windy hill",
    "{name} steers a small boat through a storm",
    "{name} looks at a glowing test tube in a lab",
)
READY_TIMEOUT_S = 900.0  # imports + building full-size SDXL is ~20 s; a cold disk or 8 at once can be slower
PHASE_TIMEOUT_S = 3600.0  # 16 identities x 500 steps on one GPU is ~6 min; an hour means something hangs


@dataclass(frozen=True)
class Mix:
    """What every run is fed; FULL is the issue's mix, SMOKE the same code shrunk for 2 CPU cores."""

    model: str
    device: str
    identities: int
    steps: int
    pages: int
    panels: int
    side: int
    render_steps: int
    guidance: float = 5.0  # bench_gpu.py's page; the product's default is 8.5 (same cost: CFG either way)
    bank_size: int | None = None  # None: the product's defaults for the rest
    mlp_hidden: int | None = None
    probe_samples: int | None = None
    resolution: int | None = None

    def params(self) -> dict:
        """The job's training params, as ``storyface train --queue`` would store them."""
        extra = {k: getattr(self, k) for k in ("bank_size", "mlp_hidden", "probe_samples", "resolution")}
        return {"steps": self.steps, **{k: v for k, v in extra.items() if v is not None}}

    def render(self) -> dict:
        batch = self.panels  # the whole page in one UNet batch, as bench_gpu.py's fast path
        return {"steps": self.render_steps, "guidance": self.guidance, "width": self.side, "height": self.side,
                "batch_size": batch}  # fmt: skip


FULL = Mix("random-sdxl", "cuda", identities=16, steps=500, pages=12, panels=6, side=1024, render_steps=30)
SMOKE = Mix("tiny", "cpu", identities=2, steps=3, pages=2, panels=2, side=64, render_steps=2,
            bank_size=2, mlp_hidden=32, probe_samples=1, resolution=64)  # fmt: skip


def person_names(count: int) -> list[str]:
    return [f"{FIRST_NAMES[i % len(FIRST_NAMES)]} Bench{'' if i < len(FIRST_NAMES) else f' {i}'}" for i in range(count)]


def test_photos() -> list[Path]:
    """The two real photos the tests use: skimage's astronaut.png and matplotlib's grace_hopper.jpg."""
    import matplotlib.cbook
    import skimage.data

    return [Path(skimage.data.__file__).parent / "astronaut.png",
            Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))]  # fmt: skip


def page_requests(mix: Mix, names: list[str], out: Path) -> list[dict]:
    """Page i shows two of the learned people, alternating panel by panel."""
    requests = []
    for page in range(mix.pages):
        cast = [names[(2 * page) % len(names)], names[(2 * page + 1) % len(names)]]
        cast = list(dict.fromkeys(cast))  # one identity: one person
        shown = [cast[j % len(cast)] for j in range(mix.panels)]
        requests.append({
            "page": page, "cast": cast, "out_dir": str(out / f"page-{page:02d}"), "characters": [[n] for n in shown],
            "sentences": [SCENES[j % len(SCENES)].format(name=n) for j, n in enumerate(shown)],
        })  # fmt: skip
    return requests


# ----------------------------------------------------------------------------- one run of N workers


def _expect(results, kind: str, n: int, procs: list, timeout: float) -> dict[int, dict]:
    """Wait for ``kind`` from every worker; a worker's error or death stops the run with its traceback."""
    got: dict[int, dict] = {}
    deadline = time.monotonic() + timeout
    while len(got) < n:
        try:
            what, rank, payload = results.get(timeout=1.0)
        except queue_lib.Empty:
            dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"waiting for '{kind}': workers died ({[p.exitcode for p in dead]}) or timed out")
            continue
        if what == "error":
            raise RuntimeError(f"worker {rank} failed:\n{payload}")
        if what != kind:
            raise RuntimeError(f"worker {rank} said {what!r} while the run waited for {kind!r}")
        got[rank] = payload
    return got


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def run_n(
    n: int, mix: Mix, workdir: Path, photos: list, prepared: Path | None, poll_s: float, threads: int | None = None
) -> dict:
    """N workers on one queue: the train phase, then the render phase; rates, memory, where time went."""
    from storyface.library import IdentityLibrary, JobQueue

    data = workdir / f"n{n}"
    queue = JobQueue(IdentityLibrary(data))  # the schema exists before N workers open it at once
    threads = threads or max(1, (os.cpu_count() or 1) // n)  # N workers must not each take every core
    ctx = mp.get_context("spawn")  # fresh processes: nothing of CUDA or of the parent's threads inherited
    results, pages, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs, spawned = [], {}
    outer = os.environ.get("CUDA_VISIBLE_DEVICES")  # a user's own selection: worker i gets its i-th entry
    gpu_ids = [x.strip() for x in outer.split(",")] if outer else [str(i) for i in range(n)]
    for rank in range(n):
        visible = gpu_ids[rank] if mix.device == "cuda" else ""
        spec = {"visible": visible, "device": mix.device, "model": mix.model, "threads": threads, "poll_s": poll_s,
                "data_dir": str(data), "render": mix.render(), "prepared": str(prepared.resolve()) if prepared else None}
        os.environ["CUDA_VISIBLE_DEVICES"] = visible  # inherited by the spawned child
        spawned[rank] = time.time()
        proc = ctx.Process(target=scale_workers.worker_main, args=(rank, spec, go, pages, results), daemon=True)
        proc.start()
        procs.append(proc)
    try:
        ready = _expect(results, "ready", n, procs, READY_TIMEOUT_S)
        log.info("N=%d: %d workers ready", n, n)
        names = person_names(mix.identities)
        t0 = time.time()
        for i, name in enumerate(names):
            photo = photos[i % len(photos)]
            queue.submit(photo if isinstance(photo, bytes) else Path(photo), name, mix.model, mix.params(), CONSENT)
        go.set()
        trained = _expect(results, "trained", n, procs, PHASE_TIMEOUT_S)
        jobs = queue.list()
        t1 = max(_epoch(j.finished_at) for j in jobs if j.finished_at) if any(j.finished_at for j in jobs) else time.time()
        log.info("N=%d: %d jobs in %.1f s", n, len(jobs), t1 - t0)
        done_names = [j.name for j in jobs if j.state == "done"]
        requests = page_requests(mix, done_names or names, data / "comics")
        t2 = time.time()
        for request in requests:
            pages.put(request)
        for _ in range(n):
            pages.put(None)
        rendered = _expect(results, "rendered", n, procs, PHASE_TIMEOUT_S)
        drawn = [p for r in rendered.values() for p in r["pages"]]
        t3 = max((p["end"] for p in drawn), default=time.time())
        log.info("N=%d: %d pages in %.1f s", n, len(drawn), t3 - t2)
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
        if outer is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = outer
    pid_rank = {ready[r]["pid"]: r for r in ready}
    train_wall, render_wall = t1 - t0, t3 - t2
    done = sum(j.state == "done" for j in jobs)
    workers = [{
        "rank": r, "card": ready[r]["card"], "pid": ready[r]["pid"], "start_load_s": ready[r]["ready"] - spawned[r],
        "jobs": sum(pid_rank.get(j.worker_pid) == r for j in jobs),
        "pages": len(rendered[r]["pages"]), "train_peak": trained[r]["peak"], "render_peak": rendered[r]["peak"],
        "load_peak": ready[r]["load_peak"], "train_timings": trained[r]["timings"],
        "render_timings": rendered[r]["timings"],
    } for r in range(n)]  # fmt: skip
    return {
        "gpus": n, "threads_per_worker": threads,
        "train_wall_s": train_wall, "render_wall_s": render_wall,
        "identities_done": done, "pages_done": len(drawn),
        "identities_per_min": 60.0 * done / train_wall if train_wall > 0 else 0.0,
        "pages_per_min": 60.0 * len(drawn) / render_wall if render_wall > 0 else 0.0,
        "jobs": [{"name": j.name, "state": j.state, "error": j.error, "worker": pid_rank.get(j.worker_pid),
                  "queued_s": _epoch(j.started_at) - t0 if j.started_at else None,
                  "run_s": _epoch(j.finished_at) - _epoch(j.started_at) if j.finished_at and j.started_at else None}
                 for j in jobs],
        "pages": sorted(({**p, "start": p["start"] - t2, "end": p["end"] - t2} for p in drawn), key=lambda p: p["page"]),
        "workers": workers,
    }  # fmt: skip


# ----------------------------------------------------------------------------- table


def _per_identity(run: dict, bucket: str) -> float:
    total = sum(w["train_timings"].get(bucket, {}).get("s", 0.0) for w in run["workers"])
    return total / max(run["identities_done"], 1)


def _memory(run: dict, device: str) -> str:
    if device != "cuda":
        return "CPU: RSS " + ", ".join(f"{w['render_peak']['rss_gib']:.1f}" for w in run["workers"]) + " GiB"
    cells = [f"{max(w['train_peak']['reserved_gib'], w['load_peak']['reserved_gib']):.1f} / "
             f"{w['render_peak']['reserved_gib']:.1f}" for w in run["workers"]]  # fmt: skip
    return "; ".join(cells)


def build_table(runs: list[dict], mix: Mix, env: dict) -> str:
    one = next((r for r in runs if r["gpus"] == 1), None)

    def eff(run: dict, key: str) -> str:
        if one is None or run["gpus"] == 1 or not one[key]:
            return "-"
        return f"{run[key] / (run['gpus'] * one[key]):.0%}"

    head = ("| GPUs | identities/min | pages/min | scaling efficiency vs 1 GPU (ids / pages) | peak memory per GPU, "
            "GiB reserved (train / render) | worker start + model load, s | per identity: preprocess / train / "
            "queue / store, s | per page: write, s |")  # fmt: skip
    lines = [head, "|" + "---|" * 8]
    for run in runs:
        loads = [w["start_load_s"] for w in run["workers"]]
        page_write = sum(w["render_timings"].get("write_page", {}).get("s", 0.0) for w in run["workers"])
        lines.append(
            f"| {run['gpus']} | {run['identities_per_min']:.2f} ({run['identities_done']} in {run['train_wall_s']:.1f} s) "
            f"| {run['pages_per_min']:.2f} ({run['pages_done']} in {run['render_wall_s']:.1f} s) "
            f"| {eff(run, 'identities_per_min')} / {eff(run, 'pages_per_min')} | {_memory(run, mix.device)} "
            f"| {min(loads):.1f}-{max(loads):.1f} "
            f"| {' / '.join(f'{_per_identity(run, b):.2f}' for b in ('preprocess', 'train', 'queue', 'store'))} "
            f"| {page_write / max(run['pages_done'], 1):.2f} |"
        )
    lines += ["", (
        f"Card: {env['card']} ({env['gpu_count']} visible); {env['date']}; torch {env['torch']}, host {env['cpus']} "
        f"CPU cores. Mix: {mix.identities} identities x {mix.steps} steps (photos alternate astronaut.png / "
        f"grace_hopper.jpg{'; preprocessing prepared beforehand' if env.get('prepared') else ''}), then "
        f"{mix.pages} pages of {mix.panels} panels at {mix.side}², {mix.render_steps} steps, CFG {mix.guidance:g}; "
        f"model {mix.model} (random weights). Rates run from the first job submitted to the last finished, "
        "workers already started with the model loaded. Per identity, summed over workers: queue time (SQLite "
        "reads and writes, a progress write every step) is inside train time; store is the identity's files and "
        "row; page write is layout, PNG encoding and the comic folder."
    )]  # fmt: skip
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def environment(mix: Mix, counts: list[int], runs: list[dict], prepared: Path | None) -> dict:
    import torch

    cards = sorted({w["card"] for r in runs for w in r["workers"]})
    return {
        "card": ", ".join(cards) if mix.device == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
        "gpu_count": torch.cuda.device_count() if mix.device == "cuda" else 0,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
        "counts": counts, "prepared": str(prepared) if prepared else None,
    }  # fmt: skip


def gpu_counts(spec: str, available: int) -> list[int]:
    """Requested counts that fit the machine, with 1 first (efficiency needs it), each once."""
    asked = sorted({int(x) for x in spec.split(",") if x.strip()})
    if any(c < 1 for c in asked):
        raise SystemExit(f"--gpus takes positive counts, got {spec!r}")
    skipped = [c for c in asked if c > available]
    if skipped:
        log.warning("skipping %s GPUs: this machine has %d", skipped, available)
    return sorted({1, *[c for c in asked if c <= available]}) if available else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", default="1,2,4,8", help="comma-separated worker counts (one GPU each)")
    parser.add_argument("--smoke", action="store_true", help="N = 1 and 2 CPU workers on the tiny model, a tiny mix")
    parser.add_argument("--identities", type=int, help="identities to train (default 16)")
    parser.add_argument("--steps", type=int, help="training steps per identity (default 500)")
    parser.add_argument("--pages", type=int, help="pages to render (default 12)")
    parser.add_argument("--panels", type=int, help="panels per page (default 6)")
    parser.add_argument("--prepared", type=Path, help="photos prepared by --prepare-photos (for a machine without dlib)")
    parser.add_argument("--prepare-photos", type=Path, metavar="FILE", help="save the test photos' preprocessing, exit")
    parser.add_argument("--threads", type=int, help="torch CPU threads per worker (default: cores / N; smoke: 1)")
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between an idle worker's queue checks")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "out" / "bench-scale"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folders (identities, comics)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.prepare_photos:
        hashes = scale_workers.save_prepared(args.prepare_photos, test_photos(), CONSENT)
        print(f"prepared {len(hashes)} photos into {args.prepare_photos}")
        return 0
    mix = SMOKE if args.smoke else FULL
    overrides = {"identities": args.identities, "steps": args.steps, "pages": args.pages, "panels": args.panels}
    mix = replace(mix, **{k: v for k, v in overrides.items() if v is not None})
    if args.smoke:
        counts = [1, 2]
    else:
        import torch

        counts = gpu_counts(args.gpus, torch.cuda.device_count())
        if not counts:
            print("no CUDA device: run with --smoke on a CPU", file=sys.stderr)
            return 2
    photos = scale_workers.PreparedPhotos(args.prepared).photos() if args.prepared else test_photos()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="storyface-scale-"))
    runs = []
    try:
        for n in counts:
            threads = args.threads or (1 if args.smoke else None)  # smoke: 2 shared cores, no spinning OMP threads
            runs.append(run_n(n, mix, workdir, photos, args.prepared, args.poll, threads))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    env = environment(mix, counts, runs, args.prepared)
    table = build_table(runs, mix, env)
    (args.out / "results.json").write_text(json.dumps({"env": env, "mix": asdict(mix), "runs": runs, "table": table},
                                                      indent=1, default=str))  # fmt: skip
    (args.out / "table.md").write_text(table + "\n")
    print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
