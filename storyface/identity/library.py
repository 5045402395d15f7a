"""The identity library: every trained person, shared by the CLI, the web app and workers.

Rows live in SQLite (``library.sqlite3``, WAL mode, one connection per operation so threads and
processes can share it); files live in ``identities/<uuid>/`` (``embedding.safetensors``,
``headshot.png``, ``thumb.png``). Names never become paths.

Crash safety without data loss: files are written to ``identities/.tmp-<uuid>`` with a ``.pending``
marker, renamed into place while the write transaction that inserts the row is held, and the marker
goes once the row has committed; a delete marks the folder ``.deleting`` before its row goes. So the
library only ever removes what it marked itself: a ``.tmp-`` folder, or a folder whose marker says its
add or delete never finished. A folder with no row and no marker is a real identity whose row is
missing (an empty, missing or older database: a restore, a sync tool, a wrong file deleted): opening
the library for writing adds its row back from the ``record.json`` kept beside its files, or, when that
cannot be done, moves it aside to ``set-aside/`` and says so. Read-only opens (list, show, load,
export) never write: with rows missing they refuse with a message saying how to recover.
Because recovery takes the same write lock as every add, it never sees another process's add in flight.
"""

from __future__ import annotations

import dataclasses
import difflib
import io
import json
import logging
import os
import re
import shutil
import sqlite3
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from ..errors import IdentityFileError, InputError, StoryFaceError
from .tokens import Identity, identity_token, load_identity, save_identity

log = logging.getLogger(__name__)

DB_NAME = "library.sqlite3"
IDENTITIES_DIR = "identities"
TMP_PREFIX = ".tmp-"
EMBEDDING_FILE = "embedding.safetensors"
HEADSHOT_FILE = "headshot.png"
THUMB_FILE = "thumb.png"
RECORD_FILE = "record.json"  # the row, mirrored beside the files: a lost database can be rebuilt from it
PENDING = ".pending"  # marker: this folder's add has not committed (a crash leftover if there is no row)
DELETING = ".deleting"  # marker: this folder's delete has started (a crash leftover if there is no row)
ASIDE_DIR = "set-aside"  # identity folders that could not be indexed again are moved here, never deleted
THUMB_SIDE = 128  # px, square; enough for a gallery tile
MAX_NAME_CHARS = 80
MAX_IMPORT_BYTES = 16 * 1024 * 1024  # an identity is a few KB; anything huge is not one
MAX_IMPORT_TOKENS = 16
BUSY_TIMEOUT_S = 30.0
# Widths of the real base models' text encoders. Tiny test models differ, hence ``expect_dims``.
FAMILY_DIMS: dict[str, dict[str, int]] = {"sdxl": {"clip_l": 768, "clip_g": 1280}, "sd2": {"emb_params": 1024}}
_UUID_DIR = re.compile(r"^[0-9a-f]{32}$")

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS identities (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL COLLATE NOCASE UNIQUE,
        name_key TEXT NOT NULL UNIQUE,  -- full Unicode case fold; NOCASE only folds ASCII
        family TEXT NOT NULL,
        base_model TEXT,
        face_encoder TEXT,
        photo_sha256 TEXT,
        created_at TEXT NOT NULL,
        consent_by TEXT,
        consent_at TEXT,
        tiny INTEGER NOT NULL DEFAULT 0,
        dir TEXT NOT NULL
    )""",
)


class DuplicateNameError(InputError):
    """A name already used by an identity (or a queued training job); names ignore case."""


class UnknownIdentityError(InputError):
    """No identity by that name."""


class LibraryError(StoryFaceError):
    """The library's folder or database cannot be used as it is; the message says what to do."""


