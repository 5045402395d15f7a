"""``storyface`` command line: train | story | comic | redraw | demo | ids | jobs | eval | ui.

A thin door onto :mod:`storyface.api`: parse options, load the model once, show progress with rich,
and turn any :class:`~storyface.errors.StoryFaceError` into a one-line message and exit code 2.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import StoryFaceError

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Identity-consistent comics from face photos and a story.")
console = Console(stderr=True)
out = Console()

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        envvar="STORYFACE_MODEL",
        help="Hub id, local diffusers folder, single-file .safetensors, or 'tiny' (random-weight test model).",
    ),
]
DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"


def friendly_errors(fn):
    """Print user errors as one clear line; keep tracebacks for real bugs."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StoryFaceError as exc:
            console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None

    return wrapper


def _load(model: str):
    from .models import load_model

    with console.status(f"loading {model} ..."):
        loaded = load_model(model)
    if loaded.random_weights:
        console.print(f"[yellow]note:[/] StoryFace is {loaded.notice}")
    return loaded


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    )


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # their notes on optional torchvision are not the user's business


DataDirOpt = Annotated[
    Optional[Path], typer.Option("--data-dir", envvar="STORYFACE_HOME", help="Library folder (default: platform data dir).")
]


def _library(data_dir_: Optional[Path], readonly: bool = False):
    """The library; commands that only read open it read-only, so they can never change it."""
    from .identity.library import IdentityLibrary
    from .paths import data_dir

    library = IdentityLibrary(data_dir(data_dir_), readonly=readonly)
    for note in library.notes:
        console.print(f"[yellow]library:[/] {note}", markup=False, highlight=False)
    return library


