"""Training jobs: queue, worker, cancel, and recovery after a worker is killed.

The fake trainers below are also run by worker subprocesses through
``STORYFACE_TRAIN_FN=test_jobs:slow_train`` (with this folder on PYTHONPATH).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest
import torch
from PIL import Image

from storyface.errors import ImageError, InputError, NoFaceError
from storyface.identity.jobs import DIED_TWICE, JobQueue, JobRecord, Worker, load_train_fn, worker_alive
from storyface.identity.library import DB_NAME, DuplicateNameError, IdentityLibrary
from storyface.identity.tokens import Identity

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


# -- fake trainers (also used by worker subprocesses) -------------------------------------------


def tiny_identity(name: str) -> Identity:
    gen = torch.Generator().manual_seed(len(name))
    rows = {"clip_l": torch.randn(2, 32, generator=gen), "clip_g": torch.randn(2, 64, generator=gen)}
    return Identity(name, "sdxl", rows, {"tiny": "true"})


def _result(job: JobRecord) -> tuple[Identity, Image.Image]:
    return tiny_identity(job.name), Image.open(job.photo_path).convert("RGB").resize((64, 64))


def fast_train(job: JobRecord, progress: Callable[[int, int, float], None], should_stop: Callable[[], bool]):
    for step in range(1, 4):
        if should_stop():
            raise InputError("stopped")
        progress(step, 3, 1.0 / step)
    return _result(job)


def slow_train(job: JobRecord, progress: Callable[[int, int, float], None], should_stop: Callable[[], bool]):
    """Sleeps between steps so a test can kill the worker mid-job."""
    total = int(job.params.get("steps", 1000))
    for step in range(1, total + 1):
        if should_stop():
            raise InputError("stopped")
        time.sleep(float(job.params.get("sleep", 0.05)))
        progress(step, total, 1.0 / step)
    return _result(job)


# -- helpers -----------------------------------------------------------------------------------


@pytest.fixture()
def queue(tmp_path: Path) -> JobQueue:
    return JobQueue(IdentityLibrary(tmp_path / "data"))


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.name.startswith(DB_NAME))


def raw_job(root: Path, job_id: str) -> dict:
    """The row as stored, read without the queue (so without its recovery)."""
    con = sqlite3.connect(root / DB_NAME)
    con.row_factory = sqlite3.Row
    try:
        return dict(con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())
    finally:
        con.close()


def start_worker(root: Path, train_fn: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "STORYFACE_TRAIN_FN": train_fn}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "storyface.identity.jobs", "--data-dir", str(root), "--poll", "0.1", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(check: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- submit ------------------------------------------------------------------------------------


def test_submit_keeps_a_copy_of_the_photo(queue: JobQueue, astronaut_path: Path, grace_hopper_path: Path) -> None:
    job = queue.submit(astronaut_path, " Eileen  Collins ", "tiny", {"steps": 5}, consent_by="Eileen Collins")
    assert job.state == "queued" and job.name == "Eileen Collins" and job.kind == "train"
    assert job.photo_path == queue.root / "uploads" / f"{job.id}.png"
    assert job.photo_path.read_bytes() == astronaut_path.read_bytes()
    assert job.photo_sha256 == hashlib.sha256(astronaut_path.read_bytes()).hexdigest()
    assert job.params == {"steps": 5} and job.consent_by == "Eileen Collins" and job.attempts == 0

    other = queue.submit(grace_hopper_path.read_bytes(), "Grace Hopper", "tiny", None, None)
    assert other.photo_path.suffix == ".jpg" and other.photo_path.read_bytes() == grace_hopper_path.read_bytes()
    assert [j.id for j in queue.list()] == [job.id, other.id]
    assert queue.get(job.id[:6]) == job  # the CLI may type a prefix
    reopened = JobQueue(IdentityLibrary(queue.root))  # a restart loses nothing
    assert [j.to_dict() for j in reopened.list()] == [j.to_dict() for j in queue.list()]


def test_only_half_written_uploads_are_removed(queue: JobQueue, astronaut_path: Path) -> None:
    """A crashed submit leaves a .tmp- upload (removed when a worker starts); an upload whose job row
    is missing (a lost or older database) is the user's photo and stays."""
    half = queue.uploads_dir / ".tmp-0123abcd.png"
    half.write_bytes(b"partial")
    orphan = queue.uploads_dir / ("c" * 32 + ".png")
    orphan.write_bytes(astronaut_path.read_bytes())
    JobQueue(queue.library).list()  # reading deletes nothing
    assert half.exists() and orphan.exists()
    Worker(queue, fast_train)
    assert not half.exists() and orphan.read_bytes() == astronaut_path.read_bytes()


