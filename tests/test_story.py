"""The offline story parser, the backend registry, styles and the panel schema."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from storyface.errors import InputError, StoryError
from storyface.limits import MAX_PANELS
from storyface.story import (
    DEFAULT_NEGATIVE_PROMPT,
    PARSERS,
    STYLE_PRESETS,
    Panel,
    parse_story,
    parse_story_offline,
    style_suffix,
)
from storyface.story.offline import split_sentences

CAST = ["Hugh Jackman", "Taylor Swift"]
SEED = (
    "Hugh Jackman was selecting an apple at the grocery store when Taylor Swift, who dislikes apples, "
    "reached for a banana nearby. They struck up a conversation about fruit. After shopping, they walked "
    "to school together."
)
PERSON_PRONOUN = re.compile(r"\b(he|she|him|her|his|hers|they|them|their|theirs)\b", re.IGNORECASE)


def sentences(story: str, cast: list[str] = CAST, **kw) -> list[str]:
    return [p.sentence for p in parse_story_offline(story, cast, **kw).panels]


# --------------------------------------------------------------------------- the seed example


def test_seed_example_names_both_people_in_every_panel() -> None:
    script = parse_story_offline(SEED, CAST)
    assert script.backend == "offline"
    assert script.warnings == []
    assert [p.sentence for p in script.panels] == [
        "Hugh Jackman was selecting an apple at the grocery store when Taylor Swift, who dislikes apples, "
        "reached for a banana nearby.",
        "Hugh Jackman and Taylor Swift struck up a conversation about fruit.",
        "After shopping, Hugh Jackman and Taylor Swift walked to school together.",
    ]
    assert all(p.characters == CAST for p in script.panels)


VARIANTS = [
    # (story, expected panel sentences after the first)
    (
        SEED.replace("They struck up a conversation", "He struck up a conversation with her").replace(
            "they walked to school together", "she walked to school with him"
        ),
        [
            "Hugh Jackman struck up a conversation with Taylor Swift about fruit.",
            "After shopping, Taylor Swift walked to school with Hugh Jackman.",
        ],
    ),
    (
        "Hugh Jackman was selecting an apple at the grocery store when Taylor Swift, who dislikes apples, "
        "reached for a banana nearby. She frowned at his apple. He offered her half of it. After shopping, "
        "the two walked to school together.",
        [
            "Taylor Swift frowned at Hugh Jackman's apple.",
            "Hugh Jackman offered Taylor Swift half of it.",
            "After shopping, Hugh Jackman and Taylor Swift walked to school together.",
        ],
    ),
    (
        "Taylor Swift reached for a banana while Hugh Jackman selected an apple. His basket bumped into her "
        "cart. Both of them laughed. They talked about fruit, and then they walked to school.",
        [
            "Hugh Jackman's basket bumped into Taylor Swift's cart.",
            # a pair is named in the order the story introduced them
            "Taylor Swift and Hugh Jackman laughed.",
            "Taylor Swift and Hugh Jackman talked about fruit.",
            "Then Taylor Swift and Hugh Jackman walked to school.",
        ],
    ),
]


@pytest.mark.parametrize("story,expected", VARIANTS)
def test_variants_resolve_every_pronoun_in_story_order(story: str, expected: list[str]) -> None:
    script = parse_story_offline(story, CAST)
    got = [p.sentence for p in script.panels]
    assert got[1:] == expected
    for panel in script.panels:
        assert not PERSON_PRONOUN.search(panel.sentence), panel.sentence
        assert set(panel.characters) == {c for c in CAST if c in panel.sentence}
        # characters are listed in the order the sentence names them
        assert panel.characters == sorted(panel.characters, key=panel.sentence.index)


def test_first_and_last_names_alone_become_full_names() -> None:
    got = sentences("hugh picked an apple. Taylor waved at Jackman. Swift's cart was full.")
    assert got == [
        "Hugh Jackman picked an apple.",
        "Taylor Swift waved at Hugh Jackman.",
        "Taylor Swift's cart was full.",
    ]


def test_full_names_in_any_case_take_the_cast_spelling() -> None:
    script = parse_story_offline("HUGH JACKMAN met taylor swift at the market.", CAST)
    assert script.panels[0].sentence == "Hugh Jackman met Taylor Swift at the market."
    assert script.panels[0].characters == CAST


def test_gender_decides_between_a_man_and_a_woman() -> None:
    # "she" is the less recent person here; gender, not recency, decides
    assert sentences("Taylor Swift greeted Hugh Jackman. She smiled.")[1] == "Taylor Swift smiled."
    assert sentences("Hugh Jackman greeted Taylor Swift. He smiled.")[1] == "Hugh Jackman smiled."


def test_a_subject_pronoun_keeps_the_previous_subject() -> None:
    # issue 12: "She" opening a sentence is the last sentence's subject, "her" the other woman
    # (this parser used to answer "Eileen Collins showed Grace Hopper a moth.")
    cast = ["Grace Hopper", "Eileen Collins"]
    got = sentences("Grace Hopper met Eileen Collins at the museum. She showed her a moth.", cast)
    assert got[1] == "Grace Hopper showed Eileen Collins a moth."
    # the same for two men (this test used to expect recency: "Chris Evans smiled.")
    cast = ["Hugh Jackman", "Chris Evans"]
    assert sentences("Hugh Jackman met Chris Evans. He smiled.", cast)[1] == "Hugh Jackman smiled."
    # a subject pronoun after another person in its own clause still means the last one mentioned
    assert sentences("Hugh Jackman met Chris Evans. Chris smiled when he saw the cake.", cast)[1] == (
        "Chris Evans smiled when Chris Evans saw the cake."
    )


def test_a_subject_pronoun_never_means_someone_named_after_it_in_its_clause() -> None:
    cast = ["Grace Hopper", "Eileen Collins"]
    story = "Grace Hopper fixed the computer when Eileen Collins walked in. She asked Grace to check the code."
    assert sentences(story, cast)[1] == "Eileen Collins asked Grace Hopper to check the code."


def test_recency_decides_without_a_plain_subject_and_objects_skip_the_subject() -> None:
    cast = ["Hugh Jackman", "Chris Evans"]
    # the last sentence opened with a possessive, so it has no subject to keep: the last man named
    assert sentences("Hugh Jackman's dog chased Chris Evans. He laughed.", cast)[1] == "Chris Evans laughed."
    assert sentences("Hugh Jackman met Chris Evans and thanked him.", cast) == [
        "Hugh Jackman met Chris Evans and thanked Chris Evans."
    ]


def test_gender_from_titles_and_from_the_caller() -> None:
    cast = ["Alex Doe", "Sam Roe"]  # first names the shipped list does not decide
    assert sentences("Alex Doe met Sam Roe. She waved.", cast)[1] == "Alex Doe waved."  # the subject
    told = sentences("Alex Doe met Sam Roe. She waved.", cast, genders={"Alex Doe": "m", "Sam Roe": "f"})
    assert told[1] == "Sam Roe waved."  # a known gender beats the subject
    titled = sentences("Mrs. Doe met Mr. Roe. She waved.", cast)
    assert titled == ["Alex Doe met Sam Roe.", "Alex Doe waved."]
    with pytest.raises(StoryError, match="not in the cast"):
        parse_story_offline("Alex Doe waved.", cast, genders={"Nobody": "m"})


def test_her_as_object_and_as_possessive() -> None:
    got = sentences("Hugh Jackman saw Taylor Swift. He gave her the apple. He admired her guitar. He thanked her warmly.")
    assert got[1:] == [
        "Hugh Jackman gave Taylor Swift the apple.",
        "Hugh Jackman admired Taylor Swift's guitar.",
        "Hugh Jackman thanked Taylor Swift warmly.",
    ]


def test_they_meaning_things_is_left_alone() -> None:
    script = parse_story_offline("Hugh Jackman bought apples. They were ripe. Taylor Swift and Hugh Jackman ate them.", CAST)
    assert [p.sentence for p in script.panels] == [
        "Hugh Jackman bought apples.",
        "They were ripe.",  # issue 19: a scene panel now, no longer dropped with a warning
        "Taylor Swift and Hugh Jackman ate them.",  # "them" cannot be its own subject
    ]
    assert [p.characters for p in script.panels] == [["Hugh Jackman"], [], ["Taylor Swift", "Hugh Jackman"]]
    assert not any("names no one" in w for w in script.warnings)


def test_compound_sentences_become_one_action_each() -> None:
    got = sentences("Hugh Jackman paid, and then she left; he waved and she smiled. Taylor Swift and he walked on.")
    assert got == [
        "Hugh Jackman paid.",
        "Then Taylor Swift left.",
        "Hugh Jackman waved.",
        "Taylor Swift smiled.",
        "Taylor Swift and Hugh Jackman walked on.",
    ]
    # no subject after "and then": the sentence stays whole
    assert sentences("Hugh Jackman paid and then left.") == ["Hugh Jackman paid and then left."]


def test_sentence_splitting_handles_titles_quotes_and_ellipses() -> None:
    text = (
        'Dr. Grace Hopper met Mr. J. K. Doe at 9 a.m. on Main St. today. "Hello! How are you?" she asked. '
        "Wait... they left! Did they? Yes."
    )
    assert split_sentences(text) == [
        "Dr. Grace Hopper met Mr. J. K. Doe at 9 a.m. on Main St. today.",
        '"Hello! How are you?" she asked.',
        "Wait... they left!",
        "Did they?",
        "Yes.",
    ]
    assert split_sentences("One line\n\nAnother paragraph without a stop") == ["One line", "Another paragraph without a stop"]


def test_titles_and_three_people() -> None:
    cast = ["Grace Hopper", "Ada Lovelace", "Alan Turing"]
    script = parse_story_offline(
        "Dr. Hopper met Ada Lovelace. Turing arrived late. They shared a cake. Ada thanked him.", cast
    )
    assert [p.sentence for p in script.panels] == [
        "Grace Hopper met Ada Lovelace.",
        "Alan Turing arrived late.",
        "Grace Hopper, Ada Lovelace and Alan Turing shared a cake.",
        "Ada Lovelace thanked Alan Turing.",
    ]


def test_everyday_words_in_names_count_only_when_capitalised() -> None:
    cast = ["Will Smith", "Grace Hopper"]
    got = sentences("Will met Grace. Smith said it will rain by the grace of god.", cast)
    assert got == ["Will Smith met Grace Hopper.", "Will Smith said it will rain by the grace of god."]


def test_unused_cast_member_is_a_warning_not_an_error() -> None:
    script = parse_story_offline("Hugh Jackman ate an apple.", [*CAST, "Grace Hopper"])
    assert len(script.panels) == 1
    assert any("'Taylor Swift'" in w and "'Grace Hopper'" in w for w in script.warnings)
    assert script.cast == [*CAST, "Grace Hopper"]


def test_story_naming_no_one_in_the_cast_is_an_error() -> None:
    with pytest.raises(StoryError, match="names no one in the cast.*Hugh Jackman"):
        parse_story_offline("A cat slept in the sun. It was happy.", CAST)


@pytest.mark.parametrize("story", ["", "   \n ", "..."])
def test_empty_story_is_an_error(story: str) -> None:
    with pytest.raises(StoryError, match="empty"):
        parse_story_offline(story, CAST)


def test_very_long_story_is_an_error() -> None:
    with pytest.raises(StoryError, match="20,000"):
        parse_story_offline("Hugh Jackman ate an apple. " * 1000, CAST)


def test_empty_cast_is_an_error() -> None:
    with pytest.raises(StoryError, match="cast is empty"):
        parse_story_offline("Hugh Jackman ate an apple.", ["  "])


def test_more_than_max_panels_keeps_the_first_and_warns() -> None:
    story = " ".join(f"Hugh Jackman ate apple number {i}." for i in range(30))
    script = parse_story_offline(story, CAST)
    assert len(script.panels) == MAX_PANELS
    assert script.panels[-1].sentence == f"Hugh Jackman ate apple number {MAX_PANELS - 1}."
    assert any("30 panels" in w for w in script.warnings)


def test_offline_parser_is_deterministic() -> None:
    assert parse_story_offline(VARIANTS[2][0], CAST) == parse_story_offline(VARIANTS[2][0], CAST)


# --------------------------------------------------------------------------- registry


def test_registry_lists_backends_and_rejects_unknown_ones() -> None:
    assert set(PARSERS) == {"offline", "llm"}
    with pytest.raises(InputError, match="auto, offline, llm"):
        parse_story(SEED, CAST, backend="gpt")


def test_auto_without_llm_settings_is_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("STORYFACE_LLM_BASE_URL", "STORYFACE_LLM_MODEL", "STORYFACE_LLM_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    script = parse_story(SEED, CAST)
    assert script.backend == "offline" and len(script.panels) == 3
    with pytest.raises(InputError, match="STORYFACE_LLM_BASE_URL"):
        parse_story(SEED, CAST, backend="llm")


# --------------------------------------------------------------------------- styles and schema


def test_style_presets_cover_the_seed_list() -> None:
    seed_styles = [
        "2D minimalistic", "8K", "cartoon", "chiaroscuro lighting technique", "cinematic", "painting",
        "watercolor painting", "comic style", "digital art", "anime", "photorealistic", "pencil sketch",
        "oil painting", "pixel art", "3D render",
    ]  # fmt: skip
    assert set(seed_styles) <= set(STYLE_PRESETS)
    assert all(STYLE_PRESETS[s].strip() for s in seed_styles)


def test_style_suffix_order_case_and_free_text() -> None:
    suffix = style_suffix(["ANIME", "cinematic"], "  rainy evening  ")
    assert suffix == f"{STYLE_PRESETS['anime']}, {STYLE_PRESETS['cinematic']}, rainy evening"
    assert style_suffix([], "") == ""
    with pytest.raises(InputError, match="unknown style 'vaporwave'.*'pixel art'"):
        style_suffix(["vaporwave"])


def test_default_negative_prompt_lists_common_defects() -> None:
    for word in ("blurry", "lowres", "deformed", "extra fingers", "text", "watermark"):
        assert word in DEFAULT_NEGATIVE_PROMPT


def test_panel_needs_a_sentence() -> None:
    with pytest.raises(ValidationError):
        Panel(sentence="   ", characters=[])
    assert Panel(sentence=" a  b ", characters=["X"]).sentence == "a b"


def test_accented_first_names_use_the_name_list() -> None:
    cast = ["Zoë Saldaña", "Conan O'Brien"]  # Zoë -> zoe (f); Conan is not listed (unknown)
    assert sentences("Zoë met O'Brien. She hugged him.", cast) == [
        "Zoë Saldaña met Conan O'Brien.",
        "Zoë Saldaña hugged Conan O'Brien.",
    ]
