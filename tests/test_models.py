"""Model loading: the real CLIP tokenizer, tiny builders, local folders, and clear errors."""

from __future__ import annotations

import pytest
import torch

from storyface.errors import ModelError
from storyface.models import load_model
from storyface.random_models import build_tiny_pipeline, clip_tokenizer


def test_clip_tokenizer_is_the_real_bpe():
    tok = clip_tokenizer()
    ids = tok("a photo of Grace Hopper").input_ids
    assert ids[:4] == [49406, 320, 1125, 539]  # <|startoftext|> a photo of (OpenAI CLIP ids)
    assert ids[-1] == 49407 and len(tok) == 49408 and tok.model_max_length == 77
    assert tok.decode(ids[1:-1]) == "a photo of grace hopper"


def test_second_sdxl_tokenizer_pads_with_exclamation_mark():
    padded = clip_tokenizer(pad_token="!")("hi", padding="max_length", max_length=77).input_ids
    assert padded[3:] == [0] * 74  # "!" is id 0
    assert clip_tokenizer()("hi", padding="max_length", max_length=77).input_ids[3:] == [49407] * 74


@pytest.mark.parametrize("name, family, encoders", [("tiny", "sdxl", ["clip_l", "clip_g"]), ("tiny-sd2", "sd2", ["emb_params"])])
def test_tiny_models_have_the_real_architecture(name, family, encoders):
    model = load_model(name, device="cpu")
    assert model.family == family and model.is_tiny and "noise" in model.notice
    assert [s.key for s in model.encoders] == encoders
    assert all(not p.requires_grad for p in model.pipe.unet.parameters())
    assert model.pipe.vae.config.block_out_channels.__len__() == 4  # the real 8x latent downscale


def test_tiny_builder_is_deterministic():
    a, b = build_tiny_pipeline("sdxl", seed=1), build_tiny_pipeline("sdxl", seed=1)
    assert all(torch.equal(p, q) for p, q in zip(a.unet.parameters(), b.unet.parameters()))
    rng = torch.get_rng_state()
    build_tiny_pipeline("sd2", seed=2)
    assert torch.equal(rng, torch.get_rng_state())  # building does not disturb the caller's RNG


def test_local_diffusers_folder_loads_and_fixes_legacy_eos(tmp_path):
    pipe = build_tiny_pipeline("sdxl")
    pipe.text_encoder_2.config.eos_token_id = 2  # as in SDXL's published config
    pipe.save_pretrained(tmp_path / "sdxl")
    model = load_model(str(tmp_path / "sdxl"), device="cpu", dtype=torch.float32)
    assert model.family == "sdxl" and not model.is_tiny and model.render_size == 1024
    assert model.pipe.text_encoder_2.config.eos_token_id == 49407
    for p, q in zip(model.pipe.unet.parameters(), pipe.unet.parameters()):
        assert torch.equal(p, q)


def test_bad_sources_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "empty").mkdir()
    (tmp_path / "model.ckpt").write_bytes(b"pickle")
    with pytest.raises(ModelError, match="model_index.json"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="pickle"):
        load_model(str(tmp_path / "model.ckpt"))
    with pytest.raises(ModelError, match="does not exist"):
        load_model(str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        load_model("someone/not-a-cached-model")


def test_single_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"not.a.unet": torch.zeros(2)}, str(tmp_path / "junk.safetensors"))
    with pytest.raises(ModelError, match="junk.safetensors"):
        load_model(str(tmp_path / "junk.safetensors"))


def test_only_real_weights_go_without_a_notice():
    tiny = load_model("tiny", device="cpu")
    assert tiny.random_weights and "noise" in tiny.notice
    real_like = type(tiny)(tiny.pipe, "sdxl", "some/sdxl-finetune", False, 512, 1024)
    benchmark = type(tiny)(tiny.pipe, "sdxl", "random-sdxl", False, 512, 1024)
    assert not real_like.random_weights and real_like.notice == "base model: some/sdxl-finetune"
    assert benchmark.random_weights and "random weights" in benchmark.notice
