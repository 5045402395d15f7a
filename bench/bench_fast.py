#!/usr/bin/env python3
"""Where the fast page's time goes, and what the product's speed options buy (issue 13, item 1).

The fast page: 6 panels of 1024², 4 steps of trailing Euler, no CFG, the Lightning preset, through
the product's Renderer. Full-size SDXL with random weights (speed depends on the architecture, not
the weights). A distillation LoRA fused permanently leaves plain Linear layers, so a page costs the
same with or without one; it is left out here (bench_gpu.py times the page with a fused LoRA).

Variants, each timed as a median of ``--pages`` pages after a warm-up page, in one process:
  1. eager, the model's VAE (the default);   split into "latents" (text encoders + 4 UNet steps) and
     the decode, by also timing the same page with ``output_type="latent"``;
  2. eager, the tiny decoder (TAESD architecture, random weights: ``--decoder tiny``);
  3. the UNet compiled regionally (``--compile regional``; its first page includes the compile, with
     a cache folder under ``--out``), the model's VAE;
  4. compiled UNet and the tiny decoder.

    python bench/bench_fast.py --out DIR      # CUDA machine, about a minute and a half
    python bench/bench_fast.py --smoke        # the same code on the tiny model on CPU
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

PROMPTS = [f"a comic panel, a lighthouse keeper at work, scene {i}, ink and flat colour" for i in range(6)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU")
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or ROOT / "out" / "bench-fast"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from storyface.models import load_model
    from storyface.render import RenderConfig, Renderer
    from storyface.render.compile import compile_unet, enable_compile_cache
    from storyface.render.quality import fast_preset

    enable_compile_cache(args.out / "compile-cache")  # before anything compiles: a cold cache, this run's own
    model = load_model("tiny", device="cpu") if args.smoke else load_model("random-sdxl")
    side, pages = (64, 1) if args.smoke else (1024, args.pages)
    base = RenderConfig(width=side, height=side, batch_size=len(PROMPTS))
    fast = fast_preset("lightning", "sdxl_lightning_4step_lora", 4).render_config(base)
    renderer = Renderer(model)
    renderer.use_tiny_decoder()
    dev = model.device

    def page(config: RenderConfig) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        renderer.render(PROMPTS, "", config=config)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - start

    def latents_only() -> float:  # the same page, stopping before any decode
        kwargs = dict(prompt=PROMPTS, negative_prompt=[""] * len(PROMPTS), num_inference_steps=fast.steps,
                      guidance_scale=fast.guidance, width=side, height=side, output_type="latent",
                      generator=[torch.Generator(dev).manual_seed(i) for i in range(len(PROMPTS))])  # fmt: skip
        with renderer._using_scheduler(fast.scheduler), torch.inference_mode():
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            model.pipe(**kwargs)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
        return time.perf_counter() - start

    def timed(fn) -> dict:
        first = fn()
        runs = [fn() for _ in range(pages)]
        return {"first_s": first, "median_s": statistics.median(runs), "runs_s": runs}

    tiny = RenderConfig(**{**fast.__dict__, "decoder": "tiny"})
    rows: dict[str, dict] = {}
    rows["eager, full VAE"] = timed(lambda: page(fast))
    rows["eager, latents only (no decode)"] = timed(latents_only)
    rows["eager, tiny decoder"] = timed(lambda: page(tiny))
    start = time.perf_counter()
    compile_unet(model.pipe, "regional")
    rows["compiled UNet (regional), full VAE"] = timed(lambda: page(fast))
    rows["compiled UNet (regional), full VAE"]["compile_call_s"] = time.perf_counter() - start
    rows["compiled UNet (regional), tiny decoder"] = timed(lambda: page(tiny))

    device = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "CPU"
    base_s = rows["eager, full VAE"]["median_s"]
    lines = [
        f"# fast page, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {device}, torch {torch.__version__}",
        f"{len(PROMPTS)} panels of {side}x{side}, {fast.steps} steps {fast.scheduler}, guidance {fast.guidance}, "
        f"{model.dtype}, one batch; median of {pages} after one warm-up page",
        "| variant | page s | first page s | vs eager, full VAE |",
        "| --- | --- | --- | --- |",
    ]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['median_s']:.3f} | {r['first_s']:.2f} | {r['median_s'] / base_s:.2f}x |")
    decode = base_s - rows["eager, latents only (no decode)"]["median_s"]
    lines.append(f"full-VAE decode and post-processing: {decode:.3f} s of {base_s:.3f} s ({100 * decode / base_s:.0f}%)")
    text = "\n".join(lines)
    print(text)
    (args.out / "fast.md").write_text(text + "\n")
    (args.out / "fast.json").write_text(json.dumps({"device": device, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
