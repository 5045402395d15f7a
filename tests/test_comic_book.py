"""A real comic end to end on the tiny model: panel sizes from the layout, people in their regions,
dialogue lettered in balloons, pages and book files, and re-lettering without a model."""

from __future__ import annotations

import json
import zipfile
from xml.etree import ElementTree as ET

import pytest
import torch
from typer.testing import CliRunner

from storyface.api import BookSettings, ContentPolicy, RenderConfig, Renderer, load_model, make_comic, reletter
from storyface.cli import app
from storyface.identity.tokens import Identity
from storyface.render.attention import RegionalAttention
from storyface.safety import ContentPolicyError
from storyface.story.schema import Line, Panel

GRACE, EILEEN = "Grace Hopper", "Eileen Collins"


def identity(name: str, seed: int) -> Identity:
    g = torch.Generator().manual_seed(seed)
    return Identity(name, "sdxl", {"clip_l": torch.randn(2, 32, generator=g), "clip_g": torch.randn(2, 64, generator=g)},
                    {"tiny": "true"})  # fmt: skip


PANELS = [
    Panel(sentence="Grace Hopper fixes a huge computer in the lab.", characters=[GRACE],
          caption="Grace was fixing the computer when Eileen walked in."),
    Panel(sentence="Eileen Collins shows Grace Hopper a flight plan.", characters=[EILEEN, GRACE],
          dialogue=[Line(speaker=EILEEN, text="Check the navigation code?"), Line(speaker=GRACE, text="Tonight.")]),
    Panel(sentence="Grace Hopper finds a moth in the relay.", characters=[GRACE],
          dialogue=[Line(speaker=GRACE, text="A real bug!", kind="thought")]),
    Panel(sentence="A rocket rises over the launch pad at dawn.", characters=[], caption="At dawn, they watched."),
]  # fmt: skip


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(load_model("tiny", device="cpu"))


@pytest.fixture(scope="module")
def comic(renderer, tmp_path_factory):
    calls = []
    unet = renderer.model.pipe.unet
    handle = unet.register_forward_pre_hook(lambda m, args: calls.append(tuple(args[0].shape)))
    try:
        made = make_comic(renderer, PANELS, [identity(GRACE, 1), identity(EILEEN, 2)], tmp_path_factory.mktemp("c") / "comic",
                          config=RenderConfig(steps=2), title="The First Bug",
                          book=BookSettings.of(layout="dynamic", pdf=True))  # fmt: skip
    finally:
        handle.remove()
    return made, calls


