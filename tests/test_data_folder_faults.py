"""A data folder StoryFace cannot use as it wants (issue 17, item 7): a read-only file system, a full
disk, missing permissions, a file in the way. Every command says so in one clear line (or, for reading
commands where reading is possible, works), nothing is changed, and training is refused before it starts.

The faults are real: a tmpfs in a private mount namespace (``unshare -rm``), remounted read-only or filled
to the last byte; permissions enforced by dropping root's override capabilities (``setpriv``) when the
tests run as root. Each group is skipped where the machine cannot make that fault.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from storyface.identity.tokens import Identity, save_identity
from storyface.library import IdentityLibrary, JobQueue

ROOT = Path(__file__).resolve().parents[1]
HELPER = Path(__file__).with_name("data_folder_faults.py")
READERS = ("ids list", "ids show")
WRITERS = ("ids rename", "ids delete", "ids import", "ids export", "train --queue")


def tiny_identity(name: str, seed: int) -> Identity:
    g = torch.Generator().manual_seed(seed)
    return Identity(name, "sdxl", {"clip_l": torch.randn(2, 32, generator=g), "clip_g": torch.randn(2, 64, generator=g)}, {"tiny": "true"})


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, grace_hopper_path) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("faults")
    library = IdentityLibrary(base / "library")
    with Image.open(grace_hopper_path) as im:
        library.add(tiny_identity("Grace Hopper", 0), im.convert("RGB").resize((512, 512)), "Grace Hopper")
    JobQueue(library)  # the queue's table and folder, as any used library has them
    for sidecar in library.root.glob("library.sqlite3-*"):
        sidecar.unlink()  # closed cleanly
    identity = save_identity(tiny_identity("Ok Person", 1), base / "ok.safetensors")
    return {"library": library.root, "identity": identity, "photo": Path(grace_hopper_path), "base": base}


def run_helper(prefix: list[str], mode: str, prepared: dict[str, Path], libraries: list[Path]) -> dict:
    argv = [*prefix, sys.executable, str(HELPER), mode, str(prepared["photo"]), str(prepared["identity"]), *map(str, libraries)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_clear(results: dict, label: str, *phrases: str) -> None:
    result = results[label]
    assert result["crash"] is None, f"{label}: {result['crash']}"
    assert result["exit"] == 2, f"{label}: exit {result['exit']}: {result['output']}"
    assert "Traceback" not in result["output"]
    for phrase in phrases:
        assert phrase in result["output"], f"{label}: {result['output']}"


def assert_works_or_clear(results: dict, label: str) -> None:
    result = results[label]
    assert result["crash"] is None, f"{label}: {result['crash']}"
    assert result["exit"] in (0, 2) and "Traceback" not in result["output"], result["output"]


# -- a read-only file system and a full disk ---------------------------------------------------------


def _can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


needs_unshare = pytest.mark.skipif(
    sys.platform != "linux" or shutil.which("unshare") is None or not _can_unshare(),
    reason="needs `unshare -rm` (a private mount namespace) to mount a small tmpfs",
)


@needs_unshare
def test_a_read_only_file_system(prepared) -> None:
    [outcome] = run_helper(["unshare", "-rm"], "readonly-fs", prepared, [prepared["library"]]).values()
    results = outcome["results"]
    for label in READERS:  # reading needs no writing: read-only media (a backup) can be listed
        assert results[label]["exit"] == 0 and "Grace Hopper" in results[label]["output"], results[label]
    assert_works_or_clear(results, "jobs list")
    for label in WRITERS:
        assert_clear(results, label, "nothing was changed")
        assert "read-only" in results[label]["output"], results[label]["output"]
    assert_clear(results, "train", "read-only", "nothing was")  # refused before the model loads
    assert outcome["unchanged"]


@needs_unshare
def test_a_full_disk_is_found_before_training_and_writes_fail_cleanly(prepared) -> None:
    [outcome] = run_helper(["unshare", "-rm"], "full-disk", prepared, [prepared["library"]]).values()
    results = outcome["results"]
    for label in READERS:
        assert results[label]["exit"] == 0 and "Grace Hopper" in results[label]["output"], results[label]
    assert_works_or_clear(results, "jobs list")
    for label in WRITERS + ("train",):
        assert_clear(results, label, "nothing was changed", "the disk is full")
    assert outcome["unchanged"]


@needs_unshare
def test_too_little_room_for_a_person_is_found_before_the_model_loads(prepared) -> None:
    """1.2 MB free: the database works, but an identity with its headshot needs ~2 MB."""
    [outcome] = run_helper(["unshare", "-rm"], "low-space", prepared, [prepared["library"]]).values()
    assert outcome["results"]["ids list"]["exit"] == 0
    assert_clear(outcome["results"], "train", "needs about 2.0 MB", "nothing was started")
    assert outcome["unchanged"]


# -- permissions and things in the way ------------------------------------------------------------


def _restricted_prefix() -> list[str] | None:
    """How to run a process that obeys file permissions: as is, or as root without its overrides."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        return None
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    return prefix if subprocess.run([*prefix, "true"], capture_output=True).returncode == 0 else None


def _copy(prepared: dict[str, Path], name: str) -> Path:
    dest = prepared["base"] / name
    shutil.copytree(prepared["library"], dest)
    return dest


@pytest.mark.skipif(_restricted_prefix() is None, reason="cannot drop root's permission overrides here")
def test_missing_permissions(prepared) -> None:
    unreadable_identities = _copy(prepared, "no-identities-access")
    read_only_folder = _copy(prepared, "read-only-folder")
    (unreadable_identities / "identities").chmod(0)
    read_only_folder.chmod(0o555)
    try:
        outcomes = run_helper(_restricted_prefix(), "as-is", prepared, [unreadable_identities, read_only_folder])
    finally:
        (unreadable_identities / "identities").chmod(0o755)
        read_only_folder.chmod(0o755)
    no_access = outcomes[str(unreadable_identities)]["results"]
    assert_clear(no_access, "ids list", "no permission", "nothing was changed")
    for label in ("jobs list", *WRITERS, "train"):
        assert_clear(no_access, label)
    assert_works_or_clear(no_access, "ids show")
    read_only = outcomes[str(read_only_folder)]["results"]
    for label in READERS:  # a folder this user may read but not write: reading works
        assert read_only[label]["exit"] == 0 and "Grace Hopper" in read_only[label]["output"], read_only[label]
    for label in ("jobs list", *WRITERS):
        assert_clear(read_only, label, "nothing was changed")
    assert_clear(read_only, "train", "nothing was")
    assert all(outcome["unchanged"] for outcome in outcomes.values())


def test_a_file_where_a_folder_belongs(prepared) -> None:
    data_file = prepared["base"] / "data-is-a-file"
    data_file.write_text("not a folder")
    identities_file = _copy(prepared, "identities-is-a-file")
    shutil.rmtree(identities_file / "identities")
    (identities_file / "identities").write_text("not a folder")
    outcomes = run_helper([], "as-is", prepared, [data_file, identities_file])
    for label, result in outcomes[str(data_file)]["results"].items():
        assert_clear(outcomes[str(data_file)]["results"], label, "is a file, not a folder")
    assert data_file.read_text() == "not a folder"
    in_the_way = outcomes[str(identities_file)]["results"]
    for label in ("ids rename", "ids delete", "ids import", "train --queue", "train"):
        assert_clear(in_the_way, label, "nothing was changed")
    assert_works_or_clear(in_the_way, "ids list")
    assert outcomes[str(identities_file)]["unchanged"]
