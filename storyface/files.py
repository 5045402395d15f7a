"""Writing files so that a crash, a full disk or a kill never leaves half of one: the one helper for it.

Data goes to a temp file (``.tmp-`` prefix: the library's mark for "ours to remove after a crash")
in the same folder, is flushed to disk, and is renamed over the target in one step, so a reader sees
the old file or the new one, never a mix.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

TMP_PREFIX = ".tmp-"


def write_atomic(path: str | os.PathLike, data: bytes | str | Callable[[Path], object]) -> Path:
    """Write ``data`` (bytes, text, or a function that writes the temp path it is given) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{path.name}")
    try:
        if callable(data):
            data(tmp)
        else:
            tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def copy_atomic(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy a file to ``dest`` the same way (the copy appears whole or not at all)."""
    return write_atomic(dest, lambda tmp: shutil.copyfile(src, tmp))


def free_bytes(folder: str | os.PathLike) -> int:
    """Free space where ``folder`` (or its nearest existing parent) lives."""
    path = Path(folder).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free
