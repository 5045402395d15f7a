"""Room for a person is checked before training (issue 17, item 7): the bound is a real upper bound on
what the library writes, and the job worker refuses a job before its training function runs.
(The CLI and the API: tests/test_hardening.py; a real full disk: tests/test_data_folder_faults.py.)"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from storyface.identity.tokens import Identity
from storyface.library import IdentityLibrary, JobQueue
from storyface.library.space import DATABASE_BYTES, bytes_to_keep, png_bound, require_space
from storyface.library.store import LibraryError
from storyface.library.worker import Worker


def noise(side: int, seed: int = 0) -> Image.Image:
    """Incompressible pixels: PNG's worst case."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


@pytest.mark.parametrize("side", [1, 128, 512, 1024])
def test_png_bound_holds_for_incompressible_pictures(side: int) -> None:
    buf = io.BytesIO()
    noise(side).save(buf, format="PNG")
    assert len(buf.getvalue()) <= png_bound(side)
    assert png_bound(side) < 1.01 * side * side * 3 + 2_000  # and is not wildly above raw RGB


def test_a_kept_identity_fits_in_what_was_asked_for(tmp_path: Path) -> None:
    library = IdentityLibrary(tmp_path / "data")
    folder_before = sum(p.stat().st_size for p in (tmp_path / "data").rglob("*") if p.is_file())
    rows = {"clip_l": torch.randn(2, 32), "clip_g": torch.randn(2, 64)}
    record = library.add(Identity("Ann Smith", "sdxl", rows, {"tiny": "true"}), noise(512), "Ann Smith")
    used = sum(p.stat().st_size for p in record.dir.rglob("*") if p.is_file())
    after = sum(p.stat().st_size for p in (tmp_path / "data").rglob("*") if p.is_file())
    assert used <= bytes_to_keep(96, 2, 512) - DATABASE_BYTES
    assert after - folder_before <= bytes_to_keep(96, 2, 512)


def test_require_space_says_what_is_free_and_needed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("storyface.files.free_bytes", lambda folder: 1_500_000)
    with pytest.raises(LibraryError, match=r"has 1\.5 MB free, and keeping Ann needs about 2\.0 MB; nothing was started"):
        require_space(tmp_path, 2_000_000, "keeping Ann")
    require_space(tmp_path, 1_000_000, "keeping Ann")  # enough: no error


def test_the_worker_refuses_a_job_before_training_when_there_is_no_room(tmp_path: Path, astronaut_path: Path, monkeypatch) -> None:
    queue = JobQueue(IdentityLibrary(tmp_path / "data"))
    job = queue.submit(astronaut_path, "Eileen Collins", "tiny", {}, "Eileen Collins")
    calls = []

    def train(job, progress, should_stop):
        calls.append(job.id)
        raise AssertionError("training must not start")

    monkeypatch.setattr("storyface.files.free_bytes", lambda folder: 100_000)
    Worker(queue, train).run_once()
    failed = queue.get(job.id)
    assert calls == [] and failed.state == "failed"
    assert "needs about" in failed.error and "free some disk space" in failed.error
    assert queue.library.list() == [] and job.photo_path.exists()  # the photo stays for a retry
