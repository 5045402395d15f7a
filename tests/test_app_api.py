"""The web app driven end to end through gradio_client, on the tiny model, with real photos.

One app (model loaded once, training worker thread running) serves the whole module on 127.0.0.1;
every step goes through a named endpoint, as a script or another program would use it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError, AuthenticationError

from storyface.errors import InputError

STORY = (
    "Grace Hopper was fixing a huge computer when Eileen Collins walked in with a flight plan. "
    "She asked Grace to check the navigation code. "
    "At dawn, the two watched a rocket launch together."
)
CAST = ["Eileen Collins", "Grace Hopper"]


@pytest.fixture(scope="module")
def app(tmp_path_factory, start_app):
    running = start_app("tiny", tmp_path_factory.mktemp("app-data"), train_steps=3, render_steps=2)
    yield running
    running.close()


@pytest.fixture(scope="module")
def client(app) -> Client:
    return Client(app.url, verbose=False)


def table(value: dict) -> list[list[str]]:
    return value["data"]


def frame(rows: list[list[str]]) -> dict:
    """A panel table as the Dataframe endpoint takes it."""
    return {"headers": ["sentence", "characters"], "data": rows, "metadata": None}


def wait_for_jobs(client: Client, timeout: float = 120.0) -> list[list[str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = table(client.predict(api_name="/jobs"))
        if rows and all(row[1] in ("done", "failed", "cancelled") for row in rows):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"training jobs did not finish in {timeout}s: {rows}")


def library_names(client: Client) -> list[str]:
    gallery, _cast_choices = client.predict([], api_name="/library")
    return [tile["caption"] for tile in gallery]


@pytest.fixture(scope="module")
def trained(client, astronaut_path, grace_hopper_path) -> list[str]:
    """Both people added one by one (photo + name + consent) and trained through the queue."""
    for path, name in ((astronaut_path, "Eileen Collins"), (grace_hopper_path, "Grace Hopper")):
        pending, photo, name_box, consent = client.predict(handle_file(str(path)), name, True, api_name="/add_person")
        assert pending[-1]["caption"] == name and (photo, name_box, consent) == (None, "", False)
    assert [t["caption"] for t in pending] == CAST
    pending, jobs, status = client.predict(3, api_name="/train")
    assert pending == [] and "queued 2" in status
    assert sorted(row[0] for row in table(jobs)) == CAST
    rows = wait_for_jobs(client)
    assert all(row[1] == "done" and row[2] == "3/3" and float(row[3]) > 0 for row in rows), rows
    return CAST


@pytest.fixture(scope="module")
def script(client, trained) -> dict:
    rows, status = client.predict(STORY, trained, api_name="/process_text")
    assert status.startswith("3 panels (offline parser)")
    return rows


@pytest.fixture(scope="module")
def comic(client, script) -> tuple:
    return client.predict(script, CAST, ["comic style"], "blue sky", "Test page", 5, 2, api_name="/generate")


def error_of(client: Client, *args, api_name: str) -> str:
    with pytest.raises(AppError) as info:
        client.predict(*args, api_name=api_name)
    return str(info.value)


# -- the happy path ----------------------------------------------------------------------------


def test_trained_people_are_in_the_library(client, trained, app):
    assert library_names(client) == CAST
    records = app.services.library.list()
    assert all(r.tiny and r.consent_by and "consent box" in r.consent_by for r in records)
    assert all(r.thumb_path is not None for r in records)  # the gallery shows their faces


def test_process_text_gives_one_row_per_sentence_with_full_names(script):
    rows = table(script)
    assert len(rows) == 3
    assert rows[1] == ["Eileen Collins asked Grace Hopper to check the navigation code.", "Eileen Collins, Grace Hopper"]
    assert set(rows[2][1].split(", ")) == set(CAST)  # "the two" -> both


def test_generate_makes_a_page_with_one_panel_per_sentence(comic, script):
    from storyface.render.pages import plan_pages

    page, tiles, downloads, record, status = comic
    n = len(table(script))
    assert len(record["panels"]) == n and len(tiles) == n
    captions = [t["caption"].split(". ", 1)[1] for t in tiles]
    assert [c.split(" — likeness: ")[0] for c in captions] == [row[0] for row in table(script)]
    for caption, row in zip(captions, table(script)):  # each panel's likeness; the tiny model draws no faces
        assert all(f"{name} not found" in caption for name in row[1].split(", "))
    assert sorted(record["references"]) == sorted(CAST)  # the folder can be re-scored with `storyface eval`
    assert record["tiny"] is True and "noise" in record["notice"]
    assert all("comic book style" in p["prompt"] and "blue sky" in p["prompt"] for p in record["panels"])
    assert [p["seed"] for p in record["panels"]] == [5, 6, 7]
    with Image.open(page) as im:  # a US comic page at print resolution, the grid layout's default
        plan = plan_pages([(128, 128)] * n, "grid", "us-comic", title=None)[0]
        assert im.size == plan.size
    assert sorted(Path(f).suffix for f in downloads) == [".cbz", ".pdf", ".png"]
    assert Path(downloads[0]).stat().st_size > 0 and f"{n} panels" in status


def panel_pixels(out_dir: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted((out_dir / "panels").glob("panel-*.png"))]


def test_regenerate_one_panel_leaves_the_others_alone(client, comic):
    record = comic[3]
    out_dir = Path(record["out_dir"])
    before = panel_pixels(out_dir)
    *_, new_record, _status = client.predict(2, api_name="/regenerate_panel")
    after = panel_pixels(out_dir)
    assert len(after) == len(before) == 3
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[2], after[2])
    assert not np.array_equal(before[1], after[1])
    seeds = [p["seed"] for p in new_record["panels"]]
    assert seeds[0] == 5 and seeds[2] == 7 and seeds[1] != 6
    assert json.loads((out_dir / "comic.json").read_text())["panels"][1]["seed"] == seeds[1]


def test_panel_list_editing(client, script):
    rows = table(script)
    edited = [["Eileen flew to the moon.", ""], *rows]
    updated = table(client.predict(frame(edited), CAST, api_name="/update_panels"))
    assert updated[0] == ["Eileen Collins flew to the moon.", "Eileen Collins"]  # full name spelled, characters
    moved, row = client.predict(frame(updated), 1, CAST, api_name="/move_panel_down")
    assert table(moved)[1][0] == "Eileen Collins flew to the moon." and row == 2
    added, row = client.predict(frame(table(moved)), 2, CAST, api_name="/add_panel")
    assert table(added)[2] == ["", ""] and row == 3 and len(table(added)) == 5
    deleted, row = client.predict(frame(table(moved)), 2, CAST, api_name="/delete_panel")
    assert [r[0] for r in table(deleted)] == [r[0] for r in rows]
    up, row = client.predict(frame(table(moved)), 1, CAST, api_name="/move_panel_up")  # already first: stays
    assert table(up) == table(moved) and row == 1


def test_export_identity_files(client, trained):
    from storyface.identity.tokens import load_identity

    files = client.predict(["Grace Hopper"], api_name="/export_identities")
    assert [Path(f).name for f in files] == ["grace-hopper.safetensors"]
    assert load_identity(files[0]).name == "Grace Hopper"


def test_tiny_model_banner_in_page(app):
    config = httpx.get(app.url.rstrip("/") + "/config", timeout=10).json()
    assert "tiny random-weight test model" in json.dumps(config)


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
    pending, *_ = fresh.predict(handle_file(str(astronaut_path)), "Ada Lovelace", True, api_name="/add_person")
    jobs_before, names_before = table(fresh.predict(api_name="/jobs")), library_names(fresh)
    astro = handle_file(str(astronaut_path))
    cases = {
        "No face found": (handle_file(str(blank_photo)), "Blank Person", True),
        "Found 2 faces": (handle_file(str(two_faces_path)), "Two People", True),
        "a name is required": (astro, "   ", True),
        "already in the library": (handle_file(str(grace_hopper_path)), "grace  HOPPER", True),
        "already on the list": (astro, "Ada Lovelace", True),
        "tick the consent box": (astro, "Someone Else", False),
    }
    for expected, args in cases.items():
        assert expected in error_of(fresh, *args, api_name="/add_person"), expected
    # the one good person is still on the list and trains fine alongside; nothing else was queued
    pending, *_ = fresh.predict(handle_file(str(grace_hopper_path)), "Rear Admiral", True, api_name="/add_person")
    assert [t["caption"] for t in pending] == ["Ada Lovelace", "Rear Admiral"]
    assert table(fresh.predict(api_name="/jobs")) == jobs_before and library_names(fresh) == names_before
    fresh.predict(api_name="/clear_people")
    assert "add at least one person" in error_of(fresh, 3, api_name="/train")


def test_bad_stories_and_casts_are_refused(client, trained, app):
    names_before = library_names(client)
    assert "names no one in the cast" in error_of(client, "A cat sat on the mat.", CAST, api_name="/process_text")
    assert "pick the cast first" in error_of(client, STORY, [], api_name="/process_text")
    assert "did you mean 'Grace Hopper'" in error_of(client, STORY, ["Grace Hoper"], api_name="/process_text")
    assert "the story is empty" in error_of(client, "   ", CAST, api_name="/process_text")
    scene = frame([["A cat sat on the mat.", ""], ["Grace Hopper waves.", ""]])  # a scene panel is drawn, no identity
    page, tiles, *_ = client.predict(scene, CAST, [], "", "", 0, 2, api_name="/generate")
    assert len(tiles) == 2 and Path(page).is_file()
    empty = frame([])
    assert "panel list is empty" in error_of(client, empty, CAST, [], "", "", 0, 2, api_name="/generate")
    assert "not in the list of choices" in error_of(
        client, frame([["Grace Hopper waves.", ""]]), CAST, ["vaporwave"], "", "", 0, 2, api_name="/generate"
    )
    assert "from 1 to" in error_of(client, 9, api_name="/regenerate_panel")
    assert library_names(client) == names_before


def test_regenerate_before_generate_says_what_to_do(app):
    fresh = Client(app.url, verbose=False)
    assert "generate a comic first" in error_of(fresh, 1, api_name="/regenerate_panel")


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
        assert table(ok.predict(api_name="/jobs")) == []
    finally:
        locked.close()


# -- one device: training and rendering take turns ---------------------------------------------


def test_training_and_rendering_wait_for_the_device(app, trained, script, grace_hopper_path):
    """While something holds the device, neither a queued job nor a render starts; both run after."""
    fresh = Client(app.url, verbose=False)
    fresh.predict(handle_file(str(grace_hopper_path)), "Sally Ride", True, api_name="/add_person")
    with app.services.device_lock:
        fresh.predict(3, api_name="/train")
        render = fresh.submit(script, CAST, [], "", "", 0, 2, api_name="/generate")
        time.sleep(2.0)
        sally = [row for row in table(fresh.predict(api_name="/jobs")) if row[0] == "Sally Ride"]
        assert sally[0][1] in ("queued", "running") and sally[0][2] in ("waiting", "")  # no step taken
        assert not render.done()
    *_, record, _status = render.result(timeout=120)
    assert len(record["panels"]) == 3
    rows = wait_for_jobs(fresh)
    assert [row[1] for row in rows if row[0] == "Sally Ride"] == ["done"]
