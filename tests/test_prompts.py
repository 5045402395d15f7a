"""Panel sentences -> prompts: names to identity tokens, styles, and CLIP's 77-token limit."""

from __future__ import annotations

import pytest
import torch

from storyface.errors import InputError, StoryError
from storyface.identity.tokens import identity_token
from storyface.story import (
    DEFAULT_NEGATIVE_PROMPT,
    STYLE_PRESETS,
    Panel,
    build_prompt,
    build_prompts,
    parse_story_offline,
    token_counter,
)

IDS = {name: identity_token(name) for name in ("Hugh Jackman", "Taylor Swift")}


@pytest.fixture(scope="session")
def count_clip_tokens():
    from storyface.random_models import clip_tokenizer

    return token_counter(clip_tokenizer())


def test_two_identities_in_one_sentence() -> None:
    p = build_prompt("Hugh Jackman and Taylor Swift walked to school together.", IDS)
    assert p.prompt == "<hugh-jackman> and <taylor-swift> walked to school together"
    assert p.characters == ["Hugh Jackman", "Taylor Swift"]
    assert p.tokens == ["<hugh-jackman>", "<taylor-swift>"]
    assert p.negative_prompt == DEFAULT_NEGATIVE_PROMPT and p.warnings == []


def test_order_of_characters_follows_the_sentence() -> None:
    p = build_prompt("Taylor Swift waved at Hugh Jackman, and Hugh Jackman waved back.", IDS)
    assert p.characters == ["Taylor Swift", "Hugh Jackman"]
    assert p.prompt.count("<hugh-jackman>") == 2


def test_possessives_keep_their_s() -> None:
    p = build_prompt("Hugh Jackman took Taylor Swift's banana and Taylor Swift’s hat.", IDS)
    assert p.prompt == "<hugh-jackman> took <taylor-swift>'s banana and <taylor-swift>'s hat"
    james = build_prompt("James Woods' car is red.", {"James Woods": "<james-woods>"})
    assert james.prompt == "<james-woods>' car is red"


def test_a_name_that_is_a_prefix_of_another() -> None:
    ids = {"Tay Swift": "<tay-swift>", "Tay Swiftly": "<tay-swiftly>"}
    p = build_prompt("Tay Swiftly met Tay Swift; Tay Swift's dog barked at Tay Swiftly's cat.", ids)
    assert p.prompt == "<tay-swiftly> met <tay-swift>; <tay-swift>'s dog barked at <tay-swiftly>'s cat"
    assert p.characters == ["Tay Swiftly", "Tay Swift"]
    # a longer word that only starts with a name is not that name
    with pytest.raises(StoryError):
        build_prompt("Tay Swiftlyness is a word.", {"Tay Swift": "<tay-swift>"})


def test_names_match_in_any_case_and_spacing() -> None:
    p = build_prompt("HUGH  JACKMAN smiled at taylor swift.", IDS)
    assert p.prompt == "<hugh-jackman> smiled at <taylor-swift>"


def test_tokens_typed_by_hand_count_as_characters() -> None:
    p = build_prompt("<taylor-swift> sings on stage.", IDS)
    assert p.characters == ["Taylor Swift"] and p.prompt == "<taylor-swift> sings on stage"


def test_style_suffix_and_negative_prompt() -> None:
    p = build_prompt("Hugh Jackman eats an apple!", IDS, styles=["comic style", "Anime"], free_style=" at dusk ")
    expected = f"<hugh-jackman> eats an apple!, {STYLE_PRESETS['comic style']}, {STYLE_PRESETS['anime']}, at dusk"
    assert p.prompt == expected
    assert build_prompt("Hugh Jackman eats.", IDS, negative_prompt=" ugly ").negative_prompt == "ugly"
    assert build_prompt("Hugh Jackman eats.", IDS, negative_prompt="").negative_prompt == ""
    with pytest.raises(InputError, match="unknown style"):
        build_prompt("Hugh Jackman eats.", IDS, styles=["claymation"])


def test_cast_member_without_identity_is_an_error() -> None:
    cast = ["Hugh Jackman", "Taylor Swift", "Grace Hopper"]
    with pytest.raises(StoryError, match="no identity for 'Grace Hopper': train or import one"):
        build_prompt("Hugh Jackman met grace hopper.", IDS, cast=cast)
    # without the cast, an unknown name is just words
    assert build_prompt("Hugh Jackman met Grace Hopper.", IDS).characters == ["Hugh Jackman"]


def test_sentence_naming_nobody_is_an_error_listing_the_cast() -> None:
    with pytest.raises(StoryError, match="names no one with an identity.*Hugh Jackman, Taylor Swift"):
        build_prompt("A cat slept on the warm roof.", IDS)


def test_token_limit_warning_with_the_real_clip_tokenizer(count_clip_tokens) -> None:
    short = build_prompt("Hugh Jackman eats an apple.", IDS, styles=["cinematic"], count_tokens=count_clip_tokens)
    assert short.warnings == []
    long_style = ", ".join(["an extremely detailed and intricate background full of tiny objects"] * 8)
    long = build_prompt("Hugh Jackman eats an apple.", IDS, free_style=long_style, count_tokens=count_clip_tokens)
    (warning,) = long.warnings
    n = count_clip_tokens(long.prompt)
    assert n > 77
    assert warning == f"prompt is {n} tokens; CLIP reads only the first 77 — shorten the sentence or styles"


def test_build_prompts_from_a_parsed_story() -> None:
    script = parse_story_offline("Hugh met Taylor. She waved at him. They ate apples.", list(IDS))
    prompts = build_prompts(script.panels, IDS, styles=["pixel art"], cast=script.cast)
    style = STYLE_PRESETS["pixel art"]
    assert [p.prompt for p in prompts] == [
        f"<hugh-jackman> met <taylor-swift>, {style}",
        f"<taylor-swift> waved at <hugh-jackman>, {style}",
        f"<hugh-jackman> and <taylor-swift> ate apples, {style}",
    ]
    with pytest.raises(StoryError, match="panel 2: no identity for 'Taylor Swift'"):
        build_prompts(
            [Panel(sentence="Hugh Jackman ate.", characters=[]), Panel(sentence="Taylor Swift sang.", characters=[])],
            {"Hugh Jackman": "<hugh-jackman>"},
            cast=list(IDS),
        )


def test_token_counter_counts_each_identity_vector_when_told_how_to_expand():
    from storyface.models import load_model

    model = load_model("tiny", device="cpu")
    from storyface.identity.tokens import Identity, load_into_pipeline

    token = load_into_pipeline(model, Identity("Count Me", "sdxl", {s.key: torch.randn(2, s.dim) for s in model.encoders}))
    tok, pipe = model.encoders[0].tokenizer, model.pipe
    plain, expanded = token_counter(tok), token_counter(tok, lambda t: pipe.maybe_convert_prompt(t, tok))
    assert plain(f"a photo of {token}") == 6 and expanded(f"a photo of {token}") == 7  # bos a photo of <t> <t>_1 eos
