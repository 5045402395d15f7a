"""The tiny decoder (TAESD) path: same latents, its own decode, recorded, checked before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from storyface.api import render_settings
from storyface.errors import InputError, ModelError
from storyface.models import load_model
from storyface.render import RenderConfig, Renderer
from storyface.render.decoders import decode_latents, load_tiny_decoder

CONFIG = RenderConfig(steps=2, width=64, height=64, batch_size=2, seed=3)
PROMPTS = ["a lighthouse at night", "a cat on a red sofa"]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(load_model("tiny", device="cpu"))


def test_tiny_decoder_draws_the_same_latents_its_own_way_and_records_it(renderer):
    full = renderer.render(PROMPTS, config=CONFIG)
    tiny = renderer.render(PROMPTS, config=RenderConfig(**{**CONFIG.__dict__, "decoder": "tiny"}))
    assert [p.decoder for p in full] == ["full", "full"] and [p.decoder for p in tiny] == ["tiny", "tiny"]
    assert [p.record()["decoder"] for p in tiny] == ["tiny", "tiny"]
    assert all(p.image.size == (64, 64) for p in tiny)
    assert not np.array_equal(np.asarray(full[0].image), np.asarray(tiny[0].image))
    # the pipeline's own latents, decoded by hand with the same decoder: the same pixels
    pipe = renderer.model.pipe
    with torch.inference_mode():
        latents = pipe(prompt=PROMPTS[:1], negative_prompt=[""], num_inference_steps=2, guidance_scale=CONFIG.guidance, width=64, height=64,
                       generator=[torch.Generator().manual_seed(3)], output_type="latent",
                       original_size=(64, 64), target_size=(64, 64)).images  # fmt: skip
    by_hand, flagged = decode_latents(pipe, renderer._tiny_decoder, latents)
    assert flagged == [False]
    assert np.abs(np.asarray(by_hand[0], dtype=int) - np.asarray(tiny[0].image, dtype=int)).max() <= 2  # batch of 2 vs 1: rounding
    # a rerender keeps the decoder it was drawn with
    again = renderer.rerender(tiny[0], tiny[0].seed)
    assert again.decoder == "tiny" and np.array_equal(np.asarray(again.image), np.asarray(tiny[0].image))


def test_pixels_converted_on_the_device_equal_diffusers_own_pil_output(renderer):
    [panel] = renderer.render(PROMPTS[:1], config=RenderConfig(steps=2, width=64, height=48, seed=5))
    with torch.inference_mode():
        [theirs] = renderer.model.pipe(prompt=PROMPTS[:1], negative_prompt=[""], num_inference_steps=2,
                                       guidance_scale=panel.guidance, width=64, height=48, output_type="pil",
                                       generator=[torch.Generator().manual_seed(5)],
                                       original_size=(48, 64), target_size=(48, 64)).images  # fmt: skip
    assert np.array_equal(np.asarray(panel.image), np.asarray(theirs))


def test_a_flagged_image_stays_black():
    class Checked:  # the two things decode_latents uses of an SD 2.x pipeline with a safety checker
        safety_checker = object()

        @staticmethod
        def run_safety_checker(images, device, dtype):
            images = images.clone()
            images[1] = 0  # what diffusers' checker does to a flagged image
            return images, [False, True]

    class Decoder:
        dtype = torch.float32
        config = type("Config", (), {"scaling_factor": 1.0})

        @staticmethod
        def decode(latents):
            return type("Out", (), {"sample": torch.full((2, 3, 16, 16), 0.5)})

    images, flagged = decode_latents(Checked(), Decoder(), torch.zeros(2, 4, 2, 2))
    assert flagged == [False, True]
    assert np.asarray(images[1]).max() == 0 and np.asarray(images[0]).min() > 150  # 0.5 in [-1, 1] is light grey


def test_comic_records_know_the_same_decoders_as_the_renderer():
    from typing import get_args

    from storyface.comic_folder import PanelRecord
    from storyface.render.panel import DECODERS

    assert get_args(PanelRecord.model_fields["decoder"].annotation) == DECODERS


def test_decoder_and_compile_mistakes_fail_before_any_lora_is_read(renderer, tmp_path):
    with pytest.raises(InputError, match="unknown decoder 'taesd'.*full, tiny"):
        RenderConfig(decoder="taesd")
    missing = str(tmp_path / "nowhere.safetensors")
    with pytest.raises(InputError, match="unknown decoder"):
        render_settings(renderer, "standard", [missing], decoder="taesd")
    with pytest.raises(InputError, match="unknown compile mode 'max-autotune'"):
        render_settings(renderer, "standard", [missing], compile="max-autotune")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a diffusers AutoencoderTiny folder"):
        load_tiny_decoder(renderer.model, str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="could not load the tiny decoder 'nobody/no-such-taesd'"):
        load_tiny_decoder(renderer.model, "nobody/no-such-taesd")
