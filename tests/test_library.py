"""The identity library: persistence across processes, concurrent writers, atomic add/import, names."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from storyface.errors import IdentityFileError, InputError
from storyface.library import (
    DB_NAME,
    DuplicateNameError,
    IdentityLibrary,
    LibraryError,
    UnknownIdentityError,
)
from storyface.names import normalize_name
from storyface.identity.tokens import Identity, save_identity
from storyface.paths import data_dir, default_data_dir, resolve_data_dir

REPO = Path(__file__).resolve().parents[1]
TINY_DIMS = {"clip_l": 32, "clip_g": 64}


def make_identity(name: str, seed: int = 0) -> Identity:
    gen = torch.Generator().manual_seed(seed)
    rows = {"clip_l": torch.randn(2, 32, generator=gen), "clip_g": torch.randn(2, 64, generator=gen)}
    return Identity(name, "sdxl", rows, {"tiny": "true"})


def snapshot(root: Path) -> tuple[list[str], list[tuple]]:
    """Every file under the data dir (except SQLite's own) with its bytes' size, plus every row."""
    files = sorted(
        f"{p.relative_to(root).as_posix()}:{p.stat().st_size if p.is_file() else 'dir'}"
        for p in root.rglob("*")
        if not p.name.startswith(DB_NAME)
    )
    con = sqlite3.connect(root / DB_NAME)
    try:
        rows = [tuple(r) for r in con.execute("SELECT * FROM identities ORDER BY id")]
    finally:
        con.close()
    return files, rows


@pytest.fixture()
def library(tmp_path: Path) -> IdentityLibrary:
    return IdentityLibrary(tmp_path / "data")


@pytest.fixture(scope="session")
def headshot(astronaut_path: Path) -> Image.Image:
    return Image.open(astronaut_path).convert("RGB")


def run_python(code: str, env_home: Path | None = None) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if env_home is not None:
        env["STORYFACE_HOME"] = str(env_home)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- data dir ----------------------------------------------------------------------------------


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path("/home/u")
    assert default_data_dir("linux", {}, home) == home / ".local/share/storyface"
    assert default_data_dir("linux", {"XDG_DATA_HOME": "/x"}, home) == Path("/x/storyface")
    assert default_data_dir("darwin", {}, home) == home / "Library/Application Support/storyface"
    assert default_data_dir("win32", {"LOCALAPPDATA": r"C:\L"}, home) == Path(r"C:\L") / "storyface"
    env = {"STORYFACE_HOME": "/env", "XDG_DATA_HOME": "/x"}
    assert resolve_data_dir("/o", "linux", env, home) == Path("/o")
    assert resolve_data_dir(None, "linux", env, home) == Path("/env")
    assert resolve_data_dir(None, "linux", {"XDG_DATA_HOME": "/x"}, home) == Path("/x/storyface")

    monkeypatch.setenv("STORYFACE_HOME", str(tmp_path / "from-env"))
    assert data_dir() == tmp_path / "from-env" and data_dir().is_dir()
    assert data_dir(tmp_path / "override") == tmp_path / "override" and (tmp_path / "override").is_dir()


# -- names -------------------------------------------------------------------------------------


def test_names_are_cleaned_or_refused() -> None:
    assert normalize_name("  Grace \u00a0  Hopper \n") == "Grace Hopper"
    assert normalize_name("Zoë Ñúñez") == "Zoë Ñúñez"
    for bad in ["", "   ", "a/b", "a\\b", "x" * 81, "a\x00b", "a\tb", "line\nbreak"]:
        with pytest.raises(InputError):
            normalize_name(bad)
    assert normalize_name("x" * 80) == "x" * 80


# -- add / get / load --------------------------------------------------------------------------


def test_add_stores_files_and_row(library: IdentityLibrary, headshot: Image.Image) -> None:
    identity = make_identity("  Grace   Hopper ")
    record = library.add(identity, headshot, "Grace Hopper")
    assert record.name == "Grace Hopper" and record.token == "<grace-hopper>"
    assert record.dir == library.root / "identities" / record.id and len(record.id) == 32
    assert record.tiny and record.consent_by == "Grace Hopper" and record.consent_at
    assert Image.open(record.headshot_path).size == headshot.size
    assert Image.open(record.thumb_path).size == (128, 128)
    loaded = library.load("grace hopper")
    assert loaded.name == "Grace Hopper" and loaded.family == "sdxl"
    for key, rows in identity.embeddings.items():
        assert torch.equal(loaded.embeddings[key], rows)
    assert [r.id for r in library.list()] == [record.id]
    assert library.get("GRACE HOPPER") == record


def test_add_without_headshot_has_no_images(library: IdentityLibrary) -> None:
    record = library.add(make_identity("Ada"), None, "Test Runner")
    assert record.headshot_path is None and record.thumb_path is None
    assert record.consent_by == "Test Runner" and record.consent_at  # consent is never optional
    assert sorted(p.name for p in record.dir.iterdir()) == ["embedding.safetensors", "record.json"]


def test_duplicate_names_refused_case_insensitively(library: IdentityLibrary, headshot: Image.Image) -> None:
    library.add(make_identity("Grace Hopper"), headshot, "Test Runner")
    library.add(make_identity("Zoë"), None, "Test Runner")
    before = snapshot(library.root)
    for dup in ["grace hopper", "  GRACE   HOPPER", "ZOË"]:
        with pytest.raises(DuplicateNameError, match="already exists"):
            library.add(make_identity(dup, seed=1), headshot, "Test Runner")
    assert snapshot(library.root) == before


@pytest.mark.parametrize("consent", [None, "", "   ", False, 0])
def test_consent_cannot_be_skipped_by_calling_the_library(library: IdentityLibrary, tmp_path: Path, consent) -> None:
    before = snapshot(library.root)
    with pytest.raises(InputError, match="consent"):
        library.add(make_identity("Grace Hopper"), None, consent)
    path = tmp_path / "grace.safetensors"
    save_identity(make_identity("Grace Hopper"), path)
    with pytest.raises(InputError, match="consent"):
        library.import_file(path, consent)
    assert snapshot(library.root) == before


def test_unknown_name_suggests_close_matches(library: IdentityLibrary) -> None:
    library.add(make_identity("Grace Hopper"), None, "Test Runner")
    with pytest.raises(UnknownIdentityError, match="did you mean 'Grace Hopper'"):
        library.get("Grace Hoper")
    with pytest.raises(UnknownIdentityError):
        library.delete("Nobody At All")


# -- restarts and concurrency ------------------------------------------------------------------


def test_library_survives_process_restart(tmp_path: Path) -> None:
    root = tmp_path / "data"
    first = IdentityLibrary(root).add(make_identity("Eileen Collins"), None, "Eileen Collins")
    code = (
        "import json; from storyface.library import IdentityLibrary; from storyface.paths import data_dir\n"
        "lib = IdentityLibrary(data_dir())\n"
        "print(json.dumps([r.to_dict() for r in lib.list()]))\n"
        "print(lib.load('eileen collins').digest())\n"
    )
    listed, digest = run_python(code, env_home=root).strip().splitlines()
    assert [(r["id"], r["name"], r["consent_by"]) for r in json.loads(listed)] == [(first.id, first.name, "Eileen Collins")]
    assert digest == make_identity("Eileen Collins").digest()


def _add_many(root: str, prefix: str, count: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    IdentityLibrary(root)
    barrier.wait()
    for i in range(count):
        library = IdentityLibrary(root)  # reopening runs crash recovery while the other process adds
        library.add(make_identity(f"{prefix} {i}", seed=i), None, "Test Runner")
        names = {r.name for r in library.list()}
        assert f"{prefix} {i}" in names


def test_two_processes_write_at_once(tmp_path: Path) -> None:
    root = tmp_path / "data"
    IdentityLibrary(root)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_add_many, args=(str(root), p, 20, barrier)) for p in ("Left", "Right")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0, 0]

    library = IdentityLibrary(root)
    records = library.list()
    assert len(records) == 40 and len({r.name for r in records}) == 40
    assert sorted(p.name for p in (root / "identities").iterdir()) == sorted(r.id for r in records)
    assert all(library.load(r.name).digest() for r in records)
    con = sqlite3.connect(root / DB_NAME)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_open_removes_crash_leftovers(tmp_path: Path) -> None:
    root = tmp_path / "data"
    kept = IdentityLibrary(root).add(make_identity("Kept"), None, "Test Runner")
    ids = root / "identities"
    # a crash while writing files, one between the rename and the commit, one inside a rename,
    # one after a delete's commit, and a committed add whose marker was not yet removed
    save_identity(make_identity("Half"), ids / ".tmp-0123456789abcdef0123456789abcdef" / "embedding.safetensors")
    save_identity(make_identity("Orphan"), ids / ("f" * 32) / "embedding.safetensors")
    (ids / ("f" * 32) / ".pending").touch()
    save_identity(make_identity("Deleted"), ids / ("e" * 32) / "embedding.safetensors")
    (ids / ("e" * 32) / ".deleting").touch()
    (kept.dir / ".tmp-abc.safetensors").write_bytes(b"partial")
    (kept.dir / ".pending").touch()
    (ids / "notes.txt").write_text("not ours to delete")
    library = IdentityLibrary(root)
    assert sorted(p.name for p in ids.iterdir()) == sorted([kept.id, "notes.txt"])
    assert sorted(p.name for p in kept.dir.iterdir()) == ["embedding.safetensors", "record.json"]
    assert [r.name for r in library.list()] == ["Kept"]


def test_interrupted_delete_before_commit_keeps_the_identity(tmp_path: Path) -> None:
    root = tmp_path / "data"
    kept = IdentityLibrary(root).add(make_identity("Still Here"), None, "Still Here")
    (kept.dir / ".deleting").touch()  # the delete's transaction never committed: the row is still there
    library = IdentityLibrary(root)
    assert [r.name for r in library.list()] == ["Still Here"] and library.load("still here").digest()
    assert not (kept.dir / ".deleting").exists()


def _library_with_two(root: Path, headshot: Image.Image) -> tuple[IdentityLibrary, dict[str, str]]:
    library = IdentityLibrary(root)
    library.add(make_identity("Grace Hopper", seed=1), headshot, "Grace Hopper")
    library.add(make_identity("Eileen Collins", seed=2), None, "Eileen Collins")
    return library, {r.name: library.load(r.name).digest() for r in library.list()}


def _identity_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "identities").rglob("*")) if p.is_file()}


@pytest.mark.parametrize("damage", ["empty", "missing"])
def test_lost_database_never_deletes_identities(tmp_path: Path, headshot: Image.Image, damage: str) -> None:
    """A 0-byte or missing database next to real identities (a restore, a sync tool, a wrong delete)."""
    root = tmp_path / "data"
    library, digests = _library_with_two(root, headshot)
    files = _identity_files(root)
    for sidecar in root.glob(f"{DB_NAME}*"):
        sidecar.unlink()
    if damage == "empty":
        (root / DB_NAME).write_bytes(b"")
    # 1. reading commands write nothing and say what to do
    with pytest.raises(LibraryError, match=r"2 identity folder\(s\).*storyface ids recover"):
        IdentityLibrary(root, readonly=True)
    assert _identity_files(root) == files
    # 2. a writable open indexes them again from their record.json, consent included
    recovered = IdentityLibrary(root)
    assert {r.name: recovered.load(r.name).digest() for r in recovered.list()} == digests
    assert {r.name: r.consent_by for r in recovered.list()} == {"Grace Hopper": "Grace Hopper", "Eileen Collins": "Eileen Collins"}
    assert recovered.get("grace hopper").headshot_path is not None
    assert len(recovered.notes) == 2 and all("indexed" in n for n in recovered.notes)
    assert _identity_files(root) == files


def test_older_backup_database_keeps_newer_identities(tmp_path: Path, headshot: Image.Image) -> None:
    root = tmp_path / "data"
    library = IdentityLibrary(root)
    library.add(make_identity("Grace Hopper", seed=1), headshot, "Grace Hopper")
    backup = tmp_path / "backup.sqlite3"
    with sqlite3.connect(root / DB_NAME) as src, sqlite3.connect(backup) as dst:
        src.backup(dst)
    library.add(make_identity("Eileen Collins", seed=2), None, "Eileen Collins")
    newer = library.get("Eileen Collins")
    files = _identity_files(root)
    for sidecar in root.glob(f"{DB_NAME}*"):
        sidecar.unlink()
    backup.rename(root / DB_NAME)  # the user restores last week's database
    reader = IdentityLibrary(root, readonly=True)
    assert [r.name for r in reader.list()] == ["Grace Hopper"]
    assert [p.name for p in reader.unindexed()] == [newer.id]  # read-only: reported, not changed
    assert _identity_files(root) == files
    writer = IdentityLibrary(root)
    assert sorted(r.name for r in writer.list()) == ["Eileen Collins", "Grace Hopper"]
    assert writer.get("Eileen Collins").id == newer.id and _identity_files(root) == files


def test_unindexable_folder_is_moved_aside_not_deleted(tmp_path: Path) -> None:
    root = tmp_path / "data"
    IdentityLibrary(root).add(make_identity("Grace Hopper"), None, "Test Runner")
    clash = root / "identities" / ("a" * 32)
    save_identity(make_identity("grace  HOPPER", seed=5), clash / "embedding.safetensors")  # same person's key
    broken = root / "identities" / ("b" * 32)
    broken.mkdir()
    (broken / "embedding.safetensors").write_bytes(b"not safetensors")
    library = IdentityLibrary(root)
    assert [r.name for r in library.list()] == ["Grace Hopper"]
    aside = root / "set-aside"
    assert sorted(p.name for p in aside.iterdir()) == ["a" * 32, "b" * 32]
    assert (aside / ("b" * 32) / "embedding.safetensors").read_bytes() == b"not safetensors"
    assert len(library.notes) == 2 and all("moved identity folder" in n for n in library.notes)


def test_readonly_open_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    root.mkdir()
    reader = IdentityLibrary(root, readonly=True)  # nothing there yet: an empty library, nothing created
    assert reader.list() == [] and "x" not in reader and list(root.iterdir()) == []
    with pytest.raises(UnknownIdentityError, match="library is empty"):
        reader.get("Grace Hopper")
    with pytest.raises(LibraryError, match="read-only"):
        reader.add(make_identity("Grace Hopper"), None, "Test Runner")
    assert list(root.iterdir()) == []


def test_damaged_database_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "data"
    IdentityLibrary(root).add(make_identity("Grace Hopper"), None, "Test Runner")
    for sidecar in root.glob(f"{DB_NAME}*"):
        sidecar.unlink()
    (root / DB_NAME).write_bytes(b"garbage " * 512)
    files = _identity_files(root)
    for readonly in (True, False):
        with pytest.raises(LibraryError, match="damaged.*nothing was changed"):
            IdentityLibrary(root, readonly=readonly).list()
    assert _identity_files(root) == files


def test_failed_insert_leaves_nothing(library: IdentityLibrary) -> None:
    before = snapshot(library.root)

    def explode(con: sqlite3.Connection, record: object) -> None:
        assert (library.identities_dir / record.id / "embedding.safetensors").is_file()  # files first
        raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        library.add(make_identity("Doomed"), None, "Test Runner", in_transaction=explode)
    assert snapshot(library.root) == before


# -- rename / delete / export / import ---------------------------------------------------------


def test_rename_delete_export_import_round_trip(library: IdentityLibrary, headshot: Image.Image, tmp_path: Path) -> None:
    original = make_identity("Grace Hopper", seed=3)
    record = library.add(original, headshot, "Test Runner")
    renamed = library.rename("grace hopper", "Amazing Grace")
    assert renamed.id == record.id and renamed.name == "Amazing Grace"
    with safe_open(str(record.embedding_path), framework="pt") as f:
        assert f.metadata()["name"] == "Amazing Grace"
    with pytest.raises(UnknownIdentityError):
        library.get("Grace Hopper")
    assert library.rename("amazing grace", "AMAZING GRACE").name == "AMAZING GRACE"  # case-only change

    (tmp_path / "out").mkdir()
    into_folder = library.export("Amazing Grace", tmp_path / "out")
    assert into_folder == tmp_path / "out" / "amazing-grace.safetensors" and into_folder.is_file()
    exported = library.export("Amazing Grace", tmp_path / "grace.safetensors")
    assert exported.read_bytes() == record.embedding_path.read_bytes()
    with pytest.raises(InputError, match=".safetensors"):
        library.export("Amazing Grace", tmp_path / "grace.pt")
    with pytest.raises(InputError, match="already exists"):
        library.export("Amazing Grace", exported)
    deleted = library.delete("Amazing Grace")
    assert not deleted.dir.exists() and library.list() == []

    back = library.import_file(exported, "Test Runner", expect_family="sdxl", expect_dims=TINY_DIMS)
    assert back.name == "AMAZING GRACE" and back.id != record.id and back.headshot_path is None
    assert library.load("amazing grace").digest() == original.digest()
    again = library.import_file(exported, "Test Runner", name="Grace Again")
    assert again.name == "Grace Again" and len(library.list()) == 2


def test_rename_onto_existing_name_changes_nothing(library: IdentityLibrary) -> None:
    library.add(make_identity("Ada"), None, "Test Runner")
    library.add(make_identity("Grace"), None, "Test Runner")
    before = snapshot(library.root)
    with pytest.raises(DuplicateNameError):
        library.rename("Ada", "GRACE")
    with pytest.raises(InputError):
        library.rename("Ada", "../etc")
    assert snapshot(library.root) == before


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    rows = make_identity("x").embeddings
    files = {}
    wrong = Identity("Wrong Shape", "sdxl", {"clip_l": torch.randn(2, 16), "clip_g": torch.randn(2, 64)}, {"tiny": "true"})
    files["wrong shape"] = save_identity(wrong, tmp_path / "wrong.safetensors")
    files["real-size sd2"] = save_identity(
        Identity("SD2 Person", "sd2", {"emb_params": torch.randn(2, 1024)}), tmp_path / "sd2.safetensors"
    )
    for suffix in (".pt", ".bin"):
        files[f"pickle {suffix}"] = tmp_path / f"evil{suffix}"
        torch.save(rows, files[f"pickle {suffix}"])
    files["pickle renamed"] = tmp_path / "renamed.safetensors"
    files["pickle renamed"].write_bytes((tmp_path / "evil.pt").read_bytes())
    good = save_identity(make_identity("Good"), tmp_path / "good.safetensors").read_bytes()
    files["truncated"] = tmp_path / "truncated.safetensors"
    files["truncated"].write_bytes(good[: len(good) // 2])
    files["garbage"] = tmp_path / "garbage.safetensors"
    files["garbage"].write_bytes(os.urandom(4096))
    nan = Identity("NaN", "sdxl", {"clip_l": torch.full((2, 32), float("nan")), "clip_g": torch.randn(2, 64)})
    files["nan"] = save_identity(nan, tmp_path / "nan.safetensors")
    return files


def test_bad_imports_refused_with_nothing_written(library: IdentityLibrary, tmp_path: Path) -> None:
    library.add(make_identity("Existing"), None, "Test Runner")
    (tmp_path / "bad").mkdir()
    bad_files = _bad_files(tmp_path / "bad")
    other = save_identity(make_identity("Other"), tmp_path / "other.safetensors")
    before = snapshot(library.root)
    for label, path in bad_files.items():
        with pytest.raises(IdentityFileError):
            library.import_file(path, "Test Runner", expect_family="sdxl", expect_dims=TINY_DIMS)
        assert snapshot(library.root) == before, label
    with pytest.raises(IdentityFileError, match="expected"):  # tiny rows offered to a real SDXL library
        library.import_file(other, "Test Runner", expect_dims={"clip_l": 768, "clip_g": 1280})
    with pytest.raises(IdentityFileError, match="SD2"):
        library.import_file(other, "Test Runner", expect_family="sd2")
    with pytest.raises(DuplicateNameError):
        library.import_file(other, "Test Runner", name="existing")
    assert snapshot(library.root) == before


def test_names_that_would_share_a_trigger_token_are_one_person(tmp_path):
    from storyface.library import DuplicateNameError, IdentityLibrary

    lib = IdentityLibrary(tmp_path)
    lib.add(Identity("Grace Hopper", "sdxl", {"clip_l": torch.randn(2, 32), "clip_g": torch.randn(2, 64)}, {"tiny": "true"}), None, "Test Runner")
    for other in ("Grace-Hopper", "grace_hopper", "GRACE   HOPPER", "Grâce Hopper"):
        with pytest.raises(DuplicateNameError, match="Grace Hopper"):
            lib.add(Identity(other, "sdxl", {"clip_l": torch.randn(2, 32), "clip_g": torch.randn(2, 64)}, {"tiny": "true"}), None, "Test Runner")
    assert [r.name for r in lib.list()] == ["Grace Hopper"]


def test_appearance_notes_live_with_the_identity_and_travel_in_its_file(library: IdentityLibrary, tmp_path: Path) -> None:
    library.add(make_identity("Grace Hopper"), None, "Test Runner")
    record = library.set_appearance("grace hopper", "  short grey hair,  navy uniform ")
    assert record.appearance == "short grey hair, navy uniform" == library.get("Grace Hopper").appearance
    assert library.load("Grace Hopper").metadata["appearance"] == "short grey hair, navy uniform"
    exported = library.export("Grace Hopper", tmp_path / "grace.safetensors")
    with safe_open(str(exported), framework="pt") as f:
        assert f.metadata()["appearance"] == "short grey hair, navy uniform"
    with pytest.raises(InputError, match="keep them to 200"):
        library.set_appearance("Grace Hopper", "x" * 201)
    assert IdentityLibrary(library.root).get("Grace Hopper").appearance == "short grey hair, navy uniform"
    assert library.set_appearance("Grace Hopper", "").appearance is None
    assert "appearance" not in library.load("Grace Hopper").metadata
