"""The web app driven end to end through gradio_client, on the tiny model, with real photos.

One app (model loaded once, training worker thread running) serves the whole module on 127.0.0.1;
every step goes through a named endpoint, as a script or another program would use it. A
``gradio_client.Client`` is one browser session: its comic stays on the server between calls.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, AuthenticationError

from storyface.errors import InputError

STORY = (
    "Grace Hopper was fixing a huge computer when Eileen Collins walked in with a flight plan. "
    '"Can you check the navigation code?" Eileen asked. '
    "She sat down at her desk. "
    "It was raining outside."
)
CAST = ["Eileen Collins", "Grace Hopper"]
CAPTIONS = [
    "Grace Hopper was fixing a huge computer when Eileen Collins walked in with a flight plan.",
    "",  # a panel of dialogue only
    "She sat down at her desk.",
    "It was raining outside.",
]


@pytest.fixture(scope="module")
def app(tmp_path_factory, start_app):
    running = start_app("tiny", tmp_path_factory.mktemp("app-data"), train_steps=3, render_steps=2)
    yield running
    running.close()


@pytest.fixture(scope="module")
def client(app) -> Client:
    return Client(app.url, verbose=False)


def data(value: dict) -> list[list]:
    return value["data"]


def frame(rows: list[list], headers: list[str] | None = None) -> dict:
    """A table as a Dataframe endpoint takes it."""
    return {"headers": headers or [str(i) for i in range(len(rows[0]) if rows else 0)], "data": rows, "metadata": None}


def wait_for_jobs(client: Client, timeout: float = 120.0) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = data(client.predict(api_name="/jobs")[0])
        if rows and all(row[1] in ("done", "failed", "cancelled") for row in rows):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"training jobs did not finish in {timeout}s: {rows}")


def latest_comic(app) -> Path:
    return max((d for d in app.services.comics_dir.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime_ns)


def make(client: Client, tables: tuple, cast: list[str] = CAST, **settings) -> tuple:
    """/generate with the split tables; settings by parameter name (seed, layout, quality, ...)."""
    panels, scenes, lines = tables
    return client.predict(panels=panels, cast=cast, scenes=scenes, lines=lines, styles=settings.pop("styles", []),
                          steps=settings.pop("steps", "2"), api_name="/generate", **settings)  # fmt: skip


def skipped(value) -> bool:
    """An output the handler left as it was (gr.skip())."""
    return isinstance(value, dict) and value.get("__type__") == "update" and "value" not in value


def shown(value):
    """An output's value, also when the handler sent it as an update (with the gallery's selection)."""
    return value["value"] if isinstance(value, dict) and value.get("__type__") == "update" else value


def error_of(client: Client, *args, api_name: str, **kwargs) -> str:
    with pytest.raises(AppError) as info:
        client.predict(*args, api_name=api_name, **kwargs)
    return str(info.value)


@pytest.fixture(scope="module")
def trained(client, astronaut_path, grace_hopper_path) -> list[str]:
    """Both people added one by one (photo + name + consent) and trained through the queue."""
    for path, name in ((astronaut_path, "Eileen Collins"), (grace_hopper_path, "Grace Hopper")):
        pending, photo, name_box, consent, status, hint = client.predict(
            handle_file(str(path)), name, True, 3, api_name="/add_person"
        )
        assert pending[-1]["caption"] == name and (photo, name_box, consent) == (None, "", False)
        assert f"{name} is on the list" in status
    assert [t["caption"] for t in pending] == CAST and hint.startswith("Training 2 people (3 steps each)")
    faces, jobs, status, _hint = client.predict(3, api_name="/train")
    assert faces == [] and "Training Eileen Collins, Grace Hopper (3 steps each)" in status
    assert sorted(row[0] for row in data(jobs)) == CAST
    rows = wait_for_jobs(client)
    assert all(row[1] == "done" and row[2] == "3/3" for row in rows), rows
    return CAST


@pytest.fixture(scope="module")
def split(client, trained) -> tuple:
    """The story split with nobody picked: the library people it names are picked automatically."""
    panels, scenes, lines, cast, status = client.predict(STORY, [], api_name="/process_text")
    assert sorted(cast) == CAST and "4 panels, 1 of them a scene with no one in it" in status
    return panels, scenes, lines


@pytest.fixture(scope="module")
def comic(client, split) -> tuple:
    return make(client, split, styles=["comic style"], free_style="blue sky", title="Test page", seed="5")


# -- the happy path ----------------------------------------------------------------------------


def test_trained_people_are_in_the_library(trained, app):
    records = app.services.library.list()
    assert [r.name for r in records] == CAST
    assert all(r.tiny and r.consent_by and "consent box" in r.consent_by for r in records)
    assert all(r.thumb_path is not None for r in records)  # the gallery shows their faces


def test_split_shows_the_authors_words_dialogue_and_a_scene_panel(split):
    panels, scenes, lines = map(data, split)
    assert [row[0] for row in panels] == CAPTIONS
    assert [row[1] for row in panels] == ["Grace Hopper, Eileen Collins", "Eileen Collins", "Eileen Collins",
                                          "no one (a scene)"]  # fmt: skip
    assert [row[0] for row in scenes][2] == "Eileen Collins sat down at Eileen Collins's desk."  # what is drawn
    assert lines == [[2, "Eileen Collins", "speech", "Can you check the navigation code?"]]


def test_generate_letters_the_authors_words_and_draws_the_scene_panel(comic, app):
    pages, tiles, downloads, record, status, *_ = comic
    assert len(pages) == 1 and len(tiles) == 4 == len(record["panels"])
    assert [p["caption"] for p in record["panels"]] == [c or None for c in CAPTIONS]  # the page's narration boxes
    assert [t["caption"].split(" — ")[0] for t in tiles] == [
        f"1. {CAPTIONS[0]}", "2. Eileen Collins: “Can you check the navigation code?”", f"3. {CAPTIONS[2]}",
        f"4. {CAPTIONS[3]}",
    ]  # fmt: skip
    scene = record["panels"][3]
    assert scene["characters"] == [] and scene["identities"] == [] and "<" not in scene["prompt"]
    assert record["panels"][1]["dialogue"] == [{"speaker": "Eileen Collins", "text": "Can you check the navigation code?",
                                                "kind": "speech"}]  # fmt: skip
    assert "Grace Hopper not found" in tiles[0]["caption"]  # the tiny model draws no faces
    assert all("comic book style" in p["prompt"] and "blue sky" in p["prompt"] for p in record["panels"])
    assert [p["seed"] for p in record["panels"]] == [5, 6, 7, 8]
    assert sorted(Path(f).suffix for f in downloads) == [".cbz", ".pdf", ".png"]
    assert "4 panels on 1 page" in status and "Test mode" in status
    assert str(app.services.library.root) not in status and ".png" not in status  # no server paths in the page


def panel_bytes(out_dir: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted((out_dir / "panels").glob("panel-*.png"))]


def test_editing_dialogue_letters_the_page_again_without_drawing(client, comic, split, app, monkeypatch):
    out_dir = latest_comic(app)
    art, page = panel_bytes(out_dir), (out_dir / "pages" / "page-01.png").read_bytes()
    calls = []
    for method in ("render", "rerender"):
        monkeypatch.setattr(app.services.renderer, method, lambda *a, **k: calls.append(a))
    panels, scenes, _lines = split
    edited = frame([[2, "Eileen Collins", "whisper", "Is the moth still in there?"]])
    *tables, story_status, pages, tiles, _downloads, record, result_status = client.predict(
        panels, scenes, edited, CAST, api_name="/update_panels"
    )
    assert calls == []  # no model work
    assert "lettered again" in result_status and "Lettered the page again" in story_status
    assert record["panels"][1]["dialogue"] == [{"speaker": "Eileen Collins", "text": "Is the moth still in there?",
                                                "kind": "whisper"}]  # fmt: skip
    assert panel_bytes(out_dir) == art  # the clean art is untouched
    assert (out_dir / "pages" / "page-01.png").read_bytes() != page
    assert "Is the moth still in there?" in tiles[1]["caption"] and len(pages) == 1
    # a caption edit letters again too; an unchanged table does nothing
    captions = frame([["She sat at her desk." if i == 2 else row[0], row[1], row[2]] for i, row in enumerate(data(panels))])
    *_, record, _ = client.predict(captions, scenes, edited, CAST, api_name="/update_panels")
    assert record["panels"][2]["caption"] == "She sat at her desk." and calls == []
    *_, pages, _tiles, _d, record, result_status = client.predict(captions, scenes, edited, CAST, api_name="/update_panels")
    assert all(skipped(x) for x in (pages, record, result_status))  # nothing changed, nothing sent
    # changing a scene cannot be done by lettering: the page says to make the comic again
    changed = frame([["Grace Hopper is asleep."], *data(scenes)[1:]])
    *_, result_status = client.predict(captions, changed, edited, CAST, api_name="/update_panels")
    assert "The panels changed: press Make the comic" in result_status and calls == []


def test_where_people_stand_is_drawn_and_recorded(client, split):
    panels, scenes, lines = split
    rows = [list(row) for row in data(panels)]
    rows[0][2] = "Grace: right; Eileen Collins: left"  # the scene names Grace first: she would stand left
    *_, record, _status, _panel, _result = make(client, (frame(rows), scenes, lines))
    first = record["panels"][0]
    assert first["region_overrides"] == {"Grace Hopper": "right", "Eileen Collins": "left"}
    assert first["regions"] == {"Grace Hopper": [0.5, 0.0, 1.0, 1.0], "Eileen Collins": [0.0, 0.0, 0.5, 1.0]}
    rows[0][2] = "Grace Hopper: left"  # after the comic: a new place needs a new drawing, not new lettering
    *_, result_status = client.predict(frame(rows), scenes, lines, CAST, api_name="/update_panels")
    assert "Where people stand changes the drawing of panel 1" in result_status
    rows[0][2] = "Ada: left"
    *_, story_status, _p, _t, _d, _r, _s = client.predict(frame(rows), scenes, lines, CAST, api_name="/update_panels")
    assert "panel 1: 'Ada' is not in this panel" in story_status and "sf-error" in story_status


def test_regenerate_one_panel_leaves_the_others_alone(client, comic, app):
    out_dir = latest_comic(app)
    before = panel_bytes(out_dir)
    seeds = [p["seed"] for p in json.loads((out_dir / "comic.json").read_text())["panels"]]
    _pages, tiles, _downloads, record, status = client.predict("2", api_name="/regenerate_panel")
    tiles = shown(tiles)
    after = panel_bytes(out_dir)
    assert after[0] == before[0] and after[2:] == before[2:] and after[1] != before[1]
    new_seeds = [p["seed"] for p in record["panels"]]
    assert new_seeds[0] == seeds[0] and new_seeds[2:] == seeds[2:] and new_seeds[1] != seeds[1]
    assert "Panel 2 was drawn again" in status
    assert tiles[1]["caption"].startswith("↻ drawn again") and not tiles[0]["caption"].startswith("↻")


def test_panel_list_editing_keeps_dialogue_with_its_panel(client, split):
    panels, scenes, lines = split
    edited = frame([["Eileen flew to the moon.", "", ""], *data(panels)])
    blank_scenes = frame([[""], *data(scenes)])
    moved_lines = frame([[3, *row[1:]] for row in data(lines)])
    p, s, l, status, *_ = client.predict(edited, blank_scenes, moved_lines, CAST, api_name="/update_panels")
    assert data(p)[0] == ["Eileen flew to the moon.", "Eileen Collins", ""]
    assert data(s)[0] == ["Eileen Collins flew to the moon."]  # the scene worked out from the caption, names in full
    p, s, l, row, status = client.predict(p, s, l, "1", CAST, api_name="/move_panel_down")
    assert data(p)[1][0] == "Eileen flew to the moon." and row == "2" and data(l)[0][0] == 3
    p2, s2, l2, row, status = client.predict(p, s, l, "2", CAST, api_name="/add_panel")
    assert data(p2)[2] == ["", "", ""] and row == "3" and len(data(p2)) == 6 and data(l2)[0][0] == 4
    p3, s3, l3, row, status = client.predict(p, s, l, "3", CAST, api_name="/delete_panel")
    assert len(data(p3)) == 4 and data(l3) == [] and status.count("Deleted panel 3") == 1
    l4, status = client.predict(p, s, l, "1", CAST, api_name="/add_line")
    assert data(l4)[0] == [1, "Grace Hopper", "speech", ""] and "Added a line to panel 1" in status


def test_row_buttons_without_a_row_say_what_to_do(client, split):
    panels, scenes, lines = split
    for name in ("/delete_panel", "/move_panel_up", "/move_panel_down"):
        assert "click a row in the panel table first" in error_of(client, panels, scenes, lines, "", CAST, api_name=name)
    assert "from 1 to 4, got 9" in error_of(client, panels, scenes, lines, "9", CAST, api_name="/delete_panel")
    *tables, row, status = client.predict(panels, scenes, lines, "", CAST, api_name="/add_panel")  # appends at the end
    assert row == "5" and "Added panel 5" in status


def test_a_name_that_is_no_identity_is_refused_as_it_is_typed(client, trained):
    cast, status = client.predict(["Grace Hopper", "Grace Hoper"], api_name="/set_cast")
    assert cast == ["Grace Hopper"] and "did you mean 'Grace Hopper'" in status and "sf-error" in status
    cast, status = client.predict(["grace hopper"], api_name="/set_cast")
    assert cast == ["Grace Hopper"] and "In the cast: Grace Hopper" in status


def test_looks_are_kept_with_the_person_and_overridable_per_story(client, split, app):
    rows = frame([["Grace Hopper", "round glasses", ""], ["Eileen Collins", "", "orange flight suit"]])
    shown, status = client.predict(rows, api_name="/set_looks")
    assert app.services.library.get("Grace Hopper").appearance == "round glasses" and "Saved the looks of Grace Hopper" in status
    assert data(shown) == [["Grace Hopper", "round glasses", ""], ["Eileen Collins", "", "orange flight suit"]]
    *_, record, _status, _panel, _result = make(client, split, looks=shown)
    prompts = [p["prompt"] for p in record["panels"]]
    assert "round glasses" in prompts[0] and "orange flight suit" in prompts[0] and "orange" not in prompts[3]
    client.predict(frame([["Grace Hopper", "", ""]]), api_name="/set_looks")
    assert app.services.library.get("Grace Hopper").appearance is None


def random_lora(model, path: Path) -> Path:
    """A random-weight LoRA in diffusers/PEFT keys for a few of the tiny UNet's attention layers."""
    unet, g, tensors = model.pipe.unet, torch.Generator().manual_seed(0), {}
    names = [n for n, m in unet.named_modules() if isinstance(m, torch.nn.Linear) and "attn1.to_q" in n][:2]
    for n in names:
        m = unet.get_submodule(n)
        tensors[f"unet.{n}.lora_A.weight"] = torch.randn(4, m.in_features, generator=g) * 0.1
        tensors[f"unet.{n}.lora_B.weight"] = torch.randn(m.out_features, 4, generator=g) * 0.1
    save_file(tensors, str(path))
    return path


