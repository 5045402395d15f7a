"""Lettering on real photos used as panel art: balloons off faces, tails to the right mouth, reading order, fit.

The art is skimage's astronaut (Eileen Collins), matplotlib's Grace Hopper, and both side by side.
Face boxes for the checks come straight from the detector (``detect_faces``), not from the code under
test, and the reading-order rule is written out here as the issue states it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from storyface.errors import InputError
from storyface.faces import detect_faces
from storyface.render.fonts import FONT_FILES, font_bytes, missing_glyphs
from storyface.render.lettering import (
    MAX_PT,
    MIN_PT,
    Face,
    LetteringError,
    LetteringPlan,
    Line,
    TextDoesNotFitError,
    draw_lettering,
    find_faces,
    plan_lettering,
    text_boxes,
)
from storyface.render.lettering.text import body_axes

EILEEN, GRACE = "Eileen Collins", "Grace Hopper"
DPI = 150  # the photos are ~1000 px wide: at 150 dpi that is a 7 in panel, lettered at 20 px
SIDES = {EILEEN: 0.25, GRACE: 0.75}
DIALOGUE = [
    Line(GRACE, "I found the bug. It's a moth!"),
    Line(EILEEN, "Check the navigation code before we launch."),
    Line(GRACE, "Don't tell the admiral.", "whisper"),
    Line(EILEEN, "A real moth? In the computer?", "thought"),
]


def _image(path) -> Image.Image:
    return Image.open(path).convert("RGB")


@pytest.fixture(scope="session")
def references(astronaut_path, grace_hopper_path) -> dict[str, np.ndarray]:
    from storyface.eval.likeness import references_from

    return references_from({EILEEN: astronaut_path, GRACE: grace_hopper_path}, "dlib")


@pytest.fixture(scope="session")
def two(two_faces_path) -> Image.Image:
    return _image(two_faces_path)


@pytest.fixture(scope="session")
def detected_two(two) -> list:
    """The detector's own face boxes, left to right: [astronaut, Grace]."""
    return sorted((f.box for f in detect_faces(two)), key=lambda b: b[0])


@pytest.fixture(scope="session")
def faces_two(two, references) -> list[Face]:
    return find_faces(two, [EILEEN, GRACE], references)


# --------------------------------------------------------------------------- checks, as the issue states them


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def distance(point, box) -> float:
    dx = max(box[0] - point[0], 0, point[0] - box[2])
    dy = max(box[1] - point[1], 0, point[1] - box[3])
    return math.hypot(dx, dy)


def reads_after(earlier, later, rtl=False) -> bool:
    """Later balloons start no higher; beside an earlier one (heights overlap) they are to its right (left in rtl)."""
    if later[1] >= earlier[3]:
        return True
    centre = lambda b: (b[0] + b[2]) / 2  # noqa: E731
    beside = centre(later) < centre(earlier) if rtl else centre(later) > centre(earlier)
    return later[1] >= earlier[1] and beside


def assert_well_lettered(plan: LetteringPlan, face_boxes, size, rtl=False) -> None:
    balloons = plan.balloons
    for b in balloons:
        assert 0 <= b.box[0] and 0 <= b.box[1] and b.box[2] <= size[0] and b.box[3] <= size[1], b
        for face in face_boxes:
            assert not overlap(b.box, face), f"{b.text!r} covers the face at {face}"
        if plan.caption:
            assert not overlap(b.box, plan.caption.box)
    if plan.caption:
        for face in face_boxes:
            assert not overlap(plan.caption.box, face)
    for i, a in enumerate(balloons):
        for b in balloons[i + 1:]:
            assert not overlap(a.box, b.box), f"{a.text!r} and {b.text!r} overlap"
            assert reads_after(a.box, b.box, rtl), f"{b.text!r} would be read before {a.text!r}"
    assert len({b.font_size for b in balloons}) <= 1, "one size per panel"
    assert MIN_PT <= plan.font_pt <= MAX_PT
    for b in balloons:
        assert_text_inside(b, plan.dpi)


def assert_text_inside(balloon, dpi) -> None:
    """Every line's ink box lies inside the balloon's oval, and no word was dropped (never clipped)."""
    a, b = body_axes(balloon.kind, balloon.box, dpi)
    cx, cy = balloon.center
    placed = text_boxes(balloon)
    assert " ".join(line for line, _ in placed).split() == balloon.text.split()
    for _, (x0, y0, x1, y1) in placed:
        for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
            assert ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0, f"{balloon.text!r}: text corner outside the oval"


