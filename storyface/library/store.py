"""The library's SQLite database: short-lived connections, write transactions, errors in words.

One database (``library.sqlite3``, WAL mode) holds the identity rows and the job queue; every
operation opens its own connection, so threads and processes can share it. A read-only connection
(SQLite's ``mode=ro``) can never change it, which is what commands that only read use.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from ..errors import StoryFaceError
from ..files import free_bytes

BUSY_TIMEOUT_S = 30.0
NEARLY_FULL_BYTES = 1_000_000  # below this, SQLite's "disk I/O error" is a full disk (its -shm/-wal cannot grow)

# The data folder's layout (owned here, for the identities, the job queue and recovery alike).
DB_NAME = "library.sqlite3"
IDENTITIES_DIR = "identities"  # identities/<uuid>/ with the files below
EMBEDDING_FILE = "embedding.safetensors"
HEADSHOT_FILE = "headshot.png"
THUMB_FILE = "thumb.png"
RECORD_FILE = "record.json"  # the row, mirrored beside the files: a lost database can be rebuilt from it
PENDING = ".pending"  # marker: this folder's add has not committed (a crash leftover if there is no row)
DELETING = ".deleting"  # marker: this folder's delete has started (a crash leftover if there is no row)
ASIDE_DIR = "set-aside"  # identity folders that could not be indexed again are moved here, never deleted
UPLOADS_DIR = "uploads"  # uploads/<job id>.<ext>: a queued job's own copy of its photo


class LibraryError(StoryFaceError):
    """The library's folder or database cannot be used as it is; the message says what to do."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _open_readonly(db_path: Path) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``). Where SQLite cannot create the shared-memory file a WAL reader
    needs (read-only media, a folder this user may not write, a full disk), it reopens with
    ``immutable=1``, which needs none; that is exact only while no write-ahead log holds changes, so
    only then."""
    uri = f"{db_path.as_uri()}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        con.execute("PRAGMA schema_version").fetchone()
        return con
    except sqlite3.OperationalError:
        wal = db_path.with_name(db_path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            con.close()
            raise
    con.close()
    return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)


@contextmanager
def connect(db_path: Path, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    """One short-lived connection; autocommit unless :func:`transaction` opens one."""
    try:
        if readonly:
            con = _open_readonly(db_path)
        else:
            con = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise database_error(db_path, exc) from None
    try:
        con.row_factory = sqlite3.Row
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        if not readonly:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: never corrupt, may lose the last commit on power loss
        yield con
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.IntegrityError):
            raise
        raise database_error(db_path, exc) from None
    finally:
        con.close()


@contextmanager
def transaction(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the write lock up front, so read-then-write never races."""
    with connect(db_path) as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")


def has_table(db_path: Path, table: str) -> bool:
    """Whether the database exists and holds ``table`` (a 0-byte file does not)."""
    if not db_path.is_file():
        return False
    with connect(db_path, readonly=True) as con:
        return con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone() is not None


def _nearly_full(folder: Path) -> bool:
    try:
        return free_bytes(folder) < NEARLY_FULL_BYTES
    except OSError:
        return False


def database_error(db_path: Path, exc: sqlite3.Error) -> LibraryError:
    """A database StoryFace cannot use, said in words; the identity folders beside it are untouched."""
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        why = "is damaged (not a readable SQLite database)"
        fix = f"move it away (e.g. rename it to {db_path.name}.broken) and run `storyface ids recover`"
    elif "readonly" in text or "read-only" in text or (db_path.is_file() and not os.access(db_path.parent, os.W_OK)):
        why = "is read-only for this user (a read-only file system, or no write permission on its folder)"
        fix = "give this user write permission on the data folder, or set STORYFACE_HOME to another folder"
    elif "unable to open" in text:
        why = "cannot be opened (missing, or no permission on its folder)"
        fix = "check the folder's permissions, or set STORYFACE_HOME to the folder that holds your library"
    elif "disk" in text and ("full" in text or _nearly_full(db_path.parent)):  # SQLite says "I/O" when -shm cannot grow
        why = "cannot be written: the disk is full"
        fix = "free some disk space and try again"
    else:
        why, fix = f"cannot be used ({text})", "check the data folder"
    return LibraryError(f"the library database {db_path} {why}; nothing was changed. To fix: {fix}")


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def folder_error(folder: Path, exc: OSError, doing: str) -> LibraryError:
    """A file-system refusal (a full disk, a read-only folder, no permission) said in words."""
    code = exc.errno
    if code in NO_SPACE:
        why, fix = "the disk is full", "free some disk space and try again"
    elif code == errno.EROFS:
        why, fix = "the file system is read-only", "use a writable data folder (set STORYFACE_HOME to one)"
    elif code in (errno.EACCES, errno.EPERM):
        why = "this user has no permission there"
        fix = "give this user read and write permission on the data folder, or set STORYFACE_HOME to another folder"
    elif code in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
        why, fix = f"a file is in the way ({exc.strerror})", "check the data folder, or set STORYFACE_HOME to another folder"
    else:
        why, fix = exc.strerror or str(exc), "check the data folder and the disk"
    where = exc.filename if exc.filename else folder
    return LibraryError(f"cannot {doing} in {folder} ({where}): {why}; nothing was changed. To fix: {fix}")


@contextmanager
def fs_errors(folder: Path, doing: str) -> Iterator[None]:
    """Turn an ``OSError`` of the body into a :class:`LibraryError` that names the folder and the fix."""
    try:
        yield
    except OSError as exc:
        raise folder_error(folder, exc, doing) from None