def test_fast_quality_and_loras(client, split, app, tmp_path):
    assert "fast quality needs a few-step distillation LoRA" in error_of(
        client, panels=split[0], cast=CAST, scenes=split[1], lines=split[2], steps="", quality="fast", api_name="/generate"
    )
    *_, record, _status, _panel, _result = make(client, split, steps="", quality="fast", fast_kind="lightning")
    assert {(p["steps"], p["scheduler"], p["guidance"]) for p in record["panels"]} == {(4, "euler_trailing", 0.0)}
    lora = random_lora(app.services.model, tmp_path / "comic-style.safetensors")
    *_, record, _status, _panel, _result = make(client, split, loras=f"{lora}:0.5")
    assert [(entry["kind"], entry["weight"]) for entry in record["loras"]] == [("style", 0.5)]
    assert app.services.model.loras == []  # back to the base weights for training and other sessions


def test_layout_and_lettering_choices(client, split):
    *_, record, _status, _panel, _result = make(client, split, layout="webtoon", lettering=False, rtl=True, page_size="auto")
    assert record["book"]["layout"] == "webtoon" and record["book"]["lettering"] is False and record["book"]["rtl"] is True
    assert "not in the list of choices" in error_of(client, panels=split[0], cast=CAST, scenes=split[1], lines=split[2],
                                               steps="2", layout="manga", api_name="/generate")  # fmt: skip


