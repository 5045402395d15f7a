"""``storyface`` command line: a thin door onto :mod:`storyface.api`.

Each command parses its options, calls the API, and prints (rich); any
:class:`~storyface.errors.StoryFaceError` becomes one clear line and exit code 2.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from . import cluster, comics, people
from .common import setup_logging

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Identity-consistent comics from face photos and a story.")


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details.")] = False) -> None:
    setup_logging(verbose)


app.command()(people.train)
app.command()(comics.story)
app.command()(comics.comic)
app.command()(comics.redraw)
app.command()(comics.letter)
app.command()(comics.demo)
app.command("eval")(comics.eval_comic)
app.command()(comics.ui)
app.command()(cluster.serve)
app.add_typer(people.ids_app, name="ids")
app.add_typer(people.jobs_app, name="jobs")


def run() -> None:  # pragma: no cover - console entry for `python -m storyface`
    app(prog_name="storyface")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