def test_panels_are_rendered_at_their_shapes_size_and_batched_by_size(comic):
    made, calls = comic
    sizes = [(p.width, p.height) for p in made.panels]
    assert sizes[0][0] > sizes[0][1]  # the dynamic layout opens with a wide establishing panel
    assert len(set(sizes)) >= 2  # panels of different shapes, each rendered at its own size (not cropped)
    latent_sizes = {shape[-2:] for shape in calls}  # one UNet batch per size: [2 x panels of that size, 4, h/8, w/8]
    assert latent_sizes == {(h // 8, w // 8) for w, h in sizes}
    assert len(calls) == len(set(sizes)) * 2  # 2 steps per size group (4 panels, at most 4 a batch)


def test_two_people_stand_in_their_regions(comic, renderer):
    made, _ = comic
    record = made.folder.read()
    assert set(record.panels[1].regions) == {EILEEN, GRACE}
    assert record.panels[1].regions[EILEEN][0] < record.panels[1].regions[GRACE][0]  # first named stands left
    assert RegionalAttention.installed_on(renderer.model.pipe.unet)


def test_the_record_and_book_files(comic):
    made, _ = comic
    folder = made.folder
    record = folder.read()
    assert record.pages == len(made.pages) == len(folder.page_pngs()) and record.book["layout"] == "dynamic"
    balloons = record.panels[1].lettering["lettering"]["balloons"]
    assert [b["speaker"] for b in balloons] == [EILEEN, GRACE]
    assert all(b["saw_face"] is False for b in balloons)  # the tiny model's art is noise: placed blind
    assert record.panels[3].characters == [] and record.panels[3].identities == []  # a scene panel: no identities
    assert record.panels[3].caption == "At dawn, they watched." and record.panels[3].lettering["lettering"]["caption"]
    assert folder.book_pdf.read_bytes().startswith(b"%PDF")
    with zipfile.ZipFile(folder.book_cbz) as cbz:
        info = ET.fromstring(cbz.read("ComicInfo.xml"))
        assert int(info.findtext("PageCount")) == record.pages
        assert info.findtext("Title") == "The First Bug" and GRACE in info.findtext("Characters")


def test_relettering_after_a_dialogue_edit_changes_pages_not_art_and_loads_no_model(comic, monkeypatch):
    made, _ = comic
    folder = made.folder
    art = {p: p.read_bytes() for p in sorted((folder.path / "panels").glob("*.png"))}
    page = folder.page_png(1).read_bytes()
    data = json.loads(folder.manifest.read_text())
    data["panels"][1]["dialogue"][1]["text"] = "Right now, Commander."
    folder.manifest.write_text(json.dumps(data))

    def no_model(*args, **kwargs):
        raise AssertionError("re-lettering must not load a model")

    monkeypatch.setattr("storyface.models.load_model", no_model)
    monkeypatch.setattr("storyface.api.load_model", no_model)
    result = CliRunner().invoke(app, ["letter", str(folder.path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert {p: p.read_bytes() for p in art} == art  # the clean art is byte-identical
    assert folder.page_png(1).read_bytes() != page or folder.page_png(2).is_file()
    record = folder.read()
    assert [b["text"] for b in record.panels[1].lettering["lettering"]["balloons"]][1] == "Right now, Commander."


def test_every_text_on_the_page_passes_the_policy_before_anything_renders(renderer, tmp_path):
    bad = [Panel(sentence="Grace Hopper waves.", characters=[GRACE], dialogue=[Line(speaker=GRACE, text="Let's get naked.")])]
    with pytest.raises(ContentPolicyError, match="dialogue"):
        make_comic(renderer, bad, [identity(GRACE, 1)], tmp_path / "c", config=RenderConfig(steps=1))
    with pytest.raises(ContentPolicyError, match="title"):
        make_comic(renderer, PANELS[:1], [identity(GRACE, 1)], tmp_path / "c", config=RenderConfig(steps=1), title="nude")
    assert not (tmp_path / "c").exists()


def test_edited_lettering_text_is_checked_too(comic):
    made, _ = comic
    with pytest.raises(ContentPolicyError, match="caption"):
        reletter(made.out_dir, ContentPolicy(), texts=[("Everyone was naked.", [])] + [(None, [])] * 3)


def test_a_line_that_cannot_fit_names_its_panel(renderer, tmp_path):
    long = [Panel(sentence="Grace Hopper talks.", characters=[GRACE], dialogue=[Line(speaker=GRACE, text="word " * 55)] * 6)]
    with pytest.raises(Exception, match="panel 1"):
        make_comic(renderer, long, [identity(GRACE, 1)], tmp_path / "c", config=RenderConfig(steps=1),
                   book=BookSettings.of(preset="phone", layout="webtoon"))  # fmt: skip


def test_a_panels_region_override_moves_people_and_is_recorded(renderer, tmp_path):
    swapped = [Panel(sentence="Eileen Collins shows Grace Hopper a flight plan.", characters=[EILEEN, GRACE],
                     regions={GRACE: "left", EILEEN: "right"})]  # fmt: skip
    made = make_comic(renderer, swapped, [identity(GRACE, 1), identity(EILEEN, 2)], tmp_path / "c",
                      config=RenderConfig(steps=1))  # fmt: skip
    panel = made.folder.read().panels[0]
    assert panel.region_overrides == {GRACE: "left", EILEEN: "right"}
    assert panel.regions[GRACE][0] < panel.regions[EILEEN][0]
    with pytest.raises(Exception, match="not in the panel|Nobody"):
        make_comic(renderer, [swapped[0].model_copy(update={"regions": {"Nobody Here": "left"}})],
                   [identity(GRACE, 1), identity(EILEEN, 2)], tmp_path / "d", config=RenderConfig(steps=1))  # fmt: skip


def test_appearance_notes_reach_every_prompt_the_person_appears_in(renderer):
    from storyface.api import plan_prompts

    grace = identity(GRACE, 1)
    grace = Identity(grace.name, grace.family, grace.embeddings, {**grace.metadata, "appearance": "short grey hair, navy uniform"})
    prompts = plan_prompts(renderer, PANELS[:3], [grace, identity(EILEEN, 2)])
    assert [p.prompt.count("(short grey hair, navy uniform)") for p in prompts] == [1, 1, 1]
    assert "<grace-hopper> (short grey hair, navy uniform)" in prompts[0].prompt
    costume = plan_prompts(renderer, PANELS[:1], [grace], appearance={GRACE: "a flight suit"})
    assert "(a flight suit)" in costume[0].prompt and "navy" not in costume[0].prompt  # a costume change
    with pytest.raises(ContentPolicyError):
        plan_prompts(renderer, PANELS[:1], [grace], appearance={GRACE: "topless"})
