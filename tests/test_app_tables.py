"""The web app's pure parts, without a browser or a server: the panel tables and what the page shows."""

from __future__ import annotations

import dataclasses
import typing
from datetime import datetime

import pytest
from PIL import Image

from storyface import api
from storyface.app import script_table as table
from storyface.app import views
from storyface.app.handlers_base import ErrorBoard, optional_number
from storyface.errors import InputError, StoryError
from storyface.eval.likeness import PanelScore
from storyface.story.schema import Line

CAST = ["Eileen Collins", "Grace Hopper"]
STORY = (
    "Grace Hopper was fixing a huge computer when Eileen Collins walked in. "
    '"Can you check the navigation code?" Eileen asked. '
    "She sat down at her desk. "
    "Outside, the rain stopped."
)


@pytest.fixture(scope="module")
def script():
    return api.parse_story(STORY, CAST, backend="offline").panels


def test_tables_round_trip_to_the_same_panels(script):
    placed = [p.model_copy(update={"regions": {"Grace Hopper": "right"}}) if len(p.characters) == 2 else p for p in script]
    panels, scenes, lines = table.tables_of(table.drafts_from_panels(placed), CAST)
    assert [row[0] for row in panels] == [p.caption or "" for p in placed]  # the author's words
    assert panels[2][0] == "She sat down at her desk." and scenes[2][0] == "Eileen Collins sat down at Eileen Collins's desk."
    assert panels[3][1] == table.NOBODY  # a scene panel
    assert panels[0][2] == "Grace Hopper: right"
    assert lines == [[2, "Eileen Collins", "speech", "Can you check the navigation code?"]]
    back = table.panels_of(table.drafts_from_tables(panels, scenes, lines), CAST)
    assert [p.model_dump() for p in back] == [p.model_dump() for p in placed]


def test_a_typed_row_is_its_own_caption_and_its_scene_gets_full_names():
    [panel, scene] = table.panels_of(table.drafts_from_tables([["Grace waves.", ""], ["It was raining.", "", ""]]), CAST)
    assert (panel.caption, panel.sentence, panel.characters) == ("Grace waves.", "Grace Hopper waves.", ["Grace Hopper"])
    assert (scene.sentence, scene.characters, scene.caption) == ("It was raining.", [], "It was raining.")


def test_a_panel_with_only_dialogue_keeps_no_caption():
    drafts = table.drafts_from_tables([["", "", ""]], [["Grace Hopper smiled."]], [["1", "grace", "", "Hello!"]])
    [panel] = table.panels_of(drafts, CAST)
    assert panel.caption is None and panel.dialogue == [Line(speaker="Grace Hopper", text="Hello!", kind="speech")]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([[9, "Grace Hopper", "speech", "Hi"]], "dialogue row 1: '9' is not a panel number (there are panels 1 to 1)"),
        ([["", "Grace Hopper", "speech", "Hi"]], "dialogue row 1"),
        ([[1, "", "speech", "Hi"]], "panel 1, dialogue line 1: who says 'Hi'?"),
        ([[1, "Grace Hopper", "speech", ""]], "panel 1, dialogue line 1: what does Grace Hopper say?"),
        ([[1, "Ada Lovelace", "speech", "Hi"]], "'Ada Lovelace' is not in the cast"),
        ([[1, "Grace Hopper", "shout", "Hi"]], "the kind is 'shout'; use speech, thought, whisper"),
        ([[1, "Grace Hopper", "speech", "x" * 301]], "a balloon holds 300"),
    ],
)
def test_bad_dialogue_rows_name_the_row_to_fix(lines, message):
    with pytest.raises(InputError) as info:
        table.panels_of(table.drafts_from_tables([["Grace waves.", "", ""]], None, lines), CAST)
    assert message in str(info.value)


def test_blank_dialogue_rows_are_dropped_and_kinds_lowercased():
    drafts = table.drafts_from_tables([["Grace waves.", "", ""]], None, [[None, None, None, None], [1.0, "Grace", "Thought", "Hm"]])
    assert drafts[0].lines == [("Grace", "thought", "Hm")]
    assert table.panels_of(drafts, CAST)[0].dialogue[0].kind == "thought"


