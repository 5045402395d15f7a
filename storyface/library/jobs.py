"""Training jobs that survive restarts: a queue in the library's database.

A job keeps its own copy of the uploaded photo (``uploads/<job id>.<ext>``), so closing the browser
or restarting the app loses nothing. The copy is deleted once the job is done or cancelled (the
identity keeps the aligned headshot) and kept when it failed, so the user can look at it. A job
carries its consent record from the moment it is queued: queueing without one is refused.

If a worker process dies mid-job, the job is found ``running`` with a dead ``worker_pid`` and
re-queued once; the second death fails it. The identity row and the job's ``done`` state commit in
one transaction (see :mod:`storyface.library.worker`), so a crash can never leave a finished identity
behind a job that will train it again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sqlite3
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ImageError, InputError, StoryFaceError
from ..faces.io import check_photo
from ..files import TMP_PREFIX, write_atomic
from ..limits import MAX_PHOTO_BYTES
from ..names import name_key, normalize_name
from ..safety.consent import Consent, require_consent
from .identities import DuplicateNameError, IdentityLibrary
from .records import JobRecord
from .store import UPLOADS_DIR, connect, fs_errors, now_iso, transaction

if TYPE_CHECKING:
    from PIL import Image

    from ..identity.tokens import Identity

log = logging.getLogger(__name__)

STATES = ("queued", "running", "done", "failed", "cancelled")
ACTIVE = ("queued", "running")
MAX_ATTEMPTS = 2  # a job whose worker died this many times is failed, not retried
DIED_TWICE = "worker died twice while training"
PID_CLOCK_SLACK_S = 5.0  # process start times are only known to ~1 s; see worker_alive

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
        consent_at TEXT,
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


TrainFn = Callable[[JobRecord, Progress, Callable[[], bool]], "tuple[Identity, Image.Image | None]"]


# -- pure helpers ------------------------------------------------------------------------------


def params_json(params: dict[str, Any] | None) -> str:
    if params is None:
        return "{}"
    if not isinstance(params, dict):
        raise InputError(f"training params must be a mapping, got {type(params).__name__}")
    try:
        return json.dumps(params, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"training params must be plain JSON values: {exc}") from exc


def _checked_params(params: dict[str, Any] | None) -> str:
    """Plain JSON, and settings the trainer will accept (one schema: LearnSettings), before anything is queued."""
    from ..identity.subject import LearnSettings

    text = params_json(params)
    LearnSettings.from_params(params)
    return text


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


# -- the queue ---------------------------------------------------------------------------------


class JobQueue:
    """Training jobs in the library's database; safe across threads and processes."""

    def __init__(self, library: IdentityLibrary) -> None:
        self.library = library
        self.root = library.root
        self.db_path = library.db_path
        self.uploads_dir = self.root / UPLOADS_DIR
        with fs_errors(self.root, "open the job queue"), transaction(self.db_path) as con:
            self.uploads_dir.mkdir(parents=True, exist_ok=True)
            for statement in SCHEMA:
                con.execute(statement)
            columns = {row["name"] for row in con.execute("PRAGMA table_info(jobs)")}
            if "consent_at" not in columns:  # a queue made before jobs kept when consent was given
                con.execute("ALTER TABLE jobs ADD COLUMN consent_at TEXT")
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
        params: dict[str, Any] | None,
        consent: Consent | str,
    ) -> JobRecord:
        """Queue training with its consent record; the photo is checked and copied into the data dir
        before this returns."""
        name = normalize_name(name)
        consent = require_consent(consent, name)
        if not isinstance(model, str) or not model.strip():
            raise InputError("a base model is required (a hub id, a folder, a .safetensors file or 'tiny')")
        data, label = self._photo_bytes(photo)
        ext = check_photo(data, label)
        job_id = uuid.uuid4().hex
        upload = self.uploads_dir / f"{job_id}.{ext}"
        row = {
            "id": job_id, "kind": "train", "state": "queued", "name": name, "name_key": name_key(name),
            "photo_path": f"{UPLOADS_DIR}/{upload.name}", "photo_sha256": hashlib.sha256(data).hexdigest(),
            "model": model.strip(), "params": _checked_params(params),
            "consent_by": consent.by, "consent_at": consent.at,
            "created_at": now_iso(),
        }  # fmt: skip
        try:
            with fs_errors(self.root, f"queue {name!r}"), transaction(self.db_path) as con:
                self._insert(con, row)
                write_atomic(upload, data)
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
            raise ImageError(
                f"{path.name} is {path.stat().st_size / 1e6:.1f} MB; the limit is {MAX_PHOTO_BYTES / 1e6:.0f} MB. "
                "Save it as a smaller JPEG."
            )
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
