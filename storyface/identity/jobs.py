"""Training jobs that survive restarts: a queue in the library's database and a worker that drains it.

A job keeps its own copy of the uploaded photo (``uploads/<job id>.<ext>``), so closing the browser
or restarting the app loses nothing. The copy is deleted once the job is done or cancelled (the
identity keeps the aligned headshot) and kept when it failed, so the user can look at it.

A worker runs one job at a time (on CPU, run one worker). If a worker process dies mid-job, the
job is found ``running`` with a dead ``worker_pid`` and re-queued once; the second death fails it.
The identity row and the job's ``done`` state commit in one transaction, so a crash can never
leave a finished identity behind a job that will train it again.

Run a worker process::

    python -m storyface.identity.jobs [--data-dir DIR] [--once] [--train-fn MODULE:NAME]

The training function defaults to :class:`StoryFaceTrainer`; ``--train-fn`` or the environment
variable ``STORYFACE_TRAIN_FN`` (e.g. ``test_jobs:slow_train``) replace it, which is how tests run
a slow fake trainer. It is never taken from job params: a job must not choose what code runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import io
import json
import logging
import os
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..errors import ImageError, InputError, StoryFaceError
from .library import (
    TMP_PREFIX,
    DuplicateNameError,
    IdentityLibrary,
    clean_consent,
    connect,
    name_key,
    normalize_name,
    now_iso,
    transaction,
)
from .tokens import Identity

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
MAX_ATTEMPTS = 2  # a job whose worker died this many times is failed, not retried
DIED_TWICE = "worker died twice while training"
MAX_PHOTO_BYTES = 25 * 1024 * 1024
UPLOADS_DIR = "uploads"
TRAIN_FN_ENV = "STORYFACE_TRAIN_FN"
DEFAULT_TRAIN_FN = "storyface.identity.jobs:StoryFaceTrainer"
PID_CLOCK_SLACK_S = 5.0  # process start times are only known to ~1 s; see worker_alive
IMAGE_EXTS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp", "GIF": "gif"}

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL DEFAULT 'train',
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
        name TEXT NOT NULL,
        name_key TEXT NOT NULL,
        photo_path TEXT NOT NULL,  -- relative to the data dir
        photo_sha256 TEXT NOT NULL,
        model TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        consent_by TEXT,
        step INTEGER NOT NULL DEFAULT 0,
        total INTEGER,
        loss REAL,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,  -- how many times a worker started it
        worker_pid INTEGER,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        identity_id TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created_at)",
    # One queued-or-running job per name: the database itself refuses a second.
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_active_name ON jobs (name_key) WHERE state IN ('queued', 'running')",
)


class UnknownJobError(InputError):
    """No job with that id."""


class JobCancelled(StoryFaceError):
    """The job was cancelled while its result was being stored; nothing was written."""


Progress = Callable[[int, int, float], None]  # (step, total, loss)


@dataclasses.dataclass(frozen=True)
class JobRecord:
    """One training job as stored; ``step``/``total``/``loss`` are the latest progress report."""

    id: str
    kind: str
    state: str
    name: str
    photo_path: Path
    photo_sha256: str
    model: str
    params: dict[str, Any]
    consent_by: str | None
    step: int
    total: int | None
    loss: float | None
    error: str | None
    attempts: int
    worker_pid: int | None
    cancel_requested: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    identity_id: str | None

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["photo_path"] = str(self.photo_path)
        return out


TrainFn = Callable[[JobRecord, Progress, Callable[[], bool]], "tuple[Identity, Image.Image | None]"]


# -- pure helpers ------------------------------------------------------------------------------


def image_ext(data: bytes, label: str) -> str:
    """The file extension for an uploaded photo, or an :class:`ImageError` if it is no image."""
    if len(data) > MAX_PHOTO_BYTES:
        raise ImageError(f"{label} is {len(data) // 2**20} MB; use a photo under {MAX_PHOTO_BYTES // 2**20} MB")
    from ..faces.io import MAX_PIXELS, MIN_SIDE

    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (width, height) = im.format or "", im.size
            im.verify()
    except UnidentifiedImageError:
        raise ImageError(f"{label} is not an image (JPEG, PNG, WebP, ...); upload a photo") from None
    except Image.DecompressionBombError:
        raise ImageError(f"{label} has too many pixels to open safely; downscale it first") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label} is not a readable image ({exc}); upload a JPEG or PNG photo") from exc
    if width * height > MAX_PIXELS or min(width, height) < MIN_SIDE:
        raise ImageError(
            f"{label} is {width}x{height} px; use a photo of at most {MAX_PIXELS // 1_000_000} Mpx "
            f"and at least {MIN_SIDE} px on each side"
        )
    return IMAGE_EXTS.get(fmt, fmt.lower() or "img")


def params_json(params: dict[str, Any] | None) -> str:
    if params is None:
        return "{}"
    if not isinstance(params, dict):
        raise InputError(f"training params must be a mapping, got {type(params).__name__}")
    try:
        return json.dumps(params, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"training params must be plain JSON values: {exc}") from exc


def worker_alive(pid: int | None, started_at: str | None) -> bool:
    """Whether the process that claimed a job still runs (zombies and reused pids count as dead)."""
    if pid is None:
        return False
    try:
        import psutil  # installed with accelerate
    except ImportError:  # pragma: no cover - fallback without process start times
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    if started_at is None:
        return True
    # A process started after the job was claimed is another program that got the same pid.
    return created <= datetime.fromisoformat(started_at).timestamp() + PID_CLOCK_SLACK_S


def load_train_fn(spec: str) -> TrainFn:
    """``"package.module:name"`` -> the callable (a class is instantiated with no arguments)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"train function {spec!r} must look like 'package.module:function'")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"cannot load train function {spec!r}: {exc}") from exc
    fn = target() if isinstance(target, type) else target
    if not callable(fn):
        raise InputError(f"train function {spec!r} is not callable")
    return fn


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- the queue ---------------------------------------------------------------------------------