def test_export_identity_files(client, trained):
    from storyface.identity.tokens import load_identity

    files, status = client.predict(["Grace Hopper"], api_name="/export_identities")
    assert [Path(f).name for f in files] == ["grace-hopper.safetensors"] and "ready to download" in status
    assert load_identity(files[0]).name == "Grace Hopper"


def test_tiny_model_banner_and_no_server_path_in_page(app):
    config = json.dumps(httpx.get(app.url.rstrip("/") + "/config", timeout=10).json())
    assert "tiny random-weight test model" in config
    assert str(app.services.library.root) not in config


def test_the_example_fills_every_step(app):
    fresh = Client(app.url, verbose=False)
    pending, story, panels, scenes, lines, cast, status, story_status, _hint, styles, layout, title = fresh.predict(
        api_name="/load_example"
    )
    assert pending == [] and sorted(cast) == CAST  # both are in the library already: nothing to train
    assert "in the library and in the cast" in status and '"Can you check the navigation code?"' in story
    assert data(lines) == [[2, "Eileen Collins", "speech", "Can you check the navigation code?"]]
    assert "no one (a scene)" in [row[1] for row in data(panels)] and (styles, layout, title) == (["comic style"], "dynamic", "The Moth")


# -- bad input: a clear message, nothing changed ----------------------------------------------


