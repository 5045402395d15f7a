"""``python -m storyface ...``: the same command line as ``storyface``."""

from .cli import run

run()
