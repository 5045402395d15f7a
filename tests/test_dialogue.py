"""Issue 12: dialogue in the offline parser. A table of written forms, each with the lines it must give
(speaker, text, kind) or none at all, then the scene and caption rules around them."""

from __future__ import annotations

import re

import pytest

from storyface.story import parse_story_offline
from storyface.story.offline.quotes import find_quotes

CAST = ["Grace Hopper", "Eileen Collins"]
G, E = CAST
H = "Hugh Jackman"
INTRO = "Grace Hopper met Eileen Collins at the museum. "  # two women: pronouns need the context rules

# (story after INTRO, expected [(speaker, text, kind)] over all panels)
FORMS = [
    # tag after the quotation
    ('"Check the navigation code," Eileen said.', [(E, "Check the navigation code.", "speech")]),
    ('"Check the navigation code," said Eileen.', [(E, "Check the navigation code.", "speech")]),
    ('"Is that a moth?" she asked.', [(G, "Is that a moth?", "speech")]),  # she: the last subject
    ('"Look!" Grace shouted.', [(G, "Look!", "speech")]),
    ('"Look," Dr. Hopper said.', [(G, "Look.", "speech")]),
    ('"We land at noon," Collins said to Grace.', [(E, "We land at noon.", "speech")]),
    ('"We land at noon," Eileen told her.', [(E, "We land at noon.", "speech")]),
    ('"Is it a bug?" Eileen quietly asked.', [(E, "Is it a bug?", "whisper")]),
    # tag before the quotation
    ('Grace said, "Look at this."', [(G, "Look at this.", "speech")]),
    ('Eileen asked Grace: "Where did it come from?"', [(E, "Where did it come from?", "speech")]),
    ('Grace turned to Eileen and said, "Look at this."', [(G, "Look at this.", "speech")]),
    ('Grace said "Hello."', [(G, "Hello.", "speech")]),  # no comma, but the quotation ends the sentence
    # a quotation split around its tag
    ('"Look," she said, "a moth."', [(G, "Look, a moth.", "speech")]),
    ('"It flew in," Eileen whispered, "through the window."', [(E, "It flew in, through the window.", "whisper")]),
    # curly, single and other quotation marks
    ("“Look,” Grace said.", [(G, "Look.", "speech")]),
    ("‘Look,’ Grace said.", [(G, "Look.", "speech")]),
    ("'Don't touch it,' Eileen said.", [(E, "Don't touch it.", "speech")]),
    ("„Look“, Grace said.", [(G, "Look", "speech")]),  # German marks, the comma outside
    ("«Regarde», Grace said.", [(G, "Regarde", "speech")]),
    # kinds from the verb
    ('"It will fly away," Grace thought.', [(G, "It will fly away.", "thought")]),
    ('"Where is it?" Eileen wondered.', [(E, "Where is it?", "thought")]),
    ('"Over here," Grace murmured.', [(G, "Over here.", "whisper")]),
    ('"Over here," Grace said softly.', [(G, "Over here.", "whisper")]),
    ('"Over here," Grace said under her breath.', [(G, "Over here.", "whisper")]),
    # untagged lines from the context
    ('Grace smiled. "I found it."', [(G, "I found it.", "speech")]),  # an action beat before
    ('\n\n"I found it." Eileen held up the jar.', [(E, "I found it.", "speech")]),  # an action beat after
    ('"Look," Grace said. "A moth."', [(G, "Look.", "speech"), (G, "A moth.", "speech")]),  # she goes on
    ('"Hi," Grace said.\n"Hello," she replied.\n"Nice day."\n"It is."', [
        (G, "Hi.", "speech"), (E, "Hello.", "speech"), (G, "Nice day.", "speech"), (E, "It is.", "speech"),
    ]),  # fmt: skip  # a reply is the other person; then new paragraphs alternate
    # never a guess: no line
    ('"Hello," the cashier said.', []),  # a speaker outside the cast
    ('"Hello," they said.', []),  # two people: which one?
    ('\n\n"Hello."', []),  # a new paragraph, no exchange yet, no beat
    # not dialogue at all
    ('Grace read "Moby Dick" to Eileen.', []),  # a title
    ('Eileen called Grace the so-called "genius".', []),  # scare quotes
    ('Grace called it a "bug," and everyone laughed.', []),  # scare quotes with a comma inside
    ('Grace thought "Moby Dick" was too long.', []),  # a title after a thinking verb
    ("Grace's moth didn't move; Eileen's jar was empty.", []),  # apostrophes
    ("The '90s were over, said the rock 'n' roll poster.", []),  # apostrophes again
]


def lines_of(story: str, cast: list[str] = CAST) -> list[tuple[str, str, str]]:
    script = parse_story_offline(INTRO + story, cast)
    return [(line.speaker, line.text, line.kind) for panel in script.panels for line in panel.dialogue]


def test_the_table_is_big_enough() -> None:
    assert len(FORMS) >= 25


@pytest.mark.parametrize("story,expected", FORMS, ids=[f"{i:02d}" for i in range(len(FORMS))])
def test_dialogue_forms(story: str, expected: list[tuple[str, str, str]]) -> None:
    assert lines_of(story) == expected


QUOTE_MARKS = re.compile("[\"“”‘’«»„「」]")


