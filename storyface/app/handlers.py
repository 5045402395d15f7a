"""Event handlers of the web app: check the input, call the API, shape the result for the page.

Each handler is a method of :class:`Handlers` (which holds the :class:`Services`), so Gradio sees
real type hints (``gr.Request``, ``gr.SelectData``) and a ``gr.Progress`` default. Any
:class:`StoryFaceError` becomes a ``gr.Error`` with the same message and stays on its step's status
line (see :mod:`.handlers_base`); because a raised error leaves every output and state as it was, a
bad click never loses the cast, story or comic. The steps live in their own modules:
:mod:`.handlers_people` (people, training, library, cast) and :mod:`.handlers_comic` (story, panels,
the comic, redraws, re-lettering).
"""

from .handlers_base import ErrorBoard, HandlerBase, optional_number, user_errors, whole_number
from .handlers_comic import ComicHandlers, ComicSession, comic_outputs
from .handlers_people import EXAMPLE_STORY, PeopleHandlers, PendingPerson

__all__ = [
    "EXAMPLE_STORY",
    "ComicSession",
    "ErrorBoard",
    "HandlerBase",
    "Handlers",
    "PendingPerson",
    "comic_outputs",
    "optional_number",
    "user_errors",
    "whole_number",
]


class Handlers(PeopleHandlers, ComicHandlers):
    """One method per page event; ``services`` is shared by every browser session."""