@app.command()
@friendly_errors
def train(
    photo: Annotated[Path, typer.Argument(help="One photo showing exactly one face.")],
    name: Annotated[str, typer.Option(help="The person's full name, e.g. 'Grace Hopper'.")],
    model: ModelOpt = DEFAULT_MODEL,
    steps: Annotated[int, typer.Option(min=1, help="Training steps (StableIdentity: ~500).")] = 500,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Also write the identity file here (.safetensors).")] = None,
    seed: int = 0,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default: 1e-5 SDXL, 5e-5 SD 2.x).")] = None,
    encoder: Annotated[str, typer.Option(help="Face encoder: dlib (offline) or vit.")] = "dlib",
    encoder_model: Annotated[
        Optional[str], typer.Option(envvar="STORYFACE_FACE_ENCODER_MODEL", help="Model folder or hub id for the vit encoder.")
    ] = None,
    parsing_model: Annotated[
        Optional[str], typer.Option(help="A face-parsing segmentation model for the face/hair masks (default: landmarks).")
    ] = None,
    queue: Annotated[bool, typer.Option("--queue", help="Queue a job for `storyface jobs work` instead of training now.")] = False,
    consent_by: Annotated[
        Optional[str],
        typer.Option("--consent-by", help="Required: who confirmed the person in the photo agreed to have their face learned."),
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Learn an identity from one photo, keep it in the library and optionally write it as a file."""
    from .faces import get_face_encoder
    from .identity.jobs import JobQueue
    from .identity.library import DuplicateNameError, normalize_name
    from .identity.subject import subject_from_photo
    from .identity.tokens import save_identity
    from .identity.train import TrainConfig, train_identity

    name = normalize_name(name)
    consent = _consent(consent_by, name)
    if out_file is not None and out_file.suffix != ".safetensors":
        raise typer.BadParameter("--out must end in .safetensors")
    face_encoder = get_face_encoder(encoder, **({"model": encoder_model} if encoder_model else {}))
    # a bad photo fails here, before anything is written or SDXL is loaded
    subject, headshot = subject_from_photo(photo, name, face_encoder, parsing_model=parsing_model)
    library = _library(data_dir)
    params = {"steps": steps, "seed": seed, **({"lr": lr} if lr is not None else {}), "face_encoder": encoder}
    params.update({k: v for k, v in (("face_encoder_model", encoder_model), ("parsing_model", parsing_model)) if v})
    if queue:
        job = JobQueue(library).submit(photo, name, model, params, consent_by=consent)
        console.print(f"queued job [bold]{job.id[:8]}[/] for {name}; run `storyface jobs work` to train it")
        return
    if name in library:
        raise DuplicateNameError(f"{name!r} is already in the library; pick another name or `storyface ids delete` it")
    loaded = _load(model)
    t0 = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task(f"training {name}", total=steps, info="")
        ident = train_identity(
            loaded, subject, TrainConfig(steps=steps, seed=seed, lr=lr),
            progress=lambda s, n, loss: bar.update(task, completed=s, info=f"loss {loss:.4f}"),
        )
    if out_file is not None:
        save_identity(ident, out_file)
        console.print(f"wrote [bold]{out_file}[/]")
    record = library.add(ident, headshot.image, consent)
    meta = ident.metadata
    console.print(
        f"learned [bold]{name}[/] ({ident.family}, token {ident.token}) in {time.perf_counter() - t0:.1f}s; "
        f"probe loss {float(meta['probe_loss_start']):.4f} -> {float(meta['probe_loss_end']):.4f}; "
        f"library: {record.embedding_path}"
    )
    if loaded.is_tiny:
        console.print("[yellow]note:[/] this identity was trained on the tiny test model and only works with it")


def _consent(consent_by: Optional[str], name: str) -> str:
    """Training a real person's face needs someone to vouch that they agreed; the library records who."""
    from .errors import InputError
    from .identity.library import clean_consent

    consent = clean_consent(consent_by)
    if consent is None:
        raise InputError(
            f'training needs consent: add --consent-by "NAME" with the name of whoever confirmed that {name} '
            "agreed to have their face learned (your own name if you asked them, theirs if it is you); "
            "see README 'Safety'"
        )
    return consent


@app.command()
@friendly_errors
def story(
    story_file: Annotated[Path, typer.Argument(help="A text file with the story.")],
    cast: Annotated[list[str], typer.Option("--cast", help="A character's full name; repeat per character.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the panel script as JSON.")] = False,
    backend: Annotated[str, typer.Option(help="auto (LLM when configured), offline or llm.")] = "auto",
) -> None:
    """Split a story into one short sentence per panel, pronouns replaced by full names."""
    from .story.parsers import parse_story

    script = parse_story(_read_text(story_file), list(cast), backend=backend)
    for w in script.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    if as_json:
        out.print_json(script.model_dump_json())
        return
    table = Table("#", "sentence", "characters", title=f"panel script ({script.backend})")
    for i, p in enumerate(script.panels, 1):
        table.add_row(str(i), p.sentence, ", ".join(p.characters))
    out.print(table)


def _read_text(path: Path) -> str:
    from .errors import InputError
    from .safety.inputs import MAX_SCRIPT_BYTES

    try:
        if path.is_file() and path.stat().st_size > MAX_SCRIPT_BYTES:
            raise InputError(f"{path} is over {MAX_SCRIPT_BYTES // 1_000_000} MB; a story or panel script is a few KB")
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a folder; give the path of a text file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


@app.command()
@friendly_errors
def comic(
    story_file: Annotated[Path, typer.Option("--story", help="Story text file (or a panel script .json).")],
    identity: Annotated[list[str], typer.Option("--identity", help="An identity .safetensors or a library name; repeat per person.")],
    style: Annotated[list[str], typer.Option("--style", help="A style preset; repeatable.")] = [],
    free_style: Annotated[str, typer.Option(help="Extra style words, appended as written.")] = "",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for page.png, panels and records.")] = Path("comic"),
    model: ModelOpt = DEFAULT_MODEL,
    pdf: Annotated[bool, typer.Option(help="Also write page.pdf.")] = False,
    title: Optional[str] = None,
    seed: int = 0,
    steps: Annotated[int, typer.Option(min=1)] = 30,
    guidance: Annotated[float, typer.Option(help="Classifier-free guidance (StableIdentity: 8.5).")] = 8.5,
    size: Annotated[Optional[int], typer.Option(help="Panel side in pixels (default: the model's).")] = None,
    scheduler: str = "euler",
    backend: Annotated[str, typer.Option(help="Story parser: auto, offline or llm.")] = "auto",
    data_dir: DataDirOpt = None,
    min_likeness: Annotated[Optional[float], typer.Option("--min-likeness", min=-1.0, max=1.0, help="Re-render a panel whose weakest face is less similar than this to its reference (dlib: same person ~0.95-1, different ~0.85-0.9).")] = None,
    retries: Annotated[int, typer.Option("--retries", min=0, help="New seeds to try per weak panel (with --min-likeness).")] = 2,
) -> None:
    """Render one panel per sentence with your identities and lay out a captioned page."""
    from .render.generate import RenderConfig, Renderer

    identities = _identities(identity, data_dir)
    panels, warnings = _panels(story_file, [i.name for i in identities], backend)
    references = _references(identity, identities, data_dir)
    loaded = _load(model)
    comic_ = _render(Renderer(loaded), panels, identities, out_dir, style, free_style,
                     RenderConfig(steps=steps, guidance=guidance, width=size, height=size, scheduler=scheduler),
                     seed, title, pdf, references=references, min_likeness=min_likeness, retries=retries)
    for w in warnings + comic_.warnings:
        console.print(f"[yellow]warning:[/] {w}")


def _identities(refs: list[str], data_dir_: Optional[Path]):
    """Each ref is an identity file (``*.safetensors``) or the name of one in the library."""
    from .identity.tokens import load_identity

    library = None
    identities = []
    for ref in refs:
        if ref.lower().endswith(".safetensors") or Path(ref).is_file():
            identities.append(load_identity(ref))
        else:
            library = library or _library(data_dir_, readonly=True)
            identities.append(library.load(ref))
    return identities


def _references(refs: list[str], identities, data_dir_: Optional[Path]) -> dict[str, Path]:
    """Each person's reference headshot: the library's, or ``<identity file stem>.png`` beside the file."""
    library = None
    found = {}
    for ref, ident in zip(refs, identities):
        if ref.lower().endswith(".safetensors") or Path(ref).is_file():
            photo = Path(ref).with_suffix(".png")
        else:
            library = library or _library(data_dir_, readonly=True)
            photo = library.get(ref).headshot_path
        if photo is not None and photo.is_file():
            found[ident.name] = photo
    return found


def _panels(story_file: Path, cast: list[str], backend: str):
    from .safety.inputs import panels_from_json
    from .story.parsers import parse_story

    text = _read_text(story_file)
    if story_file.suffix == ".json":
        return panels_from_json(text, str(story_file)), []
    script = parse_story(text, cast, backend=backend)
    return script.panels, script.warnings


def _render(renderer, panels, identities, out_dir, styles, free_style, config, seed, title, pdf, **likeness):
    from .api import make_comic

    with _progress() as bar:
        task = bar.add_task("rendering", total=None, info=f"{len(panels)} panels")
        result = make_comic(
            renderer, panels, identities, out_dir, styles=styles, free_style=free_style, config=config,
            seed=seed, title=title, pdf=pdf, callback=lambda done, total: bar.update(task, completed=done, total=total),
            **likeness,
        )
    console.print(f"wrote [bold]{result.out_dir / 'page.png'}[/] with {len(result.panels)} panels")
    if likeness.get("min_likeness") is not None:
        from .eval.report import retry_lines

        for line in retry_lines(result.out_dir):
            console.print(line)
    if renderer.model.random_weights:
        console.print(f"[yellow]note:[/] {renderer.model.notice}")
    return result


@app.command()
@friendly_errors
def redraw(
    comic_dir: Annotated[Path, typer.Argument(help="A folder `storyface comic` wrote.")],
    panel: Annotated[int, typer.Option(help="The panel to draw again (1 = first).")],
    identity: Annotated[list[str], typer.Option("--identity", help="The identities in the comic (files or library names).")],
    seed: Annotated[Optional[int], typer.Option(help="Seed to use (default: a new random one; the panel's own redraws it as it was).")] = None,
    model: ModelOpt = DEFAULT_MODEL,
    data_dir: DataDirOpt = None,
) -> None:
    """Draw one panel again with a new (or given) seed; every other panel stays exactly as it was."""
    from .api import redraw_panel
    from .render.generate import Renderer

    identities = _identities(identity, data_dir)
    result = redraw_panel(Renderer(_load(model)), comic_dir, panel, identities, seed)
    console.print(f"panel {panel} drawn again with seed {result.panels[panel - 1].seed}; wrote [bold]{comic_dir / 'page.png'}[/]")


@app.command()
@friendly_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write the demo comic.")] = Path("out/demo"),
    model: Annotated[str, typer.Option("--model", help="Base model; 'tiny' runs offline.")] = "tiny",
    steps: Annotated[int, typer.Option(help="Training steps per identity.")] = 100,
) -> None:
    """The whole chain offline: two real photos -> identities -> built-in story -> comic page."""
    from .demo import run_demo

    t0 = time.perf_counter()
    loaded = _load(model)
    with _progress() as bar:
        task = bar.add_task("demo", total=None, info="")
        result = run_demo(loaded, out_dir, steps, report=lambda stage, done, total, info="": bar.update(
            task, description=stage, completed=done, total=total, info=info))
    console.print(f"demo finished in {time.perf_counter() - t0:.0f}s")
    for line in result.summary():
        out.print(line)