@pytest.mark.parametrize("story,expected", FORMS, ids=[f"{i:02d}" for i in range(len(FORMS))])
def test_scenes_never_hold_quoted_words_and_name_every_speaker(story: str, expected: list) -> None:
    script = parse_story_offline(INTRO + story, CAST)
    for panel in script.panels:
        assert not QUOTE_MARKS.search(panel.sentence), panel.sentence
        for line in panel.dialogue:
            assert line.speaker in panel.characters
            assert line.text not in panel.sentence
            if panel.caption:
                assert line.text not in panel.caption


def test_scene_caption_and_speaker_of_a_tagged_line() -> None:
    script = parse_story_offline(INTRO + '"Check the navigation code," Eileen said to Grace.', CAST)
    panel = script.panels[1]
    assert panel.sentence == "Eileen Collins spoke to Grace Hopper."
    assert panel.characters == [E, G]
    assert panel.caption is None  # nothing but the quotation and its tag: the balloon says it all
    assert script.warnings == []


def test_caption_keeps_the_authors_narration_around_the_dialogue() -> None:
    script = parse_story_offline(INTRO + 'She turned to Eileen and said, "Look at this."', CAST)
    panel = script.panels[1]
    assert panel.caption == "She turned to Eileen."  # the author's words, pronoun and all
    assert panel.sentence == "Grace Hopper turned to Eileen Collins and spoke."
    script = parse_story_offline(INTRO + '"Look," she said, pointing at the jar.', CAST)
    assert script.panels[1].caption == "Pointing at the jar."
    assert script.panels[1].sentence == "Grace Hopper spoke, pointing at the jar."


def test_unresolved_speaker_is_a_warning_and_the_line_stays_in_the_narration() -> None:
    script = parse_story_offline(INTRO + '"Hello," the cashier said.', CAST)
    panel = script.panels[1]
    assert panel.dialogue == [] and panel.characters == []  # a scene panel: the cashier
    assert panel.caption == '"Hello," the cashier said.'
    assert panel.sentence == "The cashier spoke."
    assert any("could not tell who says" in w and "Hello" in w for w in script.warnings)


def test_untagged_line_with_no_context_joins_the_narration_before_it() -> None:
    script = parse_story_offline(INTRO + '\n\n"Who is there?"', CAST)
    assert len(script.panels) == 1
    assert script.panels[0].caption == 'Grace Hopper met Eileen Collins at the museum. "Who is there?"'
    assert any("could not tell who says 'Who is there?'" in w for w in script.warnings)


def test_a_continued_line_joins_its_speakers_panel() -> None:
    script = parse_story_offline(INTRO + '"Look," Grace said. "A moth."', CAST)
    assert len(script.panels) == 2  # one panel, two balloons
    assert [line.text for line in script.panels[1].dialogue] == ["Look.", "A moth."]


def test_a_pronoun_tag_resolves_by_gender_with_a_man_and_a_woman() -> None:
    cast = [G, H]
    script = parse_story_offline('Grace Hopper met Hugh Jackman. "Hi," he said. "Hello," she answered.', cast)
    assert [(line.speaker, line.text) for p in script.panels for line in p.dialogue] == [(H, "Hi."), (G, "Hello.")]


def test_a_long_speech_is_cut_into_balloons_at_its_sentences() -> None:
    speech = " ".join(f"This is sentence number {i} of a very long speech about moths and relays." for i in range(12))
    script = parse_story_offline(f'Grace said, "{speech}"', CAST)
    lines = script.panels[0].dialogue
    assert len(lines) > 1 and all(len(line.text) <= 300 for line in lines)
    assert " ".join(line.text for line in lines) == speech


def test_quote_scanner_tells_quotes_from_apostrophes() -> None:
    text = "Grace's ‘odd’ moth, 'the bug,' and “Don’t go,” said O'Brien's friend in the '90s."
    assert [q.inner for q in find_quotes(text)] == ["odd", "the bug,", "Don’t go,"]
    assert find_quotes('He is 6" tall, and "quite" tall.')[0].inner == "quite"
    assert find_quotes('An "unclosed quotation never ends') == []


def test_the_caption_is_the_authors_sentence_and_the_scene_the_rewrite() -> None:
    # issue 19: the page shows what the author wrote; the rewrite with full names is the drawing prompt
    script = parse_story_offline("Grace Hopper walked in. She sat down at her desk. It was raining outside.", CAST)
    assert [(p.sentence, p.caption, p.characters) for p in script.panels] == [
        ("Grace Hopper walked in.", "Grace Hopper walked in.", [G]),
        ("Grace Hopper sat down at Grace Hopper's desk.", "She sat down at her desk.", [G]),
        ("It was raining outside.", "It was raining outside.", []),  # a scene panel, kept
    ]


def test_random_quote_soup_never_breaks_the_parser() -> None:
    import random

    from storyface.errors import StoryError

    pieces = ['"', "“", "”", "'", "‘", "’", "「", "」", "。", "Grace", "Eileen", "she", "her", "said", "asked",
              "whispered", ",", ".", "?", " ", " ", "and", "then", "the cashier", "\n", "\n\n", "Dr.", "to", ";",
              "told", ":", "—", "they", "both", "格蕾丝", "说", "と", "言った"]  # fmt: skip
    rng = random.Random(12)
    for _ in range(300):
        story = "".join(rng.choice(pieces) + rng.choice(["", " "]) for _ in range(rng.randint(1, 40)))
        try:
            script = parse_story_offline(story, [*CAST, "格蕾丝·霍珀"])
        except StoryError:
            continue
        for panel in script.panels:  # every line's speaker is drawn in its panel
            assert all(line.speaker in panel.characters for line in panel.dialogue)
