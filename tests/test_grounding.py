"""Issue 17 item 6: the LLM-grounding check cannot be laundered through `characters` or by padding."""

from __future__ import annotations

import json

import httpx

from storyface.safety.grounding import MAX_NOVEL_WORDS, added_text, grounding_problems
from storyface.story import LLMSettings, parse_story_llm

STORY = (
    "Hugh Jackman was selecting an apple at the grocery store when Taylor Swift, who dislikes apples, "
    "reached for a banana nearby. They struck up a conversation about fruit."
)
CAST = ["Hugh Jackman", "Taylor Swift"]
INVENTED = "Hugh Jackman sells cryptocurrency tokens inside a casino."


def llm_answer(panels: list[dict]) -> httpx.Client:
    reply = {"choices": [{"message": {"content": json.dumps({"panels": panels})}}]}
    return httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=reply)))


def test_words_the_llm_lists_as_characters_do_not_count_as_names():
    # the laundering attempt: the invented words are declared "characters" of the panel
    client = llm_answer([
        {"sentence": "Hugh Jackman selects an apple.", "characters": ["Hugh Jackman"]},
        {"sentence": INVENTED, "characters": ["Hugh Jackman", "Cryptocurrency Tokens", "Casino", "Sells"]},
    ])  # fmt: skip
    script = parse_story_llm(STORY, CAST, LLMSettings(base_url="http://127.0.0.1:9/v1", model="m"), client=client)
    assert [p.sentence for p in script.panels] == ["Hugh Jackman selects an apple."]
    assert any("left out the LLM's panel" in w and "cryptocurrency" in w for w in script.warnings)


def test_new_words_padded_with_story_words_are_still_new():
    padded = (
        "Hugh Jackman was selecting an apple at the grocery store when Taylor Swift, who dislikes apples, "
        "reached for a banana nearby and sold cryptocurrency tokens inside casinos."
    )  # 3 new content words among ~15 story words: under the old 50% share rule this passed
    reason = added_text(padded, STORY, CAST)
    assert reason is not None and "cryptocurrency" in reason


def test_new_words_are_counted_not_compared_with_the_sentence_length():
    base = "Hugh Jackman was selecting an apple at the grocery store"
    extra = ["jumps", "gallops", "whistles"]
    for n in range(len(extra) + 1):
        sentence = " ".join([base, *extra[:n]])
        assert (added_text(sentence, STORY, CAST) is None) is (n <= MAX_NOVEL_WORDS), n


def test_every_field_an_llm_returns_is_grounded():
    fields = {
        "panel 1 sentence": "Hugh Jackman selects an apple at the grocery store.",
        "panel 1 caption": "At the grocery store.",
        "panel 2 dialogue 1": "Visit https://example.com for free tokens!",
        "panel 2 caption": "Meanwhile, Taylor Swift is naked.",
        "panel 3 caption": "",
    }
    problems = grounding_problems(fields, STORY, CAST)
    assert set(problems) == {"panel 2 dialogue 1", "panel 2 caption"}
    assert "link" in problems["panel 2 dialogue 1"] and "naked" in problems["panel 2 caption"]


def test_only_the_cast_counts_as_names():
    assert added_text("Hugh Jackman and Taylor Swift chat about fruit.", STORY, CAST) is None
    # a name outside the cast is new words like any other: "bob", "greets" (2) pass, "builder" is a third
    assert added_text("Bob greets Hugh Jackman with a banana.", STORY, CAST) is None
    assert added_text("Bob Builder greets Hugh Jackman with a banana.", STORY, CAST) is not None
    assert added_text("Bob Builder greets Hugh Jackman with a banana.", STORY, [*CAST, "Bob Builder"]) is None