def test_submit_refuses_bad_input_writing_nothing(queue: JobQueue, astronaut_path: Path) -> None:
    queue.library.add(tiny_identity("Grace Hopper"), None, None)
    queue.submit(astronaut_path, "Eileen Collins", "tiny", {}, None)
    before = tree(queue.root), [j.to_dict() for j in queue.list()]
    with pytest.raises(DuplicateNameError, match="identity named 'Grace Hopper' already exists"):
        queue.submit(astronaut_path, "GRACE hopper", "tiny", {}, None)
    with pytest.raises(DuplicateNameError, match="already queued"):
        queue.submit(astronaut_path, "eileen COLLINS", "tiny", {}, None)
    with pytest.raises(ImageError):
        queue.submit(b"this is not a photo", "Somebody", "tiny", {}, None)
    with pytest.raises(ImageError):
        queue.submit(queue.root / "missing.jpg", "Somebody", "tiny", {}, None)
    with pytest.raises(InputError, match="JSON"):
        queue.submit(astronaut_path, "Somebody", "tiny", {"when": datetime.now()}, None)
    with pytest.raises(InputError, match="base model"):
        queue.submit(astronaut_path, "Somebody", "  ", {}, None)
    with pytest.raises(InputError):
        queue.submit(astronaut_path, "some/body", "tiny", {}, None)
    assert (tree(queue.root), [j.to_dict() for j in queue.list()]) == before


# -- worker in this process --------------------------------------------------------------------


def test_worker_trains_and_stores_identity(queue: JobQueue, astronaut_path: Path) -> None:
    job = queue.submit(astronaut_path, "Eileen Collins", "tiny", {}, consent_by="Eileen Collins")
    seen: list[tuple[str, int]] = []

    def train(job: JobRecord, progress, should_stop):
        for step in (1, 2):
            progress(step, 2, 0.5 / step)
            running = queue.get(job.id)
            seen.append((running.state, running.step))
        return _result(job)

    worker = Worker(queue, train)
    assert worker.run_once() is True and worker.run_once() is False
    assert seen == [("running", 1), ("running", 2)]
    done = queue.get(job.id)
    assert (done.state, done.step, done.total, done.loss, done.attempts) == ("done", 2, 2, 0.25, 1)
    assert done.worker_pid == os.getpid() and done.started_at and done.finished_at
    record = queue.library.get("eileen collins")
    assert done.identity_id == record.id and record.base_model == "tiny"
    assert record.photo_sha256 == job.photo_sha256 and record.consent_by == "Eileen Collins"
    assert record.headshot_path is not None and not job.photo_path.exists()  # upload no longer needed


def test_train_errors_fail_the_job(queue: JobQueue, astronaut_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def no_face(job, progress, should_stop):
        raise NoFaceError("no face found in the photo; use a photo where one face is clearly visible")

    def buggy(job, progress, should_stop):
        return {}["missing"]

    a = queue.submit(astronaut_path, "A", "tiny", {}, None)
    Worker(queue, no_face).run_once()
    b = queue.submit(astronaut_path, "B", "tiny", {}, None)
    with caplog.at_level(logging.ERROR, logger="storyface.identity.jobs"):
        Worker(queue, buggy).run_once()
    assert queue.get(a.id).state == "failed" and queue.get(a.id).error.startswith("no face found")
    assert queue.get(b.id).state == "failed" and queue.get(b.id).error == "internal error: KeyError: 'missing'"
    assert "KeyError" in caplog.text
    assert queue.library.list() == [] and a.photo_path.exists()  # failed: the photo stays for a retry
    assert queue.submit(astronaut_path, "a", "tiny", {}, None).state == "queued"  # the name is free again


def test_name_taken_while_queued_fails_without_writing(queue: JobQueue, astronaut_path: Path) -> None:
    job = queue.submit(astronaut_path, "Eileen Collins", "tiny", {}, None)
    queue.library.add(tiny_identity("EILEEN COLLINS"), None, None)  # e.g. an import
    before = [r.id for r in queue.library.list()]
    Worker(queue, fast_train).run_once()
    assert queue.get(job.id).state == "failed" and "already exists" in queue.get(job.id).error
    assert [r.id for r in queue.library.list()] == before
    assert len(list(queue.library.identities_dir.iterdir())) == 1


# -- cancel ------------------------------------------------------------------------------------


def test_cancel_queued_job(queue: JobQueue, astronaut_path: Path) -> None:
    job = queue.submit(astronaut_path, "Eileen Collins", "tiny", {}, None)
    assert queue.cancel(job.id[:8]).state == "cancelled"
    assert not job.photo_path.exists()
    assert Worker(queue, fast_train).run_once() is False
    with pytest.raises(InputError, match="already cancelled"):
        queue.cancel(job.id)


def test_cancel_running_job_writes_nothing(queue: JobQueue, astronaut_path: Path) -> None:
    job = queue.submit(astronaut_path, "Eileen Collins", "tiny", {}, None)
    steps_after_cancel = []

    def train(job: JobRecord, progress, should_stop):
        for step in range(1, 1000):
            progress(step, 1000, 1.0)
            if step == 3:
                assert queue.cancel(job.id).cancel_requested  # as the CLI or web app would, meanwhile
            if should_stop():
                steps_after_cancel.append(step)
                break
            time.sleep(0.01)
        return _result(job)  # even a returned identity must not be stored

    Worker(queue, train).run_once()
    assert queue.get(job.id).state == "cancelled" and steps_after_cancel and steps_after_cancel[0] < 100
    assert queue.library.list() == [] and list(queue.library.identities_dir.iterdir()) == []


def test_cancel_after_training_finished_writes_nothing(queue: JobQueue, astronaut_path: Path) -> None:
    job = queue.submit(astronaut_path, "Eileen Collins", "tiny", {}, None)

    def train(job: JobRecord, progress, should_stop):
        queue.cancel(job.id)  # arrives after the last should_stop() check
        return _result(job)

    Worker(queue, train).run_once()
    assert queue.get(job.id).state == "cancelled"
    assert queue.library.list() == [] and list(queue.library.identities_dir.iterdir()) == []


def test_worker_shutdown_requeues_the_job(queue: JobQueue, astronaut_path: Path) -> None:
    job = queue.submit(astronaut_path, "Eileen Collins", "tiny", {"steps": 1000, "sleep": 0.01}, None)
    stop = threading.Event()
    worker = Worker(queue, slow_train)
    thread = threading.Thread(target=worker.run_forever, args=(stop, 0.05))
    thread.start()
    wait_for(lambda: queue.get(job.id).step >= 2)
    stop.set()
    thread.join(timeout=30)
    again = queue.get(job.id)
    assert not thread.is_alive() and (again.state, again.attempts, again.worker_pid) == ("queued", 0, None)
    assert queue.library.list() == [] and job.photo_path.exists()


# -- claims and dead workers -------------------------------------------------------------------


def test_concurrent_claims_never_share_a_job(queue: JobQueue, astronaut_path: Path) -> None:
    ids = {queue.submit(astronaut_path, f"Person {i}", "tiny", {}, None).id for i in range(8)}
    claimed: list[str] = []

    def claim() -> None:
        while (job := queue.claim_next(os.getpid())) is not None:
            claimed.append(job.id)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(claimed) == sorted(ids)


def test_worker_alive_detects_dead_zombie_and_reused_pids() -> None:
    now = datetime.now(timezone.utc)
    assert worker_alive(os.getpid(), now.isoformat())
    assert not worker_alive(dead_pid(), now.isoformat())
    assert not worker_alive(None, None)
    long_before = datetime.fromtimestamp(psutil.Process().create_time(), timezone.utc) - timedelta(hours=1)
    assert not worker_alive(os.getpid(), long_before.isoformat())  # this pid started after that job: reused
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, timeout=30)
    assert not worker_alive(zombie.pid, now.isoformat())
    zombie.wait()


