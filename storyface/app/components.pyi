"""Page components with StoryFace's input checks built in (imports gradio: load lazily from the UI).

``gr.Image`` opens every upload with Pillow before any handler runs; an upload that is no image, or a
decompression bomb, then fails inside Gradio with a generic "an exception was raised". ``PhotoInput``
turns those into the same clear message the command line gives.
"""

from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

from gradio.events import Dependency

class PhotoInput(gr.Image):
    """``gr.Image`` (same front end: ``is_template``) whose unreadable uploads become a ``gr.Error``."""

    is_template = True

    def preprocess(self, payload: Any) -> Any:
        try:
            return super().preprocess(payload)
        except Image.DecompressionBombError:
            message = "the photo has too many pixels to open safely; downscale it first"
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            message = "the photo is not an image StoryFace can read (JPEG, PNG, WebP, ...); export HEIC or RAW as JPEG"
        raise gr.Error(message, title="Please check", print_exception=False)
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component