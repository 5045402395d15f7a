"""What every command shares: the consoles, options, loading the model once, errors as one line."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import InputError, StoryFaceError
from ..limits import MAX_SCRIPT_BYTES

console = Console(stderr=True)
out = Console()
DEFAULT_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        envvar="STORYFACE_MODEL",
        help="Hub id, local diffusers folder, single-file .safetensors, or 'tiny' (random-weight test model).",
    ),
]
DataDirOpt = Annotated[
    Optional[Path], typer.Option("--data-dir", envvar="STORYFACE_HOME", help="Library folder (default: platform data dir).")
]
ConsentOpt = Annotated[
    Optional[str],
    typer.Option("--consent-by", help="Who confirmed the person agreed to have their face learned or used (a name)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ClusterOpt = Annotated[
    Optional[str],
    typer.Option(
        "--cluster",
        envvar="STORYFACE_CLUSTER",
        help="Send training and rendering to the StoryFace cluster at this URL (what `storyface serve` printed); "
        "its token comes from STORYFACE_CLUSTER_TOKEN. --model is then the cluster's.",
    ),
]


def connect(url: str, policy: Any = None) -> tuple[Any, Any]:
    """The cluster's renderer and trainer (one connection pool), saying which model it runs."""
    from ..cluster import connect as connect_cluster

    renderer, trainer = connect_cluster(url, policy=policy)
    note("cluster", f"{url} runs {renderer.model.source}")
    if renderer.model.random_weights:
        note("note", f"StoryFace is {renderer.model.notice}")
    return renderer, trainer


def say(text: str, style: str | None = None, *, stdout: bool = False) -> None:
    """Print text that may hold user input (names, paths, messages) literally: never as Rich markup."""
    (out if stdout else console).print(text, style=style, markup=False, highlight=False)


def note(label: str, text: str, style: str = "yellow") -> None:
    console.print(f"[{style}]{label}:[/] ", end="")
    say(text)


def friendly_errors(fn: Callable) -> Callable:
    """Print user errors as one clear line (exit code 2); keep tracebacks for real bugs."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoryFaceError as exc:
            note("error", str(exc), "bold red")
            raise typer.Exit(2) from None

    return wrapper


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # their notes on optional torchvision are not the user's business


def load(model: str):
    """Load the base model once per command, saying plainly when it is a random-weight one."""
    from ..api import load_model

    with console.status(f"loading {model} ..."):
        loaded = load_model(model)
    if loaded.random_weights:
        note("note", f"StoryFace is {loaded.notice}")
    return loaded


def library(data_dir: Optional[Path], readonly: bool = False):
    """The library; commands that only read open it read-only, so they can never change it."""
    from ..api import IdentityLibrary
    from ..paths import data_dir as resolve

    lib = IdentityLibrary(resolve(data_dir), readonly=readonly)
    for line in lib.notes:
        note("library", line)
    return lib


def renderer(model: str, cluster: str | None = None):
    """The model's renderer with the content policy and image checker the user set (read here, once);
    with ``cluster`` (a URL), the cluster's renderer in its place, and no model loaded here (its
    replicas read their own image checker setting)."""
    from ..api import ContentPolicy, Renderer
    from ..safety.images import ImageSafetyChecker

    if cluster:
        return connect(cluster, policy=ContentPolicy.from_env())[0]
    return Renderer(load(model), policy=ContentPolicy.from_env(), image_checker=ImageSafetyChecker.from_env())


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        console=console,
    )


def read_text(path: Path) -> str:
    """A story or panel script file, or an error saying exactly why it cannot be read."""
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


os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