ids_app = typer.Typer(no_args_is_help=True, help="The identity library: list, show, rename, delete, export, import.")
jobs_app = typer.Typer(no_args_is_help=True, help="Training jobs: list, cancel, work.")
app.add_typer(ids_app, name="ids")
app.add_typer(jobs_app, name="jobs")


@ids_app.command("list")
@friendly_errors
def ids_list(data_dir: DataDirOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every identity in the library."""
    library = _library(data_dir, readonly=True)
    records = library.list()
    lost = library.unindexed()
    if lost:
        console.print(
            f"warning: {len(lost)} identity folder(s) in {library.identities_dir} are not in the database "
            "(restored from an older backup?); `storyface ids recover` adds them back", markup=False
        )
    if as_json:
        out.print_json(json.dumps([r.to_dict() for r in records], default=str))
        return
    table = Table("name", "token", "family", "model", "encoder", "created", "consent", title=f"{len(records)} identities")
    for r in records:
        table.add_row(r.name, r.token, r.family, str(r.base_model), str(r.face_encoder), r.created_at, r.consent_by or "-")
    out.print(table)


@ids_app.command("show")
@friendly_errors
def ids_show(name: str, data_dir: DataDirOpt = None) -> None:
    """One identity's record and files."""
    out.print_json(json.dumps(_library(data_dir, readonly=True).get(name).to_dict(), default=str))


@ids_app.command("rename")
@friendly_errors
def ids_rename(old: str, new: str, data_dir: DataDirOpt = None) -> None:
    record = _library(data_dir).rename(old, new)
    console.print(f"renamed {old!r} to [bold]{record.name}[/] (token {record.token})")


@ids_app.command("delete")
@friendly_errors
def ids_delete(name: str, data_dir: DataDirOpt = None) -> None:
    record = _library(data_dir).delete(name)
    console.print(f"deleted {record.name!r}")


@ids_app.command("export")
@friendly_errors
def ids_export(name: str, dest: Path, data_dir: DataDirOpt = None) -> None:
    """Write the identity as a standard embedding file other tools read."""
    console.print(f"wrote [bold]{_library(data_dir, readonly=True).export(name, dest)}[/]")


@ids_app.command("recover")
@friendly_errors
def ids_recover(data_dir: DataDirOpt = None) -> None:
    """Rebuild the database rows of identity folders it lost (a restore, a missing file); deletes nothing."""
    library = _library(data_dir)
    console.print(f"{len(library.notes)} folder(s) recovered; the library holds {len(library.list())} identities")


@ids_app.command("import")
@friendly_errors
def ids_import(
    path: Path,
    name: Annotated[Optional[str], typer.Option(help="Name to store it under (default: the file's).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Add an embedding file (.safetensors only, never pickle) to the library."""
    record = _library(data_dir).import_file(path, name=name)
    console.print(f"imported [bold]{record.name}[/] ({record.family}, token {record.token})")


@jobs_app.command("list")
@friendly_errors
def jobs_list(data_dir: DataDirOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Queued, running (with step and loss), done and failed jobs."""
    from .identity.jobs import JobQueue

    jobs = JobQueue(_library(data_dir)).list()
    if as_json:
        out.print_json(json.dumps([j.to_dict() for j in jobs], default=str))
        return
    table = Table("id", "name", "state", "progress", "loss", "error", title=f"{len(jobs)} jobs")
    for j in jobs:
        progress = f"{j.step}/{j.total}" if j.total else "-"
        loss = f"{j.loss:.4f}" if j.loss is not None else "-"
        table.add_row(j.id[:8], j.name, j.state, progress, loss, j.error or "")
    out.print(table)


@jobs_app.command("cancel")
@friendly_errors
def jobs_cancel(job_id: str, data_dir: DataDirOpt = None) -> None:
    from .identity.jobs import JobQueue

    job = JobQueue(_library(data_dir)).cancel(job_id)
    console.print(f"job {job.id[:8]} ({job.name}): {job.state}{' (cancel requested)' if job.cancel_requested else ''}")


@jobs_app.command("work")
@friendly_errors
def jobs_work(
    data_dir: DataDirOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Exit when the queue is empty.")] = False,
) -> None:
    """Run queued training jobs one at a time (one worker per GPU; one on CPU)."""
    from .identity.jobs import main as worker_main

    args = (["--data-dir", str(data_dir)] if data_dir else []) + (["--once"] if once else [])
    raise typer.Exit(worker_main(args))


@app.command("eval")
@friendly_errors
def eval_comic(
    comic_dir: Annotated[Path, typer.Argument(help="A folder written by `storyface comic`.")],
    encoder: Annotated[str, typer.Option(help="Face encoder: dlib (offline) or vit.")] = "dlib",
    encoder_model: Annotated[Optional[str], typer.Option(help="Model folder or id for the vit encoder.")] = None,
    clip: Annotated[Optional[str], typer.Option("--clip", help="CLIP model id or folder: adds prompt fit (image-text similarity).")] = None,
    html: Annotated[bool, typer.Option("--html", help="Also write eval.html with panel thumbnails and scores.")] = False,
    reference: Annotated[list[str], typer.Option("--reference", help="'Full Name=photo.png' for a character; repeatable.")] = [],
    min_likeness: Annotated[Optional[float], typer.Option("--min-likeness", min=-1.0, max=1.0, help="Mark panels whose weakest face is below this.")] = None,
) -> None:
    """Likeness of every panel to its characters' reference photos (and prompt fit with --clip)."""
    from .eval.report import eval_table, evaluate_comic, parse_reference_args, write_html, write_json
    from .faces import get_face_encoder

    face_encoder = get_face_encoder(encoder, **({"model": encoder_model} if encoder_model else {}))
    with console.status("scoring panels ..."):
        evaluation = evaluate_comic(comic_dir, face_encoder, clip, parse_reference_args(reference), min_likeness)
    out.print(eval_table(evaluation))
    console.print(f"wrote [bold]{write_json(evaluation)}[/]")
    if html:
        console.print(f"wrote [bold]{write_html(evaluation)}[/]")


@app.command()
@friendly_errors
def ui(
    model: ModelOpt = DEFAULT_MODEL,
    host: Annotated[
        str, typer.Option(help="Interface to bind (default: this machine only); any other needs STORYFACE_AUTH=user:password.")
    ] = "127.0.0.1",
    port: int = 7860,
    data_dir: DataDirOpt = None,
) -> None:
    """The web app: cast, story, style, generate."""
    from .app.ui import launch

    launch(model=model, host=host, port=port, data_dir=data_dir)


def run() -> None:  # pragma: no cover - console entry for `python -m storyface`
    app(prog_name="storyface")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
