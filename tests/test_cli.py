"""The command line end to end on the tiny model and real photos, driven in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from storyface.cli import app
from storyface.identity.tokens import load_identity

CONSENT = ("--consent-by", "Test Runner")  # identity files are used under a consent record, like trained ones
SEED_STORY = (
    "Hugh Jackman was selecting an apple at the grocery store when Taylor Swift, who dislikes apples, "
    "reached for a banana nearby. They struck up a conversation about fruit. "
    "After shopping, they walked to school together."
)


@pytest.fixture()
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("STORYFACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture(scope="module")
def trained(tmp_path_factory, grace_hopper_path, astronaut_path):
    """Two identity files learned by `storyface train` from the real photos (20 steps each)."""
    out = tmp_path_factory.mktemp("ids")
    runner = CliRunner()
    files = []
    for photo, name in ((grace_hopper_path, "Hugh Jackman"), (astronaut_path, "Taylor Swift")):
        target = out / f"{name.split()[0].lower()}.safetensors"
        result = runner.invoke(
            app,
            ["train", str(photo), "--name", name, "--model", "tiny", "--steps", "20", "--out", str(target),
             "--data-dir", str(out / "home"), "--consent-by", name],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        files.append(target)
    return files


def test_train_writes_a_standard_identity_file_and_keeps_it_in_the_library(trained, tmp_path):
    hugh = load_identity(trained[0])
    assert hugh.name == "Hugh Jackman" and hugh.family == "sdxl" and hugh.is_tiny
    assert set(hugh.embeddings) == {"clip_l", "clip_g"} and all(v.shape[0] == 2 for v in hugh.embeddings.values())
    assert len(hugh.metadata["photo_sha256"]) == 64 and hugh.metadata["steps"] == "20"
    listing = CliRunner().invoke(app, ["ids", "list", "--json", "--data-dir", str(trained[0].parent / "home")])
    records = json.loads(listing.output)
    assert sorted(r["name"] for r in records) == ["Hugh Jackman", "Taylor Swift"]
    assert all(r["consent_by"] == r["name"] and r["consent_at"] for r in records)


@pytest.mark.parametrize("queue", [False, True])
def test_train_without_consent_is_refused_and_writes_nothing(cli, tmp_path, grace_hopper_path, queue):
    home = tmp_path / "home"
    args = ["train", grace_hopper_path, "--name", "Grace Hopper", "--model", "tiny", "--out", tmp_path / "g.safetensors"]
    result = cli(*args, *(["--queue"] if queue else []))
    assert result.exit_code == 2
    assert "--consent-by" in result.output and "Grace Hopper" in " ".join(result.output.split())
    assert tree(home) == [] and not (tmp_path / "g.safetensors").exists()


def test_queued_training_records_who_confirmed_consent(cli, tmp_path, grace_hopper_path):
    result = cli("train", grace_hopper_path, "--name", "Grace Hopper", "--model", "tiny", "--queue",
                 "--consent-by", "  Grace   Hopper ")
    assert result.exit_code == 0, result.output
    [job] = json.loads(cli("jobs", "list", "--json").output)
    assert job["consent_by"] == "Grace Hopper" and job["state"] == "queued"

    # `storyface jobs work --once` trains it with the real trainer (photo -> headshot -> identity)
    assert cli("train", grace_hopper_path, "--name", "Ada Lovelace", "--model", "tiny", "--queue", "--steps", "3",
               "--consent-by", "Ada Lovelace").exit_code == 0
    assert cli("jobs", "cancel", job["id"][:8]).exit_code == 0  # the first one is cancelled, not trained
    assert cli("jobs", "work", "--once").exit_code == 0
    states = {j["name"]: j for j in json.loads(cli("jobs", "list", "--json").output)}
    assert states["Grace Hopper"]["state"] == "cancelled"
    assert states["Ada Lovelace"]["state"] == "done" and states["Ada Lovelace"]["step"] == 3
    [record] = json.loads(cli("ids", "list", "--json").output)
    assert record["name"] == "Ada Lovelace" and record["consent_by"] == "Ada Lovelace" and record["tiny"]
    shown = json.loads(cli("ids", "show", "ada lovelace").output)
    assert Path(shown["embedding"]).is_file() and Path(shown["headshot"]).is_file()


@pytest.mark.parametrize(
    "photo_kind, message",
    [
        ("blank", "No face found"),
        ("two", "Found 2 faces"),
        ("corrupt", "looks corrupt"),
        ("text", "not an image"),
        ("missing", "not found"),
    ],
)
def test_bad_photos_give_a_clear_error_and_write_nothing(cli, tmp_path, two_faces_path, photo_kind, message):
    photo = tmp_path / f"{photo_kind}.png"
    if photo_kind == "blank":
        Image.new("RGB", (512, 512), (200, 180, 160)).save(photo)
    elif photo_kind == "two":
        photo = two_faces_path
    elif photo_kind == "corrupt":
        photo.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 50)
    elif photo_kind == "text":
        photo = tmp_path / "notes.txt"
        photo.write_text("not a photo")
    home = tmp_path / "home"
    before = tree(home)
    result = cli(
        "train", photo, "--name", "Some One", "--model", "tiny", "--out", tmp_path / "x.safetensors", "--consent-by", "Some One"
    )
    assert result.exit_code == 2
    assert message.lower() in " ".join(result.output.split()).lower()
    assert not (tmp_path / "x.safetensors").exists()
    assert [p for p in tree(home) if p not in before and not p.startswith("library.sqlite3")] == []


def test_story_prints_a_pronoun_free_panel_script_as_json(cli, tmp_path):
    story = tmp_path / "story.txt"
    story.write_text(SEED_STORY)
    result = cli("story", story, "--cast", "Hugh Jackman", "--cast", "Taylor Swift", "--json", "--backend", "offline")
    assert result.exit_code == 0, result.output
    panels = json.loads(result.output)["panels"]
    assert len(panels) == 3
    for panel in panels[1:]:
        assert "Hugh Jackman" in panel["sentence"] and "Taylor Swift" in panel["sentence"]
        assert not {"they", "them", "their"} & set(panel["sentence"].lower().replace(",", " ").split())


def test_comic_renders_one_captioned_panel_per_sentence_with_records(cli, tmp_path, trained):
    story = tmp_path / "story.txt"
    story.write_text(SEED_STORY)
    out = tmp_path / "comic"
    args = ["comic", "--story", story, "--identity", trained[0], "--identity", trained[1], "--model", "tiny", *CONSENT,
            "--style", "cinematic", "--style", "watercolor painting", "--out", out, "--steps", "2", "--pdf",
            "--seed", "7", "--backend", "offline"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "comic.json").read_text())
    assert manifest["tiny"] is True and "noise" in manifest["notice"]
    assert [p["seed"] for p in manifest["panels"]] == [7, 8, 9]
    for i, panel in enumerate(manifest["panels"], 1):
        assert "<hugh-jackman>" in panel["prompt"] and "watercolor" in panel["prompt"]
        assert (out / "panels" / f"panel-{i:02d}.png").is_file()
        assert json.loads((out / "panels" / f"panel-{i:02d}.json").read_text())["seed"] == 6 + i
    assert (out / "comic.pdf").read_bytes().startswith(b"%PDF") and (out / "pages" / "page-01.png").is_file()
    first = np.asarray(Image.open(out / "panels" / "panel-01.png"))

    again = cli(*[a if a != out else tmp_path / "again" for a in args])  # same seed -> same panel
    assert again.exit_code == 0
    assert np.array_equal(first, np.asarray(Image.open(tmp_path / "again" / "panels" / "panel-01.png")))


def test_comic_refuses_a_story_naming_nobody_in_the_cast(cli, tmp_path, trained):
    story = tmp_path / "story.txt"
    story.write_text("A cat slept on the windowsill. The rain kept falling.")
    result = cli("comic", "--story", story, "--identity", trained[0], "--model", "tiny", "--out", tmp_path / "c", *CONSENT)
    assert result.exit_code == 2 and "Hugh Jackman" in result.output
    assert not (tmp_path / "c").exists()


def test_identity_for_another_family_is_refused_before_rendering(cli, tmp_path, trained):
    story = tmp_path / "story.txt"
    story.write_text("Hugh Jackman smiled.")
    result = cli("comic", "--story", story, "--identity", trained[0], "--model", "tiny-sd2", "--out", tmp_path / "c", *CONSENT)
    assert result.exit_code == 2 and "SDXL" in result.output and "retrain" in result.output
    assert not (tmp_path / "c").exists()


def test_demo_runs_the_whole_chain_offline(cli, tmp_path):
    result = cli("demo", "--out", tmp_path / "demo", "--steps", "10")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "demo" / "comic.json").read_text())
    sentences = [p["sentence"] for p in manifest["panels"]]
    assert len(sentences) >= 3 and all("Grace Hopper" in s or "Eileen Collins" in s for s in sentences)
    assert not any(w in s.split() for s in sentences for w in ("She", "she", "They", "they"))
    assert (tmp_path / "demo" / "pages" / "page-01.png").is_file() and (tmp_path / "demo" / "comic.pdf").is_file()
    assert len(list((tmp_path / "demo" / "identities").glob("*.safetensors"))) == 2
    assert sorted(manifest["references"]) == ["Eileen Collins", "Grace Hopper"]  # `storyface eval` can score it


def test_redraw_changes_one_panel_only_and_its_own_seed_reproduces_it(cli, tmp_path, trained):
    story = tmp_path / "story.txt"
    story.write_text(SEED_STORY)
    out = tmp_path / "comic"
    ids = ["--identity", trained[0], "--identity", trained[1], *CONSENT]
    made = cli("comic", "--story", story, *ids, "--model", "tiny", "--out", out, "--steps", "2", "--seed", "3",
               "--backend", "offline")
    assert made.exit_code == 0, made.output

    def pixels(n):
        return np.asarray(Image.open(out / "panels" / f"panel-{n:02d}.png"))

    before = [pixels(n) for n in (1, 2, 3)]
    result = cli("redraw", out, "--panel", "2", "--seed", "99", *ids, "--model", "tiny")
    assert result.exit_code == 0, result.output
    assert np.array_equal(pixels(1), before[0]) and np.array_equal(pixels(3), before[2])
    assert not np.array_equal(pixels(2), before[1])
    assert json.loads((out / "panels" / "panel-02.json").read_text())["seed"] == 99
    assert [p["seed"] for p in json.loads((out / "comic.json").read_text())["panels"]] == [3, 99, 5]

    assert cli("redraw", out, "--panel", "2", "--seed", "4", *ids, "--model", "tiny").exit_code == 0
    # the panel's own seed draws it as before (alone vs in a batch of 3: float rounding only)
    assert np.abs(pixels(2).astype(int) - before[1]).max() <= 3

    assert "no panel 7" in cli("redraw", out, "--panel", "7", *ids, "--model", "tiny").output
    assert "--identity" in cli("redraw", out, "--panel", "1", "--identity", trained[0], "--model", "tiny", *CONSENT).output
    record = json.loads((out / "panels" / "panel-01.json").read_text())
    record["prompt"] = record["prompt"].replace("selecting an apple", "n4ked")  # an edited record is checked again
    (out / "panels" / "panel-01.json").write_text(json.dumps(record))
    manifest = json.loads((out / "comic.json").read_text())
    manifest["panels"][0] = record
    (out / "comic.json").write_text(json.dumps(manifest))
    refused = cli("redraw", out, "--panel", "1", *ids, "--model", "tiny")
    assert refused.exit_code == 2 and "content policy" in " ".join(refused.output.split())
    assert np.array_equal(pixels(1), before[0])


def test_an_edited_panel_script_renders_as_written(cli, tmp_path, trained):
    """`story --json` output, edited by the user, drives `comic` directly (no re-parsing)."""
    story = tmp_path / "story.txt"
    story.write_text(SEED_STORY)
    script = json.loads(cli("story", story, "--cast", "Hugh Jackman", "--cast", "Taylor Swift", "--json",
                            "--backend", "offline").output)
    script["panels"][1]["sentence"] = "Hugh Jackman and Taylor Swift laughed on a park bench."
    del script["panels"][2]
    edited = tmp_path / "script.json"
    edited.write_text(json.dumps(script))
    out = tmp_path / "comic"
    result = cli("comic", "--story", edited, "--identity", trained[0], "--identity", trained[1], "--model", "tiny", *CONSENT,
                 "--out", out, "--steps", "1")
    assert result.exit_code == 0, result.output
    panels = json.loads((out / "comic.json").read_text())["panels"]
    assert [p["sentence"] for p in panels] == [p["sentence"] for p in script["panels"]]
    assert "park bench" in panels[1]["prompt"] and "<taylor-swift>" in panels[1]["prompt"]


def test_ids_list_on_a_lost_database_deletes_nothing_and_recover_brings_everyone_back(cli, tmp_path, trained):
    """The data-loss bug: `ids list` next to a missing or empty database used to delete every identity."""
    home = trained[0].parent / "home"
    data = tmp_path / "restored"
    import shutil

    shutil.copytree(home, data)
    files = {p: p.read_bytes() for p in sorted((data / "identities").rglob("*")) if p.is_file()}
    for sidecar in data.glob("library.sqlite3*"):
        sidecar.unlink()
    (data / "library.sqlite3").write_bytes(b"")  # a sync tool left an empty file
    for command in (("ids", "list"), ("ids", "show", "Hugh Jackman"), ("comic", "--identity", "Hugh Jackman")):
        result = cli(*command, "--data-dir", data) if command[0] == "ids" else cli(
            *command, "--story", trained[0], "--data-dir", data)
        assert result.exit_code == 2, result.output
        assert "2 identity folder(s)" in result.output and "storyface ids recover" in result.output
    assert {p: p.read_bytes() for p in files} == files
    result = cli("ids", "recover", "--data-dir", data)
    assert result.exit_code == 0 and "2 folder(s) recovered" in result.output, result.output
    listed = json.loads(cli("ids", "list", "--json", "--data-dir", data).stdout)
    assert sorted(r["name"] for r in listed) == ["Hugh Jackman", "Taylor Swift"]
    assert all(r["consent_by"] for r in listed)
    assert {p: p.read_bytes() for p in files} == files


def test_every_command_and_option_says_what_it_is_for():
    """`--help` is the CLI's manual: no option or argument may show only its type (e.g. `--json <bool>`)."""
    import click
    import typer

    def walk(command: click.Command, path: str):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    missing = []
    for path, command in walk(typer.main.get_command(app), "storyface"):
        if not (command.help or "").strip():
            missing.append(path)
        for param in command.params:
            if isinstance(param, (click.Option, click.Argument)) and not (getattr(param, "help", None) or "").strip():
                missing.append(f"{path} {param.name}")
    assert missing == []


