"""Swap detection: a face in one person's region that looks like another person of the plan."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from storyface.eval import PanelScore, references_from, score_panel, score_panels
from storyface.eval.likeness import FaceMatch
from storyface.eval.retry import Attempt, PanelAttempts, face_scorer
from storyface.eval.swaps import Swap, find_swaps, region_owner
from storyface.render.regions import Region, plan_regions

EILEEN, GRACE = "Eileen Collins", "Grace Hopper"  # two_faces_path: Eileen (astronaut) left, Grace right


@pytest.fixture(scope="module")
def references(astronaut_path: Path, grace_hopper_path: Path) -> dict[str, np.ndarray]:
    return references_from({EILEEN: astronaut_path, GRACE: grace_hopper_path}, "dlib")


@pytest.fixture(scope="module")
def composite(two_faces_path: Path) -> Image.Image:
    return Image.open(two_faces_path).convert("RGB")


# -- on real photos ------------------------------------------------------------------------------


def test_people_in_the_wrong_order_are_a_swap_on_real_photos(composite, references):
    wrong = plan_regions([GRACE, EILEEN])  # Grace left, Eileen right: the photo has them the other way
    score = score_panel(composite, references, [GRACE, EILEEN], plan=wrong)
    assert score.missing == [] and min(score.similarities.values()) > 0.95  # likeness alone looks perfect
    assert {(s.owner, s.looks_like) for s in score.swaps} == {(GRACE, EILEEN), (EILEEN, GRACE)}
    left_swap = next(s for s in score.swaps if s.owner == GRACE)
    assert left_swap.box[2] <= composite.width / 2  # the face standing in Grace's (left) half
    assert left_swap.other_similarity > 0.95 > left_swap.owner_similarity
    assert not score.passes(0.5)
    assert [s["owner"] for s in score.to_dict()["swaps"]] == [s.owner for s in score.swaps]


def test_people_in_the_right_order_are_no_swap(composite, references):
    right = plan_regions([EILEEN, GRACE])
    score = score_panel(composite, references, [GRACE, EILEEN], plan=right)
    assert score.swaps == [] and score.passes(0.95)
    assert score_panels([composite], references, [[GRACE, EILEEN]], plans=[right])[0].swaps == []


def test_without_a_plan_scoring_is_unchanged(composite, references):
    score = score_panel(composite, references, [GRACE, EILEEN])
    assert score.swaps == [] and score.passes(0.95)
    for face in score.faces:  # every face now carries its similarity to the whole cast
        assert set(face.similarities) == {EILEEN, GRACE}
        assert face.similarities[face.character] == face.similarity


def test_face_scorer_with_plans_fails_a_swapped_panel(composite, references):
    wrong, right = plan_regions([GRACE, EILEEN]), plan_regions([EILEEN, GRACE])
    scorer = face_scorer(references, [[GRACE, EILEEN]] * 2, plans=[wrong, right])
    panel = SimpleNamespace(image=composite)
    assert not scorer(0, panel).passes(0.5)
    assert scorer(1, panel).passes(0.5)


# -- the rules (pure) ----------------------------------------------------------------------------


def face(box, **sims) -> FaceMatch:
    named = {k.replace("_", " "): v for k, v in sims.items()}
    return FaceMatch(box, 1.0, None, None, similarities=named)


def test_find_swaps_compares_the_owner_with_the_other_people_of_the_plan_only():
    plan = plan_regions(["A", "B"])
    size = (200, 100)
    assert find_swaps([face((10, 10, 50, 50), A=0.90, B=0.93)], plan, size)[0] == Swap("A", "B", (10, 10, 50, 50), 0.90, 0.93)
    assert find_swaps([face((10, 10, 50, 50), A=0.93, B=0.90)], plan, size) == []
    assert find_swaps([face((10, 10, 50, 50), A=0.90, B=0.93)], plan, size, margin=0.05) == []
    assert find_swaps([face((10, 10, 50, 50), A=0.90, C=0.99)], plan, size) == []  # C is not in the panel
    assert find_swaps([face((10, 10, 50, 50), B=0.99)], plan, size) == []  # A has no reference: can't judge
    assert find_swaps([face((150, 10, 190, 50), A=0.99, B=0.90)], plan, size)[0].owner == "B"
    assert find_swaps([face((10, 10, 50, 50), A=0.1, B=0.9)], {"A": Region(0, 0, 1, 1)}, size) == []  # one person


def test_region_owner_uses_the_face_centre_and_the_nearest_centre_where_regions_overlap():
    plan = plan_regions(["A", "B"], {"A": "center", "B": "right"})  # A 0.25-0.75, B 0.5-1
    assert region_owner((0.3, 0.5), plan) == "A"
    assert region_owner((0.6, 0.5), plan) == "A"  # in both; A's centre (0.5) is nearer than B's (0.75)
    assert region_owner((0.7, 0.5), plan) == "B"
    assert region_owner((0.1, 0.5), plan) is None


def test_a_swapped_attempt_ranks_below_any_unswapped_one():
    swap = [Swap("A", "B", (0, 0, 1, 1), 0.9, 0.95)]
    swapped = PanelScore(["A"], {"A": 0.99}, [], swaps=swap)
    weak = PanelScore(["A"], {"A": 0.5}, [])
    assert not swapped.passes(0.8) and Attempt(1, weak).rank > Attempt(0, swapped).rank
    panel = PanelAttempts(0, 0.8, [Attempt(0, swapped)], 0, SimpleNamespace(seed=0))
    panel.add(SimpleNamespace(seed=1), weak)
    assert panel.kept == 1 and not panel.passed
