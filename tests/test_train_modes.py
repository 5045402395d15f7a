"""The training step's UNet modes on the tiny model (CPU): checkpointed blocks give the very same loss
and gradients while autograd keeps less; compiled blocks give eager's numbers within float rounding;
both are set only inside the step and put back after.

Tolerance for compiled vs eager: inductor fuses and reorders the fp32 arithmetic of the transformer
blocks (LayerNorm and softmax reductions), so values agree to float rounding, not bit for bit. Measured
here: loss 1e-7 relative, MLP gradients 2e-6 relative; the test allows 1e-5 for both, far below what a
wrong kernel gives (a dropped residual or a wrong attention scale moves the loss by percents).
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from storyface.identity.train import TrainConfig, TrainingRun, train_identities
from storyface.identity.unet_modes import repeated_blocks, saved_bytes, unet_modes, wants_checkpoint, wants_compile
from storyface.models import load_model

from subjects import small_subject

HAS_CXX = any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)
QUICK = TrainConfig(steps=3, bank_size=2, mlp_hidden=32, probe_samples=1, resolution=64, lr=1e-3)
COMPILED_RTOL = 1e-5



@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny", device="cpu")


def loss_and_grads(run: TrainingRun, **modes: bool) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """One draw's summed loss, the MLPs' gradients and the bytes autograd kept, in the given modes."""
    gen = torch.Generator().manual_seed(7)
    with run.modes(**modes), saved_bytes() as kept:
        loss = run.loss(gen).sum()
    loss.backward()
    grads = [p.grad.clone() for p in run.parameters]
    for p in run.parameters:
        p.grad = None
    return loss.detach(), grads, kept["bytes"]


def test_checkpointed_blocks_give_the_same_loss_and_gradients_and_keep_less(tiny):
    run = TrainingRun(tiny, [small_subject("Ada Check", 0), small_subject("Bo Point", 1)], QUICK)
    loss, grads, kept = loss_and_grads(run, compile=False, checkpoint=False)
    loss_ck, grads_ck, kept_ck = loss_and_grads(run, compile=False, checkpoint=True)
    assert torch.equal(loss_ck, loss)  # the recompute runs the same kernels on the same inputs
    assert all(torch.equal(a, b) for a, b in zip(grads_ck, grads))
    assert any(g.abs().sum() > 0 for g in grads)  # gradients really reach the MLPs through the blocks
    assert kept_ck < 0.75 * kept, (kept_ck, kept)  # measured 0.60: the blocks hold most of what is kept


def test_checkpointed_training_learns_the_same_identities(tiny):
    people = [small_subject("Cy Same", 2)]
    quick = QUICK.model_copy(update={"steps": 2})
    plain = train_identities(tiny, people, quick.model_copy(update={"checkpoint": False}))
    checked = train_identities(tiny, people, quick.model_copy(update={"checkpoint": True}))
    for a, b in zip(plain, checked):
        assert all(torch.equal(a.embeddings[k], b.embeddings[k]) for k in a.embeddings)


def test_modes_apply_inside_only_and_put_back_what_was_there(tiny):
    unet = tiny.pipe.unet
    blocks = repeated_blocks(unet)
    assert len(blocks) == 4

    def renderer_compiled(*args, **kwargs):  # stands in for the renderer's whole-UNet compile
        raise AssertionError("training must not run the renderer's compiled UNet")

    unet._compiled_call_impl = renderer_compiled
    try:
        with unet_modes(unet, compile=False, checkpoint=True):
            assert unet._compiled_call_impl is None  # set aside while training
            assert all("forward" in b.__dict__ for b in blocks)
        with unet_modes(unet, compile=True, checkpoint=False):
            assert all(b._compiled_call_impl is not None for b in blocks)  # lazy: nothing compiles until called
            assert not any("forward" in b.__dict__ for b in blocks)
        assert unet._compiled_call_impl is renderer_compiled
    finally:
        unet._compiled_call_impl = None
    assert all(b._compiled_call_impl is None and "forward" not in b.__dict__ for b in blocks)


def test_defaults_compile_off_and_checkpoint_several_people_on_cuda(tiny):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert not wants_compile(None) and not wants_compile(False) and wants_compile(True)  # on CUDA too
    assert not wants_checkpoint(None, 1, cuda) and wants_checkpoint(None, 2, cuda)
    assert not wants_checkpoint(None, 4, cpu) and wants_checkpoint(True, 1, cpu) and not wants_checkpoint(False, 4, cuda)
    run = TrainingRun(tiny, [small_subject("Ed Auto", 4), small_subject("Flo Auto", 5)], QUICK)
    assert (run.compile, run.checkpoint) == (False, False)  # CPU: both off unless asked


@pytest.fixture
def isolated_inductor(monkeypatch, tmp_path):
    """Inductor's caches in the test's folder; dynamo's in-memory cache dropped before and after."""
    from storyface.render.compile import enable_compile_cache

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    torch._dynamo.reset()
    yield enable_compile_cache(tmp_path / "compile-cache")
    torch._dynamo.reset()
    from torch._inductor.utils import clear_caches

    clear_caches()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CXX, reason="inductor compiles C++ kernels on CPU and no C++ compiler is installed")
def test_compiled_step_matches_eager_and_uses_the_cache_folder(tiny, isolated_inductor):
    """Compiled blocks, alone and checkpointed (several people's default on CUDA), against eager.

    Each compiled variant must really compile (dynamo's graph count grows): a checkpoint that dynamo
    refuses to trace would silently run the blocks eagerly and pass the comparison for nothing.
    """
    from torch._dynamo.utils import counters

    people = [small_subject("Gus Compiled", 6)]
    results = {}
    for compile, checkpoint in ((False, False), (True, False), (True, True)):
        graphs_before = counters["stats"]["unique_graphs"]
        run = TrainingRun(tiny, people, QUICK.model_copy(update={"compile": compile, "checkpoint": checkpoint}))
        assert (run.compile, run.checkpoint) == (compile, checkpoint)
        step = run.step_fn()  # CPU: the eager step, in the run's modes
        losses = torch.stack([step().detach() for _ in range(2)])
        results[compile, checkpoint] = losses, [p.detach().clone() for p in run.parameters]
        assert (counters["stats"]["unique_graphs"] > graphs_before) == compile  # the blocks went through dynamo
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(isolated_inductor.inductor_dir)  # left as chosen
    assert any(p.is_file() for p in (isolated_inductor.inductor_dir / "fxgraph").rglob("*"))
    eager_losses, eager_params = results[False, False]
    for key in ((True, False), (True, True)):
        losses, params = results[key]
        assert _rel(losses, eager_losses) < COMPILED_RTOL, key
        assert max(_rel(c, e) for c, e in zip(params, eager_params)) < COMPILED_RTOL, key
    assert _rel(eager_params[0], TrainingRun(tiny, people, QUICK).parameters[0].detach()) > 1e-4  # steps moved them
    assert all(b._compiled_call_impl is None for b in repeated_blocks(tiny.pipe.unet))  # put back after the step