def test_where_people_stand():
    people = ["Grace Hopper", "Eileen Collins"]
    assert table.parse_place("Grace: left; Eileen Collins: 0.5,0,1,1", people, 1, CAST) == {
        "Grace Hopper": "left", "Eileen Collins": "0.5,0,1,1"}  # fmt: skip
    assert table.parse_place("  ", people, 1, CAST) is None
    with pytest.raises(InputError, match="panel 3: 'Ada' is not in this panel"):
        table.parse_place("Ada: left", people, 3, CAST)
    with pytest.raises(InputError, match="panel 2: write where people stand as 'Name: place'"):
        table.parse_place("left", people, 2, CAST)
    assert table.format_place({"Grace Hopper": "left", "Eileen Collins": [0.5, 0.0, 1.0, 1.0]}) == (
        "Grace Hopper: left; Eileen Collins: 0.5,0,1,1")  # fmt: skip


def test_row_edits_carry_the_dialogue_with_their_panel():
    drafts = table.drafts_from_tables([["Grace waves."], ["Eileen nods."], ["It rains."]], None,
                                      [[1, "Grace Hopper", "speech", "One"], [2, "Eileen Collins", "speech", "Two"]])  # fmt: skip
    moved = table.move(drafts, 0, 2)
    assert table.tables_of(moved, CAST)[2] == [[1, "Eileen Collins", "speech", "Two"], [3, "Grace Hopper", "speech", "One"]]
    deleted = table.delete(drafts, 0)
    assert table.tables_of(deleted, CAST)[2] == [[1, "Eileen Collins", "speech", "Two"]]
    inserted = table.insert_blank(drafts, 1)
    assert [row[0] for row in table.tables_of(inserted, CAST)[0]] == ["Grace waves.", "", "Eileen nods.", "It rains."]
    assert table.tables_of(inserted, CAST)[2][1][0] == 3
    assert len(table.tidy_drafts(inserted, CAST, keep_blank=True)) == 4 and len(table.tidy_drafts(inserted, CAST)) == 3


def test_empty_and_oversized_scripts_are_refused_like_any_script():
    with pytest.raises(StoryError, match="the panel list is empty"):
        table.panels_of(table.drafts_from_tables([["", "", ""]]), CAST)
    with pytest.raises(StoryError, match="more than a page holds"):
        table.panels_of(table.drafts_from_tables([["Grace waves."]] * 30), CAST)
    with pytest.raises(InputError, match="panel 1's caption is 700 characters; a narration box holds 600"):
        table.panels_of(table.drafts_from_tables([["x" * 700]], [["Grace Hopper waves."]]), CAST)


def test_the_choices_on_the_page_are_the_cores():
    from storyface.app.page import FAST_KINDS, LAYOUTS, PAGE_SIZES
    from storyface.render.pages import LAYOUTS as CORE_LAYOUTS
    from storyface.render.pages import PRESETS
    from storyface.render.quality import DISTILL_KINDS

    assert [v for _, v in PAGE_SIZES] == ["auto", *PRESETS]
    assert [v for _, v in LAYOUTS] == list(CORE_LAYOUTS)
    assert [v for _, v in FAST_KINDS] == ["auto", *DISTILL_KINDS]
    assert table.KINDS == typing.get_args(Line.model_fields["kind"].annotation)


# -- what the page shows ------------------------------------------------------------------------


def score(similarities: dict, missing: list = (), swaps: list = ()) -> PanelScore:
    return PanelScore(expected=[*similarities, *missing], similarities=dict(similarities), missing=list(missing),
                      swaps=list(swaps))  # fmt: skip


def test_likeness_badges():
    assert views.likeness_badge(None, []) == ("scene", "none")
    assert views.likeness_badge(score({}, ["Grace Hopper"]), ["Grace Hopper"]) == ("no face found", "none")
    assert views.likeness_badge(score({"Grace Hopper": 0.97}), ["Grace Hopper"]) == ("likeness 0.97", "good")
    assert views.likeness_badge(score({"A": 0.97, "B": 0.92}), ["A", "B"]) == ("likeness 0.92", "fair")
    assert views.likeness_badge(score({"A": 0.80}), ["A"]) == ("likeness 0.80", "weak")
    assert views.likeness_badge(score({"A": 0.97}, ["B"]), ["A", "B"]) == ("1 face(s) missing", "weak")
    assert views.likeness_badge(score({"A": 0.97}, swaps=["x"]), ["A"])[0] == "people swapped?"


