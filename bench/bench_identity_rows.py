#!/usr/bin/env python3
"""The banned-word check of identity rows (issue 17, item 2): the threshold and the score distributions
it separates, per text encoder, and what the check costs.

Honest sets (celebrity-statistic draws, real names' tokens, standard-normal test rows, identities
trained on the tiny model) against attack sets (banned words' own embeddings, with noise, scaled,
blended with an honest row, mixed two or three at a time): see tests/identity_rows_table.py. Runs on
the tiny model (widths 32/64) and on random tables of SDXL's real widths (768/1280, drawn as CLIP
initialises them) with the real CLIP tokenizer. With ``--model SOURCE`` (a diffusers folder or hub id
in the cache) it measures that model's own embeddings instead of the random tables: run it on real
SDXL weights before relying on the threshold there.

    python bench/bench_identity_rows.py
    python bench/bench_identity_rows.py --model stabilityai/stable-diffusion-xl-base-1.0
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from identity_rows_table import RandomTable, measure, summary  # noqa: E402

from storyface.models import EncoderSlot, load_model  # noqa: E402
from storyface.random_models import clip_tokenizer  # noqa: E402
from storyface.safety.embeddings import build_table  # noqa: E402


def trained_rows(model) -> dict[str, torch.Tensor]:
    import numpy as np
    from PIL import Image

    from storyface.identity.train import Subject, TrainConfig, train_identities

    subjects = []
    for i in range(3):
        rng = np.random.default_rng(i)
        face = np.zeros((256, 256), np.float32)
        face[70:190, 80:176] = 1
        image = Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))
        subjects.append(Subject(f"Bench Person {i}", image, face, np.zeros_like(face), rng.standard_normal(128).astype(np.float32)))
    people = train_identities(model, subjects, TrainConfig(steps=20, bank_size=4, mlp_hidden=64, probe_samples=1))
    return {slot.key: torch.stack([p.embeddings[slot.key] for p in people]) for slot in model.encoders}


def report(slot: EncoderSlot, label: str, trained: torch.Tensor | None = None) -> None:
    t0 = time.perf_counter()
    table = build_table(slot)
    built = time.perf_counter() - t0
    scores = measure(slot, table, trained=trained)
    one = torch.randn(1, 2, table.vectors.shape[1])
    t0 = time.perf_counter()
    for _ in range(20):
        table.scores(one)
    per_check = (time.perf_counter() - t0) / 20
    print("\n".join(summary(label, table.threshold, scores)))
    print(f"  table: {table.vectors.shape[0]} pieces, {sum(len(v) for v in table.runs.values())} runs; "
          f"built in {built * 1000:.0f} ms; one identity checked in {per_check * 1000:.1f} ms\n")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a real model to measure instead of random real-width tables")
    args = parser.parse_args()
    print(f"# {dt.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {platform.processor() or platform.machine()}, torch {torch.__version__}\n")
    tiny = load_model("tiny", device="cpu")
    trained = trained_rows(tiny)
    for slot in tiny.encoders:
        report(slot, f"tiny model, {slot.key} (width {slot.dim})", trained[slot.key])
    if args.model:
        model = load_model(args.model, device="cpu", dtype=torch.float32)
        for slot in model.encoders:
            report(slot, f"{args.model}, {slot.key} (width {slot.dim})")
    else:
        for key, width in (("clip_l", 768), ("clip_g", 1280)):
            report(EncoderSlot(key, clip_tokenizer(), RandomTable(width, seed=width)), f"random table, {key} (width {width})")


if __name__ == "__main__":
    main()
