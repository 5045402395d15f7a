"""The identity library: every trained person, shared by the CLI, the web app and workers.

Rows live in SQLite (``library.sqlite3``, WAL mode, one connection per operation so threads and
processes can share it); files live in ``identities/<uuid>/`` (``embedding.safetensors``,
``headshot.png``, ``thumb.png``, ``record.json``). Names never become paths. Every identity carries a
consent record (who confirmed the person agreed, and when): adding one without it is refused.

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
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from ..errors import InputError
from ..files import TMP_PREFIX, copy_atomic, write_atomic
from ..identity.tokens import Identity, load_identity, save_identity
from ..names import name_key, normalize_name
from ..safety.consent import Consent, require_consent
from . import recovery
from .checks import check_import, clean_appearance, read_identity_file
from .records import IdentityRecord
from .store import (
    DB_NAME,
    DELETING,
    EMBEDDING_FILE,
    HEADSHOT_FILE,
    IDENTITIES_DIR,
    PENDING,
    RECORD_FILE,
    THUMB_FILE,
    LibraryError,
    connect,
    fs_errors,
    has_table,
    now_iso,
    transaction,
)

log = logging.getLogger(__name__)

THUMB_SIDE = 128  # px, square; enough for a gallery tile

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS identities (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL COLLATE NOCASE UNIQUE,
        name_key TEXT NOT NULL UNIQUE,  -- storyface.names.name_key: the same person, whatever the spelling
        family TEXT NOT NULL,
        base_model TEXT,
        face_encoder TEXT,
        photo_sha256 TEXT,
        created_at TEXT NOT NULL,
        consent_by TEXT,
        consent_at TEXT,
        tiny INTEGER NOT NULL DEFAULT 0,
        dir TEXT NOT NULL,
        appearance TEXT  -- notes added to every prompt the person appears in ("short grey hair, navy uniform")
    )""",
)


class DuplicateNameError(InputError):
    """A name already used by an identity (or a queued training job) of the same person."""


class UnknownIdentityError(InputError):
    """No identity by that name."""


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


