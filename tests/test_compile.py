"""Compiling the UNet on CPU with the tiny model: regional compile matches eager, and inductor's
artifacts land in the StoryFace cache folder instead of /tmp.

Tolerance: inductor fuses and reorders the fp32 arithmetic of the transformer blocks, so outputs
match eager to float rounding, not bit for bit: 1e-5 absolute on a noise prediction of size ~1
(measured 8e-7 here).
"""

from __future__ import annotations

import logging
import os
import shutil

import pytest
import torch

from storyface.errors import InputError
from storyface.models import load_model
from storyface.render.compile import compile_unet, enable_compile_cache, uncompile_unet

HAS_CXX = any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


@pytest.fixture
def isolated_inductor(monkeypatch):
    """The test's cache folder, not the user's: monkeypatch puts TORCHINDUCTOR_CACHE_DIR back after."""
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    yield
    torch._dynamo.reset()
    from torch._inductor.utils import clear_caches

    clear_caches()


def unet_inputs(batch: int = 2) -> tuple:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 4, 16, 16, generator=g)  # [B, 4, h, w] latents
    enc = torch.randn(batch, 77, 96, generator=g)  # [B, 77, 32 + 64]
    added = {"text_embeds": torch.randn(batch, 32, generator=g), "time_ids": torch.tensor([[128.0, 128, 0, 0, 128, 128]] * batch)}
    return x, torch.full((batch,), 500), enc, added


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CXX, reason="inductor compiles C++ kernels on CPU and no C++ compiler is installed")
def test_regional_compile_matches_eager_and_fills_the_cache_folder(tmp_path, isolated_inductor):
    cache = enable_compile_cache(tmp_path / "compile-cache")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "compile-cache" / "inductor")
    model = load_model("tiny", device="cpu")
    x, t, enc, added = unet_inputs()
    unet = model.pipe.unet
    with torch.no_grad():
        eager = unet(x, t, enc, added_cond_kwargs=added).sample  # [2, 4, 16, 16]
        assert compile_unet(model.pipe, "regional", fullgraph=True) == 4  # 1 down + 1 mid + 2 up blocks
        compiled = unet(x, t, enc, added_cond_kwargs=added).sample
    assert type(model.pipe.unet).__name__ == "UNet2DConditionModel"  # compiled in place
    assert torch.allclose(compiled, eager, atol=1e-5), (compiled - eager).abs().max()
    cached = [p for p in (cache.inductor_dir / "fxgraph").rglob("*") if p.is_file()]
    assert cached, "inductor wrote no FX graph cache entry into the StoryFace folder"
    saved = cache.save()
    assert saved is not None and saved.parent == cache.folder and saved.stat().st_size > 0
    uncompile_unet(model.pipe)
    with torch.no_grad():
        assert torch.equal(unet(x, t, enc, added_cond_kwargs=added).sample, eager)  # eager again, exactly


def test_whole_mode_compiles_the_unet_forward_in_place_and_uncompiles(isolated_inductor):
    model = load_model("tiny", device="cpu")
    assert compile_unet(model.pipe, "whole") == 1  # lazy: nothing compiles until the first call
    assert model.pipe.unet._compiled_call_impl is not None
    uncompile_unet(model.pipe)
    assert model.pipe.unet._compiled_call_impl is None
    with pytest.raises(InputError, match="regional, whole"):
        compile_unet(model.pipe, "max-autotune")


def test_a_damaged_mega_cache_file_is_skipped_with_a_warning(tmp_path, isolated_inductor, caplog):
    first = enable_compile_cache(tmp_path)
    first.mega_cache_file.write_bytes(b"not a torch cache")
    with caplog.at_level(logging.WARNING, logger="storyface.render.compile"):
        again = enable_compile_cache(tmp_path)
    assert again.loaded is None
    assert "ignoring compile cache file" in caplog.text
