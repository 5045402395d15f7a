"""Is there room to keep a person? Checked before training starts, so a full disk is found in a second,
not after minutes of training whose result then cannot be stored.

What a kept identity takes (see :mod:`storyface.library.identities`): its ``embedding.safetensors``
(float32 rows plus a header of metadata), the aligned headshot and its thumbnail as PNG, ``record.json``,
and the database's growth by one row (its write-ahead log first). PNG of a photo never beats raw RGB
by much, and can exceed it slightly, so raw size plus zlib's worst case bounds it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import files
from ..limits import MAX_META_CHARS, MAX_META_KEYS
from ..random_models import REAL_WIDTHS
from .store import LibraryError

HEADSHOT_SIDE = 512  # px: the aligned headshot identity.subject.subject_from_photo makes
THUMB_SIDE = 128  # px: library.identities.THUMB_SIDE
VECTORS = 2  # StableIdentity's two word embeddings per encoder
HEADER_BYTES = MAX_META_KEYS * MAX_META_CHARS  # the largest metadata header a loadable file may carry
RECORD_BYTES = 16_384  # record.json: the row as JSON, a few hundred bytes
DATABASE_BYTES = 1_000_000  # one row, the write-ahead log pages it dirties and a checkpoint's slack
WIDEST = max(sum(widths.values()) for widths in REAL_WIDTHS.values())  # SDXL: 768 + 1280


def png_bound(side: int) -> int:
    """Bytes a ``side`` x ``side`` RGB PNG can take at most: raw rows (+1 filter byte each), zlib's worst
    case (its ``deflateBound``: raw/4096 + raw/16384 + 13), 12 bytes per IDAT chunk (Pillow writes
    them 64 KB or less; 8 KB assumed) and the signature, header and end chunks."""
    raw = side * (side * 3 + 1)
    return raw + raw // 4_096 + raw // 16_384 + 13 + 12 * (raw // 8_192 + 1) + 1_024


def bytes_to_keep(width_sum: int = WIDEST, vectors: int = VECTORS, headshot_side: int | None = HEADSHOT_SIDE) -> int:
    """Disk space one identity needs in the library: rows of ``width_sum`` floats per vector, the
    headshot (None: an import, without one), the record and the database's share."""
    rows = 4 * vectors * width_sum + HEADER_BYTES
    pictures = png_bound(headshot_side) + png_bound(THUMB_SIDE) if headshot_side else 0
    return rows + pictures + RECORD_BYTES + DATABASE_BYTES


def require_space(folder: str | os.PathLike, need: int, what: str) -> None:
    """Refuse (:class:`LibraryError`) when this user cannot write in ``folder`` (read-only media, no
    permission) or its disk has less than ``need`` bytes free."""
    if Path(folder).is_dir() and not os.access(folder, os.W_OK):
        raise LibraryError(
            f"cannot write in {Path(folder)} (a read-only file system, or no permission for this user), so "
            f"{what} is impossible; nothing was started. To fix: use a writable data folder (set STORYFACE_HOME)"
        )
    free = files.free_bytes(folder)
    if free < need:
        raise LibraryError(
            f"the disk holding {Path(folder)} has {_mb(free)} free, and {what} needs about {_mb(need)}; "
            "nothing was started. To fix: free some disk space (or set STORYFACE_HOME to a folder on another "
            "disk) and try again"
        )


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n:,} bytes"
