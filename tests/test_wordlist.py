"""The word list's format and its fast lookup (storyface/safety/wordlist.py)."""

from __future__ import annotations

import pytest
from policy_table import ALLOW, KNOWN_FALSE_POSITIVES, KNOWN_MISSES, REFUSE

from storyface.errors import InputError
from storyface.safety.policy import NEGATIVE, POSITIVE, default_word_list
from storyface.safety.wordlist import WordList, fold, key, views

OBFUSCATED = [
    "gr@ce n-4-k-3-d $exy!", "@sex", "s3x!!", "n a k e d and n u d e", "na ked n ak ed", "nuuuude nudessss",
    "Ｎｕｄｅ ɴᴜᴅᴇ 𝐧𝐮𝐝𝐞", "ْعاريةٌ والعارية للعارية", "她是nude模特 裸 体", "!!!!!!!!$$$$$$$$@@@@@@@ naked", "x" * 3000,
]  # fmt: skip


def test_lookup_finds_exactly_what_searching_every_term_finds(monkeypatch):
    """The key index only narrows which regexes run; it must never lose a match they would find."""
    words = default_word_list()
    texts = [r.prompt for r in [*REFUSE, *ALLOW, *KNOWN_MISSES, *KNOWN_FALSE_POSITIVES]] + OBFUSCATED
    texts += [r.negative for r in [*REFUSE, *ALLOW] if r.negative]
    categories = [*POSITIVE, *NEGATIVE]
    fast = [[(h.term.text, h.seen) for h in words.hits(t, categories)] for t in texts]
    monkeypatch.setattr(WordList, "_candidates", lambda self, view, whole: None)  # search every term
    slow = [[(h.term.text, h.seen) for h in words.hits(t, categories)] for t in texts]
    assert fast == slow
    assert sum(map(bool, fast)) > 200  # the comparison is not between empty results


def test_sections_take_a_language_and_terms_a_source():
    words = WordList.parse("[nudity de]\nnackt~ ^\n[nudity]\nnaked\n")
    de, en = words.terms["nudity"]
    assert (de.lang, de.source, de.text) == ("de", "ldnoobw", "nackt~") and (en.lang, en.source) == ("", "")
    assert words.languages() == ["de"]


def test_a_stem_matches_any_ending_and_only_at_a_word_start():
    words = WordList.parse("[nudity]\nnackt~\n")
    for text in ("nackt", "die Nackte", "Nacktheit", "NACKTEN"):
        assert words.scan(text, ["nudity"]), text
    assert not words.scan("splitternackt", ["nudity"])


def test_words_of_scripts_without_spaces_match_inside_a_word():
    words = WordList.parse("[nudity zh]\n裸体\n[nudity]\nnude\n")
    assert words.scan("她的裸体照片", ["nudity"]) and words.scan("她是nude模特", ["nudity"])
    assert not words.scan("她赤脚走路", ["nudity"])


def test_arabic_words_carry_their_prefixes():
    words = WordList.parse("[nudity ar]\nعارية\n")
    for text in ("عارية", "والعارية", "بالعارية", "عـــارية"):  # and, with the, tatweel
        assert words.scan(text, ["nudity"]), text
    assert not words.scan("عاريات", ["nudity"])  # another word: list it or use a stem


def test_cyrillic_terms_match_cyrillic_and_only_latin_words_are_made_latin():
    assert fold("Грейс голая") == "греис голая"  # a Russian word keeps its letters (й loses its breve like an accent)
    assert fold("nаked") == "naked"  # a Cyrillic а inside a Latin word is read as Latin
    words = WordList.parse("[nudity ru]\nголая\n[nudity]\nnaked\n")
    assert words.scan("она голая", ["nudity"]) and words.scan("nаked", ["nudity"])


def test_an_allowed_phrase_excuses_only_the_words_inside_it():
    words = WordList.parse("[nudity]\nnaked\n[allow]\nnaked eye\n")
    assert not words.scan("seen with the naked eye", ["nudity"])
    assert words.scan("naked eye, naked", ["nudity"]) and words.scan("the eye naked", ["nudity"])


def test_an_allowed_phrase_cannot_have_a_gap():
    with pytest.raises(InputError, match="gap could hide"):
        WordList.parse("[allow]\nstripped * engine\n")


def test_keys_fold_leetspeak_and_repeats():
    assert key("n44k33d") == key("naked") == "naked"
    assert key("n1pp1e") == key("nipple")
    assert views("s k i n n y dipping")[-1][0] == "skinny dipping"
