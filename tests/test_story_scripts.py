"""Issue 17 item 10: stories in other scripts. Sentence ends of each script, cast names inside unbroken
Chinese and Japanese text, no doubled names, and dialogue tags of Chinese and Japanese."""

from __future__ import annotations

import pytest

from storyface.story import parse_story_offline
from storyface.story.offline import canonical_names, find_cast, split_sentences

ZH = ["格蕾丝·霍珀", "艾琳·柯林斯"]
JA = ["グレース・ホッパー", "アイリーン・コリンズ"]


def panels(story: str, cast: list[str]) -> list[tuple[str, list[str]]]:
    return [(p.sentence, p.characters) for p in parse_story_offline(story, cast).panels]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("格蕾丝走进博物馆。她看到了一只飞蛾！真的吗？", ["格蕾丝走进博物馆。", "她看到了一只飞蛾！", "真的吗？"]),
        ("グレースは博物館に行った。蛾を見た！", ["グレースは博物館に行った。", "蛾を見た！"]),
        ("「見て！」とグレースは言った。アイリーンは笑った。", ["「見て！」とグレースは言った。", "アイリーンは笑った。"]),
        ("“你好！”她说。艾琳笑了。", ["“你好！”她说。", "艾琳笑了。"]),
        ("格蕾丝说：“看。”艾琳说：“好。”", ["格蕾丝说：“看。”", "艾琳说：“好。”"]),
        ("Ο Νίκος χαμογέλασε; Η Μαρία γέλασε!", ["Ο Νίκος χαμογέλασε;", "Η Μαρία γέλασε!"]),  # the Greek "?"
        ("Иван улыбнулся! Анна засмеялась? Да.", ["Иван улыбнулся!", "Анна засмеялась?", "Да."]),
        ("ابتسم عمر؟ ضحكت ليلى.", ["ابتسم عمر؟", "ضحكت ليلى."]),
        ("राम संग्रहालय गया। सीता हँसी।", ["राम संग्रहालय गया।", "सीता हँसी।"]),
    ],
)
def test_sentence_ends_of_other_scripts(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_a_chinese_story() -> None:
    story = "格蕾丝·霍珀在博物馆遇见了艾琳·柯林斯。霍珀指着一只飞蛾！艾琳笑了。外面下着雨。"
    assert panels(story, ZH) == [
        ("格蕾丝·霍珀在博物馆遇见了艾琳·柯林斯。", ZH),
        ("格蕾丝·霍珀指着一只飞蛾！", ZH[:1]),  # a last name alone, inside unbroken text
        ("艾琳·柯林斯笑了。", ZH[1:]),  # a first name alone
        ("外面下着雨。", []),  # a scene panel
    ]
    script = parse_story_offline(story, ZH)
    assert script.panels[1].caption == "霍珀指着一只飞蛾！"  # the author's words


def test_a_dotted_name_is_not_doubled_against_a_spaced_cast_name() -> None:
    # the cast typed with a space, the story with the middle dot: one name, spelled once
    assert panels("格蕾丝·霍珀走进博物馆。霍珀坐下了。", ["格蕾丝 霍珀"]) == [
        ("格蕾丝 霍珀走进博物馆。", ["格蕾丝 霍珀"]),
        ("格蕾丝 霍珀坐下了。", ["格蕾丝 霍珀"]),
    ]
    assert canonical_names("格蕾丝·霍珀和格蕾丝霍珀", ["格蕾丝 霍珀"]) == "格蕾丝 霍珀和格蕾丝 霍珀"
    assert find_cast("他见到了格蕾丝·霍珀。", ["格蕾丝 霍珀", "Grace Hopper"]) == ["格蕾丝 霍珀"]
    # a middle name the story leaves out: the two parts are one mention of one person
    assert canonical_names("Grace Hopper smiled.", ["Grace Brewster Hopper"]) == "Grace Brewster Hopper smiled."


def test_a_japanese_story_with_dialogue() -> None:
    story = "グレース・ホッパーは博物館でアイリーン・コリンズに会った。「見て！」とグレースは言った。「静かに」とアイリーンはささやいた。"
    script = parse_story_offline(story, JA)
    assert [(p.sentence, p.characters, p.caption) for p in script.panels] == [
        ("グレース・ホッパーは博物館でアイリーン・コリンズに会った。", JA, "グレース・ホッパーは博物館でアイリーン・コリンズに会った。"),
        ("グレース・ホッパーは言った。", JA[:1], None),
        ("アイリーン・コリンズはささやいた。", JA[1:], None),
    ]
    lines = [(line.speaker, line.text, line.kind) for p in script.panels for line in p.dialogue]
    assert lines == [(JA[0], "見て！", "speech"), (JA[1], "静かに", "whisper")]


def test_chinese_dialogue_tags_before_and_after_the_quote() -> None:
    script = parse_story_offline("“你好！”格蕾丝·霍珀说。格蕾丝说：“看，一只飞蛾。”艾琳低声说：“别动。”艾琳心想：“真美。”", ZH)
    lines = [(line.speaker, line.text, line.kind) for p in script.panels for line in p.dialogue]
    assert lines == [
        (ZH[0], "你好！", "speech"), (ZH[0], "看，一只飞蛾。", "speech"),
        (ZH[1], "别动。", "whisper"), (ZH[1], "真美。", "thought"),
    ]  # fmt: skip
    assert [p.sentence for p in script.panels] == ["格蕾丝·霍珀说。", "格蕾丝·霍珀说。", "艾琳·柯林斯低声说。", "艾琳·柯林斯心想。"]
    # a pronoun tag is not resolved in Chinese: no guess, the line stays in the narration
    script = parse_story_offline("格蕾丝·霍珀笑了。“你好！”她说。", ZH)
    assert all(not p.dialogue for p in script.panels)
    assert any("could not tell who says" in w for w in script.warnings)


def test_greek_cyrillic_and_arabic_stories() -> None:
    greek = ["Νίκος Παπαδόπουλος", "Μαρία Γεωργίου"]
    assert panels("Ο Νίκος Παπαδόπουλος συνάντησε τη Μαρία Γεωργίου. Ο Νίκος χαμογέλασε; Η Μαρία γέλασε!", greek) == [
        ("Ο Νίκος Παπαδόπουλος συνάντησε τη Μαρία Γεωργίου.", greek),
        ("Ο Νίκος Παπαδόπουλος χαμογέλασε;", greek[:1]),  # the Greek question mark is kept
        ("Η Μαρία Γεωργίου γέλασε!", greek[1:]),
    ]
    russian = ["Иван Петров", "Анна Смирнова"]
    assert panels("Иван Петров пришёл в музей. Петров улыбнулся! Анна засмеялась?", russian) == [
        ("Иван Петров пришёл в музей.", russian[:1]),
        ("Иван Петров улыбнулся!", russian[:1]),
        ("Анна Смирнова засмеялась?", russian[1:]),
    ]
    arabic = ["عمر خالد", "ليلى حسن"]
    # "بليلى" is "with Layla": the last name alone matched, yet the name is written once, not twice
    assert panels("التقى عمر خالد بليلى حسن في المتحف. ابتسم عمر؟ ضحكت ليلى.", arabic) == [
        ("التقى عمر خالد بليلى حسن في المتحف.", arabic),
        ("ابتسم عمر خالد؟", arabic[:1]),
        ("ضحكت ليلى حسن.", arabic[1:]),
    ]


def test_latin_names_in_cjk_text_and_cjk_names_in_latin_text() -> None:
    cast = ["Grace Hopper", "格蕾丝·霍珀"]
    assert panels("Grace Hopper在博物馆。格蕾丝·霍珀 met Grace.", cast) == [
        ("Grace Hopper在博物馆。", ["Grace Hopper"]),
        ("格蕾丝·霍珀 met Grace Hopper.", ["格蕾丝·霍珀", "Grace Hopper"]),
    ]
    # a Latin name still needs word bounds against Latin letters
    with pytest.raises(Exception, match="names no one"):
        parse_story_offline("Gracefully, Hoppers hopped.", ["Grace Hopper"])
