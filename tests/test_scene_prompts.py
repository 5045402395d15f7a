"""Issue 19: scene panels (no cast member) become prompts without identities; a panel that should
show someone still fails loudly. Names inside unbroken CJK text become tokens too (issue 17 item 10)."""

from __future__ import annotations

import pytest

from storyface.errors import StoryError
from storyface.identity.tokens import identity_token
from storyface.story import STYLE_PRESETS, Panel, build_prompt, build_prompts, parse_story_offline, token_counter

IDS = {name: identity_token(name) for name in ("Hugh Jackman", "Taylor Swift")}


def test_a_scene_panel_is_a_prompt_without_identities() -> None:
    panels = [Panel(sentence="It was raining outside.", characters=[]), Panel(sentence="Hugh Jackman ate.", characters=["Hugh Jackman"])]
    scene, person = build_prompts(panels, IDS, styles=["pixel art"], cast=list(IDS))
    assert scene.prompt == f"It was raining outside, {STYLE_PRESETS['pixel art']}"
    assert scene.characters == [] and scene.tokens == []
    assert person.tokens == ["<hugh-jackman>"]


def test_a_parsed_story_keeps_its_scene_panels_through_the_prompts() -> None:
    script = parse_story_offline("It was raining outside. Hugh met Taylor. Everyone cheered.", list(IDS))
    assert [p.characters for p in script.panels] == [[], list(IDS), []]
    prompts = build_prompts(script.panels, IDS, cast=script.cast)
    assert [p.tokens for p in prompts] == [[], ["<hugh-jackman>", "<taylor-swift>"], []]
    assert prompts[2].prompt == "Everyone cheered"


def test_a_panel_that_should_show_someone_but_shows_no_identity_fails() -> None:
    panel = Panel(sentence="A cat slept on the warm roof.", characters=["Hugh Jackman"])
    with pytest.raises(StoryError, match=r"panel 1: .*names no one with an identity \(it should show Hugh Jackman\)"):
        build_prompts([panel], IDS, cast=list(IDS))


def test_a_scene_panel_naming_a_cast_member_without_an_identity_fails() -> None:
    cast = [*IDS, "Grace Hopper"]
    panel = Panel(sentence="Grace Hopper's desk stood empty.", characters=[])
    with pytest.raises(StoryError, match="panel 1: no identity for 'Grace Hopper'"):
        build_prompts([panel], IDS, cast=cast)


def test_a_bare_sentence_still_needs_someone() -> None:
    with pytest.raises(StoryError, match="names no one with an identity"):
        build_prompt("A cat slept on the warm roof.", IDS)
    assert build_prompt("A cat slept on the warm roof.", IDS, characters=[]).prompt == "A cat slept on the warm roof"


def test_scene_prompts_get_the_token_warning_too() -> None:
    from storyface.random_models import clip_tokenizer

    count = token_counter(clip_tokenizer())
    long_style = ", ".join(["an extremely detailed and intricate background full of tiny objects"] * 8)
    prompt = build_prompt("It was raining.", IDS, free_style=long_style, count_tokens=count, characters=[])
    assert prompt.tokens == [] and len(prompt.warnings) == 1 and "CLIP reads only the first 77" in prompt.warnings[0]


def test_names_inside_unbroken_cjk_text_become_tokens() -> None:
    ids = {"格蕾丝 霍珀": identity_token("格蕾丝 霍珀"), "Hugh Jackman": IDS["Hugh Jackman"]}
    p = build_prompt("格蕾丝·霍珀走进博物馆，看见了Hugh Jackman。", ids)
    assert p.characters == ["格蕾丝 霍珀", "Hugh Jackman"]
    assert p.prompt.startswith(ids["格蕾丝 霍珀"] + "走进博物馆，看见了<hugh-jackman>")
    # a longer Latin word still does not hold a shorter name
    with pytest.raises(StoryError):
        build_prompt("Hugh Jackmanly walked.", IDS)
