"""Evaluation: likeness on real photos, optimal matching, CLIP prompt fit, retries, and `storyface eval`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from typer.testing import CliRunner

from storyface.errors import InputError, ModelError, NoFaceError
from storyface.eval import (
    MISSING_SCORE,
    ClipScorer,
    PanelScore,
    match_faces,
    references_from,
    score_panel,
    score_panels,
)
from storyface.eval.likeness import assign_faces
from storyface.eval.retry import render_with_retries
from storyface.identity.tokens import Identity, save_identity

EILEEN, GRACE = "Eileen Collins", "Grace Hopper"


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photos(astronaut_path: Path, grace_hopper_path: Path) -> dict[str, Image.Image]:
    return {EILEEN: Image.open(astronaut_path).convert("RGB"), GRACE: Image.open(grace_hopper_path).convert("RGB")}


@pytest.fixture(scope="module")
def references(astronaut_path: Path, grace_hopper_path: Path) -> dict[str, np.ndarray]:
    return references_from({EILEEN: astronaut_path, GRACE: grace_hopper_path}, "dlib")


def side_by_side(*images: Image.Image) -> Image.Image:
    """A synthetic panel: the photos in a row on white, faces 90-190 px wide (HOG needs ~80)."""
    canvas = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)), "white")
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width
    return canvas


def unit(v: list[float]) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


# -- likeness on real photos ---------------------------------------------------------------------


def test_same_person_scores_clearly_above_two_different_people(photos, references):
    eileen, grace = photos[EILEEN], photos[GRACE]
    same = {
        "eileen flipped": (ImageOps.mirror(eileen), EILEEN),
        "eileen cropped+enlarged": (eileen.crop((100, 0, 400, 300)).resize((600, 600)), EILEEN),
        "eileen rescaled": (eileen.resize((256, 256)), EILEEN),
        "grace flipped": (ImageOps.mirror(grace), GRACE),
        "grace cropped": (grace.crop((60, 40, 480, 460)), GRACE),
    }
    same_scores = {k: score_panel(img, {n: references[n]}, [n]).similarities[n] for k, (img, n) in same.items()}
    different = [
        score_panel(grace, {EILEEN: references[EILEEN]}, [EILEEN]).similarities[EILEEN],
        score_panel(ImageOps.mirror(eileen), {GRACE: references[GRACE]}, [GRACE]).similarities[GRACE],
    ]
    assert min(same_scores.values()) > 0.95, same_scores
    assert max(different) < 0.93, different
    assert min(same_scores.values()) - max(different) > 0.05, (same_scores, different)


@pytest.mark.parametrize("order", [(EILEEN, GRACE), (GRACE, EILEEN)])
def test_panel_with_both_faces_is_matched_to_both_characters_in_either_order(photos, references, order):
    left, right = order
    panel = side_by_side(photos[left], ImageOps.mirror(photos[right]))
    score = score_panel(panel, references, [EILEEN, GRACE])
    assert len(score.faces) == 2 and score.missing == [] and score.extra == []
    by_side = sorted(score.faces, key=lambda f: f.box[0])
    assert [f.character for f in by_side] == [left, right]
    assert by_side[0].box[2] <= photos[left].width <= by_side[1].box[0]  # one face per half
    assert all(s > 0.95 for s in score.similarities.values()), score.similarities
    assert score.weakest == min(score.similarities.values())


def test_panel_without_a_face_reports_every_character_missing(references):
    import skimage.data

    panel = Image.fromarray(skimage.data.coffee())  # a real photo of a coffee cup
    score = score_panel(panel, references, [GRACE, EILEEN])
    assert score.faces == [] and score.similarities == {}
    assert score.missing == [GRACE, EILEEN]
    assert score.weakest == MISSING_SCORE
    assert not score.passes(-0.5)


def test_score_panels_scores_each_panel_against_its_own_characters(photos, references):
    eileen_panel, grace_panel = photos[EILEEN].resize((400, 400)), photos[GRACE]
    scores = score_panels([eileen_panel, grace_panel], references, [[EILEEN], [EILEEN, GRACE]])
    assert list(scores[0].similarities) == [EILEEN] and scores[0].similarities[EILEEN] > 0.95
    assert list(scores[1].similarities) == [GRACE] and scores[1].missing == [EILEEN]
    with pytest.raises(InputError, match="one per panel"):
        score_panels([grace_panel], references, [[GRACE], [EILEEN]])


def test_a_duplicate_face_is_reported_as_extra(photos, references):
    panel = side_by_side(photos[EILEEN], photos[GRACE], ImageOps.mirror(photos[EILEEN]))
    score = score_panel(panel, references, [EILEEN, GRACE])
    assert len(score.faces) == 3 and score.missing == []
    assert set(score.similarities) == {EILEEN, GRACE}
    [extra] = score.extra
    assert extra.character is None and extra.nearest == EILEEN and extra.nearest_similarity > 0.95
    assert score.to_dict()["extra_faces"] == 1


def test_a_person_outside_the_panels_cast_is_extra_and_says_whom_it_resembles(photos, references):
    panel = side_by_side(photos[EILEEN], photos[GRACE])
    score = score_panel(panel, references, [GRACE])  # the sentence names only Grace
    assert list(score.similarities) == [GRACE] and score.similarities[GRACE] > 0.95
    [extra] = score.extra
    assert extra.nearest == EILEEN
    only_grace = score_panel(panel, {GRACE: references[GRACE]}, [GRACE])  # Eileen not in the cast at all
    assert len(only_grace.extra) == 1 and only_grace.extra[0].nearest == GRACE


def test_a_reference_photo_without_a_face_is_a_clear_error(tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (256, 256), (200, 180, 160)).save(blank)
    with pytest.raises(NoFaceError, match="reference photo for 'Ada Lovelace'"):
        references_from({"Ada Lovelace": blank})


# -- matching logic (pure) -----------------------------------------------------------------------


def test_assignment_is_optimal_not_greedy():
    # greedy (face 0 takes its best, A) leaves face 1 with B at 0.1; the optimum swaps them
    sim = np.array([[0.9, 0.85], [0.8, 0.1]])
    assert assign_faces(sim) == [(0, 1), (1, 0)]
    assert assign_faces(np.zeros((0, 2))) == []


def test_match_faces_reports_missing_extra_and_unscored():
    refs = {"A": unit([1, 0, 0]), "B": unit([0, 1, 0])}
    faces = [((0, 0, 10, 10), 1.0, unit([0.1, 1, 0])), ((20, 0, 30, 10), 1.2, unit([0.2, 0.9, 0]))]
    score = match_faces(faces, refs, ["B", "C"])  # C has no reference
    assert score.unscored == ["C"] and score.missing == []
    assert score.similarities["B"] == pytest.approx(float(faces[0][2] @ refs["B"]))  # the closer face wins B
    assert [f.box for f in score.extra] == [(20, 0, 30, 10)]
    nobody = match_faces([], refs, ["A", "B"])
    assert nobody.missing == ["A", "B"] and nobody.weakest == MISSING_SCORE
    assert match_faces(faces, refs, []).weakest is None  # nobody to score: nothing to improve


# -- prompt fit ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    """A random-weight CLIPModel with the real CLIP tokenizer, saved like a hub snapshot."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from storyface.random_models import clip_tokenizer

    torch.manual_seed(0)
    layers = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2)
    config = CLIPConfig(
        text_config=dict(vocab_size=49408, max_position_embeddings=77, **layers),
        vision_config=dict(image_size=32, patch_size=8, **layers),
        projection_dim=16,
    )
    folder = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(config).save_pretrained(folder)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=clip_tokenizer()).save_pretrained(folder)
    return folder


