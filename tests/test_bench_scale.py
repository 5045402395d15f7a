"""The multi-GPU scaling benchmark's CPU smoke mode (issue 16): N = 1 and 2 workers on one job queue.

Runs ``bench/bench_scale.py --smoke`` as a user would (a subprocess that spawns its own workers),
then checks the printed table and results.json. Also checks that photos prepared on a machine with
dlib (for a GPU machine without it) give the trainer exactly what the live path gives it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


@pytest.mark.slow
def test_scale_smoke_trains_and_renders_with_one_and_two_workers(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OUT": "", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_scale.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    table = (tmp_path / "table.md").read_text()
    assert table.strip() in proc.stdout
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| GPUs")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [c[0] for c in cells] == ["1", "2"]
    assert all(float(c[1].split()[0]) > 0 and float(c[2].split()[0]) > 0 for c in cells)  # identities/min, pages/min
    assert cells[0][3] == "- / -" and re.fullmatch(r"\d+% / \d+%", cells[1][3])  # efficiency only against N = 1
    assert re.search(r"Card: CPU .*\d{4}-\d\d-\d\d \d\d:\d\d UTC", table)

    results = json.loads((tmp_path / "results.json").read_text())
    runs = results["runs"]
    assert [r["gpus"] for r in runs] == [1, 2] and results["mix"]["model"] == "tiny"
    for run in runs:
        assert run["identities_per_min"] > 0 and run["pages_per_min"] > 0
        assert run["train_wall_s"] > 0 and run["render_wall_s"] > 0
        assert [j["state"] for j in run["jobs"]] == ["done", "done"], run["jobs"]
        assert run["identities_done"] == 2 and run["pages_done"] == 2
        assert sorted(p["page"] for p in run["pages"]) == [0, 1] and all(p["panels"] == 2 for p in run["pages"])
        assert len(run["workers"]) == run["gpus"]
        assert sum(w["jobs"] for w in run["workers"]) == 2 and sum(w["pages"] for w in run["workers"]) == 2
        for worker in run["workers"]:  # the live path preprocesses every photo with dlib, in the worker
            assert worker["start_load_s"] > 0
            if worker["jobs"]:
                assert worker["train_timings"]["preprocess"]["calls"] == worker["jobs"]
                assert worker["train_timings"]["store"]["calls"] == worker["jobs"]
    assert {j["worker"] for j in runs[1]["jobs"]} == {0, 1}  # both workers took a job from the one queue
    assert len({w["pid"] for w in runs[1]["workers"]}) == 2


@pytest.mark.slow
def test_prepared_photos_give_the_trainer_what_the_live_path_gives(tmp_path, astronaut_path, grace_hopper_path):
    sys.path.insert(0, str(BENCH))
    try:
        import scale_workers
    finally:
        sys.path.remove(str(BENCH))
    from storyface import api

    path = tmp_path / "prepared.npz"
    hashes = scale_workers.save_prepared(path, [astronaut_path, grace_hopper_path], "Bench Tester")
    prepared = scale_workers.PreparedPhotos(path)
    assert prepared.photos() == [astronaut_path.read_bytes(), grace_hopper_path.read_bytes()]
    job = SimpleNamespace(id="0123abcd", name="Grace Bench", photo_sha256=hashes[1], params={"steps": 7},
                          consent=api.Consent("Bench Tester"))  # fmt: skip
    person = prepared.person(job)
    live = api.prepare_person(grace_hopper_path, "Grace Bench", "Bench Tester", {"steps": 7})
    assert person.subject.name == "Grace Bench" and person.settings == live.settings
    assert person.subject.photo_sha256 == live.subject.photo_sha256 == hashes[1]
    assert np.array_equal(np.asarray(person.subject.image), np.asarray(live.subject.image))
    for field in ("face_mask", "hair_mask", "features"):
        assert np.array_equal(getattr(person.subject, field), getattr(live.subject, field)), field
    assert np.array_equal(person.headshot.landmarks, live.headshot.landmarks)
    assert person.headshot.source_box == live.headshot.source_box
    with pytest.raises(KeyError, match="not in the prepared photos"):
        prepared.person(SimpleNamespace(**{**vars(job), "photo_sha256": "0" * 64}))