def test_fast_quality_with_a_distillation_lora_sets_sampler_steps_and_guidance(cli, tmp_path, trained):
    """--quality fast --lora FILE: the LoRA's kind picks the sampler (trailing Euler, CFG off, 4 steps)."""
    import torch
    from safetensors.torch import save_file

    from storyface.random_models import build_tiny_pipeline

    unet = build_tiny_pipeline("sdxl").unet
    target = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
    out_f, in_f = unet.get_submodule(target).weight.shape
    g = torch.Generator().manual_seed(0)
    lora = tmp_path / "sdxl_lightning_4step_lora.safetensors"
    save_file({f"unet.{target}.lora_A.weight": torch.randn(4, in_f, generator=g) * 0.01,
               f"unet.{target}.lora_B.weight": torch.randn(out_f, 4, generator=g) * 0.01}, str(lora))  # fmt: skip
    story = tmp_path / "story.txt"
    story.write_text("Hugh Jackman smiled.")
    out = tmp_path / "fast"
    result = cli("comic", "--story", story, "--identity", trained[0], "--model", "tiny", *CONSENT, "--out", out,
                 "--quality", "fast", "--lora", lora, "--backend", "offline")
    assert result.exit_code == 0, result.output
    assert "fused sdxl_lightning_4step_lora" in result.output and "(lightning, weight 1)" in result.output
    manifest = json.loads((out / "comic.json").read_text())
    panel = manifest["panels"][0]
    assert (panel["scheduler"], panel["steps"], panel["guidance"]) == ("euler_trailing", 4, 0.0)
    assert [lora_["kind"] for lora_ in manifest["loras"]] == ["lightning"]
    refused = cli("comic", "--story", story, "--identity", trained[0], "--model", "tiny", *CONSENT,
                  "--out", tmp_path / "no", "--lora", lora, "--backend", "offline")  # a distillation LoRA needs fast
    assert refused.exit_code == 2 and "fast" in refused.output and not (tmp_path / "no").exists()