# -- names -------------------------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """The display form of a person's name, or an :class:`InputError` saying what to fix."""
    if not isinstance(name, str):
        raise InputError(f"a name must be text, got {type(name).__name__}")
    text = unicodedata.normalize("NFC", name).strip()
    bad = sorted({repr(c) for c in text if unicodedata.category(c) == "Cc"})
    if bad:
        raise InputError(f"name {name!r} contains control characters ({', '.join(bad)}); type it on one line")
    # invisible format marks (zero-width, right-to-left overrides) make one name look like another;
    # ZWNJ/ZWJ stay, as some scripts need them. Lone surrogates (undecodable bytes) cannot be stored.
    hidden = sorted(
        {f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in ("Cf", "Cs") and c not in "\u200c\u200d"}
    )
    if hidden:
        raise InputError(f"name {name!r} contains invisible or invalid characters ({', '.join(hidden)}); retype it")
    if "/" in text or "\\" in text:
        raise InputError(f"name {name!r} contains a slash; use letters, digits, spaces, '-' or '.'")
    text = " ".join(text.split())
    if not text:
        raise InputError("a name is required (it was empty)")
    if len(text) > MAX_NAME_CHARS:
        raise InputError(f"name is {len(text)} characters long; keep it to {MAX_NAME_CHARS}")
    return text


def clean_consent(consent_by: str | None) -> str | None:
    """Who confirmed the person agreed to be learned, tidied like a name; None when not given."""
    if consent_by is None or not str(consent_by).strip():
        return None
    try:
        return normalize_name(consent_by)
    except InputError as exc:
        raise InputError(f"consent: {exc}") from None


def name_key(name: str) -> str:
    """What two names must share to count as the same person: case, spacing and punctuation are
    ignored, because two such names would get the same trigger token ("Grace-Hopper", "grace hopper")."""
    return identity_token(" ".join(unicodedata.normalize("NFKC", name).casefold().split()))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# -- database ----------------------------------------------------------------------------------


@contextmanager
def connect(db_path: Path, readonly: bool = False) -> Iterator[sqlite3.Connection]:
    """One short-lived connection; autocommit unless :func:`transaction` opens one.

    ``readonly`` opens with SQLite's ``mode=ro``: such a connection can never change the database.
    """
    try:
        if readonly:
            con = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        else:
            con = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    except sqlite3.Error as exc:
        raise _database_error(db_path, exc) from None
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
        raise _database_error(db_path, exc) from None
    finally:
        con.close()


def _database_error(db_path: Path, exc: sqlite3.Error) -> LibraryError:
    """A database StoryFace cannot use, said in words; the identity folders beside it are untouched."""
    text = str(exc)
    if "not a database" in text or "malformed" in text:
        why = "is damaged (not a readable SQLite database)"
        fix = f"move it away (e.g. rename it to {db_path.name}.broken) and run `storyface ids recover`"
    elif "readonly" in text or "read-only" in text:
        why = "is read-only for this user"
        fix = "give this user write permission on the data folder, or set STORYFACE_HOME to another folder"
    elif "unable to open" in text:
        why = "cannot be opened (missing, or no permission on its folder)"
        fix = "check the folder's permissions, or set STORYFACE_HOME to the folder that holds your library"
    elif "disk" in text and "full" in text:
        why = "cannot be written: the disk is full"
        fix = "free some disk space and try again"
    else:
        why, fix = f"cannot be used ({text})", "check the data folder"
    return LibraryError(f"the library database {db_path} {why}; nothing was changed. To fix: {fix}")


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


# -- records -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IdentityRecord:
    """One library entry: its row plus where its files are."""

    id: str
    name: str
    family: str
    base_model: str | None
    face_encoder: str | None
    photo_sha256: str | None
    created_at: str
    consent_by: str | None
    consent_at: str | None
    tiny: bool
    dir: Path

    @property
    def token(self) -> str:
        return identity_token(self.name)

    @property
    def embedding_path(self) -> Path:
        return self.dir / EMBEDDING_FILE

    @property
    def headshot_path(self) -> Path | None:
        path = self.dir / HEADSHOT_FILE
        return path if path.is_file() else None

    @property
    def thumb_path(self) -> Path | None:
        path = self.dir / THUMB_FILE
        return path if path.is_file() else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the CLI's ``--json`` and the web app."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        paths = {"dir": self.dir, "embedding": self.embedding_path, "headshot": self.headshot_path, "thumb": self.thumb_path}
        out.update({k: (str(v) if v is not None else None) for k, v in paths.items()})
        out["token"] = self.token
        return out


def encode_images(headshot: Image.Image | None) -> dict[str, bytes]:
    """PNG bytes of the headshot and its thumbnail; done before taking the write lock."""
    if headshot is None:
        return {}
    rgb = headshot.convert("RGB")
    out = {}
    for filename, image in ((HEADSHOT_FILE, rgb), (THUMB_FILE, ImageOps.fit(rgb, (THUMB_SIDE, THUMB_SIDE)))):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        out[filename] = buf.getvalue()
    return out


