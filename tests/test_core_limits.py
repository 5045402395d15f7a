"""The core (Renderer, RenderConfig, make_comic) holds the same limits as the doors: a Python API caller
gets a clear InputError before any model work, and nothing is written."""

from __future__ import annotations

import pytest

from storyface.api import make_comic
from storyface.errors import InputError
from storyface.limits import MAX_PANELS, MAX_PROMPT_CHARS, MAX_RETRIES, MAX_SEED
from storyface.models import load_model
from storyface.render import RenderConfig, Renderer
from storyface.story.schema import Panel


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(load_model("tiny", device="cpu"))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"steps": 151}, "steps must be from 1 to 150"),
        ({"steps": 0}, "steps must be from 1 to 150"),
        ({"guidance": 31.0}, "guidance must be from 0 to 30"),
        ({"width": 4096}, "up to 2048"),
        ({"height": 1001}, "multiple of 8"),
        ({"batch_size": 17}, "batch_size must be from 1 to 16"),
    ],
)
def test_render_settings_have_upper_limits(options, message):
    with pytest.raises(InputError, match=message):
        RenderConfig(**options)


def test_the_renderer_refuses_too_many_or_too_long_prompts_before_drawing(renderer):
    calls = []
    with pytest.raises(InputError, match=f"at most {MAX_PANELS}"):
        renderer.render(["a lighthouse"] * (MAX_PANELS + 1), callback=lambda *a: calls.append(a))
    with pytest.raises(InputError, match="a prompt of 2,001 characters"):
        renderer.render(["x" * (MAX_PROMPT_CHARS + 1)], callback=lambda *a: calls.append(a))
    with pytest.raises(InputError, match="a negative prompt of"):
        renderer.render(["a lighthouse"], "y" * (MAX_PROMPT_CHARS + 1), callback=lambda *a: calls.append(a))
    assert calls == []


@pytest.mark.parametrize(
    "options, message",
    [
        ({"retries": MAX_RETRIES + 1}, "retries must be a whole number from 0 to 5"),
        ({"min_likeness": 2.0}, "cosine similarity from -1 to 1"),
        ({"seed": MAX_SEED}, "panel i is drawn with seed \\+ i"),
        ({"seed": -1}, "seed -1 must be"),
        ({"free_style": "ink " * 200}, "the free style words: 800 characters; keep it to 500"),
        ({"negative_prompt": "n" * 1001}, "the negative prompt: 1,001 characters"),
        ({"styles": ["manga"] * 17}, "17 styles were given; pick at most 16"),
        ({"title": "T" * 201}, "the title: 201 characters"),
    ],
)
def test_make_comic_checks_what_it_is_given_before_any_work(renderer, tmp_path, options, message):
    panels = [Panel(sentence="A lighthouse stands on a cliff at night."), Panel(sentence="Waves break below it.")]
    out = tmp_path / "comic"
    with pytest.raises(InputError, match=message):
        make_comic(renderer, panels, [], out, config=RenderConfig(steps=1, width=64, height=64), **options)
    assert not out.exists()
