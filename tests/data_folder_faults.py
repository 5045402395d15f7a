"""Run CLI commands against a data folder with a real fault, in one process; print what each said (JSON).

    python tests/data_folder_faults.py MODE PHOTO IDENTITY_FILE LIBRARY [LIBRARY ...]

MODE ``readonly-fs``, ``full-disk`` and ``low-space`` copy each LIBRARY onto a small tmpfs mounted at LIBRARY.mnt (so
this must run as root of its own mount namespace: ``unshare -rm``), remount it read-only or fill it to
the last byte (``low-space``: all but ~1.2 MB), then run the commands there. MODE ``as-is`` runs them on each LIBRARY itself (the caller
has changed its permissions or contents, and runs this without the right to override permissions).
The data folder's files and database rows are snapshotted before and after (the filler file aside).
Used by tests/test_data_folder_faults.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

COMMANDS = {
    "ids list": ["ids", "list"],
    "ids show": ["ids", "show", "Grace Hopper"],
    "jobs list": ["jobs", "list"],
    "ids rename": ["ids", "rename", "Grace Hopper", "Ada Smith"],
    "ids delete": ["ids", "delete", "Grace Hopper"],
    "ids import": ["ids", "import", "{identity}", "--consent-by", "Me", "--name", "Ok Person"],
    "ids export": ["ids", "export", "Grace Hopper", "{home}/exported.safetensors"],
    "train": ["train", "{photo}", "--name", "Ann Smith", "--consent-by", "Me", "--model", "tiny", "--steps", "1"],
    "train --queue": ["train", "{photo}", "--name", "Ann Smith", "--consent-by", "Me", "--model", "tiny", "--queue"],
}
FILLER = "filler.bin"
LOW_SPACE_BYTES = 1_200_000  # "low-space": what is left free; an identity with its headshot needs ~2 MB


def snapshot(root: Path) -> dict:
    files = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if rel == FILLER or path.name.startswith("library.sqlite3"):
            continue
        try:
            files[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            files[rel] = f"unreadable: {exc.strerror}"
    rows = "no database"
    for options in ("mode=ro", "mode=ro&immutable=1"):  # the second where a WAL reader cannot work
        try:
            con = sqlite3.connect(f"{(root / 'library.sqlite3').as_uri()}?{options}", uri=True)
            rows = con.execute("SELECT id, name FROM identities ORDER BY rowid").fetchall()
            con.close()
            break
        except (sqlite3.Error, OSError) as exc:
            rows = f"unreadable: {exc}"
    return {"files": files, "rows": rows}


def fill(root: Path) -> None:
    with open(root / FILLER, "wb", buffering=0) as f:  # unbuffered: nothing left to flush at close
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
        for size in (4096, 512, 1):  # the last blocks
            try:
                while True:
                    f.write(b"\0" * size)
                    f.flush()
            except OSError:
                pass


def run(mode: str, library: str, photo: str, identity: str) -> dict:
    from typer.testing import CliRunner

    from storyface.cli import app

    home = Path(library)
    if mode in ("readonly-fs", "full-disk", "low-space"):
        home = Path(library + ".mnt")
        home.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(home)], check=True)
        shutil.copytree(library, home, dirs_exist_ok=True)
        if mode == "readonly-fs":
            subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
        else:
            fill(home)
        if mode == "low-space":  # room for the database to work, not for a new identity
            os.truncate(home / FILLER, max(0, (home / FILLER).stat().st_size - LOW_SPACE_BYTES))
    before = snapshot(home) if home.is_dir() else None
    results = {}
    for label, argv in COMMANDS.items():
        if mode == "low-space" and label not in ("ids list", "train"):
            continue
        argv = [a.format(home=home, photo=photo, identity=identity) for a in argv]
        env = {"STORYFACE_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "400"}
        result = CliRunner().invoke(app, argv, env=env)
        crash = result.exception if result.exception and not isinstance(result.exception, SystemExit) else None
        results[label] = {
            "exit": result.exit_code,
            "output": " ".join(result.output.split()),
            "crash": f"{type(crash).__name__}: {crash}" if crash else None,
        }
    after = snapshot(home) if home.is_dir() else None
    return {"results": results, "unchanged": before == after}


def main() -> None:
    mode, photo, identity, *libraries = sys.argv[1:]
    print(json.dumps({library: run(mode, library, photo, identity) for library in libraries}))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["COLUMNS"] = "400"  # Rich sizes its console when storyface.cli is imported: wide, so names stay whole
    main()