def check_import(identity: Identity, expect_family: str | None, expect_dims: dict[str, int] | None) -> None:
    """Refuse an identity that cannot work with the models the caller will use it on."""
    if expect_family is not None and identity.family != expect_family:
        raise IdentityFileError(
            f"{identity.name!r} holds {identity.family.upper()} embeddings, but {expect_family.upper()} ones are expected"
        )
    want = expect_dims if expect_dims is not None else (None if identity.is_tiny else FAMILY_DIMS.get(identity.family))
    if want is not None and identity.dims() != dict(want):
        raise IdentityFileError(
            f"{identity.name!r} has embedding widths {identity.dims()}, expected {dict(want)}; "
            "it was made for a different base model"
        )
    rows = next(iter(identity.embeddings.values())).shape[0]
    if rows > MAX_IMPORT_TOKENS:
        raise IdentityFileError(f"{identity.name!r} has {rows} vectors per encoder; at most {MAX_IMPORT_TOKENS} are supported")


def _record_json(row: dict[str, Any]) -> bytes:
    """The row as it goes into ``record.json`` (paths are the library's business, not the record's)."""
    return json.dumps({k: v for k, v in row.items() if k not in ("dir", "name_key")}, indent=2).encode()


def _fsync_files(folder: Path) -> None:
    """Flush file contents before the rename, so a power cut cannot leave a committed empty file."""
    for path in folder.iterdir():
        with open(path, "rb+") as f:
            os.fsync(f.fileno())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class IdentityLibrary:
    """All identities under one data folder; safe to use from several threads and processes."""

    def __init__(self, root: str | os.PathLike, *, readonly: bool = False) -> None:
        """Open the library under ``root``.

        A writable open creates what is missing and recovers from crashes and lost rows (see the module
        docstring; what it did is in :attr:`notes`). ``readonly=True`` writes nothing at all: commands
        that only read (list, show, load, export) use it.
        """
        self.root = Path(root).absolute()
        self.identities_dir = self.root / IDENTITIES_DIR
        self.db_path = self.root / DB_NAME
        self.readonly = readonly
        self.notes: list[str] = []  # what recovery did, for the caller to show
        self._table = True  # a writable open creates the table below
        if readonly:
            self._check_readable()
            return
        try:
            self.identities_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"cannot create the library folder {self.identities_dir}: {exc.strerror or exc}") from None
        with transaction(self.db_path) as con:
            for statement in SCHEMA:
                con.execute(statement)
            self._recover(con)

    def __repr__(self) -> str:
        return f"IdentityLibrary({str(self.root)!r})"

    # -- reading ----------------------------------------------------------------------------

    def list(self) -> list[IdentityRecord]:
        if self._empty_readonly():
            return []
        with self._connect() as con:
            rows = con.execute("SELECT * FROM identities ORDER BY created_at, rowid").fetchall()
        return [self._record(row) for row in rows]

    def __contains__(self, name: object) -> bool:
        if self._empty_readonly():
            return False
        with self._connect() as con:
            return isinstance(name, str) and self.name_taken(con, name)

    def get(self, name: str) -> IdentityRecord:
        if self._empty_readonly():
            raise UnknownIdentityError(f"no identity named {name!r}: the library is empty; train one first")
        with self._connect() as con:
            return self._get(con, name)

    def unindexed(self) -> list[Path]:
        """Identity folders without a row and without a crash marker: what `recover` would add back."""
        if self._empty_readonly():
            known: set[str] = set()
        else:
            with self._connect() as con:
                known = {row["id"] for row in con.execute("SELECT id FROM identities")}
        return [entry for entry in self._identity_dirs() if entry.name not in known and not _marked(entry)]

    def load(self, name: str) -> Identity:
        """The identity's rows, named as the library names it (the row wins over file metadata)."""
        record = self.get(name)
        return load_identity(record.embedding_path, name=record.name)

    def name_taken(self, con: sqlite3.Connection, name: str) -> bool:
        """For callers holding a transaction on this database (the job queue)."""
        row = con.execute("SELECT 1 FROM identities WHERE name_key = ?", (name_key(name),)).fetchone()
        return row is not None

    # -- writing ----------------------------------------------------------------------------

    def add(
        self,
        identity: Identity,
        headshot: Image.Image | None = None,
        consent_by: str | None = None,
        *,
        base_model: str | None = None,
        face_encoder: str | None = None,
        photo_sha256: str | None = None,
        in_transaction: Callable[[sqlite3.Connection, IdentityRecord], None] | None = None,
    ) -> IdentityRecord:
        """Store a new identity; all or nothing.

        ``base_model``/``face_encoder``/``photo_sha256`` default to the identity's metadata keys of
        the same names. ``in_transaction`` runs before the commit, so a caller (the job worker)
        can record the result in the same atomic step.
        """
        name = normalize_name(identity.name)
        identity = dataclasses.replace(identity, name=name)
        consent = clean_consent(consent_by)
        meta = identity.metadata
        stamp = now_iso()
        ident_id = uuid.uuid4().hex
        row = {
            "id": ident_id, "name": name, "name_key": name_key(name), "family": identity.family,
            "base_model": base_model or meta.get("base_model"),
            "face_encoder": face_encoder or meta.get("face_encoder"),
            "photo_sha256": photo_sha256 or meta.get("photo_sha256"),
            "created_at": stamp, "consent_by": consent, "consent_at": stamp if consent else None,
            "tiny": int(identity.is_tiny), "dir": f"{IDENTITIES_DIR}/{ident_id}",
        }  # fmt: skip
        files = {**encode_images(headshot), RECORD_FILE: _record_json(row)}
        final = self.identities_dir / ident_id
        self._check_writable()
        try:
            with transaction(self.db_path) as con:
                self._insert(con, row)  # a duplicate fails here, before any file exists
                self._write_files(ident_id, identity, files)
                record = self._record(row)
                if in_transaction is not None:
                    in_transaction(con, record)
        except BaseException:
            _remove(final)  # still marked .pending: ours to remove
            raise
        (final / PENDING).unlink(missing_ok=True)  # committed: the folder is a real identity now
        log.info("added identity %r (%s)", name, ident_id)
        return record

    def rename(self, old: str, new: str) -> IdentityRecord:
        """Change the name in the row and in the file's metadata; a case-only change is allowed."""
        new_name = normalize_name(new)
        self._check_writable()
        with transaction(self.db_path) as con:
            record = self._get(con, old)
            try:
                con.execute(
                    "UPDATE identities SET name = ?, name_key = ? WHERE id = ?", (new_name, name_key(new_name), record.id)
                )
            except sqlite3.IntegrityError:
                raise self.duplicate_error(con, new_name) from None
            identity = load_identity(record.embedding_path, name=new_name)
            save_identity(identity, record.embedding_path)  # atomic: temp file + os.replace
            row = con.execute("SELECT * FROM identities WHERE id = ?", (record.id,)).fetchone()
            _write_atomic(record.dir / RECORD_FILE, _record_json(dict(row)))
        log.info("renamed identity %r -> %r", record.name, new_name)
        return dataclasses.replace(record, name=new_name)

    def delete(self, name: str) -> IdentityRecord:
        """Mark the folder, remove the row, then the files: a crash leaves a marked folder (removed on
        the next open if the row is gone, unmarked again if it is not)."""
        self._check_writable()
        with transaction(self.db_path) as con:
            record = self._get(con, name)
            marker = record.dir / DELETING
            try:
                marker.touch()
                con.execute("DELETE FROM identities WHERE id = ?", (record.id,))
            except BaseException:
                marker.unlink(missing_ok=True)
                raise
        _remove(record.dir)
        log.info("deleted identity %r (%s)", record.name, record.id)
        return record

    def export(self, name: str, dest: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Copy the identity's ``.safetensors`` out (into ``dest`` if it is a folder)."""
        record = self.get(name)
        dest = Path(dest).expanduser()
        if dest.is_dir():
            dest = dest / f"{record.token.strip('<>')}.safetensors"
        if dest.suffix.lower() != ".safetensors":
            raise InputError(f"{dest}: export to a file ending in .safetensors (other tools and import expect it)")
        if dest.exists() and not overwrite:
            raise InputError(f"{dest} already exists; choose another file name or allow overwriting")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}.safetensors")
        try:
            shutil.copyfile(record.embedding_path, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def import_file(
        self,
        path: str | os.PathLike,
        name: str | None = None,
        expect_family: str | None = None,
        expect_dims: dict[str, int] | None = None,
    ) -> IdentityRecord:
        """Add an identity from a ``.safetensors`` file (never a pickle: those can run code).

        Without ``expect_dims``, a non-tiny file must have the real base model's widths.
        Anything refused raises a typed error before anything is written.
        """
        path = Path(path).expanduser()
        if path.suffix.lower() != ".safetensors":
            raise IdentityFileError(
                f"{path.name}: only .safetensors identity files can be imported; "
                ".pt/.bin/.ckpt files are Python pickles, which can run code when opened"
            )
        if not path.is_file():
            raise IdentityFileError(f"{path}: no such file")
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise IdentityFileError(f"{path.name} is {path.stat().st_size} bytes; an identity file is a few KB")
        identity = load_identity(path)
        if name is not None:
            identity = dataclasses.replace(identity, name=name)
        check_import(identity, expect_family, expect_dims)
        return self.add(identity, None, None)

    # -- internals --------------------------------------------------------------------------

    def _record(self, row: sqlite3.Row | dict[str, Any]) -> IdentityRecord:
        values = {f.name: row[f.name] for f in dataclasses.fields(IdentityRecord)}
        values.update(tiny=bool(values["tiny"]), dir=self.root / values["dir"])
        return IdentityRecord(**values)

    def _get(self, con: sqlite3.Connection, name: str) -> IdentityRecord:
        row = con.execute("SELECT * FROM identities WHERE name_key = ?", (name_key(str(name)),)).fetchone()
        if row is None:
            raise self._unknown(con, str(name))
        return self._record(row)

    def _unknown(self, con: sqlite3.Connection, name: str) -> UnknownIdentityError:
        names = [r["name"] for r in con.execute("SELECT name FROM identities ORDER BY name")]
        if not names:
            return UnknownIdentityError(f"no identity named {name!r}: the library is empty; train one first")
        by_key = {name_key(n): n for n in names}
        close = difflib.get_close_matches(name_key(name), list(by_key), n=3, cutoff=0.6)
        if close:
            hint = "did you mean " + " or ".join(repr(by_key[c]) for c in close) + "?"
        else:
            hint = "known: " + ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")
        return UnknownIdentityError(f"no identity named {name!r}; {hint}")

    def duplicate_error(self, con: sqlite3.Connection, name: str) -> DuplicateNameError:
        row = con.execute("SELECT name FROM identities WHERE name_key = ?", (name_key(name),)).fetchone()
        existing = row["name"] if row else name
        return DuplicateNameError(
            f"an identity named {existing!r} already exists (names ignore case); pick another name, "
            f"or rename or delete {existing!r} first"
        )

    def _insert(self, con: sqlite3.Connection, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        try:
            con.execute(f"INSERT INTO identities ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
        except sqlite3.IntegrityError:
            raise self.duplicate_error(con, row["name"]) from None

    def _write_files(self, ident_id: str, identity: Identity, files: dict[str, bytes]) -> Path:
        """Build the folder (marked ``.pending``) under a temp name, then rename it into place in one step."""
        tmp = self.identities_dir / f"{TMP_PREFIX}{ident_id}"
        final = self.identities_dir / ident_id
        tmp.mkdir()
        try:
            (tmp / PENDING).touch()
            save_identity(identity, tmp / EMBEDDING_FILE)
            for filename, data in files.items():
                (tmp / filename).write_bytes(data)
            _fsync_files(tmp)
            os.replace(tmp, final)
        except BaseException:
            _remove(tmp)
            raise
        return final

    # -- opening and recovery ------------------------------------------------------------------

    def _connect(self):
        return connect(self.db_path, readonly=self.readonly)

    def _has_table(self) -> bool:
        """Whether the database exists and holds the identities table (a 0-byte file does not)."""
        if not self.db_path.is_file():
            return False
        with connect(self.db_path, readonly=True) as con:
            return con.execute("SELECT 1 FROM sqlite_master WHERE name = 'identities'").fetchone() is not None

    def _empty_readonly(self) -> bool:
        return self.readonly and not self._table

    def _check_readable(self) -> None:
        """Read-only open: refuse, with what to do, when identity folders have no database to list them."""
        self._table = self._has_table()
        if self._table:
            return
        folders = [entry for entry in self._identity_dirs() if not _marked(entry)]
        if folders:
            state = "is empty" if self.db_path.is_file() else "is missing"
            raise LibraryError(
                f"the library database {self.db_path} {state}, but {len(folders)} identity folder(s) are in "
                f"{self.identities_dir}; nothing was changed. Run `storyface ids recover` to index them again "
                "(nothing is deleted), or restore the database from your backup"
            )

    def _check_writable(self) -> None:
        if self.readonly:
            raise LibraryError("this library was opened read-only; open it without readonly=True to change it")

    def _identity_dirs(self) -> list[Path]:
        if not self.identities_dir.is_dir():
            return []
        return sorted(e for e in self.identities_dir.iterdir() if _UUID_DIR.match(e.name) and e.is_dir())

    def _recover(self, con: sqlite3.Connection) -> None:
        """Finish or undo what a crash interrupted, and index folders whose row is missing; called holding
        the write lock. Only what the library marked as its own (``.tmp-``, ``.pending``, ``.deleting``)
        is ever removed; every other folder is indexed again or moved aside, never deleted."""
        known = {row["id"] for row in con.execute("SELECT id FROM identities")}
        for entry in self.identities_dir.iterdir():
            if entry.name.startswith(TMP_PREFIX):
                log.warning("removing leftover %s from an interrupted write", entry)
                _remove(entry)
            elif not (_UUID_DIR.match(entry.name) and entry.is_dir()):
                continue  # not ours: left alone
            elif entry.name in known:
                for leftover in (*entry.glob(f"{TMP_PREFIX}*"), entry / PENDING, entry / DELETING):
                    if leftover.exists():
                        log.warning("removing leftover %s from an interrupted write", leftover)
                        _remove(leftover)
            elif _marked(entry):
                log.warning("removing %s: its add or delete was interrupted before it committed", entry)
                _remove(entry)
            else:
                self._reindex(con, entry)

    def _reindex(self, con: sqlite3.Connection, folder: Path) -> None:
        """Add back the row of an identity folder the database lost; move it aside if that cannot be done."""
        try:
            row = _row_from_folder(folder)
            self._insert(con, row)
        except (StoryFaceError, OSError, ValueError, KeyError, TypeError) as exc:
            aside = self.root / ASIDE_DIR / folder.name
            aside.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder, aside)
            note = f"moved identity folder {folder.name} aside to {aside} (it could not be indexed again: {exc})"
        else:
            note = f"indexed {row['name']!r} again from its folder {folder.name} (its database row was missing)"
        log.warning(note)
        self.notes.append(note)


def _marked(folder: Path) -> bool:
    return (folder / PENDING).exists() or (folder / DELETING).exists()


def _row_from_folder(folder: Path) -> dict[str, Any]:
    """The database row of an identity folder, from its ``record.json`` (or its file's metadata)."""
    identity = load_identity(folder / EMBEDDING_FILE)  # validates the rows; raises a clear error if broken
    record_path = folder / RECORD_FILE
    if record_path.is_file():
        saved = json.loads(record_path.read_text(encoding="utf-8"))
        if not isinstance(saved, dict):
            raise ValueError(f"{RECORD_FILE} holds no record")
    else:  # written before record.json existed: what the identity file itself says
        meta = identity.metadata
        saved = {k: meta.get(k) for k in ("base_model", "face_encoder", "photo_sha256")}
        saved.update(created_at=meta.get("created") or now_iso(), tiny=int(identity.is_tiny))
    name = normalize_name(str(saved.get("name") or identity.name))
    consent_by = saved.get("consent_by")
    return {
        "id": folder.name, "name": name, "name_key": name_key(name), "family": identity.family,
        "base_model": saved.get("base_model"), "face_encoder": saved.get("face_encoder"),
        "photo_sha256": saved.get("photo_sha256"), "created_at": str(saved.get("created_at") or now_iso()),
        "consent_by": clean_consent(consent_by) if consent_by else None,
        "consent_at": saved.get("consent_at") if consent_by else None,
        "tiny": int(bool(saved.get("tiny"))), "dir": f"{IDENTITIES_DIR}/{folder.name}",
    }  # fmt: skip


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file, flush to disk, rename over: readers see the old or the new file, never half of one."""
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
