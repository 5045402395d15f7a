"""Quality presets: each distillation kind gets the sampler, spacing, guidance and steps its authors give,
and the schedulers built for them produce the published timestep schedules.

Hand-computed schedules (1000 training steps, SDXL's config with steps_offset=1):
- trailing spacing, 4 steps: round(arange(1000, 0, -250)) - 1 = [999, 749, 499, 249]
- leading spacing (SDXL's default), 4 steps: arange(0, 4) * 250 + 1 = [751, 501, 251, 1] (reversed)
- LCM, 4 of its 50 original steps: origin = arange(1, 51) * 20 - 1; picks indices floor(linspace(0, 50, 4,
  endpoint=False)) = [0, 12, 25, 37] of origin reversed = [999, 759, 499, 259]
"""

from __future__ import annotations

import pytest

from storyface.errors import InputError
from storyface.models import load_model
from storyface.render import SCHEDULERS, RenderConfig, Renderer
from storyface.render.adapters import LoraSpec
from storyface.render.quality import (
    DISTILL_KINDS,
    QUALITIES,
    detect_kind,
    fast_preset,
    quality_preset,
    standard_preset,
    steps_from_name,
)


@pytest.mark.parametrize(
    "name, kind, steps",
    [
        ("ByteDance/SDXL-Lightning/sdxl_lightning_4step_lora.safetensors", "lightning", 4),
        ("sdxl_lightning_2step_lora.safetensors", "lightning", 2),
        ("ByteDance/Hyper-SD/Hyper-SDXL-8steps-CFG-lora.safetensors", "hyper", 8),
        ("Hyper-SD15-1step-lora.safetensors", "hyper", 1),
        ("latent-consistency/lcm-lora-sdxl", "lcm", None),
        ("h1t/TCD-SDXL-LoRA", "tcd", None),
        ("comic_book_xl_v2.safetensors", None, None),
        ("hyperrealism_xl.safetensors", None, None),  # "hyper" alone is a style word, not Hyper-SD
        ("alchemy_xl.safetensors", None, None),  # "lcm" inside a word is not LCM
    ],
)
def test_kind_and_steps_are_read_from_the_names_people_use(name, kind, steps):
    assert detect_kind(name) == kind
    assert steps_from_name(name) == steps


@pytest.mark.parametrize(
    "name, kind, expected",  # (steps, scheduler, guidance, eta)
    [
        ("sdxl_lightning_4step_lora", "lightning", (4, "euler_trailing", 0.0, 0.0)),
        ("sdxl_lightning_8step_lora", "lightning", (8, "euler_trailing", 0.0, 0.0)),
        ("Hyper-SDXL-2steps-lora", "hyper", (2, "ddim_trailing", 0.0, 0.0)),
        ("Hyper-SDXL-1step-lora", "hyper", (1, "tcd", 0.0, 1.0)),
        ("Hyper-SDXL-12steps-CFG-lora", "hyper", (12, "ddim_trailing", 5.0, 0.0)),
        ("lcm-lora-sdxl", "lcm", (4, "lcm", 1.0, 0.0)),
        ("TCD-SDXL-LoRA", "tcd", (4, "tcd", 0.0, 0.3)),
    ],
)
def test_fast_presets_follow_the_model_cards(name, kind, expected):
    preset = fast_preset(kind, name)
    assert (preset.steps, preset.scheduler, preset.guidance, preset.eta) == expected
    assert preset.quality == "fast" and preset.kind == kind and preset.scheduler in SCHEDULERS


def test_standard_keeps_todays_rendering():
    config = standard_preset().render_config(RenderConfig(guidance=7.5, width=64, height=64, seed=9))
    assert (config.steps, config.scheduler, config.guidance, config.eta) == (30, "euler", 7.5, 0.0)
    assert (config.width, config.height, config.seed) == (64, 64, 9)
    assert quality_preset("standard").render_config() == RenderConfig()


def test_fast_takes_its_kind_from_the_loaded_distillation_lora():
    loras = [LoraSpec("ink_style.safetensors", 0.6), LoraSpec("ByteDance/SDXL-Lightning", weight_name="sdxl_lightning_2step_lora.safetensors")]
    preset = quality_preset("fast", loras)
    assert (preset.kind, preset.steps, preset.scheduler) == ("lightning", 2, "euler_trailing")
    assert quality_preset("fast", loras, steps=3).steps == 3  # an explicit step count wins
    assert quality_preset("FAST", kind="lcm").scheduler == "lcm"  # an already distilled base model


def test_quality_mistakes_are_input_errors_listing_the_choices():
    with pytest.raises(InputError, match=", ".join(QUALITIES)):
        quality_preset("turbo")
    with pytest.raises(InputError, match="distillation LoRA"):
        quality_preset("fast", [LoraSpec("ink_style.safetensors")])
    with pytest.raises(InputError, match=", ".join(DISTILL_KINDS)):
        quality_preset("fast", kind="sdxl-turbo")
    with pytest.raises(InputError, match="only draws well in fast"):
        quality_preset("standard", [LoraSpec("sdxl_lightning_4step_lora.safetensors")])
    with pytest.raises(InputError, match="one distillation LoRA"):
        quality_preset("fast", [LoraSpec("lcm-lora-sdxl.safetensors"), LoraSpec("TCD-SDXL-LoRA.safetensors")])
    with pytest.raises(InputError, match="steps"):
        fast_preset("lightning", steps=0)
    with pytest.raises(InputError, match="eta"):
        RenderConfig(eta=1.5)


@pytest.fixture(scope="module")
def renderer():
    return Renderer(load_model("tiny", device="cpu"))


@pytest.mark.parametrize(
    "name, timesteps",
    [
        ("euler", [751, 501, 251, 1]),
        ("euler_trailing", [999, 749, 499, 249]),
        ("ddim_trailing", [999, 749, 499, 249]),
        ("lcm", [999, 759, 499, 259]),
        ("tcd", [999, 759, 499, 259]),  # TCD picks its steps from the same 50-step grid as LCM
    ],
)
def test_schedulers_give_the_published_four_step_schedules(renderer, name, timesteps):
    scheduler = renderer._scheduler(name)
    scheduler.set_timesteps(4)
    assert [int(t) for t in scheduler.timesteps] == timesteps
    assert scheduler.config.beta_schedule == "scaled_linear"  # built from the model's own schedule


def test_ddim_trailing_neither_clips_nor_forces_alpha_one(renderer):
    config = renderer._scheduler("ddim_trailing").config
    assert (config.clip_sample, config.set_alpha_to_one, config.timestep_spacing) == (False, False, "trailing")
