"""Measures the content policy on tests/policy_table.py: every row must come out as listed, and the
recall and false-positive rate per language are printed (``pytest -s``) and written by the bench."""

from __future__ import annotations

import pytest

from storyface.safety import ContentPolicy
from storyface.safety.policy import default_word_list, refusal_message
from policy_table import ALLOW, KNOWN_FALSE_POSITIVES, KNOWN_MISSES, REFUSE, Row

LANGUAGES = ["en", "de", "es", "fr", "it", "pt", "nl", "sv", "no", "da", "pl", "ru", "tr", "id", "ar", "zh", "ja"]


def refused(policy: ContentPolicy, row: Row) -> bool:
    return policy.finding(row.prompt, row.negative, row.has_identity) is not None


def rates(policy: ContentPolicy) -> dict[str, tuple[int, int, int, int]]:
    """Per language (the part before "-"): (refused, should refuse, refused, should allow), known
    misses and known false positives included, so the rates say how the list does, not how the table was picked."""
    table: dict[str, list[int]] = {}
    for rows, offset in ((REFUSE + KNOWN_MISSES, 0), (ALLOW + KNOWN_FALSE_POSITIVES, 2)):
        for row in rows:
            counts = table.setdefault(row.lang.split("-")[0], [0, 0, 0, 0])
            counts[offset] += refused(policy, row)
            counts[offset + 1] += 1
    return {lang: tuple(c) for lang, c in sorted(table.items())}


def format_rates(table: dict[str, tuple[int, int, int, int]]) -> str:
    lines = [f"{'lang':8} {'recall':>14} {'false positives':>18}"]
    total = [0, 0, 0, 0]
    for lang, counts in table.items():
        total = [a + b for a, b in zip(total, counts)]
        lines.append(_line(lang, counts))
    lines.append(_line("overall", tuple(total)))
    return "\n".join(lines)


def _line(lang: str, counts: tuple[int, ...]) -> str:
    hit, should, fp, clean = counts
    recall = f"{hit}/{should} {hit / should:6.1%}" if should else "-"
    fpr = f"{fp}/{clean} {fp / clean:6.1%}" if clean else "-"
    return f"{lang:8} {recall:>14} {fpr:>18}"


@pytest.fixture(scope="module")
def policy() -> ContentPolicy:
    return ContentPolicy("strict")


def test_the_table_is_large_and_multilingual():
    assert len(REFUSE) >= 150 and len(ALLOW) >= 150
    langs = {row.lang.split("-")[0] for row in [*REFUSE, *ALLOW]}
    assert set(LANGUAGES) <= langs
    for lang in LANGUAGES:  # every language is measured on both sides
        assert any(r.lang.split("-")[0] == lang for r in REFUSE), lang
        assert any(r.lang.split("-")[0] == lang for r in ALLOW), lang


def test_every_should_refuse_row_is_refused(policy):
    missed = [row for row in REFUSE if not refused(policy, row)]
    assert missed == []


def test_every_should_allow_row_passes(policy):
    wrongly = [
        (row, policy.finding(row.prompt, row.negative, row.has_identity)) for row in ALLOW if refused(policy, row)
    ]
    assert wrongly == []


def test_known_misses_are_still_missed_and_known_false_positives_still_refused(policy):
    # if one of these starts passing, move it to REFUSE/ALLOW: the lists must stay honest
    assert [row for row in KNOWN_MISSES if refused(policy, row)] == []
    assert [row for row in KNOWN_FALSE_POSITIVES if not refused(policy, row)] == []


def test_rates_are_printed(policy):
    table = rates(policy)
    print("\ncontent policy on tests/policy_table.py (strict, cast identity in every prompt)")
    print(format_rates(table))
    hit, should, fp, clean = (sum(c[i] for c in table.values()) for i in range(4))
    assert (should, clean) == (len(REFUSE) + len(KNOWN_MISSES), len(ALLOW) + len(KNOWN_FALSE_POSITIVES))
    assert (hit, fp) == (len(REFUSE), len(KNOWN_FALSE_POSITIVES))


def test_minors_rows_are_refused_under_the_minors_rule_without_accusing():
    policy = ContentPolicy("fictional")
    for row in (r for r in REFUSE if r.lang == "minors"):
        found = policy.finding(row.prompt, row.negative, has_identity=False)
        assert found is not None and found.rule == "minors", row
        message = refusal_message(found, "fictional")
        assert "mentions" in message and "sexualis" not in message and "you " not in message.lower()


@pytest.mark.parametrize(
    "prompt",
    ["the kids stripped the wallpaper", "the kids stripped off the old wallpaper", "a teenager fixed a minor bug",
     "the nurse told her the sex of the baby", "the children played in a field of oilseed rape",
     "the kids watched the comet with the naked eye", "Grace Hopper bathed the baby"],
)  # fmt: skip
def test_innocent_sentences_about_children_are_never_refused(prompt):
    for mode in ("strict", "fictional"):
        assert ContentPolicy(mode).finding(prompt, "", has_identity=True) is None


def test_the_word_list_names_its_source_and_covers_every_language():
    words = default_word_list()
    assert set(LANGUAGES) - {"en"} <= set(words.languages())
    sourced = [t for terms in words.terms.values() for t in terms if t.source == "ldnoobw"]
    assert len(sourced) > 100
    from importlib import resources

    header = resources.files("storyface").joinpath("data/content_policy.txt").read_text(encoding="utf-8")[:2000]
    assert "CC BY 4.0" in header and "LDNOOBW" in header and "Shutterstock" in header