def test_clip_prompt_fit_is_a_finite_cosine_that_depends_on_image_and_text(tiny_clip, photos, references):
    clip = ClipScorer(tiny_clip)
    a = clip.score(photos[GRACE], "a woman in uniform")
    b = clip.score(photos[GRACE], "a rocket on the launch pad at dawn")
    c = clip.score(photos[EILEEN], "a woman in uniform")
    assert all(math.isfinite(x) and -1 <= x <= 1 for x in (a, b, c))
    assert a != b and a != c
    assert clip.score(photos[GRACE], "a woman in uniform") == pytest.approx(a, abs=1e-6)
    score = score_panel(photos[GRACE], references, [GRACE], clip=clip, text="a woman in uniform")
    assert score.prompt_fit == pytest.approx(a, abs=1e-6) and score.similarities[GRACE] > 0.95


def test_clip_model_that_cannot_load_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="Cannot load CLIP model"):
        ClipScorer(tmp_path / "nothing-here")


# -- retry -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def renderer():
    from storyface.models import load_model
    from storyface.render import Renderer

    return Renderer(load_model("tiny", device="cpu"))


class PlannedScorer:
    """Returns planned weakest scores per panel, attempt by attempt; remembers the seeds it saw."""

    def __init__(self, plan: dict[int, list[float]]) -> None:
        self.plan = {i: list(v) for i, v in plan.items()}
        self.seen: dict[int, list[int]] = {i: [] for i in plan}

    def __call__(self, index: int, panel) -> PanelScore:
        self.seen[index].append(panel.seed)
        return PanelScore(expected=["A"], similarities={"A": self.plan[index].pop(0)}, missing=[])