def test_job_whose_worker_dies_twice_fails(queue: JobQueue, astronaut_path: Path) -> None:
    job = queue.submit(astronaut_path, "Eileen Collins", "tiny", {}, None)
    gone = dead_pid()
    assert queue.claim_next(gone).attempts == 1
    first = next(j for j in queue.list() if j.id == job.id)  # listing notices the dead worker
    assert (first.state, first.attempts, first.worker_pid) == ("queued", 1, None)
    assert queue.claim_next(gone).attempts == 2
    second = queue.list()[0]
    assert (second.state, second.error) == ("failed", DIED_TWICE)
    assert queue.library.list() == []


def test_killed_worker_leaves_nothing_and_job_completes_later(tmp_path: Path, astronaut_path: Path) -> None:
    root = tmp_path / "data"
    queue = JobQueue(IdentityLibrary(root))
    job = queue.submit(astronaut_path, "Eileen Collins", "tiny", {"steps": 10000, "sleep": 0.05}, "Eileen Collins")
    worker = start_worker(root, "test_jobs:slow_train")
    try:
        wait_for(lambda: raw_job(root, job.id)["step"] >= 3 or worker.poll() is not None)
        assert worker.poll() is None, worker.stdout.read()
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    stale = raw_job(root, job.id)
    assert stale["state"] == "running" and stale["worker_pid"] == worker.pid and stale["loss"] is not None

    reopened = JobQueue(IdentityLibrary(root))  # opening recovers
    again = reopened.get(job.id)
    assert (again.state, again.attempts, again.step) == ("queued", 1, 0)
    assert reopened.library.list() == [] and tree(root) == ["identities", "uploads", f"uploads/{job.id}.png"]

    finisher = start_worker(root, "test_jobs:fast_train", "--once")
    out, _ = finisher.communicate(timeout=120)
    assert finisher.returncode == 0, out
    done = reopened.get(job.id)
    record = reopened.library.get("Eileen Collins")
    assert (done.state, done.attempts, done.identity_id) == ("done", 2, record.id)
    assert tree(root) == sorted(
        ["identities", "uploads", f"identities/{record.id}"]
        + [f"identities/{record.id}/{f}" for f in ("embedding.safetensors", "headshot.png", "record.json", "thumb.png")]
    )
    con = sqlite3.connect(root / DB_NAME)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_load_train_fn() -> None:
    assert load_train_fn("test_jobs:fast_train") is fast_train
    assert callable(load_train_fn("storyface.identity.jobs:StoryFaceTrainer"))  # classes are instantiated
    for bad in ("no_colon", "test_jobs:missing", "not_a_module_xyz:f", "test_jobs:TESTS"):
        with pytest.raises(InputError):
            load_train_fn(bad)