class JobQueue:
    """Training jobs in the library's database; safe across threads and processes."""

    def __init__(self, library: IdentityLibrary) -> None:
        self.library = library
        self.root = library.root
        self.db_path = library.db_path
        self.uploads_dir = self.root / UPLOADS_DIR
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        with transaction(self.db_path) as con:
            for statement in SCHEMA:
                con.execute(statement)
        self.recover_stale()

    def remove_leftovers(self) -> None:
        """Remove half-written uploads of a crashed submit; the worker calls this when it starts."""
        with transaction(self.db_path) as con:
            self._remove_orphan_uploads(con)

    def submit(
        self,
        photo: str | os.PathLike | bytes,
        name: str,
        model: str,
        params: dict[str, Any] | None = None,
        consent_by: str | None = None,
    ) -> JobRecord:
        """Queue training; the photo is copied into the data dir before this returns."""
        name = normalize_name(name)
        if not isinstance(model, str) or not model.strip():
            raise InputError("a base model is required (a hub id, a folder, a .safetensors file or 'tiny')")
        data, label = self._photo_bytes(photo)
        ext = image_ext(data, label)
        job_id = uuid.uuid4().hex
        upload = self.uploads_dir / f"{job_id}.{ext}"
        row = {
            "id": job_id, "kind": "train", "state": "queued", "name": name, "name_key": name_key(name),
            "photo_path": f"{UPLOADS_DIR}/{upload.name}", "photo_sha256": hashlib.sha256(data).hexdigest(),
            "model": model.strip(), "params": params_json(params),
            "consent_by": clean_consent(consent_by),
            "created_at": now_iso(),
        }  # fmt: skip
        try:
            with transaction(self.db_path) as con:
                self._insert(con, row)
                _write_atomic(upload, data)
        except BaseException:
            upload.unlink(missing_ok=True)
            raise
        log.info("queued training job %s for %r", job_id, name)
        return self.get(job_id)

    def list(self, state: str | None = None) -> list[JobRecord]:
        """Jobs oldest first; a job whose worker died shows as re-queued or failed, not running."""
        self.recover_stale()
        query, args = "SELECT * FROM jobs", ()
        if state is not None:
            query, args = query + " WHERE state = ?", (state,)
        with connect(self.db_path) as con:
            rows = con.execute(query + " ORDER BY created_at, rowid", args).fetchall()
        return [self._record(row) for row in rows]

    def get(self, job_id: str) -> JobRecord:
        """By id or a unique prefix of it (at least 4 characters), as the CLI accepts."""
        with connect(self.db_path) as con:
            return self._get(con, job_id)

    def cancel(self, job_id: str) -> JobRecord:
        """A queued job stops at once; a running one stops at its worker's next step."""
        with transaction(self.db_path) as con:
            job = self._get(con, job_id)
            if job.state == "queued":
                self._end(con, job.id, "cancelled")
            elif job.state == "running":
                con.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job.id,))
            else:
                raise InputError(f"job {job.id[:8]} ({job.name!r}) is already {job.state}; nothing to cancel")
        if job.state == "queued":
            self.discard_upload(job)
        return self.get(job.id)

    def claim_next(self, worker_pid: int) -> JobRecord | None:
        """Take the oldest queued job for this worker; two workers never get the same one."""
        self.recover_stale()
        with transaction(self.db_path) as con:
            row = con.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at, rowid LIMIT 1").fetchone()
            if row is None:
                return None
            con.execute(
                """UPDATE jobs SET state = 'running', worker_pid = ?, started_at = ?, attempts = attempts + 1,
                   step = 0, total = NULL, loss = NULL, error = NULL, cancel_requested = 0 WHERE id = ?""",
                (worker_pid, now_iso(), row["id"]),
            )
            return self._get(con, row["id"])

    def report_progress(self, job_id: str, step: int, total: int, loss: float) -> None:
        with transaction(self.db_path) as con:
            con.execute(
                "UPDATE jobs SET step = ?, total = ?, loss = ? WHERE id = ? AND state = 'running'",
                (int(step), int(total), float(loss), job_id),
            )

    def cancel_requested(self, job_id: str) -> bool:
        """What a worker checks between steps (also true if the job is no longer running)."""
        with connect(self.db_path) as con:
            row = con.execute("SELECT state, cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row is None or row["state"] != "running" or bool(row["cancel_requested"])

    def finish(self, job_id: str, identity_id: str) -> None:
        with transaction(self.db_path) as con:
            self.mark_done(con, job_id, identity_id)
        self.discard_upload(self.get(job_id))

    def fail(self, job_id: str, reason: str) -> None:
        with transaction(self.db_path) as con:
            self._end(con, job_id, "failed", reason)
        log.warning("training job %s failed: %s", job_id, reason)

    def mark_done(self, con: sqlite3.Connection, job_id: str, identity_id: str) -> None:
        """Inside the caller's transaction: the job succeeded, unless it was cancelled meanwhile."""
        row = con.execute("SELECT state, cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None or row["state"] != "running":
            raise InputError(f"job {job_id[:8]} is not running; cannot mark it done")
        if row["cancel_requested"]:
            raise JobCancelled(f"job {job_id[:8]} was cancelled")
        con.execute(
            "UPDATE jobs SET state = 'done', identity_id = ?, finished_at = ? WHERE id = ?",
            (identity_id, now_iso(), job_id),
        )

    def end(self, job_id: str, state: str, error: str | None = None) -> None:
        """Move a queued or running job to ``cancelled``/``failed``; a finished job stays as it is."""
        with transaction(self.db_path) as con:
            self._end(con, job_id, state, error)
        job = self.get(job_id)
        if job.state == "cancelled":
            self.discard_upload(job)

    def requeue(self, job_id: str) -> None:
        """Put back a job its worker was asked to stop (shutdown), without counting an attempt."""
        with transaction(self.db_path) as con:
            con.execute(
                """UPDATE jobs SET state = 'queued', worker_pid = NULL, started_at = NULL, step = 0,
                   attempts = MAX(attempts - 1, 0) WHERE id = ? AND state = 'running'""",
                (job_id,),
            )

    def discard_upload(self, job: JobRecord) -> None:
        """The photo copy is only needed until the identity (with its headshot) exists."""
        job.photo_path.unlink(missing_ok=True)

    def recover_stale(self) -> list[str]:
        """Re-queue (once) or fail jobs whose worker process is gone; returns their ids."""
        with connect(self.db_path) as con:
            running = con.execute("SELECT id, worker_pid, started_at FROM jobs WHERE state = 'running'").fetchall()
        dead = [r for r in running if not worker_alive(r["worker_pid"], r["started_at"])]
        if not dead:
            return []
        with transaction(self.db_path) as con:
            return [r["id"] for r in dead if self._recover_one(con, r["id"], r["worker_pid"])]

    # -- internals --------------------------------------------------------------------------

    def _recover_one(self, con: sqlite3.Connection, job_id: str, pid: int | None) -> bool:
        row = con.execute(
            "SELECT * FROM jobs WHERE id = ? AND state = 'running' AND worker_pid IS ?", (job_id, pid)
        ).fetchone()
        if row is None:  # another process recovered it first
            return False
        if row["cancel_requested"]:
            self._end(con, job_id, "cancelled")
        elif row["attempts"] >= MAX_ATTEMPTS:
            self._end(con, job_id, "failed", DIED_TWICE)
        else:
            con.execute(
                """UPDATE jobs SET state = 'queued', worker_pid = NULL, started_at = NULL, step = 0,
                   loss = NULL WHERE id = ?""",
                (job_id,),
            )
        log.warning("worker %s of job %s died; job is now %s", pid, job_id[:8], self._get(con, job_id).state)
        return True

    def _end(self, con: sqlite3.Connection, job_id: str, state: str, error: str | None = None) -> None:
        con.execute(
            "UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ? AND state IN ('queued', 'running')",
            (state, error, now_iso(), job_id),
        )

    def _insert(self, con: sqlite3.Connection, row: dict[str, Any]) -> None:
        if self.library.name_taken(con, row["name"]):
            raise self.library.duplicate_error(con, row["name"])
        try:
            con.execute(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
        except sqlite3.IntegrityError:
            other = con.execute(
                "SELECT id, name, state FROM jobs WHERE name_key = ? AND state IN ('queued', 'running')",
                (row["name_key"],),
            ).fetchone()
            detail = f"job {other['id'][:8]} for {other['name']!r} is already {other['state']}" if other else "a job clashes"
            raise DuplicateNameError(f"{detail} (names ignore case); wait for it, cancel it, or pick another name") from None

    def _photo_bytes(self, photo: str | os.PathLike | bytes) -> tuple[bytes, str]:
        if isinstance(photo, (bytes, bytearray)):
            return bytes(photo), "the uploaded photo"
        path = Path(photo).expanduser()
        if not path.is_file():
            raise ImageError(f"{path}: no such photo")
        if path.stat().st_size > MAX_PHOTO_BYTES:
            raise ImageError(f"{path.name} is over {MAX_PHOTO_BYTES // 2**20} MB; use a smaller photo")
        return path.read_bytes(), path.name

    def _record(self, row: sqlite3.Row) -> JobRecord:
        values = {f.name: row[f.name] for f in dataclasses.fields(JobRecord)}
        values.update(
            photo_path=self.root / values["photo_path"],
            params=json.loads(values["params"]),
            cancel_requested=bool(values["cancel_requested"]),
        )
        return JobRecord(**values)

    def _get(self, con: sqlite3.Connection, job_id: str) -> JobRecord:
        job_id = str(job_id).strip().lower()
        row = con.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None and len(job_id) >= 4 and job_id.isalnum():
            rows = con.execute("SELECT * FROM jobs WHERE id LIKE ? LIMIT 2", (job_id + "%",)).fetchall()
            if len(rows) > 1:
                raise UnknownJobError(f"job id {job_id!r} matches several jobs; type more of it")
            row = rows[0] if rows else None
        if row is None:
            raise UnknownJobError(f"no job with id {job_id!r}; list jobs to see their ids")
        return self._record(row)

    def _remove_orphan_uploads(self, con: sqlite3.Connection) -> None:
        """Half-written uploads (``.tmp-`` files: a crash inside submit); called under the write lock.

        Only files the queue marked as temporary are removed. A finished photo without a job row (a
        lost or older database) is the user's upload: it stays where it is, and the log says so.
        """
        known = {Path(r["photo_path"]).name for r in con.execute("SELECT photo_path FROM jobs")}
        for entry in self.uploads_dir.iterdir():
            if entry.is_file() and entry.name.startswith(TMP_PREFIX):
                log.warning("removing half-written upload %s", entry)
                entry.unlink(missing_ok=True)
            elif entry.is_file() and entry.name not in known:
                log.warning("upload %s has no job (a lost or older database?); kept", entry)


# -- the worker --------------------------------------------------------------------------------


class _StopCheck:
    """``should_stop`` for one job: cancel (polled from the database) or worker shutdown."""

    def __init__(self, queue: JobQueue, job_id: str, stop_event: threading.Event, poll_s: float) -> None:
        self.queue, self.job_id, self.stop_event, self.poll_s = queue, job_id, stop_event, poll_s
        self.fired = False  # once True, what train_fn returns is not a finished identity
        self._cancel = False
        self._last = float("-inf")

    def __call__(self) -> bool:
        if self.stop_event.is_set():
            self.fired = True
        elif time.monotonic() - self._last >= self.poll_s:
            self._last = time.monotonic()
            self._cancel = self.queue.cancel_requested(self.job_id)
        self.fired = self.fired or self._cancel
        return self.fired


class Worker:
    """Runs queued jobs one at a time with an injected ``train_fn``.

    ``train_fn(job, progress, should_stop) -> (identity, headshot)`` reports ``progress(step, total,
    loss)`` and should return or raise soon after ``should_stop()`` is true; the job then ends
    cancelled (or goes back to the queue if the worker itself is stopping) and nothing is written.
    """

    def __init__(
        self,
        queue: JobQueue,
        train_fn: TrainFn,
        *,
        pid: int | None = None,
        stop_event: threading.Event | None = None,
        cancel_poll_s: float = 0.2,
    ) -> None:
        self.queue = queue
        self.train_fn = train_fn
        self.pid = pid if pid is not None else os.getpid()
        self.stop_event = stop_event or threading.Event()  # set: finish no new job, put the current one back
        self.cancel_poll_s = cancel_poll_s
        queue.remove_leftovers()

    def run_once(self) -> bool:
        """Run the next queued job to its end; False if there was none."""
        job = self.queue.claim_next(self.pid)
        if job is None:
            return False
        log.info("training %r (job %s, attempt %d)", job.name, job.id[:8], job.attempts)
        self._run(job)
        return True

    def run_forever(self, stop_event: threading.Event, poll_s: float = 1.0) -> None:
        """Until ``stop_event`` is set; a job in progress is asked to stop and re-queued."""
        self.stop_event = stop_event
        while not stop_event.is_set():
            if not self.run_once():
                stop_event.wait(poll_s)

    def _run(self, job: JobRecord) -> None:
        should_stop = _StopCheck(self.queue, job.id, self.stop_event, self.cancel_poll_s)
        try:
            identity, headshot = self.train_fn(job, self._progress(job.id), should_stop)
            failure = None
        except StoryFaceError as exc:
            failure = str(exc)
        except Exception as exc:
            log.exception("training job %s crashed", job.id)
            failure = f"internal error: {type(exc).__name__}: {exc}"
        if should_stop.fired:
            self._interrupted(job)
        elif failure is not None:
            self.queue.fail(job.id, failure)
        else:
            self._store(job, identity, headshot)

    def _progress(self, job_id: str) -> Progress:
        def progress(step: int, total: int, loss: float) -> None:
            self.queue.report_progress(job_id, step, total, loss)

        return progress

    def _interrupted(self, job: JobRecord) -> None:
        if self.stop_event.is_set() and not self.queue.cancel_requested(job.id):
            self.queue.requeue(job.id)
            log.info("job %s put back in the queue: worker stopping", job.id[:8])
        else:
            self.queue.end(job.id, "cancelled")
            log.info("job %s cancelled", job.id[:8])

    def _store(self, job: JobRecord, identity: Identity, headshot: Image.Image | None) -> None:
        """Identity row and job ``done`` commit together."""
        identity = dataclasses.replace(identity, name=job.name)
        try:
            self.queue.library.add(
                identity,
                headshot,
                job.consent_by,
                base_model=identity.metadata.get("base_model") or job.model,
                photo_sha256=job.photo_sha256,
                in_transaction=lambda con, record: self.queue.mark_done(con, job.id, record.id),
            )
        except JobCancelled:
            self.queue.end(job.id, "cancelled")
            return
        except StoryFaceError as exc:
            self.queue.fail(job.id, str(exc))
            return
        except Exception as exc:
            log.exception("storing the identity of job %s failed", job.id)
            self.queue.fail(job.id, f"internal error: {type(exc).__name__}: {exc}")
            return
        self.queue.discard_upload(job)
        log.info("job %s done: identity %r stored", job.id[:8], job.name)


# -- the real training function ----------------------------------------------------------------


class StoryFaceTrainer:
    """photo -> headshot -> face features -> :func:`train.train_identity`; keeps one model loaded.

    Job params: ``face_encoder`` (default ``"dlib"``), ``face_encoder_model``, ``parsing_model``;
    every other key is a ``TrainConfig`` field.
    """

    def __init__(self) -> None:
        self._model: Any = None

    def __call__(self, job: JobRecord, progress: Progress, should_stop: Callable[[], bool]) -> tuple[Identity, Image.Image]:
        from pydantic import ValidationError

        from ..faces import get_face_encoder
        from .subject import subject_from_photo
        from .train import TrainConfig, train_identity

        params = dict(job.params)
        encoder_name = str(params.pop("face_encoder", "dlib"))
        encoder_model = params.pop("face_encoder_model", None)
        parsing_model = params.pop("parsing_model", None)
        try:
            config = TrainConfig(**params)
        except ValidationError as exc:
            raise InputError(f"bad training settings for job {job.id[:8]}: {exc}") from exc
        model = self._load(job.model)
        encoder = get_face_encoder(encoder_name, **({"model": encoder_model} if encoder_model else {}))
        subject, headshot = subject_from_photo(job.photo_path, job.name, encoder, parsing_model=parsing_model)
        identity = train_identity(model, subject, config, progress=progress, should_stop=should_stop)
        return identity, headshot.image

    def _load(self, source: str) -> Any:
        from ..models import load_model

        if self._model is None or self._model.source != source:
            self._model = None  # free the old pipeline before loading the next
            self._model = load_model(source)
        return self._model


# -- worker process ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m storyface.identity.jobs``; SIGTERM/SIGINT stop it cleanly."""
    from ..paths import data_dir

    parser = argparse.ArgumentParser(prog="python -m storyface.identity.jobs", description="Run a training worker.")
    parser.add_argument("--data-dir", help="StoryFace data folder (default: $STORYFACE_HOME or the platform default)")
    parser.add_argument(
        "--train-fn",
        default=os.environ.get(TRAIN_FN_ENV) or DEFAULT_TRAIN_FN,
        help=f"MODULE:NAME of the training function (default: ${TRAIN_FN_ENV} or {DEFAULT_TRAIN_FN})",
    )
    parser.add_argument("--once", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between queue checks when idle")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    queue = JobQueue(IdentityLibrary(data_dir(args.data_dir)))
    stop = threading.Event()
    worker = Worker(queue, load_train_fn(args.train_fn), stop_event=stop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("worker %d on %s", worker.pid, queue.root)
    if args.once:
        while not stop.is_set() and worker.run_once():
            pass
    else:
        worker.run_forever(stop, args.poll)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