def test_tile_has_its_badge_and_the_redrawn_one_its_outline():
    art = Image.new("RGB", (1344, 768), (128, 128, 128))
    plain = views.tile_image(art, "likeness 0.97", "good", highlight=False)
    outlined = views.tile_image(art, "likeness 0.97", "good", highlight=True)
    assert plain.size == (views.TILE_SIDE, views.TILE_SIDE)  # a wide panel padded to a square tile
    assert plain.getpixel((12, 12)) == views.TONES["good"]  # the badge's corner
    assert plain.getpixel((views.TILE_SIDE // 2, views.TILE_SIDE // 2)) == (128, 128, 128)
    assert outlined.getpixel((views.TILE_SIDE - 2, views.TILE_SIDE // 2)) == views.HIGHLIGHT
    assert plain.getpixel((views.TILE_SIDE - 2, views.TILE_SIDE // 2)) != views.HIGHLIGHT


def test_training_estimate_uses_the_last_finished_jobs_rate():
    from storyface.library import JobRecord

    fields = {f.name: None for f in dataclasses.fields(JobRecord)}
    job = JobRecord(**{**fields, "id": "1", "kind": "train", "state": "done", "name": "A", "model": "tiny", "step": 20,
                       "total": 20, "attempts": 1, "cancel_requested": False, "created_at": "2026-01-01T00:00:00+00:00",
                       "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:30+00:00"})  # fmt: skip
    other_model = dataclasses.replace(job, model="other", finished_at="2026-01-01T00:10:00+00:00")
    rate = views.seconds_per_step([job, other_model], "tiny")
    assert rate == pytest.approx(1.5)  # 30 s for 20 steps
    assert views.train_estimate(rate, 2, 20) == "Training 2 people (20 steps each): about 60 s on this machine."
    assert views.train_estimate(rate, 1, 500) == "Training 1 person (500 steps each): about 12 min on this machine."
    assert "measures how fast" in views.train_estimate(views.seconds_per_step([other_model], "tiny"), 1, 20)
    running = dataclasses.replace(job, state="running", step=6, finished_at=None)  # 6 steps in 30 s: 5 s a step
    now = datetime.fromisoformat("2026-01-01T00:00:30+00:00")
    assert views.job_rows([running], now=now) == [["A", "training", "6/20", "about 70 s left"]]
    assert views.job_rows([job], now=now) == [["A", "done", "20/20", ""]]


def test_the_two_faces_message_loses_its_pixel_boxes(two_faces_path):
    from storyface.faces.detect import detect_one_face

    with pytest.raises(InputError) as info:
        detect_one_face(Image.open(two_faces_path).convert("RGB"))
    raw = str(info.value)
    assert "(left, top, right, bottom)" in raw
    assert views.plain_words(raw) == "Found 2 faces in the photo; use a photo of one person, or crop it to the face you want."


def test_status_lines_escape_what_people_type():
    line = views.error_status("no identity named '<img src=x>'")
    assert "<img" not in line and "&lt;img src=x&gt;" in line and 'role="alert"' in line
    assert views.status("") == ""


def test_error_board_keeps_each_sessions_last_error_per_step():
    board = ErrorBoard(limit=2)
    board.put("s1", "people", "first")
    board.put("s1", "people", "second")
    board.put("s2", "story", "other")
    assert board.take("s2", "people") is None
    assert board.take("s1", "people") == "second" and board.take("s1", "people") is None  # read once
    board.put("s3", "story", "a")
    board.put("s4", "story", "b")
    board.put("s5", "story", "c")
    assert board.take("s3", "story") is None and board.take("s5", "story") == "c"  # the oldest went


def test_optional_numbers_accept_empty():
    assert optional_number("", "the seed", 0, 10) is None and optional_number(None, "the seed", 0, 10) is None
    assert optional_number(" 7 ", "the seed", 0, 10) == 7 and optional_number(3.0, "the seed", 0, 10) == 3
    with pytest.raises(InputError, match="drawing steps must be a whole number from 1 to 50, got 0"):
        optional_number("0", "drawing steps", 1, 50)
    with pytest.raises(InputError, match="the seed must be a whole number"):
        optional_number("seven", "the seed", 0, 10)