def assert_tails_point_at(plan, named_boxes: dict[str, tuple]) -> None:
    """Each tail tip is near its speaker's face and nearer to it than to any other face."""
    for b in plan.balloons:
        own = named_boxes[b.speaker]
        size = max(own[2] - own[0], own[3] - own[1])
        assert b.saw_face
        assert distance(b.tail_tip, own) <= 0.6 * size, f"{b.text!r}: tail tip {b.tail_tip} far from {own}"
        for name, other in named_boxes.items():
            if name != b.speaker:
                assert distance(b.tail_tip, other) > distance(b.tail_tip, own) + 0.3 * size


# --------------------------------------------------------------------------- faces


def test_find_faces_tells_the_two_people_apart(two, references, detected_two):
    faces = find_faces(two, [EILEEN, GRACE], references)
    assert [f.box for f in faces] == detected_two
    assert [f.name for f in faces] == [EILEEN, GRACE]
    for face in faces:  # the mouth (from landmarks) is inside the lower half of the face box
        assert face.box[0] < face.mouth[0] < face.box[2]
        assert (face.box[1] + face.box[3]) / 2 < face.mouth[1] < face.box[3] + 0.1 * face.size
    swapped = find_faces(two, [EILEEN, GRACE], {EILEEN: references[GRACE], GRACE: references[EILEEN]})
    assert [f.name for f in swapped] == [GRACE, EILEEN]
    assert [f.name for f in find_faces(two, [EILEEN, GRACE], None)] == [None, None]  # cannot tell: unnamed


def test_find_faces_one_speaker_one_face_needs_no_reference(astronaut_path):
    faces = find_faces(_image(astronaut_path), [EILEEN], None)
    assert len(faces) == 1 and faces[0].name == EILEEN


# --------------------------------------------------------------------------- placement on real photos


def test_two_people_balloons_clear_faces_tails_to_the_right_mouth(two, faces_two, detected_two):
    plan = plan_lettering(two.size, "Houston, 1947. Or thereabouts.", DIALOGUE, faces_two, SIDES, dpi=DPI)
    assert [b.speaker for b in plan.balloons] == [line.speaker for line in DIALOGUE]
    assert [b.kind for b in plan.balloons] == [line.kind for line in DIALOGUE]
    assert plan.caption is not None and not plan.blind
    assert_well_lettered(plan, detected_two, two.size)
    assert_tails_point_at(plan, {EILEEN: detected_two[0], GRACE: detected_two[1]})


def test_a_swapped_cast_swaps_the_tails(two, references, detected_two):
    swapped_refs = {EILEEN: references[GRACE], GRACE: references[EILEEN]}
    faces = find_faces(two, [EILEEN, GRACE], swapped_refs)
    plan = plan_lettering(two.size, None, DIALOGUE, faces, SIDES, dpi=DPI)
    assert_well_lettered(plan, detected_two, two.size)
    assert_tails_point_at(plan, {EILEEN: detected_two[1], GRACE: detected_two[0]})  # each tail at the other face


@pytest.mark.parametrize("photo, name", [("astronaut_path", EILEEN), ("grace_hopper_path", GRACE)])
def test_one_person_balloons_clear_the_face_and_point_at_it(photo, name, request):
    art = _image(request.getfixturevalue(photo))
    face_box = detect_faces(art)[0].box
    lines = [Line(name, "Ready when you are."), Line(name, "Let's go.")]
    plan = plan_lettering(art.size, "Meanwhile.", lines, find_faces(art, [name], None), {}, dpi=DPI)
    assert_well_lettered(plan, [face_box], art.size)
    assert_tails_point_at(plan, {name: face_box})


def test_right_to_left_mirrors_caption_and_reading_order(two, faces_two, detected_two):
    plan = plan_lettering(two.size, "Houston.", DIALOGUE[:2], faces_two, SIDES, rtl=True, dpi=DPI)
    assert plan.caption.box[2] > two.width * 0.9  # narration starts at the top right
    assert_well_lettered(plan, detected_two, two.size, rtl=True)
    assert_tails_point_at(plan, {EILEEN: detected_two[0], GRACE: detected_two[1]})


def test_blind_placement_on_noise_points_toward_each_speakers_side():
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (600, 1000, 3), dtype=np.uint8))
    faces = find_faces(noise, [EILEEN, GRACE], None)
    assert faces == []
    lines = [Line(EILEEN, "Where is everyone?"), Line(GRACE, "Over here!")]
    plan = plan_lettering(noise.size, "Later.", lines, faces, SIDES, dpi=DPI)
    assert plan.blind and not any(b.saw_face for b in plan.balloons)
    assert_well_lettered(plan, [], noise.size)
    eileen, grace = plan.balloons
    assert eileen.tail_tip[0] < noise.width / 2 < grace.tail_tip[0]
    for b in plan.balloons:  # a short tail below its balloon, not a pointer across the panel
        assert b.tail_tip[1] > b.box[3] - 0.2 * (b.box[3] - b.box[1])
        assert distance(b.tail_tip, b.box) < 0.4 * DPI