def test_retry_keeps_the_best_attempt_and_records_every_one(renderer):
    from storyface.render import RenderConfig

    config = RenderConfig(steps=2, width=64, height=64)
    # panel 0 passes at its 2nd try; panel 1 never passes, its 2nd try is best; panel 2 passes at once
    scorer = PlannedScorer({0: [0.2, 0.9], 1: [0.5, 0.7, 0.6], 2: [0.95]})
    prompts = ["a lighthouse", "a cat on a sofa", "a rocket"]
    images, records = render_with_retries(renderer, prompts, "", [10, 11, 12], config, scorer, 0.8, retries=2, rng_seed=3)
    assert [len(r.attempts) for r in records] == [2, 3, 1]
    assert [r.kept for r in records] == [1, 1, 0]
    assert [r.passed for r in records] == [True, False, True]
    for record, image, seen in zip(records, images, scorer.seen.values()):
        assert record.seeds == seen and len(set(seen)) == len(seen)  # every attempt recorded, no seed twice
        assert image.seed == record.best.seed and image.index == record.index
        best = max(range(len(record.attempts)), key=lambda k: record.attempts[k].score.weakest)
        assert record.kept == best
    assert [r.seeds[0] for r in records] == [10, 11, 12]
    [alone] = renderer.render([prompts[1]], seeds=[records[1].best.seed], config=config)
    assert np.abs(np.asarray(alone.image, np.int16) - np.asarray(images[1].image, np.int16)).max() <= 2
    data = records[1].record()
    assert data["kept_seed"] == records[1].seeds[1] and [a["weakest"] for a in data["attempts"]] == [0.5, 0.7, 0.6]


# -- the comic folder and `storyface eval` --------------------------------------------------------


def random_identity(name: str, seed: int) -> Identity:
    g = torch.Generator().manual_seed(seed)
    rows = {"clip_l": torch.randn(2, 32, generator=g), "clip_g": torch.randn(2, 64, generator=g)}  # tiny SDXL widths
    return Identity(name, "sdxl", rows, {"tiny": "true"})