@pytest.fixture(scope="module")
def blank_photo(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "blank.png"
    Image.new("RGB", (400, 400), (210, 210, 200)).save(path)
    return path


def test_bad_people_are_refused_and_nothing_is_lost(
    app, client, trained, astronaut_path, grace_hopper_path, two_faces_path, blank_photo
):
    fresh = Client(app.url, verbose=False)  # its own session: its own list of people to train
    fresh.predict(handle_file(str(astronaut_path)), "Ada Lovelace", True, 3, api_name="/add_person")
    jobs_before, names_before = data(fresh.predict(api_name="/jobs")[0]), [r.name for r in app.services.library.list()]
    astro = handle_file(str(astronaut_path))
    cases = {
        "No face found": (handle_file(str(blank_photo)), "Blank Person", True),
        "Found 2 faces in the photo; use a photo of one person": (handle_file(str(two_faces_path)), "Two People", True),
        "a name is required": (astro, "   ", True),
        "already in the library": (handle_file(str(grace_hopper_path)), "grace  HOPPER", True),
        "already on the list": (astro, "Ada Lovelace", True),
        "tick the consent box": (astro, "Someone Else", False),
        "upload a photo of the person first": (None, "Someone Else", True),
    }
    for expected, args in cases.items():
        message = error_of(fresh, *args, 3, api_name="/add_person")
        assert expected in message and "left, top" not in message, message
    pending, *_ = fresh.predict(handle_file(str(grace_hopper_path)), "Rear Admiral", True, 3, api_name="/add_person")
    assert [t["caption"] for t in pending] == ["Ada Lovelace", "Rear Admiral"]
    assert data(fresh.predict(api_name="/jobs")[0]) == jobs_before
    assert [r.name for r in app.services.library.list()] == names_before
    fresh.predict(3, api_name="/clear_people")
    assert "add at least one person" in error_of(fresh, 3, api_name="/train")


def test_bad_stories_are_refused(client, trained, split):
    assert "the story is empty" in error_of(client, "   ", CAST, api_name="/process_text")
    assert "the story names no one in the library (Eileen Collins, Grace Hopper)" in error_of(
        client, "A cat sat on the mat.", [], api_name="/process_text"
    )
    assert "names no one in the cast" in error_of(client, "A cat sat on the mat.", CAST, api_name="/process_text")
    assert "did you mean 'Grace Hopper'" in error_of(client, STORY, ["Grace Hoper"], api_name="/process_text")
    assert "panel list is empty" in error_of(client, panels=frame([]), cast=CAST, steps="2", api_name="/generate")
    assert "drawing steps must be a whole number from 1" in error_of(client, panels=split[0], cast=CAST, steps="0",
                                                                     api_name="/generate")  # fmt: skip
    assert "'Ada Lovelace' is not in the cast" in error_of(
        client, panels=split[0], cast=CAST, scenes=split[1], lines=frame([[1, "Ada Lovelace", "speech", "Hi"]]),
        steps="2", api_name="/generate",
    )  # fmt: skip
    assert "from 1 to 4" in error_of(client, "9", api_name="/regenerate_panel")


def test_redraw_before_a_comic_says_what_to_do(app):
    fresh = Client(app.url, verbose=False)
    assert "make a comic first" in error_of(fresh, "1", api_name="/regenerate_panel")


# -- network safety ----------------------------------------------------------------------------


def test_non_local_host_needs_a_password():
    from storyface.app.ui import launch, parse_auth, resolve_auth

    assert resolve_auth("127.0.0.1", None, {}) is None
    assert resolve_auth("0.0.0.0", None, {"STORYFACE_AUTH": "ann:s3:cret"}) == ("ann", "s3:cret")
    assert resolve_auth("0.0.0.0", "bob:pw", {}) == ("bob", "pw")
    with pytest.raises(InputError, match="without a password"):
        resolve_auth("0.0.0.0", None, {})
    with pytest.raises(InputError, match="user:password"):
        parse_auth("justapassword")
    with pytest.raises(InputError, match="without a password"):  # before any model is loaded
        launch("no/such-model", host="0.0.0.0", block=False)


def test_auth_is_enforced(app, tmp_path, start_app):
    locked = start_app(app.services.model, tmp_path, auth="ann:pw")
    try:
        with pytest.raises(AuthenticationError):
            Client(locked.url, verbose=False)
        with pytest.raises(ValueError, match="Could not login"):  # wrong password
            Client(locked.url, auth=("ann", "wrong"), verbose=False)
        ok = Client(locked.url, auth=("ann", "pw"), verbose=False)
        assert data(ok.predict(api_name="/jobs")[0]) == []
    finally:
        locked.close()


# -- one device: training and rendering take turns ---------------------------------------------


def test_training_and_rendering_wait_for_the_device(app, client, split, grace_hopper_path):
    """While something holds the device, neither a queued job nor a render starts; both run after."""
    fresh = Client(app.url, verbose=False)
    fresh.predict(handle_file(str(grace_hopper_path)), "Sally Ride", True, 3, api_name="/add_person")
    with app.services.device_lock:
        fresh.predict(3, api_name="/train")
        render = fresh.submit(panels=split[0], cast=CAST, scenes=split[1], lines=split[2], steps="2",
                              api_name="/generate")  # fmt: skip
        time.sleep(2.0)
        sally = [row for row in data(fresh.predict(api_name="/jobs")[0]) if row[0] == "Sally Ride"]
        assert sally[0][1] in ("waiting", "training") and sally[0][2] in ("0/3", "")  # no step taken
        assert not render.done()
    *_, record, _status, _panel, _result = render.result(timeout=120)
    assert len(record["panels"]) == 4
    rows = wait_for_jobs(fresh)
    assert [row[1] for row in rows if row[0] == "Sally Ride"] == ["done"]
