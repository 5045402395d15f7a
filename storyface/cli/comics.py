"""``storyface story | comic | redraw | eval | demo | ui``: from a story to a comic, and looking at it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ..limits import MAX_PANEL_SIDE, MAX_RENDER_STEPS, MAX_RETRIES, MIN_PANEL_SIDE

from .common import (
    DEFAULT_MODEL,
    ClusterOpt,
    ConsentOpt,
    DataDirOpt,
    ModelOpt,
    console,
    friendly_errors,
    library,
    load,
    note,
    out,
    progress,
    read_text,
    renderer,
    say,
)

IdentityOpt = Annotated[
    list[str], typer.Option("--identity", help="An identity .safetensors or a library name; repeat per person.")
]


@friendly_errors
def story(
    story_file: Annotated[Path, typer.Argument(help="A text file with the story.")],
    cast: Annotated[list[str], typer.Option("--cast", help="A character's full name; repeat per character.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the panel script as JSON (edit it, then pass it to comic).")] = False,
    backend: Annotated[str, typer.Option(help="auto (LLM when configured), offline or llm.")] = "auto",
) -> None:
    """Split a story into one short sentence per panel, pronouns replaced by full names."""
    from ..api import parse_story

    script = parse_story(read_text(story_file), list(cast), backend=backend)
    for w in script.warnings:
        note("warning", w)
    if as_json:
        out.print_json(script.model_dump_json())
        return
    table = Table("#", "sentence", "characters", title=f"panel script ({script.backend})")
    for i, p in enumerate(script.panels, 1):
        table.add_row(str(i), p.sentence, ", ".join(p.characters))
    out.print(table)


@friendly_errors
def comic(
    story_file: Annotated[Path, typer.Option("--story", help="Story text file (or a panel script .json).")],
    identity: IdentityOpt,
    style: Annotated[list[str], typer.Option("--style", help="A style preset; repeatable.")] = [],
    free_style: Annotated[str, typer.Option(help="Extra style words, appended as written.")] = "",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for page.png, panels and records.")] = Path("comic"),
    model: ModelOpt = DEFAULT_MODEL,
    pdf: Annotated[bool, typer.Option(help="Also write comic.pdf (all pages, print resolution).")] = False,
    layout: Annotated[str, typer.Option(help="Page layout: grid, dynamic (panels of different shapes) or webtoon.")] = "grid",
    page: Annotated[Optional[str], typer.Option("--page", help="Page size: us-comic, a4, square or phone (default: the layout's).")] = None,
    rtl: Annotated[bool, typer.Option("--rtl", help="Read right to left (manga).")] = False,
    lettering: Annotated[bool, typer.Option("--lettering/--no-lettering", help="Balloons and narration boxes; off: clean art with captions under the panels.")] = True,
    title: Annotated[Optional[str], typer.Option(help="A title drawn above the panels.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Panel i gets seed + i.")] = 0,
    quality: Annotated[str, typer.Option(help="standard (30 steps) or fast (a few steps with a distillation --lora).")] = "standard",
    lora: Annotated[list[str], typer.Option("--lora", help="A LoRA to fuse: FILE or hub id, optionally :WEIGHT and :KIND (style, lightning, hyper, lcm, tcd); repeatable.")] = [],
    fast_kind: Annotated[Optional[str], typer.Option(help="With --quality fast and no distillation LoRA: the kind the base model itself was distilled as.")] = None,
    steps: Annotated[Optional[int], typer.Option(min=1, max=MAX_RENDER_STEPS, help="Sampling steps per panel (default: the quality's).")] = None,
    guidance: Annotated[Optional[float], typer.Option(min=0, help="Classifier-free guidance (default: the quality's; standard: 8.5).")] = None,
    size: Annotated[
        Optional[int],
        typer.Option(min=MIN_PANEL_SIDE, max=MAX_PANEL_SIDE, help="Panel side in pixels (default: each panel's native size for its shape)."),
    ] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Override the sampler: euler, euler_a, dpmpp_2m, ddim, euler_trailing, lcm, tcd ...")] = None,
    decoder: Annotated[str, typer.Option(help="full (the model's VAE) or tiny (TAESD: a faster decode, softer detail).")] = "full",
    decoder_source: Annotated[Optional[str], typer.Option(help="With --decoder tiny: its folder or hub id (default: madebyollin/taesdxl).")] = None,
    compile: Annotated[Optional[str], typer.Option(help="torch.compile the UNet: regional or whole (the first run on a machine pays minutes; later ones reuse the cache).")] = None,
    backend: Annotated[str, typer.Option(help="Story parser: auto, offline or llm.")] = "auto",
    consent_by: ConsentOpt = None,
    data_dir: DataDirOpt = None,
    min_likeness: Annotated[Optional[float], typer.Option("--min-likeness", min=-1.0, max=1.0, help="Re-render a panel whose weakest face is less similar than this to its reference (dlib: same person ~0.95-1, different ~0.85-0.9).")] = None,
    retries: Annotated[int, typer.Option("--retries", min=0, max=MAX_RETRIES, help="New seeds to try per weak panel (with --min-likeness).")] = 2,
    eval_encoder: Annotated[str, typer.Option("--eval-encoder", help="Face encoder that scores likeness: dlib, vit or arcface.")] = "dlib",
    eval_encoder_model: Annotated[Optional[str], typer.Option("--eval-encoder-model", help="Model folder or id (vit), or .onnx file (arcface).")] = None,
    cluster: ClusterOpt = None,
) -> None:
    """Render one panel per sentence with your identities; letter the dialogue and lay out the pages."""
    from ..api import BookSettings, check_comic_text, get_face_encoder, identities_for, make_comic, read_script, render_settings

    check_comic_text(free_style=free_style, title=title, styles=style)  # before the files, the model, the work
    scorer = get_face_encoder(eval_encoder, **({"model": eval_encoder_model} if eval_encoder_model else {}))
    book = BookSettings.of(layout=layout, preset=page, rtl=rtl, lettering=lettering, pdf=pdf)
    cast = identities_for(identity, library(data_dir, readonly=True) if _needs_library(identity) else None, consent_by)
    script = read_script(read_text(story_file), str(story_file), [m.identity.name for m in cast], backend)
    references = {m.identity.name: m.reference for m in cast if m.reference is not None}
    draw = renderer(model, cluster)
    config, _, fused = render_settings(draw, quality, lora, steps=steps, guidance=guidance, size=size,
                                       scheduler=scheduler, kind=fast_kind, permanent=True, decoder=decoder,
                                       decoder_source=decoder_source, compile=compile)  # fmt: skip
    for loaded in fused:
        say(f"fused {loaded.name} ({loaded.kind}, weight {loaded.weight:g})")
    with progress() as bar:
        task = bar.add_task("rendering", total=None, info=f"{len(script.panels)} panels")
        result = make_comic(
            draw, script.panels, [m.identity for m in cast], out_dir, styles=style, free_style=free_style,
            config=config, seed=seed, title=title, book=book, references=references, min_likeness=min_likeness,
            retries=retries, face_encoder=scorer,
            callback=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    say(f"wrote {len(result.pages)} page(s) of {len(result.panels)} panels to {result.folder.pages_dir}")
    if min_likeness is not None:
        from ..eval.report import retry_lines

        for line in retry_lines(result.out_dir):
            say(line)
    for w in script.warnings + result.warnings:
        note("warning", w)
    if draw.model.random_weights:
        note("note", draw.model.notice)


def _needs_library(refs: list[str]) -> bool:
    return any(not (r.lower().endswith(".safetensors") or Path(r).is_file()) for r in refs)


@friendly_errors
def redraw(
    comic_dir: Annotated[Path, typer.Argument(help="A folder `storyface comic` wrote.")],
    panel: Annotated[int, typer.Option(min=1, help="The panel to draw again (1 = first).")],
    identity: Annotated[list[str], typer.Option("--identity", help="The identities in the comic (files or library names).")],
    seed: Annotated[Optional[int], typer.Option(min=0, help="Seed to use (default: a new random one; the panel's own redraws it as it was).")] = None,
    model: ModelOpt = DEFAULT_MODEL,
    consent_by: ConsentOpt = None,
    data_dir: DataDirOpt = None,
    cluster: ClusterOpt = None,
) -> None:
    """Draw one panel again with a new (or given) seed; every other panel stays exactly as it was."""
    from ..api import ComicFolder, identities_for, redraw_panel

    ComicFolder(comic_dir).read()  # a damaged record fails before the model loads
    cast = identities_for(identity, library(data_dir, readonly=True) if _needs_library(identity) else None, consent_by)
    result = redraw_panel(renderer(model, cluster), comic_dir, panel, [m.identity for m in cast], seed)
    say(f"panel {panel} drawn again with seed {result.panels[panel - 1].seed}; wrote {result.folder.pages_dir}")


@friendly_errors
def letter(
    comic_dir: Annotated[Path, typer.Argument(help="A folder `storyface comic` wrote (edit captions and dialogue in its comic.json).")],
    layout: Annotated[Optional[str], typer.Option(help="Change the page layout: grid, dynamic or webtoon.")] = None,
    page: Annotated[Optional[str], typer.Option("--page", help="Change the page size: us-comic, a4, square or phone.")] = None,
    rtl: Annotated[Optional[bool], typer.Option("--rtl/--ltr", help="Change the reading order.")] = None,
    lettering: Annotated[Optional[bool], typer.Option("--lettering/--no-lettering", help="Turn balloons and boxes on or off.")] = None,
) -> None:
    """Letter a comic again from its records (after editing text): no model, the art stays as it is."""
    from ..api import BookSettings, ComicFolder, ContentPolicy, reletter

    record = ComicFolder(comic_dir).read()
    changes = {k: v for k, v in {"layout": layout, "preset": page, "rtl": rtl, "lettering": lettering}.items() if v is not None}
    settings = BookSettings.of(**{**record.book, **changes})
    book, files = reletter(comic_dir, ContentPolicy.from_env(), settings)
    say(f"lettered {len(book.pages)} page(s) again; wrote {len(files)} file(s) in {comic_dir}")


@friendly_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the demo comic.")] = Path("out/demo"),
    model: Annotated[str, typer.Option("--model", help="Base model; 'tiny' runs offline.")] = "tiny",
    steps: Annotated[int, typer.Option(min=1, help="Training steps per identity.")] = 100,
) -> None:
    """The whole chain offline: two real photos -> identities -> built-in story -> comic page."""
    from ..demo import run_demo

    t0 = time.perf_counter()
    loaded = load(model)
    with progress() as bar:
        task = bar.add_task("demo", total=None, info="")
        result = run_demo(loaded, out_dir, steps, report=lambda stage, done, total, info="": bar.update(
            task, description=stage, completed=done, total=total, info=info))
    say(f"demo finished in {time.perf_counter() - t0:.0f}s")
    for line in result.summary():
        say(line, stdout=True)


@friendly_errors
def eval_comic(
    comic_dir: Annotated[Path, typer.Argument(help="A folder written by `storyface comic`.")],
    encoder: Annotated[str, typer.Option(help="Face encoder: dlib (offline), vit or arcface.")] = "dlib",
    encoder_model: Annotated[Optional[str], typer.Option(help="Model folder or id (vit), or .onnx file (arcface).")] = None,
    clip: Annotated[Optional[str], typer.Option("--clip", help="CLIP model id or folder: adds prompt fit (image-text similarity).")] = None,
    html: Annotated[bool, typer.Option("--html", help="Also write eval.html with panel thumbnails and scores.")] = False,
    reference: Annotated[list[str], typer.Option("--reference", help="'Full Name=photo.png' for a character; repeatable.")] = [],
    min_likeness: Annotated[Optional[float], typer.Option("--min-likeness", min=-1.0, max=1.0, help="Mark panels whose weakest face is below this.")] = None,
) -> None:
    """Likeness of every panel to its characters' reference photos (and prompt fit with --clip)."""
    from ..api import get_face_encoder
    from ..eval.report import eval_table, evaluate_comic, parse_reference_args, write_html, write_json

    face_encoder = get_face_encoder(encoder, **({"model": encoder_model} if encoder_model else {}))
    with console.status("scoring panels ..."):
        evaluation = evaluate_comic(comic_dir, face_encoder, clip, parse_reference_args(reference), min_likeness)
    out.print(eval_table(evaluation))
    say(f"wrote {write_json(evaluation)}")
    if html:
        say(f"wrote {write_html(evaluation)}")


@friendly_errors
def ui(
    model: ModelOpt = DEFAULT_MODEL,
    host: Annotated[
        str, typer.Option(help="Interface to bind (default: this machine only); any other needs STORYFACE_AUTH=user:password.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 7860,
    data_dir: DataDirOpt = None,
    cluster: ClusterOpt = None,
) -> None:
    """The web app: cast, story, style, generate."""
    from ..app.ui import launch

    launch(model=model, host=host, port=port, data_dir=data_dir, cluster=cluster)