def test_a_line_that_cannot_fit_legibly_is_an_error_naming_it(two, faces_two):
    small = (300, 200)  # 2 x 1.3 in at 150 dpi
    long = Line(GRACE, "It is easier to ask forgiveness than it is to get permission, " * 3)
    ok = plan_lettering(small, None, [Line(EILEEN, "Hi.")], [], SIDES, dpi=DPI)
    assert len(ok.balloons) == 1
    with pytest.raises(TextDoesNotFitError) as caught:
        plan_lettering(small, None, [Line(EILEEN, "Hi."), long], [], SIDES, dpi=DPI)
    assert isinstance(caught.value, InputError)
    assert caught.value.line == 1
    assert "line 2" in str(caught.value) and GRACE in str(caught.value) and "It is easier" in str(caught.value)


def test_a_crowded_panel_sets_smaller_text_before_giving_up(two, faces_two, detected_two):
    roomy = plan_lettering(two.size, None, DIALOGUE[:1], faces_two, SIDES, dpi=DPI)
    crowded = DIALOGUE + [Line(GRACE, "And bring me the logbook and some tape, please."), Line(EILEEN, "On it.")]
    plan = plan_lettering(two.size, None, crowded, faces_two, SIDES, dpi=DPI)
    assert roomy.font_pt == MAX_PT and plan.font_pt < MAX_PT
    assert_well_lettered(plan, detected_two, two.size)


def test_characters_the_font_lacks_are_an_error_not_empty_boxes():
    assert missing_glyphs("It's a moth! Café, naïve, “quoted” — done…") == []
    with pytest.raises(LetteringError) as caught:
        plan_lettering((800, 600), None, [Line(EILEEN, "Hi."), Line(GRACE, "Привет")], [], SIDES, dpi=DPI)
    assert caught.value.line == 1 and "line 2" in str(caught.value)


def test_the_lettering_font_ships_with_its_licence():
    from importlib import resources

    fonts = resources.files("storyface") / "data" / "fonts"
    assert "SIL OPEN FONT LICENSE Version 1.1" in (fonts / "OFL.txt").read_text()
    for style in FONT_FILES:
        assert font_bytes(style)[:4] == b"OTTO"  # OpenType (CFF) font files, loaded from the package


# --------------------------------------------------------------------------- drawing


def test_drawing_letters_a_new_image_with_text_inside_white_balloons(two, faces_two):
    plan = plan_lettering(two.size, "Houston, 1947.", DIALOGUE, faces_two, SIDES, dpi=DPI)
    before = two.tobytes()
    lettered = draw_lettering(two, plan)
    assert two.tobytes() == before and lettered is not two  # the clean art is untouched
    # The text's pixels are what changes when the words are removed; all of them lie inside the ovals.
    from dataclasses import replace

    wordless = LetteringPlan(plan.size, plan.dpi, plan.rtl, plan.font_pt, plan.caption,
                             tuple(replace(b, lines=()) for b in plan.balloons))
    diff = np.abs(np.asarray(lettered, int) - np.asarray(draw_lettering(two, wordless), int)).sum(2) > 0
    ys, xs = np.nonzero(diff)
    assert len(xs) > 500  # there is text
    inside = np.zeros_like(diff)
    for b in plan.balloons:
        a, bb = body_axes(b.kind, b.box, plan.dpi)
        cx, cy = b.center
        inside |= ((np.arange(two.width)[None, :] - cx) / a) ** 2 + ((np.arange(two.height)[:, None] - cy) / bb) ** 2 <= 1
    assert inside[ys, xs].all()
    # Balloons are white inside with dark outlines and dark text.
    pixels = np.asarray(lettered)
    for b in plan.balloons:
        cx, cy = (round(v) for v in b.center)
        ring = pixels[cy, b.box[0]:b.box[2]].min(1)
        assert ring.min() < 80  # an ink outline crosses the balloon's middle row
        interior = pixels[b.box[1] + 3:b.box[3] - 3, b.box[0] + 3:b.box[2] - 3]
        assert (interior.min(2) > 240).mean() > 0.5  # mostly white paper


def test_a_plan_survives_json_and_draws_the_same(two, faces_two):
    import json

    plan = plan_lettering(two.size, "Houston.", DIALOGUE, faces_two, SIDES, dpi=DPI)
    restored = LetteringPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert restored == plan
    assert draw_lettering(two, restored).tobytes() == draw_lettering(two, plan).tobytes()
    assert Face.from_dict(faces_two[0].to_dict()) == faces_two[0]


def test_bad_kind_and_empty_line_are_input_errors():
    with pytest.raises(InputError, match="balloon kind"):
        Line(EILEEN, "Hi", "shout")  # type: ignore[arg-type]
    with pytest.raises(LetteringError, match="line 1"):
        plan_lettering((800, 600), None, [Line(EILEEN, "   ")], [], SIDES)
