"""What every web-app handler shares: errors that stay on their step, numbers, the cast, the device.

A handler that refuses an input raises ``gr.Error`` (the toast, and the error a ``gradio_client``
caller gets), and a raised error leaves every output as it was, so nothing typed is lost. To keep the
message on the page, :func:`user_errors` also files it on the :class:`ErrorBoard` under the browser
session and the step; the page's ``.failure`` listener (:meth:`HandlerBase.error_for`) puts it on the
step's status line, where it stays until that step's next success writes over it.

No ``from __future__ import annotations`` here: Gradio resolves the handlers' hints at runtime.
"""

import functools
import html
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gradio as gr

from .. import api
from ..errors import InputError, StoryError, StoryFaceError
from ..library import ACTIVE
from ..names import name_key, tidy
from .services import Services
from .views import error_status, plain_words

BOARD_SESSIONS = 2_000  # errors kept for this many (session, step) pairs; a message is read once anyway


class ErrorBoard:
    """The last error of each step of each browser session, until its status line shows it."""

    def __init__(self, limit: int = BOARD_SESSIONS) -> None:
        self._errors: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def put(self, session: str, step: str, message: str) -> None:
        with self._lock:
            self._errors[(session, step)] = message
            self._errors.move_to_end((session, step))
            while len(self._errors) > self._limit:
                self._errors.popitem(last=False)

    def take(self, session: str, step: str) -> str | None:
        with self._lock:
            return self._errors.pop((session, step), None)


def _request_in(args: tuple, kwargs: dict) -> gr.Request | None:
    return next((a for a in (*args, *kwargs.values()) if isinstance(a, gr.Request)), None)


def user_errors(step: str) -> Callable[[Callable], Callable]:
    """A user's mistake in ``step``: a ``gr.Error`` (no traceback in the log) and a message that stays.

    The handler must take ``request: gr.Request`` for the message to reach its status line.
    """

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(self: "HandlerBase", *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except StoryFaceError as exc:
                message = plain_words(str(exc))
                request = _request_in(args, kwargs)
                if request is not None and request.session_hash:
                    self.board.put(request.session_hash, step, message)
                # the toast renders HTML: a name like "<img src=x>" must show as text, never become an element
                raise gr.Error(html.escape(message, quote=False), title="Please check", print_exception=False) from exc

        return wrapper

    return decorate


def whole_number(value: Any, what: str, low: int, high: int) -> int:
    """A whole number from a Number/Slider field, or an error naming the field."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a whole number from {low} to {high}") from None
    if not number.is_integer() or not low <= number <= high:
        raise InputError(f"{what} must be a whole number from {low} to {high}, got {value}")
    return int(number)


def optional_number(value: Any, what: str, low: int, high: int) -> int | None:
    """Like :func:`whole_number`, but an empty field is None (the default applies)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return whole_number(value, what, low, high)


class HandlerBase:
    """The services every handler uses, shared by every browser session."""

    def __init__(self, services: Services) -> None:
        self.s = services
        self.board = ErrorBoard()

    def error_for(self, step: str) -> Callable:
        """The ``.failure`` listener of ``step``'s events: its last error, onto its status line."""

        def show(request: gr.Request) -> Any:
            message = self.board.take(request.session_hash, step) if request and request.session_hash else None
            return error_status(message) if message else gr.skip()

        show.__name__ = f"show_{step}_error"
        return show

    def library_names(self) -> list[str]:
        return [r.name for r in self.s.library.list()]

    def _cast(self, cast: list | None, allow_empty: bool = False) -> list[str]:
        """The picked names in the library's spelling; a name still training gets its own message."""
        names, seen = [], set()
        for raw in cast or []:
            name = tidy(raw)
            if name and name_key(name) not in seen:
                seen.add(name_key(name))
                names.append(name)
        if not names and not allow_empty:
            raise StoryError("pick the cast first: click faces in the library (or add people and train them)")
        training = {name_key(j.name) for j in self.s.queue.list() if j.state in ACTIVE}
        for name in names:
            if name not in self.s.library and name_key(name) in training:
                raise InputError(f"{name} is still training; wait until the job is done, then try again")
        return [self.s.library.get(n).name for n in names]

    def _story_cast(self, cast: list | None, text: str) -> list[str]:
        """The picked cast plus everyone in the library that ``text`` names (picked automatically)."""
        picked = self._cast(cast, allow_empty=True)
        library = self.library_names()
        mentioned = api.describe_panel(text, library)[1] if text and library else []
        return picked + [n for n in mentioned if n not in picked]

    @contextmanager
    def _device(self, progress: gr.Progress) -> Iterator[None]:
        """Hold the one device; say so while a training job has it."""
        lock: threading.Lock = self.s.device_lock
        if not lock.acquire(blocking=False):
            progress(0, desc="waiting for the training job to finish")
            lock.acquire()
        try:
            yield
        finally:
            lock.release()
