"""The lengths of the text a comic takes, checked at the door before any work (issue 17, item 8).

A megabyte of "free style" words once held the web app's only render slot for over a minute of policy
checking. Every door calls :func:`check_comic_text` before it loads a model, reads an identity or takes
the device lock; the core (``make_comic``, ``plan_prompts``, ``redraw_panel``) calls it too, so a
caller of the Python API meets the same limits. :func:`check_render_request` does the same for the
numbers of a comic render (seed range, retries, likeness threshold).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InputError
from ..limits import MAX_NEGATIVE_CHARS, MAX_RETRIES, MAX_SEED, MAX_STYLE_CHARS, MAX_STYLES, MAX_TITLE_CHARS


def check_text(what: str, text: object, limit: int, *, optional: bool = True) -> None:
    """Refuse text longer than ``limit`` characters (or not text at all) with a message naming it."""
    if text is None and optional:
        return
    if not isinstance(text, str):
        raise InputError(f"{what} must be text, got {type(text).__name__}")
    if len(text) > limit:
        raise InputError(f"{what}: {len(text):,} characters; keep it to {limit:,}")


def check_comic_text(
    *,
    free_style: str | None = "",
    title: str | None = None,
    negative_prompt: str | None = None,
    styles: Sequence[str] = (),
) -> None:
    """The free style words, the title, the negative prompt and the style presets, within their limits."""
    check_text("the free style words", free_style, MAX_STYLE_CHARS)
    check_text("the title", title, MAX_TITLE_CHARS)
    check_text("the negative prompt", negative_prompt, MAX_NEGATIVE_CHARS)
    if isinstance(styles, str) or not isinstance(styles, Sequence):
        raise InputError("styles must be a list of style preset names")
    if len(styles) > MAX_STYLES:
        raise InputError(f"{len(styles):,} styles were given; pick at most {MAX_STYLES}")
    for style in styles:
        check_text("a style name", style, MAX_STYLE_CHARS, optional=False)


def check_render_request(panels: int, seed: object, retries: object = 0, min_likeness: object = None) -> None:
    """Panel i is drawn with ``seed + i``, so the whole range must be valid seeds; retries and the
    likeness threshold (a cosine similarity) within their ranges."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED - max(panels - 1, 0):
        raise InputError(f"seed {seed!r} must be a whole number from 0 to {MAX_SEED - max(panels - 1, 0)} "
                         f"(panel i is drawn with seed + i)")  # fmt: skip
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= MAX_RETRIES:
        raise InputError(f"retries must be a whole number from 0 to {MAX_RETRIES}, got {retries!r}")
    if min_likeness is not None and (isinstance(min_likeness, bool) or not isinstance(min_likeness, (int, float))
                                     or not -1.0 <= min_likeness <= 1.0):  # fmt: skip
        raise InputError(f"min_likeness is a cosine similarity from -1 to 1, got {min_likeness!r}")
