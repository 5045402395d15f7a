"""``storyface`` command line: train | story | comic | demo | ids | jobs | eval | ui.

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
    if loaded.is_tiny:
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


@app.command()
@friendly_errors
def train(
    photo: Annotated[Path, typer.Argument(help="One photo showing exactly one face.")],
    name: Annotated[str, typer.Option(help="The person's full name, e.g. 'Grace Hopper'.")],
    model: ModelOpt = DEFAULT_MODEL,
    steps: Annotated[int, typer.Option(min=1, help="Training steps (StableIdentity: ~500).")] = 500,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Identity file to write (.safetensors).")] = None,
    seed: int = 0,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default: 1e-5 SDXL, 5e-5 SD 2.x).")] = None,
    encoder: Annotated[str, typer.Option(help="Face encoder: dlib (offline) or vit.")] = "dlib",
) -> None:
    """Learn an identity from one photo and write it as an SDXL/SD2 embedding file."""
    from .identity.subject import subject_from_photo
    from .faces import get_face_encoder
    from .identity.tokens import identity_token, save_identity
    from .identity.train import TrainConfig, train_identity

    name = _clean_name(name)
    target = out_file or Path(identity_token(name).strip("<>") + ".safetensors")
    if target.suffix != ".safetensors":
        raise typer.BadParameter("--out must end in .safetensors")
    face_encoder = get_face_encoder(encoder)
    subject, _ = subject_from_photo(photo, name, face_encoder)  # fails fast on a bad photo, before loading SDXL
    loaded = _load(model)
    t0 = time.perf_counter()
    with _progress() as bar:
        task = bar.add_task(f"training {name}", total=steps, info="")
        ident = train_identity(
            loaded, subject, TrainConfig(steps=steps, seed=seed, lr=lr),
            progress=lambda s, n, loss: bar.update(task, completed=s, info=f"loss {loss:.4f}"),
        )
    save_identity(ident, target)
    meta = ident.metadata
    console.print(
        f"wrote [bold]{target}[/] ({ident.family}, token {ident.token}) in {time.perf_counter() - t0:.1f}s; "
        f"probe loss {float(meta['probe_loss_start']):.4f} -> {float(meta['probe_loss_end']):.4f}"
    )
    if loaded.is_tiny:
        console.print("[yellow]note:[/] this identity was trained on the tiny test model and only works with it")


def _clean_name(name: str) -> str:
    from .errors import InputError

    cleaned = " ".join(name.split())
    if not cleaned:
        raise InputError("the name is empty: give the person's full name, e.g. --name 'Grace Hopper'")
    if any(ord(c) < 32 or c in "/\\" for c in name) or len(cleaned) > 80:
        raise InputError(f"{name!r} is not a usable name: at most 80 characters, no slashes or control characters")
    return cleaned


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

    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None


@app.command()
@friendly_errors
def comic(
    story_file: Annotated[Path, typer.Option("--story", help="Story text file (or a panel script .json).")],
    identity: Annotated[list[Path], typer.Option("--identity", help="An identity .safetensors; repeat per person.")],
    style: Annotated[list[str], typer.Option("--style", help="A style preset; repeatable.")] = [],
    free_style: Annotated[str, typer.Option(help="Extra style words, appended as written.")] = "",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for page.png, panels and records.")] = Path("comic"),
    model: ModelOpt = DEFAULT_MODEL,
    pdf: Annotated[bool, typer.Option(help="Also write page.pdf.")] = False,
    title: Optional[str] = None,
    seed: int = 0,
    steps: Annotated[int, typer.Option(min=1)] = 30,
    guidance: float = 5.0,
    size: Annotated[Optional[int], typer.Option(help="Panel side in pixels (default: the model's).")] = None,
    scheduler: str = "euler",
    backend: Annotated[str, typer.Option(help="Story parser: auto, offline or llm.")] = "auto",
) -> None:
    """Render one panel per sentence with your identities and lay out a captioned page."""
    from .identity.tokens import load_identity
    from .render.generate import RenderConfig, Renderer

    identities = [load_identity(p) for p in identity]
    panels, warnings = _panels(story_file, [i.name for i in identities], backend)
    loaded = _load(model)
    comic_ = _render(Renderer(loaded), panels, identities, out_dir, style, free_style,
                     RenderConfig(steps=steps, guidance=guidance, width=size, height=size, scheduler=scheduler),
                     seed, title, pdf)
    for w in warnings + comic_.warnings:
        console.print(f"[yellow]warning:[/] {w}")


def _panels(story_file: Path, cast: list[str], backend: str):
    from .story.parsers import parse_story
    from .story.schema import Panel

    text = _read_text(story_file)
    if story_file.suffix == ".json":
        data = json.loads(text)
        return [Panel.model_validate(p) for p in data.get("panels", data)], []
    script = parse_story(text, cast, backend=backend)
    return script.panels, script.warnings


def _render(renderer, panels, identities, out_dir, styles, free_style, config, seed, title, pdf):
    from .api import make_comic

    with _progress() as bar:
        task = bar.add_task("rendering", total=None, info=f"{len(panels)} panels")
        result = make_comic(
            renderer, panels, identities, out_dir, styles=styles, free_style=free_style, config=config,
            seed=seed, title=title, pdf=pdf, callback=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(f"wrote [bold]{result.out_dir / 'page.png'}[/] with {len(result.panels)} panels")
    if renderer.model.is_tiny:
        console.print(f"[yellow]note:[/] {renderer.model.notice}")
    return result


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


def run() -> None:  # pragma: no cover - console entry for `python -m storyface`
    app(prog_name="storyface")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
