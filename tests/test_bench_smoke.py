"""The GPU benchmark's CPU smoke mode, the full-size architecture, and the CPU-checkable parts of the
graphed training step (warm-up leaves no trace; graph-safe conditioning equals the pipeline's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from storyface.errors import StoryFaceError
from storyface.identity.conditioning import add_time_ids
from storyface.identity.graphed import warm_up
from storyface.identity.train import TrainConfig, TrainingRun
from storyface.models import contiguous_vae_mid_blocks
from storyface.models import load_model

from subjects import small_subject

ROOT = Path(__file__).resolve().parents[1]
QUICK = TrainConfig(steps=3, bank_size=2, mlp_hidden=32, probe_samples=1, resolution=64)



@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", device="cpu")


def test_bench_smoke_mode_prints_the_table(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OUT": ""}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (tmp_path / "table.md").read_text()
    assert table in proc.stdout
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 10  # header + the issues' figures + memory + steady state + correctness
    assert "first identity in a fresh process" in table and "6-panel" not in table  # smoke: 2 panels
    assert "not run" not in table and "FAILED" not in table
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["failed"] == {} and results["skipped"] == {} and "fresh_plain" not in results  # smoke skips it
    for child in ("fresh_cold", "fresh_warm"):
        assert results[child]["train_s"] > 0 and results[child]["wall_s"] > results[child]["train_s"]
    assert (tmp_path / "child-cold.log").is_file() and (tmp_path / "child-warm.log").is_file()
    assert results["page"]["page_s"] > 0 and results["reference"]["panel_s"] > 0
    fast = results["fast_page"]
    assert fast["page_s"] > 0 and fast["lora"]["fused_layers"] > 0 and results["reference"]["lora_fuse_s"] > 0
    assert (fast["steps"], fast["scheduler"], fast["guidance"]) == (4, "euler_trailing", 0.0)
    assert results["memory"]["on"]["modes"] == "checkpoint" and results["memory"]["off"]["modes"] == "eager"
    same = results["train"]["check"]["1"]["fast_vs_plain"]
    assert same["loss_rel"] == 0.0 and same["rows_rel"] == 0.0  # on CPU both take the plain path
    assert results["reference"]["fast_vs_fp32"]["loss_rel"] == 0.0  # float32 on CPU: the same numbers


def test_bench_table_says_which_phases_did_not_run():
    """A run cut short (time limit, --phases) still writes a table with every row, marked."""
    sys.path.insert(0, str(ROOT / "bench"))
    from gpu_common import FULL
    from gpu_table import build_table

    partial = {"env": {}, "page": {"page_s": 6.5, "pages_s": [6.5, 6.6], "peak": {"alloc_gib": 21.0, "reserved_gib": 22.0}},
               "skipped": {"fresh_plain": "estimated 50 s, 10 s of the budget left"}}
    table = build_table(FULL, partial)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 10
    page = next(r for r in rows if "standard: 30 steps" in r)
    assert "6.50 s (median of 2" in page and "NO (1.30x the target)" in page
    assert sum("not run" in r for r in rows) == 10  # every other figure, and the page's reference cell
    assert "SKIPPED phases: fresh_plain (estimated 50 s" in table


def test_random_sdxl_has_sdxl_base_sizes():
    from storyface.random_models import random_sdxl_pipeline

    pipe = random_sdxl_pipeline("meta", torch.bfloat16)  # shapes only: no memory, no init cost

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert count(pipe.unet) == 2_567_463_684  # SDXL base 1.0's UNet
    assert count(pipe.text_encoder) == 123_060_480  # CLIP ViT-L/14 text tower
    assert count(pipe.text_encoder_2) == 694_659_840  # OpenCLIP bigG text tower + projection
    assert count(pipe.vae) == 83_653_863
    assert pipe.text_encoder.config.eos_token_id == pipe.tokenizer.eos_token_id == 49407
    assert pipe.vae.config.scaling_factor == 0.13025 and pipe.unet.dtype == torch.bfloat16


def _plain_step(model, name: str):
    """The trainer's step exactly as ``TrainingRun.step_fn`` builds it on CPU, with its pieces in reach."""
    run = TrainingRun(model, [small_subject(name, 0)], QUICK.model_copy(update={"lr": 1e-3}))
    step, opt, gen = run.eager_step()
    return step, run.parameters, opt, gen


def test_warm_up_leaves_no_trace(tiny):
    """The graph is captured after warm-up steps: they must not change what training computes."""
    step, params, _, _ = _plain_step(tiny, "Warm Up")
    fresh = [step().item() for _ in range(3)]
    fresh_params = [p.detach().clone() for p in params]

    step, params, opt, gen = _plain_step(tiny, "Warm Up")
    warm_up(step, params, opt, gen, steps=2)
    after = [step().item() for _ in range(3)]
    assert after == fresh
    assert all(torch.equal(a, b) for a, b in zip(params, fresh_params))
    assert fresh[0] != fresh[2]  # the steps really move the MLPs


def test_graph_safe_step_tensors_are_built_once_on_the_device(tiny):
    """The trainer keeps time ids and the noise schedule on the device (a host copy cannot be graphed)."""
    run = TrainingRun(tiny, [small_subject("Kw Args", 1), small_subject("Two People", 2)], QUICK)
    cfg, batch = run.cfg, run.batch
    assert torch.equal(batch.time_ids, add_time_ids(tiny, cfg.resolution, cfg.resolution, 2))
    assert batch.time_ids.device == tiny.device
    assert torch.equal(batch.alphas_cumprod, tiny.pipe.scheduler.alphas_cumprod)


def test_graph_needs_cuda(tiny):
    run = TrainingRun(tiny, [small_subject("No Gpu", 3)], QUICK.model_copy(update={"graph": True}))
    with pytest.raises(StoryFaceError, match="CUDA"):
        run.step_fn()


def test_vae_mid_blocks_hand_back_contiguous_tensors_with_the_same_values(tiny):
    """load_model hooks the VAE mid-blocks: diffusers' attention output is channels_last-strided."""
    block = tiny.pipe.vae.decoder.mid_block
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = []
    probe = block.register_forward_hook(lambda m, a, out: seen.append(out.is_contiguous()))
    with torch.no_grad():
        hooked = tiny.pipe.vae.decode(latents).sample
        contiguous_vae_mid_blocks(tiny.pipe, enable=False)
        plain = tiny.pipe.vae.decode(latents).sample
        contiguous_vae_mid_blocks(tiny.pipe)
        contiguous_vae_mid_blocks(tiny.pipe)  # twice is a no-op
        again = tiny.pipe.vae.decode(latents).sample
    probe.remove()
    assert seen == [True, False, True]  # the fix runs before the probe and makes what diffusers hands back contiguous
    torch.testing.assert_close(hooked, plain)
    assert torch.equal(again, hooked)  # hooked again (once, not twice): the same decode
