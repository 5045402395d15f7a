#!/usr/bin/env python3
"""What a fused LoRA costs: load + fuse time, UNet step time (base, fused with PEFT wrappers kept,
fused for good) and how far unfusing drifts from the base weights in the model's dtype.

    python bench/bench_lora.py                                  # tiny model, CPU, seconds
    python bench/bench_lora.py --model random-sdxl --device cuda --batch 6 --size 1024

Without --lora the LoRA is random, rank 64, on every Linear of the UNet's transformer blocks (an SDXL-Lightning
LoRA's coverage is similar: 788 layers). Prints one line per figure; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402


def write_lora(unet: torch.nn.Module, path: Path, rank: int) -> int:
    g = torch.Generator().manual_seed(0)
    sd = {}
    for name, m in unet.named_modules():
        if isinstance(m, torch.nn.Linear) and "transformer_blocks" in name:
            sd[f"unet.{name}.lora_A.weight"] = torch.randn(rank, m.in_features, generator=g) * 0.01
            sd[f"unet.{name}.lora_B.weight"] = torch.randn(m.out_features, rank, generator=g) * 0.01
    save_file({k: v.half() for k, v in sd.items()}, str(path))
    return len(sd) // 2


def step_ms(model, batch: int, latent: int, repeats: int) -> float:
    """Median ms of one UNet call (no CFG) on fixed random inputs."""
    pipe, dev, dt = model.pipe, model.device, model.dtype
    g = torch.Generator(device="cpu").manual_seed(0)
    cross = pipe.unet.config.cross_attention_dim
    pooled = pipe.unet.config.projection_class_embeddings_input_dim - 6 * pipe.unet.config.addition_time_embed_dim
    x = torch.randn(batch, 4, latent, latent, generator=g).to(dev, dt)  # [B, 4, h, w]
    enc = torch.randn(batch, 77, cross, generator=g).to(dev, dt)  # [B, 77, D]
    side = latent * 8
    added = {
        "text_embeds": torch.randn(batch, pooled, generator=g).to(dev, dt),
        "time_ids": torch.tensor([[side, side, 0, 0, side, side]] * batch, dtype=dt, device=dev),
    }
    t = torch.full((batch,), 500, device=dev)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 2):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            pipe.unet(x, t, enc, added_cond_kwargs=added)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:  # two warm-up calls
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    from storyface.models import load_model
    from storyface.render.adapters import apply_loras, remove_loras

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None, choices=[None, "float32", "bfloat16", "float16"])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=128, help="image side; the latent is size/8")
    ap.add_argument("--rank", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--lora", default=None, help="a real LoRA (file or hub id) instead of the random one")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model = load_model(args.model, device=args.device, dtype=dtype)
    print(f"model {args.model} on {model.device} ({model.dtype}), batch {args.batch}, {args.size}px, torch {torch.__version__}")
    base = {k: v.detach().clone() for k, v in model.pipe.unet.state_dict().items()}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_lora.safetensors"
        if args.lora is None:
            write_lora(model.pipe.unet, path, args.rank)
        path = args.lora or str(path)
        latent = args.size // 8
        print(f"unet step, base:               {step_ms(model, args.batch, latent, args.repeats):8.2f} ms")
        start = time.perf_counter()
        [lora] = apply_loras(model, [str(path)])
        print(f"load + fuse {lora.layers} layers ({lora.name}): {(time.perf_counter() - start) * 1000:8.1f} ms")
        print(f"unet step, fused + wrappers:   {step_ms(model, args.batch, latent, args.repeats):8.2f} ms")
        remove_loras(model)
        drift = max(((model.pipe.unet.state_dict()[k] - v).abs().max() / v.abs().max().clamp_min(1e-12)).item() for k, v in base.items())
        print(f"unfuse drift (max |W'-W| / max|W| per tensor): {drift:.2e}")
        apply_loras(model, [str(path)], permanent=True)
        print(f"unet step, fused for good:     {step_ms(model, args.batch, latent, args.repeats):8.2f} ms")


if __name__ == "__main__":
    main()
