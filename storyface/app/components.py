"""Page components with StoryFace's input checks built in (imports gradio: load lazily from the UI).

``gr.Image`` opens every upload with Pillow before any handler runs; an upload that is no image, or a
decompression bomb, then fails inside Gradio with a generic "an exception was raised". ``PhotoInput``
hands the handler an :class:`UnreadablePhoto` with the same clear message the command line gives, so
the handler refuses it like any other mistake and the message stays on the step's status line.
"""

from dataclasses import dataclass
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError


@dataclass(frozen=True)
class UnreadablePhoto:
    """An upload Pillow could not open, and what to tell the person."""

    message: str


class PhotoInput(gr.Image):
    """``gr.Image`` (same front end: ``is_template``) whose unreadable uploads become :class:`UnreadablePhoto`."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        try:
            return super().preprocess(payload)
        except Image.DecompressionBombError:
            return UnreadablePhoto("the photo has too many pixels to open safely; downscale it first")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            return UnreadablePhoto(
                "the photo is not an image StoryFace can read (JPEG, PNG, WebP, ...); export HEIC or RAW as JPEG"
            )