def test_comic_with_min_likeness_then_eval_end_to_end(tmp_path, monkeypatch, astronaut_path, grace_hopper_path):
    from storyface.cli import app

    monkeypatch.setenv("STORYFACE_HOME", str(tmp_path / "home"))
    for name, photo, seed in ((EILEEN, astronaut_path, 1), (GRACE, grace_hopper_path, 2)):
        stem = tmp_path / name.split()[0].lower()
        save_identity(random_identity(name, seed), stem.with_suffix(".safetensors"))
        Image.open(photo).save(stem.with_suffix(".png"))  # the reference photo beside the identity file
    story = tmp_path / "story.txt"
    story.write_text("Grace Hopper fixed the computer. Eileen Collins flew the shuttle with Grace Hopper.")
    out = tmp_path / "comic"
    runner = CliRunner()
    made = runner.invoke(app, [
        "comic", "--story", str(story), "--identity", str(tmp_path / "eileen.safetensors"),
        "--identity", str(tmp_path / "grace.safetensors"), "--model", "tiny", "--steps", "2", "--size", "64",
        "--consent-by", "Test Runner",
        "--backend", "offline", "--out", str(out), "--min-likeness", "0.9", "--retries", "1",
    ], catch_exceptions=False)  # fmt: skip
    assert made.exit_code == 0, made.output
    manifest = json.loads((out / "comic.json").read_text())
    assert manifest["references"] == {EILEEN: "references/eileen-collins.png", GRACE: "references/grace-hopper.png"}
    assert all((out / rel).is_file() for rel in manifest["references"].values())
    for record in manifest["panels"]:  # tiny panels are noise: no face, so each panel was retried once
        tries = record["likeness"]
        assert len(tries["attempts"]) == 2 and tries["passed"] is False and len(set(tries["seeds"])) == 2
        assert all(a["weakest"] == MISSING_SCORE for a in tries["attempts"])
    assert json.loads((out / "panels" / "panel-01.json").read_text())["likeness"]["seeds"][0] == 0

    result = runner.invoke(app, ["eval", str(out), "--html"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "eval.json").read_text())
    assert [p["missing"] for p in report["panels"]] == [[GRACE], [EILEEN, GRACE]]
    assert all(p["weakest"] == MISSING_SCORE and p["faces"] == [] for p in report["panels"])
    assert report["summary"]["characters_missing"] == 3
    assert any("tiny test model" in w for w in report["warnings"])
    assert any("characters missing" in w for w in report["warnings"])
    page = (out / "eval.html").read_text()
    assert page.count('src="data:image/jpeg;base64,') == 4  # 2 references + 2 panels, nothing linked
    assert "Eileen Collins, Grace Hopper" in page and "tiny test model" in page
    assert "missing" in result.output


def test_eval_on_a_folder_that_is_not_a_comic_is_a_clear_error(tmp_path):
    from storyface.cli import app

    result = CliRunner().invoke(app, ["eval", str(tmp_path)])
    assert result.exit_code == 2 and "no comic.json" in " ".join(result.output.split())


def test_reference_paths_that_leave_the_comic_folder_are_ignored(tmp_path, grace_hopper_path):
    import shutil

    from storyface.comic_folder import ComicFolder

    comic = tmp_path / "comic"
    (comic / "references").mkdir(parents=True)
    shutil.copy(grace_hopper_path, comic / "references" / "grace.jpg")
    shutil.copy(grace_hopper_path, tmp_path / "outside.jpg")
    refs = {"Grace Hopper": "references/grace.jpg", "Out Side": "../outside.jpg", "Abs Olute": str(tmp_path / "outside.jpg")}
    panel = {"index": 0, "prompt": "<grace-hopper> waves", "seed": 0, "width": 64, "height": 64, "steps": 1,
             "guidance": 8.5, "scheduler": "euler"}  # fmt: skip
    (comic / "comic.json").write_text(json.dumps({"panels": [panel], "references": refs}))
    assert ComicFolder(comic).references() == {"Grace Hopper": comic / "references/grace.jpg"}
