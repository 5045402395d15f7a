"""Rendering on the tiny random-weight pipelines: batching, seeds, progress, cancel, identities."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from storyface.errors import InputError
from storyface.identity.tokens import Identity
from storyface.models import load_model
from storyface.render import SCHEDULERS, PanelImage, RenderCancelled, RenderConfig, Renderer

FAST = RenderConfig(steps=3, width=64, height=64, batch_size=4)
PROMPTS = ["a lighthouse at night", "a cat on a red sofa", "two astronauts wave from the moon"]


@pytest.fixture(scope="module")
def tiny_model():
    return load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def renderer(tiny_model) -> Renderer:
    return Renderer(tiny_model)


def pixels(panel: PanelImage) -> np.ndarray:
    return np.asarray(panel.image, dtype=np.int16)  # [H, W, 3]


def close(a: PanelImage, b: PanelImage) -> bool:
    """Equal up to batched-matmul rounding: at most one uint8 level anywhere."""
    return int(np.abs(pixels(a) - pixels(b)).max()) <= 2


def test_batch_returns_images_of_requested_size_in_story_order(renderer):
    config = RenderConfig(steps=2, width=64, height=48, batch_size=2, seed=10)  # two batches: 2 + 1
    panels = renderer.render(PROMPTS, "blurry", config=config)
    assert [p.index for p in panels] == [0, 1, 2]
    assert [p.prompt for p in panels] == PROMPTS
    assert [p.seed for p in panels] == [10, 11, 12]  # base seed + index
    assert all(p.image.size == (64, 48) and p.image.mode == "RGB" for p in panels)
    assert all(p.negative_prompt == "blurry" for p in panels)
    # the third panel came from the second batch; it must match that prompt rendered alone
    [third] = renderer.render([PROMPTS[2]], "blurry", seeds=[12], config=config)
    assert close(panels[2], third)


def test_same_seed_gives_identical_pixels_and_new_seed_differs(renderer):
    a = renderer.render(PROMPTS[:1], seeds=[7], config=FAST)[0]
    b = renderer.render(PROMPTS[:1], seeds=[7], config=FAST)[0]
    c = renderer.render(PROMPTS[:1], seeds=[8], config=FAST)[0]
    assert np.array_equal(pixels(a), pixels(b))
    assert np.abs(pixels(a) - pixels(c)).mean() > 5


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_panel_in_a_batch_equals_the_panel_rendered_alone(renderer, scheduler):
    config = RenderConfig(steps=3, width=64, height=64, scheduler=scheduler, batch_size=3)
    batch = renderer.render(PROMPTS, "", seeds=[21, 22, 23], config=config)
    alone = renderer.render([PROMPTS[1]], "", seeds=[22], config=config)[0]
    assert close(batch[1], alone)
    assert not close(batch[0], batch[1])  # and the batch is not one image three times


def test_rerender_same_seed_identical_new_seed_different(renderer):
    [panel] = renderer.render([PROMPTS[0]], seeds=[3], config=FAST)
    panel.index = 5  # as if it were panel 5 of a story
    again = renderer.rerender(panel, seed=3)
    other = renderer.rerender(panel, seed=4)
    fresh = renderer.rerender(panel)
    assert np.array_equal(pixels(again), pixels(panel))
    assert again.index == 5 and again.prompt == panel.prompt and again.steps == panel.steps
    assert other.seed == 4 and np.abs(pixels(other) - pixels(panel)).mean() > 5
    assert fresh.seed != panel.seed  # no seed: a new one is drawn and recorded


def test_callback_reports_increasing_progress_to_the_total(renderer):
    calls: list[tuple[int, int]] = []
    config = RenderConfig(steps=2, width=64, height=64, batch_size=2)
    renderer.render(PROMPTS, callback=lambda done, total: calls.append((done, total)), config=config)
    done = [d for d, _ in calls]
    assert {t for _, t in calls} == {len(PROMPTS) * config.steps}
    assert done == sorted(done) and len(set(done)) == len(done)
    assert done[-1] == len(PROMPTS) * config.steps


def test_cancel_stops_with_render_cancelled_and_keeps_finished_panels(renderer, tiny_model):
    cancel = threading.Event()
    config = RenderConfig(steps=3, width=64, height=64, batch_size=1)

    def stop_in_second_panel(done: int, total: int) -> None:
        if done > config.steps:
            cancel.set()

    with pytest.raises(RenderCancelled) as info:
        renderer.render(PROMPTS, config=config, callback=stop_in_second_panel, cancel=cancel)
    assert [p.index for p in info.value.panels] == [0]
    original = tiny_model.pipe.scheduler
    with pytest.raises(RenderCancelled):  # set before starting: nothing is rendered
        renderer.render(PROMPTS, config=config, cancel=cancel)
    assert tiny_model.pipe.scheduler is original
    assert len(renderer.render(PROMPTS[:1], config=config)) == 1  # the renderer still works


def test_scheduler_swap_is_per_call(renderer, tiny_model):
    original = tiny_model.pipe.scheduler
    renderer.render(PROMPTS[:1], config=RenderConfig(steps=2, width=64, height=64, scheduler="dpmpp_2m"))
    assert tiny_model.pipe.scheduler is original
    assert type(original).__name__ == "EulerDiscreteScheduler"


def test_bad_options_raise_input_errors_listing_choices(renderer):
    with pytest.raises(InputError, match="euler_a"):
        RenderConfig(scheduler="k_lms")
    with pytest.raises(InputError, match="multiple of 8"):
        RenderConfig(width=60)
    with pytest.raises(InputError, match="steps"):
        RenderConfig(steps=0)
    with pytest.raises(InputError, match="negative prompts"):
        renderer.render(PROMPTS, ["only one", "two"], config=FAST)
    with pytest.raises(InputError, match="seeds"):
        renderer.render(PROMPTS, seeds=[1], config=FAST)
    with pytest.raises(InputError, match="seed"):
        renderer.render(PROMPTS[:1], seeds=[-1], config=FAST)


def test_record_is_json_and_names_the_model(renderer):
    [panel] = renderer.render(PROMPTS[:1], "ugly", seeds=[9], config=FAST)
    record = json.loads(json.dumps(panel.record()))
    assert record["prompt"] == PROMPTS[0] and record["negative_prompt"] == "ugly" and record["seed"] == 9
    assert record["model"] == "tiny" and record["tiny"] is True
    assert (record["width"], record["height"], record["steps"], record["scheduler"]) == (64, 64, 3, "euler")


def test_default_size_is_the_model_render_size(renderer, tiny_model):
    [panel] = renderer.render(PROMPTS[:1], config=RenderConfig(steps=1))
    assert panel.image.size == (tiny_model.render_size, tiny_model.render_size)


def test_sd2_tiny_renders():
    renderer = Renderer(load_model("tiny-sd2", device="cpu"))
    panels = renderer.render(PROMPTS[:2], "", seeds=[1, 2], config=FAST)
    assert [p.image.size for p in panels] == [(64, 64), (64, 64)]
    alone = renderer.render(PROMPTS[1:2], "", seeds=[2], config=FAST)[0]
    assert close(panels[1], alone)


def random_identity(name: str, seed: int) -> Identity:
    g = torch.Generator().manual_seed(seed)
    rows = {"clip_l": torch.randn(2, 32, generator=g), "clip_g": torch.randn(2, 64, generator=g)}  # tiny SDXL widths
    return Identity(name, "sdxl", rows, {"tiny": "true"})


def test_loaded_identity_changes_the_image_of_a_prompt_with_its_token():
    renderer = Renderer(load_model("tiny", device="cpu"))  # its own model: loading tokens changes the tokenizers
    prompt = "a photo of <grace-hopper> reading a book"
    plain = "a photo of a person reading a book"
    before = renderer.render([prompt, plain], seeds=[5, 5], config=FAST)
    tokens = renderer.load_identities([random_identity("Grace Hopper", 0)])
    assert tokens == {"Grace Hopper": "<grace-hopper>"}
    after = renderer.render([prompt, plain], seeds=[5, 5], config=FAST)
    assert np.abs(pixels(after[0]) - pixels(before[0])).mean() > 1  # the token now means the identity
    assert np.abs(pixels(after[0]) - pixels(after[1])).mean() > 1  # and differs from no token at all
    assert close(after[1], before[1])  # prompts without the token are untouched
    assert after[0].record()["identities"][0]["name"] == "Grace Hopper"
    assert after[1].record()["identities"] == []
    renderer.load_identities([random_identity("Grace Hopper", 1)])  # new rows, same token: replaced
    changed = renderer.render([prompt], seeds=[5], config=FAST)[0]
    assert np.abs(pixels(changed) - pixels(after[0])).mean() > 1


def test_render_refuses_policy_breaking_prompts_with_a_loaded_identity_even_below_the_api(renderer):
    from storyface.safety import ContentPolicyError

    token = renderer.load_identities([random_identity("Policy Person", 11)])["Policy Person"]
    with pytest.raises(ContentPolicyError, match="content policy"):
        renderer.render([f"a photo of {token}, n4k3d"], "", [1], RenderConfig(steps=1, width=64, height=64))
    with pytest.raises(ContentPolicyError):
        renderer.render([f"a photo of {token}"], "clothes, shirt, dress", [1], RenderConfig(steps=1, width=64, height=64))
    [ok] = renderer.render([f"a photo of {token} in a garden"], "", [1], RenderConfig(steps=1, width=64, height=64))
    assert ok.image.size == (64, 64)
