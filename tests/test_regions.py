"""The region plan: scene order -> where each person stands, per-panel overrides, JSON round trip."""

from __future__ import annotations

import json

import pytest

from storyface.errors import InputError
from storyface.render.regions import (
    MAX_PEOPLE,
    Region,
    override_to_json,
    parse_region,
    plan_from_dict,
    plan_regions,
    plan_to_dict,
    side_of,
)


def test_two_people_take_the_left_and_right_halves_in_scene_order():
    plan = plan_regions(["Grace", "Eileen"])
    assert list(plan) == ["Grace", "Eileen"]
    assert plan["Grace"] == Region(0.0, 0.0, 0.5, 1.0)
    assert plan["Eileen"] == Region(0.5, 0.0, 1.0, 1.0)
    assert side_of(plan) == {"Grace": 0.25, "Eileen": 0.75}


@pytest.mark.parametrize("n", [3, 4])
def test_three_or_four_people_take_equal_columns(n):
    names = [f"P{i}" for i in range(n)]
    plan = plan_regions(names)
    for i, name in enumerate(names):
        assert plan[name].to_list() == pytest.approx([i / n, 0.0, (i + 1) / n, 1.0])
    assert side_of(plan)[names[0]] == pytest.approx(0.5 / n)


def test_one_person_takes_the_whole_panel_and_nobody_gives_an_empty_plan():
    assert plan_regions(["Solo"]) == {"Solo": Region(0, 0, 1, 1)}
    assert plan_regions([]) == {}
    assert list(plan_regions(["A", "B", "A"])) == ["A", "B"]  # a repeated name is one person


def test_too_many_people_is_refused_with_the_names():
    names = [f"P{i}" for i in range(MAX_PEOPLE + 1)]
    with pytest.raises(InputError, match="at most 4 people.*P4"):
        plan_regions(names)


def test_override_places_one_person_and_the_other_takes_the_free_side():
    plan = plan_regions(["Grace", "Eileen"], {"Grace": "right"})
    assert plan["Grace"] == Region(0.5, 0, 1, 1)
    assert plan["Eileen"] == Region(0, 0, 0.5, 1)  # not the right half too
    three = plan_regions(["A", "B", "C"], {"C": "left-third"})
    assert three["C"].x0 == 0 and three["A"].to_list() == pytest.approx([1 / 3, 0, 2 / 3, 1])
    assert three["B"].to_list() == pytest.approx([2 / 3, 0, 1, 1])


@pytest.mark.parametrize(
    "value, expected",
    [
        ("left", [0, 0, 0.5, 1]),
        ("Centre", [0.25, 0, 0.75, 1]),
        ("middle third", [1 / 3, 0, 2 / 3, 1]),
        ("0.1, 0.2, 0.6, 0.9", [0.1, 0.2, 0.6, 0.9]),
        ([0, 0.5, 1, 1], [0, 0.5, 1, 1]),
        ({"x0": 0.2, "y0": 0, "x1": 0.7, "y1": 1}, [0.2, 0, 0.7, 1]),
    ],
)
def test_parse_region_accepts_names_strings_lists_and_dicts(value, expected):
    assert parse_region(value).to_list() == pytest.approx(expected)


@pytest.mark.parametrize(
    "value, message",
    [
        ("upstairs", "unknown place 'upstairs'"),
        ([0.6, 0, 0.4, 1], "x0 < x1"),
        ([0, 0, 1.5, 1], "x0 < x1 <= 1"),
        ([0, 0, 0.05, 1], "at least 0.1"),
        ([0, 0, 1], "four fractions"),
        ({"x0": 0, "y0": 0, "x1": 1}, "keys x0, y0, x1, y1"),
        ([0, 0, float("nan"), 1], "four numbers"),
        ([0, 0, True, 1], "four numbers"),
    ],
)
def test_bad_places_are_refused_with_a_clear_message(value, message):
    with pytest.raises(InputError, match=message):
        plan_regions(["A", "B"], {"A": value})


def test_override_for_someone_not_in_the_panel_names_the_cast():
    with pytest.raises(InputError, match=r"'Zed', who is not in this panel \(it shows: A, B\)"):
        plan_regions(["A", "B"], {"Zed": "left"})


def test_two_people_on_the_same_spot_are_refused():
    with pytest.raises(InputError, match="A .*left.* and B .*left.*blend"):
        plan_regions(["A", "B"], {"A": "left", "B": "left"})
    # sharing up to half of the smaller region is allowed: centre + right share a quarter of the panel
    plan = plan_regions(["A", "B"], {"A": "center", "B": "right"})
    assert plan["A"].shared(plan["B"]) == pytest.approx(0.25)


def test_plan_round_trips_through_json_exactly():
    plan = plan_regions(["A", "B", "C"], {"B": [0.3, 0.1, 0.7, 0.9]})
    text = json.dumps(plan_to_dict(plan))
    assert plan_from_dict(json.loads(text)) == plan
    assert list(plan_from_dict(json.loads(text))) == ["A", "B", "C"]


def test_overrides_keep_names_readable_in_json_and_round_trip():
    overrides = {"A": "Right", "B": "0,0,0.5,1"}
    stored = json.loads(json.dumps({k: override_to_json(v) for k, v in overrides.items()}))
    assert stored == {"A": "right", "B": [0.0, 0.0, 0.5, 1.0]}
    assert plan_regions(["A", "B"], stored) == plan_regions(["A", "B"], overrides)


def test_plan_from_dict_validates():
    with pytest.raises(InputError, match="place for 'A'"):
        plan_from_dict({"A": [0, 0, 2, 1]})
    with pytest.raises(InputError, match="must map names"):
        plan_from_dict([1, 2])
    with pytest.raises(InputError, match="blend"):
        plan_from_dict({"A": "left", "B": [0, 0, 0.5, 1]})


def test_contains_is_half_open_so_a_shared_edge_belongs_to_one_side():
    left, right = plan_regions(["A", "B"]).values()
    assert not left.contains(0.5, 0.5) and right.contains(0.5, 0.5)
    assert right.contains(1.0, 1.0) and left.contains(0.0, 0.0)
