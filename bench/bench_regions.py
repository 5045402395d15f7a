#!/usr/bin/env python3
"""What regional attention costs: a 6-panel page with 2 people in every panel, with and without masks.

Builds full-size SDXL with random weights (speed depends on the architecture, not the weights), loads
two random identities, and renders the same page twice per repeat, alternating: the plain pipeline,
then the same pipeline with the regional processor active (every panel masked). Prints the median
page time of each and the overhead (issue 15's target: at most 5%).

    python bench/bench_regions.py            # CUDA machine, about a minute
    python bench/bench_regions.py --smoke    # the same code on the tiny model on CPU, seconds
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

PROMPT = "a comic panel of {a} and {b} talking at a kitchen table, ink and flat colour"


def random_identities(model, names: list[str]):
    from storyface.identity.tokens import Identity

    g = torch.Generator().manual_seed(0)
    return [
        Identity(name, model.family, {s.key: torch.randn(2, s.dim, generator=g) * 0.01 for s in model.encoders})
        for name in names
    ]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def render_page(model, prompts, size, steps, batch, regional=None, masks=None) -> float:
    """Seconds for the page, in batches of ``batch`` panels as the renderer does."""
    sync(model.device)
    start = time.perf_counter()
    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        kwargs = dict(
            prompt=chunk, negative_prompt=[""] * len(chunk), num_inference_steps=steps, guidance_scale=5.0,
            width=size, height=size, output_type="latent",
            generator=[torch.Generator(model.device).manual_seed(k) for k in range(i, i + len(chunk))],
            original_size=(size, size), target_size=(size, size),
        )
        with torch.inference_mode():
            if regional is None:
                model.pipe(**kwargs)
            else:
                with regional.active(masks[i : i + batch], (size // 8, size // 8)):
                    model.pipe(**kwargs)
    sync(model.device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU")
    parser.add_argument("--panels", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4, help="panels per pipe call (the renderer's default)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    from storyface.identity.tokens import load_identities
    from storyface.models import load_model
    from storyface.render.attention import RegionalAttention, panel_masks
    from storyface.render.regions import plan_regions

    if args.smoke:
        model, size, steps, repeats = load_model("tiny", device="cpu"), 64, 2, 1
    else:
        model, size, steps, repeats = load_model("random-sdxl"), 1024, args.steps, args.repeats
    a, b = load_identities(model, random_identities(model, ["Ada Bench", "Bob Bench"]))
    prompts = [PROMPT.format(a=a, b=b) if i % 2 == 0 else PROMPT.format(a=b, b=a) for i in range(args.panels)]
    plan = plan_regions(["a", "b"])
    plans = [{a: plan["a"], b: plan["b"]}] * args.panels
    regional = RegionalAttention.install(model.pipe.unet)
    masks = panel_masks(model.pipe, prompts, [""] * args.panels, plans)
    assert all(m is not None for m in masks), "every panel should be masked"

    def stock() -> float:  # diffusers' own processors, as before the renderer first needs regions
        RegionalAttention.uninstall(model.pipe.unet)
        return render_page(model, prompts, size, steps, args.batch)

    def installed() -> float:  # the processor on the UNet, no panel masked (the renderer keeps it installed)
        nonlocal regional
        regional = RegionalAttention.install(model.pipe.unet)
        return render_page(model, prompts, size, steps, args.batch)

    def masked() -> float:
        return render_page(model, prompts, size, steps, args.batch, regional, masks)

    kinds = {"stock processors": stock, "regional processor, no masks": installed, "regional attention": masked}
    for fn in kinds.values():  # warm-up: kernels, allocator
        fn()
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(repeats):  # alternate, so clock and thermal drift hit all alike
        for name, fn in kinds.items():
            times[name].append(fn())
    med = {k: statistics.median(v) for k, v in times.items()}
    p, m = med["stock processors"], med["regional attention"]
    device = torch.cuda.get_device_name(model.device) if model.device.type == "cuda" else platform.processor() or "CPU"
    print(f"# regional attention cost, {dt.date.today()}, {device}, torch {torch.__version__}")
    print(f"{args.panels} panels of {size}x{size}, 2 people each, {steps} steps, batch {args.batch}, CFG 5, "
          f"{model.dtype}, latents only (no decode), median of {repeats}")
    print("| page | seconds | vs stock |\n| --- | --- | --- |")
    for name, value in med.items():
        print(f"| {name} | {value:.3f} | {100 * (value / p - 1):+.1f}% |")
    print(f"overhead: {100 * (m / p - 1):+.1f}% (target <= +5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