def record_json(row: dict[str, Any]) -> bytes:
    """The row as it goes into ``record.json`` (paths are the library's business, not the record's)."""
    return json.dumps({k: v for k, v in row.items() if k not in ("dir", "name_key")}, indent=2).encode()


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
        if self.root.exists() and not self.root.is_dir():
            raise LibraryError(f"the data folder {self.root} is a file, not a folder; set STORYFACE_HOME to a folder")
        if readonly:
            with fs_errors(self.root, "read the library"):
                self._table = has_table(self.db_path, "identities")
                if not self._table:
                    recovery.refuse_without_database(self.db_path, self.identities_dir)
            return
        with fs_errors(self.root, "open the library for writing"):
            self.identities_dir.mkdir(parents=True, exist_ok=True)
            with transaction(self.db_path) as con:
                for statement in SCHEMA:
                    con.execute(statement)
                if "appearance" not in {row["name"] for row in con.execute("PRAGMA table_info(identities)")}:
                    con.execute("ALTER TABLE identities ADD COLUMN appearance TEXT")  # a library made before notes
                self.notes = recovery.recover(con, self.identities_dir, self._insert)

    def __repr__(self) -> str:
        return f"IdentityLibrary({str(self.root)!r})"

    # -- reading ----------------------------------------------------------------------------

    def list(self) -> list[IdentityRecord]:
        return [self._record(row) for row in self._rows()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._find(self._rows(), name) is not None

    def get(self, name: str) -> IdentityRecord:
        rows = self._rows()
        row = self._find(rows, name)
        if row is None:
            raise self._unknown([r["name"] for r in rows], str(name))
        return self._record(row)

    def unindexed(self) -> list[Path]:
        """Identity folders without a row and without a crash marker: what `recover` would add back."""
        known = {row["id"] for row in self._rows()}
        with fs_errors(self.root, "read the identity folders"):
            folders = recovery.identity_dirs(self.identities_dir)
            return [entry for entry in folders if entry.name not in known and not recovery.marked(entry)]

    def load(self, name: str) -> Identity:
        """The identity's rows, named as the library names it (the row wins over file metadata)."""
        record = self.get(name)
        return load_identity(record.embedding_path, name=record.name)

    def name_taken(self, con: sqlite3.Connection, name: str) -> bool:
        """For callers holding a transaction on this database (the job queue)."""
        return self._find(con.execute("SELECT * FROM identities").fetchall(), name) is not None

    # -- writing ----------------------------------------------------------------------------

    def add(
        self,
        identity: Identity,
        headshot: Image.Image | None,
        consent: Consent | str,
        *,
        base_model: str | None = None,
        face_encoder: str | None = None,
        photo_sha256: str | None = None,
        in_transaction: Callable[[sqlite3.Connection, IdentityRecord], None] | None = None,
    ) -> IdentityRecord:
        """Store a new identity with its consent record; all or nothing.

        ``base_model``/``face_encoder``/``photo_sha256`` default to the identity's metadata keys of
        the same names. ``in_transaction`` runs before the commit, so a caller (the job worker)
        can record the result in the same atomic step.
        """
        name = normalize_name(identity.name)
        consent = require_consent(consent, name)
        identity = dataclasses.replace(identity, name=name)
        meta = identity.metadata
        ident_id = uuid.uuid4().hex
        row = {
            "id": ident_id, "name": name, "name_key": name_key(name), "family": identity.family,
            "base_model": base_model or meta.get("base_model"),
            "face_encoder": face_encoder or meta.get("face_encoder"),
            "photo_sha256": photo_sha256 or meta.get("photo_sha256"),
            "created_at": now_iso(), "consent_by": consent.by, "consent_at": consent.at,
            "tiny": int(identity.is_tiny), "dir": f"{IDENTITIES_DIR}/{ident_id}",
            "appearance": clean_appearance(meta.get("appearance")),
        }  # fmt: skip
        files = {**encode_images(headshot), RECORD_FILE: record_json(row)}
        final = self.identities_dir / ident_id
        self._check_writable()
        with fs_errors(self.root, f"store {name!r}"):
            try:
                with transaction(self.db_path) as con:
                    self._insert(con, row)  # a duplicate fails here, before any file exists
                    self._write_files(ident_id, identity, files)
                    record = self._record(row)
                    if in_transaction is not None:
                        in_transaction(con, record)
            except BaseException:
                recovery.remove(final)  # still marked .pending: ours to remove
                raise
        (final / PENDING).unlink(missing_ok=True)  # committed: the folder is a real identity now
        log.info("added identity %r (%s)", name, ident_id)
        return record

    def rename(self, old: str, new: str) -> IdentityRecord:
        """Change the name in the row and in the file's metadata; a case-only change is allowed."""
        new_name = normalize_name(new)
        self._check_writable()
        with fs_errors(self.root, f"rename {old!r}"), transaction(self.db_path) as con:
            record = self._get(con, old)
            other = self._find(con.execute("SELECT * FROM identities WHERE id != ?", (record.id,)).fetchall(), new_name)
            if other is not None:
                raise self._duplicate(other["name"])
            con.execute("UPDATE identities SET name = ?, name_key = ? WHERE id = ?", (new_name, name_key(new_name), record.id))
            identity = load_identity(record.embedding_path, name=new_name)
            save_identity(identity, record.embedding_path)  # atomic: temp file + os.replace
            row = con.execute("SELECT * FROM identities WHERE id = ?", (record.id,)).fetchone()
            write_atomic(record.dir / RECORD_FILE, record_json(dict(row)))
        log.info("renamed identity %r -> %r", record.name, new_name)
        return dataclasses.replace(record, name=new_name)

    def set_appearance(self, name: str, notes: str | None) -> IdentityRecord:
        """Set (or clear, with None or "") the appearance notes; kept in the row, the record and the file."""
        notes = clean_appearance(notes)
        self._check_writable()
        with transaction(self.db_path) as con:
            record = self._get(con, name)
            con.execute("UPDATE identities SET appearance = ? WHERE id = ?", (notes, record.id))
            identity = load_identity(record.embedding_path, name=record.name)
            meta = {k: v for k, v in identity.metadata.items() if k != "appearance"}
            save_identity(dataclasses.replace(identity, metadata={**meta, **({"appearance": notes} if notes else {})}),
                          record.embedding_path)  # fmt: skip
            row = con.execute("SELECT * FROM identities WHERE id = ?", (record.id,)).fetchone()
            write_atomic(record.dir / RECORD_FILE, record_json(dict(row)))
        return dataclasses.replace(record, appearance=notes)

    def delete(self, name: str) -> IdentityRecord:
        """Mark the folder, remove the row, then the files: a crash leaves a marked folder (removed on
        the next open if the row is gone, unmarked again if it is not)."""
        self._check_writable()
        marker: Path | None = None
        try:
            with fs_errors(self.root, f"delete {name!r}"), transaction(self.db_path) as con:
                record = self._get(con, name)
                marker = record.dir / DELETING
                marker.touch()
                con.execute("DELETE FROM identities WHERE id = ?", (record.id,))
        except BaseException:  # the row is still there (a failed commit included): unmark the folder
            if marker is not None:
                marker.unlink(missing_ok=True)
            raise
        recovery.remove(record.dir)
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
        with fs_errors(dest.parent, f"write {dest.name}"):
            return copy_atomic(record.embedding_path, dest)

    def import_file(
        self,
        path: str | os.PathLike,
        consent: Consent | str,
        name: str | None = None,
        expect_family: str | None = None,
        expect_dims: dict[str, int] | None = None,
    ) -> IdentityRecord:
        """Add an identity from a ``.safetensors`` file (never a pickle: those can run code), with the
        same rules as a trained one: a valid name, a consent record, sane rows.

        Without ``expect_dims``, a non-tiny file must have the real base model's widths.
        Anything refused raises a typed error before anything is written.
        """
        identity = read_identity_file(path, name)
        require_consent(consent, identity.name)
        check_import(identity, expect_family, expect_dims)
        return self.add(identity, None, consent)

    # -- internals --------------------------------------------------------------------------

    def _rows(self) -> list[sqlite3.Row]:
        if self.readonly and not self._table:
            return []
        with connect(self.db_path, readonly=self.readonly) as con:
            return con.execute("SELECT * FROM identities ORDER BY created_at, rowid").fetchall()

    @staticmethod
    def _find(rows: list[sqlite3.Row], name: object) -> sqlite3.Row | None:
        """The row of the same person (by :func:`~storyface.names.name_key`, computed now, so rows
        stored under an older key rule are still found)."""
        key = name_key(str(name))
        return next((row for row in rows if name_key(row["name"]) == key), None)

    def _record(self, row: sqlite3.Row | dict[str, Any]) -> IdentityRecord:
        values = {f.name: row[f.name] for f in dataclasses.fields(IdentityRecord)}
        values.update(tiny=bool(values["tiny"]), dir=self.root / values["dir"])
        return IdentityRecord(**values)

    def _get(self, con: sqlite3.Connection, name: str) -> IdentityRecord:
        rows = con.execute("SELECT * FROM identities ORDER BY created_at, rowid").fetchall()
        row = self._find(rows, name)
        if row is None:
            raise self._unknown([r["name"] for r in rows], str(name))
        return self._record(row)

    @staticmethod
    def _unknown(names: list[str], name: str) -> UnknownIdentityError:
        if not names:
            return UnknownIdentityError(f"no identity named {name!r}: the library is empty; train one first")
        by_key = {name_key(n): n for n in names}
        close = difflib.get_close_matches(name_key(name), list(by_key), n=3, cutoff=0.6)
        if close:
            hint = "did you mean " + " or ".join(repr(by_key[c]) for c in close) + "?"
        else:
            hint = "known: " + ", ".join(repr(n) for n in sorted(names)[:10]) + (", ..." if len(names) > 10 else "")
        return UnknownIdentityError(f"no identity named {name!r}; {hint}")

    @staticmethod
    def _duplicate(existing: str) -> DuplicateNameError:
        return DuplicateNameError(
            f"an identity named {existing!r} already exists (the same person: names ignore case, spacing, "
            f"punctuation and look-alike letters); pick another name, or rename or delete {existing!r} first"
        )

    def duplicate_error(self, con: sqlite3.Connection, name: str) -> DuplicateNameError:
        row = self._find(con.execute("SELECT * FROM identities").fetchall(), name)
        return self._duplicate(row["name"] if row else name)

    def _insert(self, con: sqlite3.Connection, row: dict[str, Any]) -> None:
        if self._find(con.execute("SELECT * FROM identities").fetchall(), row["name"]) is not None:
            raise self.duplicate_error(con, row["name"])
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
            recovery.fsync_files(tmp)
            os.replace(tmp, final)
        except BaseException:
            recovery.remove(tmp)
            raise
        return final

    def _check_writable(self) -> None:
        if self.readonly:
            raise LibraryError("this library was opened read-only; open it without readonly=True to change it")
