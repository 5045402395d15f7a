#!/usr/bin/env python3
"""CPU speed and quality benchmark of the content policy (issue 17, item 5).

Prints the time to check a 300-character prompt, a 20,000-character story, 1 MB of text and the whole
measurement table (tests/policy_table.py), and the table's recall and false-positive rate per language.
With ``--compare PATH`` it runs the same measurements on another checkout's ``storyface`` (e.g. the
main worktree) in a subprocess and prints both, so "before" and "after" come from one run.

    python bench/bench_policy.py                       # this checkout
    python bench/bench_policy.py --compare /work/main  # and another checkout, side by side
    python bench/bench_policy.py --out results.json    # also write the figures
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE_DIR = ROOT / "tests"

STORY_SENTENCE = (
    "Hugh Jackman was selecting an apple at the grocery store when Taylor Swift, who dislikes apples, "
    "reached for a banana nearby. They struck up a conversation about fruit and the weather in Essex. "
)
STYLE = ", cinematic still, dramatic lighting, film grain, highly detailed, shallow depth of field"
REPEATS = {"prompt": 50, "story": 5, "table": 3, "1 MB": 1}


def _text(size: int) -> str:
    return (STORY_SENTENCE * (size // len(STORY_SENTENCE) + 1))[:size]


def measure() -> dict:
    """Times and table rates for the ``storyface`` on sys.path (run in a subprocess for --compare)."""
    sys.path.insert(0, str(TABLE_DIR))
    from policy_table import ALLOW, KNOWN_FALSE_POSITIVES, KNOWN_MISSES, REFUSE

    from storyface.safety.policy import ContentPolicy, default_word_list

    started = time.perf_counter()
    default_word_list()
    load_s = time.perf_counter() - started
    policy = ContentPolicy("strict")
    prompt = (_text(300 - len(STYLE)) + STYLE)[:300]
    rows = [*REFUSE, *KNOWN_MISSES, *ALLOW, *KNOWN_FALSE_POSITIVES]

    def check_table() -> None:
        for row in rows:
            policy.finding(row.prompt, row.negative, getattr(row, "has_identity", True))

    jobs = {
        "prompt": lambda: policy.finding(prompt, "blurry, lowres", True),
        "story": lambda: policy.finding(_text(20_000), "", True),
        "table": check_table,
        "1 MB": lambda: policy.finding(_text(1_000_000), "", True),
    }
    times = {}
    for name, job in jobs.items():
        job()  # warm: compiles the regexes of the terms this text meets
        samples = []
        for _ in range(REPEATS[name]):
            t = time.perf_counter()
            job()
            samples.append(time.perf_counter() - t)
        times[name] = statistics.median(samples)

    rates: dict[str, list[int]] = {}
    for group, offset in (((*REFUSE, *KNOWN_MISSES), 0), ((*ALLOW, *KNOWN_FALSE_POSITIVES), 2)):
        for row in group:
            counts = rates.setdefault(row.lang.split("-")[0], [0, 0, 0, 0])
            counts[offset] += policy.finding(row.prompt, row.negative, getattr(row, "has_identity", True)) is not None
            counts[offset + 1] += 1
    terms = sum(len(t) for t in default_word_list().terms.values())
    return {"load_s": load_s, "times_s": times, "rates": rates, "rows": len(rows), "terms": terms}


def _fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:9.2f} ms" if seconds < 10 else f"{seconds:9.1f} s "


def _rate(hit: int, total: int) -> str:
    return f"{hit:3d}/{total:<3d} {hit / total:6.1%}" if total else "-"


def _rate_line(lang: str, counts: list[int]) -> str:
    return f"   {lang:8} recall {_rate(counts[0], counts[1]):>16}   false positives {_rate(counts[2], counts[3]):>16}"


def report(results: dict[str, dict]) -> str:
    names = list(results)
    lines = ["content policy benchmark", f"machine: {platform.processor() or platform.machine()}, "
             f"python {platform.python_version()}, {dt.date.today().isoformat()}", ""]  # fmt: skip
    lines.append(f"{'check':34}" + "".join(f"{n:>16}" for n in names))
    first = results[names[0]]
    lines.append(f"{'terms in the list':34}" + "".join(f"{r['terms']:>16}" for r in results.values()))
    lines.append(f"{'parse the list (first use)':34}" + "".join(f"{_fmt_s(r['load_s']):>16}" for r in results.values()))
    labels = {"prompt": "a 300-character prompt", "story": "a 20,000-character story",
              "table": f"the table ({first['rows']} rows)", "1 MB": "1 MB of text"}  # fmt: skip
    for key, label in labels.items():
        lines.append(f"{label:34}" + "".join(f"{_fmt_s(r['times_s'][key]):>16}" for r in results.values()))
    lines += ["", "recall (refused / should refuse) and false positives (refused / should allow), per language"]
    for name, r in results.items():
        lines.append(f"-- {name}")
        total = [0, 0, 0, 0]
        for lang, counts in sorted(r["rates"].items()):
            total = [a + b for a, b in zip(total, counts)]
            lines.append(_rate_line(lang, counts))
        lines.append(_rate_line("overall", total))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="another checkout whose storyface to measure too")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)  # the subprocess's mode
    args = parser.parse_args()
    if args.measure_only:
        print(json.dumps(measure()))
        return
    results = {}
    checkouts = {"this checkout": ROOT, **({f"{args.compare}": args.compare} if args.compare else {})}
    for name, path in checkouts.items():
        env = {"PYTHONPATH": str(path), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--measure-only"],
            env=env, capture_output=True, text=True, check=True, cwd=path,
        )  # fmt: skip
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    print(report(results))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
