"""After a crash, or next to a lost database: finish or undo interrupted writes, and never lose an identity.

The library only ever removes what it marked as its own half-done work: a ``.tmp-`` folder (files still
being written), a folder holding ``.pending`` (its add never committed) or ``.deleting`` (its delete
did). A folder with no row and no marker is a real identity whose row is missing (an empty, missing or
older database: a restore, a sync tool, a wrong file deleted): a writable open adds its row back from
the ``record.json`` kept beside its files, or moves it aside to ``set-aside/`` and says so. Read-only
opens never write: with no database next to identity folders they refuse, saying how to recover.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import sqlite3
from pathlib import Path
from collections.abc import Callable
from typing import Any

from ..errors import StoryFaceError
from ..files import TMP_PREFIX
from ..identity.tokens import load_identity
from ..names import name_key, normalize_name
from .store import ASIDE_DIR, DELETING, EMBEDDING_FILE, PENDING, RECORD_FILE, LibraryError, now_iso

log = logging.getLogger(__name__)

_UUID_DIR = re.compile(r"^[0-9a-f]{32}$")


def marked(folder: Path) -> bool:
    return (folder / PENDING).exists() or (folder / DELETING).exists()


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def fsync_files(folder: Path) -> None:
    """Flush file contents before the rename, so a power cut cannot leave a committed empty file."""
    for path in folder.iterdir():
        with open(path, "rb+") as f:
            os.fsync(f.fileno())


def identity_dirs(identities_dir: Path) -> list[Path]:
    if not identities_dir.is_dir():
        return []
    return sorted(e for e in identities_dir.iterdir() if _UUID_DIR.match(e.name) and e.is_dir())


def refuse_without_database(db_path: Path, identities_dir: Path) -> None:
    """Read-only open of a folder without a usable database: fine when empty, else say how to recover."""
    folders = [entry for entry in identity_dirs(identities_dir) if not marked(entry)]
    if folders:
        state = "is empty" if db_path.is_file() else "is missing"
        raise LibraryError(
            f"the library database {db_path} {state}, but {len(folders)} identity folder(s) are in "
            f"{identities_dir}; nothing was changed. Run `storyface ids recover` to index them again "
            "(nothing is deleted), or restore the database from your backup"
        )


Insert = Callable[[sqlite3.Connection, dict[str, Any]], None]


def recover(con: sqlite3.Connection, identities_dir: Path, insert: Insert) -> list[str]:
    """Called on every writable open, holding the write lock (so no add of another process is in flight).

    ``insert`` adds a row back (refusing a name already taken); returns what was done, in words.
    """
    notes: list[str] = []
    known = {row["id"] for row in con.execute("SELECT id FROM identities")}
    for entry in identities_dir.iterdir():
        if entry.name.startswith(TMP_PREFIX):
            log.warning("removing leftover %s from an interrupted write", entry)
            remove(entry)
        elif not (_UUID_DIR.match(entry.name) and entry.is_dir()):
            continue  # not ours: left alone
        elif entry.name in known:
            for leftover in (*entry.glob(f"{TMP_PREFIX}*"), entry / PENDING, entry / DELETING):
                if leftover.exists():
                    log.warning("removing leftover %s from an interrupted write", leftover)
                    remove(leftover)
        elif marked(entry):
            log.warning("removing %s: its add or delete was interrupted before it committed", entry)
            remove(entry)
        else:
            notes.append(_reindex(con, entry, insert))
    return notes


def _reindex(con: sqlite3.Connection, folder: Path, insert: Insert) -> str:
    """Add back the row of an identity folder the database lost; move it aside if that cannot be done."""
    try:
        row = row_from_folder(folder, folder.parent.name)
        insert(con, row)
    except (StoryFaceError, OSError, ValueError, KeyError, TypeError) as exc:
        aside = folder.parent.parent / ASIDE_DIR / folder.name
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder, aside)
        note = f"moved identity folder {folder.name} aside to {aside} (it could not be indexed again: {exc})"
    else:
        note = f"indexed {row['name']!r} again from its folder {folder.name} (its database row was missing)"
    log.warning(note)
    return note


def row_from_folder(folder: Path, parent: str) -> dict[str, Any]:
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
        "consent_by": normalize_name(consent_by, "consent") if consent_by else None,
        "consent_at": saved.get("consent_at") if consent_by else None,
        "tiny": int(bool(saved.get("tiny"))), "dir": f"{parent}/{folder.name}",
        "appearance": saved.get("appearance") or identity.metadata.get("appearance"),
    }  # fmt: skip
