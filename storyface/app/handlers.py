"""Event handlers of the web app: check the input, call the API, shape the result for the page.

Each handler is a method of :class:`Handlers` (which holds the :class:`Services`), so Gradio sees
real type hints (``gr.Request``, ``gr.SelectData``) and a ``gr.Progress`` default. Any
:class:`StoryFaceError` becomes a ``gr.Error`` with the same message; because a raised error
leaves every output and state as it was, a bad click never loses the cast, story or comic.

No ``from __future__ import annotations`` here: Gradio resolves these hints at runtime.
"""

import functools
import html
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, ImageOps

from .. import api
from ..errors import InputError, StoryError, StoryFaceError
from ..identity.tokens import Identity
from ..library import ACTIVE, DuplicateNameError, IdentityRecord, JobRecord
from ..limits import MAX_PANELS, MAX_RENDER_STEPS, MAX_SEED, MAX_TRAIN_STEPS
from ..names import name_key, normalize_name, tidy
from .services import Services

log = logging.getLogger(__name__)

PANEL_HEADERS = ["sentence", "characters"]
JOB_HEADERS = ["name", "state", "progress", "loss", "error"]
JOBS_SHOWN = 20
PREVIEW_SIDE = 192  # px of a pending person's aligned-face tile
NO_ONE = "(no one in the cast: write a full name)"


@dataclass(frozen=True)
class PendingPerson:
    """One person added to the training list: the photo as uploaded, its aligned face, and the person
    as the core checked them (name, consent record, face)."""

    name: str
    photo: bytes
    preview: Image.Image
    person: api.PreparedPerson


@dataclass
class ComicSession:
    """The last comic of a browser session, kept so one panel can be drawn again."""

    comic: api.Comic
    identities: list[Identity]
    references: dict  # name -> the library headshot the likeness is measured against
    scores: list[api.PanelScore]  # likeness of each panel, shown next to it


def user_errors(fn: Callable) -> Callable:
    """Show a user's mistake as a message in the page (no traceback in the server log)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoryFaceError as exc:
            # the toast renders HTML: a name like "<img src=x>" must show as text, never become an element
            raise gr.Error(html.escape(str(exc), quote=False), title="Please check", print_exception=False) from exc

    return wrapper


# -- pure helpers ------------------------------------------------------------------------------


def whole_number(value: Any, what: str, low: int, high: int) -> int:
    """A whole number from a Number/Slider field, or an error naming the field."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a whole number from {low} to {high}") from None
    if not number.is_integer() or not low <= number <= high:
        raise InputError(f"{what} must be a whole number from {low} to {high}, got {value}")
    return int(number)


def job_table(jobs: Sequence[JobRecord]) -> list[list[str]]:
    """Newest first: name, state, step/total, loss, error."""
    rows = []
    for job in list(reversed(jobs))[:JOBS_SHOWN]:
        progress = f"{job.step}/{job.total}" if job.total else ("waiting" if job.state == "queued" else "")
        loss = f"{job.loss:.4f}" if job.loss is not None else ""
        rows.append([job.name, job.state, progress, loss, job.error or ""])
    return rows


def thumbnail(record: IdentityRecord) -> Image.Image:
    """The library's face tile, or a plain grey one for an imported identity without a photo (or with a
    damaged one: a bad file in the data folder must not break the whole page)."""
    path = record.thumb_path or record.headshot_path
    if path is not None:
        try:
            with Image.open(path) as im:
                return ImageOps.fit(im.convert("RGB"), (128, 128))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:  # a damaged file: the tile, not the page, says so
            log.warning("cannot show the picture of %r (%s): %s", record.name, path, exc)
    return Image.new("RGB", (128, 128), (200, 200, 205))


def library_gallery(records: Sequence[IdentityRecord]) -> list[tuple[Image.Image, str]]:
    return [(thumbnail(r), r.name) for r in records]


def pending_gallery(pending: Sequence[PendingPerson]) -> list[tuple[Image.Image, str]]:
    return [(p.preview, p.name) for p in pending]


def clean_rows(rows: Any) -> list[str]:
    """The sentences of the panel table, blank rows dropped."""
    sentences = []
    for row in rows or []:
        cell = row[0] if isinstance(row, (list, tuple)) and row else row
        text = tidy(cell if cell is not None else "")
        if text:
            sentences.append(text)
    return sentences


def panel_row(sentence: str, cast: Sequence[str]) -> list[str]:
    """A row of the panel table."""
    sentence, characters = api.describe_panel(sentence, cast)
    return [sentence, ", ".join(characters) or NO_ONE]


def likeness_line(score: api.PanelScore) -> str:
    """'likeness: Grace Hopper 0.95, Eileen Collins not found' (dlib cosine; same person ~0.95+)."""
    parts = [f"{name} {value:.2f}" for name, value in score.similarities.items()]
    parts += [f"{name} not found" for name in score.missing]
    parts += [f"{len(score.extra)} extra face(s)"] if score.extra else []
    return "likeness: " + ", ".join(parts) if parts else ""


def comic_outputs(comic: api.Comic, scores: Sequence[api.PanelScore]) -> tuple[str, list[tuple[str, str]], list[str], dict, str]:
    """page image, panel tiles (with each panel's likeness), download files, record, status line."""
    out, folder = comic.out_dir, comic.folder
    tiles = [
        (str(folder.panel_png(i)), f"{i}. {panel.sentence} — {likeness_line(score)}".rstrip(" —"))
        for i, (panel, score) in enumerate(zip(comic.script, scores), start=1)
    ]
    downloads = [str(f) for f in comic.files if f.suffix in (".pdf", ".cbz") or f.parent == folder.pages_dir]
    record = {"out_dir": str(out), **json.loads(folder.manifest.read_text())}
    seeds = ", ".join(str(p.seed) for p in comic.panels)
    status = f"**{len(comic.panels)} panels** (seeds {seeds}) saved in `{out}`"
    status += "".join(f"\n- ⚠ {w}" for w in comic.warnings)
    return str(folder.page_png(1)), tiles, downloads, record, status


def _row_index(row: Any, n: int) -> int:
    if n == 0:
        raise InputError("the panel list is empty: write a story and press Process text, or add a row")
    return whole_number(row, "the row number (click a row in the table, or type its number)", 1, n) - 1


# -- handlers ----------------------------------------------------------------------------------


class Handlers:
    """One method per page event; ``services`` is shared by every browser session."""

    def __init__(self, services: Services) -> None:
        self.s = services

    # -- 1. cast ---------------------------------------------------------------------------

    @user_errors
    def add_person(self, photo: str | None, name: str, consent: bool, pending: list, request: gr.Request) -> tuple:
        """Photo + name + consent -> one more person on the training list (the face is checked now)."""
        if not photo:
            raise InputError("upload a photo of the person first (one face, looking at the camera)")
        name = normalize_name(name or "")
        if consent is not True:  # only a real tick: "false", "no" or 1 through the API are not consent
            raise InputError(
                f"tick the consent box for {name}'s photo: StoryFace learns a face only with that person's permission"
            )
        self._check_name_free(name, pending)
        data = Path(photo).read_bytes()
        user = getattr(request, "username", None) or "local user"
        try:
            person = api.prepare_person(data, name, f"{user} (consent box ticked in the web app)")
        except StoryFaceError as exc:
            raise type(exc)(f"the photo for {name}: {exc}") from None
        preview = ImageOps.fit(person.headshot.image, (PREVIEW_SIDE, PREVIEW_SIDE))
        pending = [*pending, PendingPerson(name, data, preview, person)]
        return pending, pending_gallery(pending), None, "", False

    def clear_people(self) -> tuple:
        return [], []

    @user_errors
    def train(self, steps: float, pending: list, awaiting: list) -> tuple:
        """Queue one training job per listed person; the worker thread trains them one by one."""
        if not pending:
            raise InputError("add at least one person (photo, full name, consent tick) before pressing Train")
        settings = api.LearnSettings.from_params({"steps": whole_number(steps, "training steps", 1, MAX_TRAIN_STEPS)})
        for i, pending_person in enumerate(pending):
            self._check_name_free(pending_person.name, pending[:i])
        jobs = [
            api.queue_person(self.s.library, p.photo, self.s.model.source, replace(p.person, settings=settings))
            for p in pending
        ]
        names = [j.name for j in jobs]
        status = f"queued {len(jobs)} training job(s): {', '.join(names)}; they join the library when done"
        return [], [], job_table(self.s.queue.list()), status, [*awaiting, *names]

    def jobs(self) -> list[list[str]]:
        return job_table(self.s.queue.list())

    def library(self, cast: list | None) -> tuple:
        """Every identity in the library (the gallery) and the cast picker's choices."""
        records = self.s.library.list()
        names = [r.name for r in records]
        keep = [n for n in cast or [] if n in names]
        return library_gallery(records), gr.update(choices=names, value=keep)

    def poll(self, cast: list | None, awaiting: list, seen: Any) -> tuple:
        """Timer tick: refresh jobs and library when they changed; finished people join the cast."""
        jobs = self.s.queue.list()
        records = self.s.library.list()
        names = [r.name for r in records]
        rows = job_table(jobs)
        cast = list(cast or [])
        done = [n for n in awaiting if n in names and n not in cast]
        active = {name_key(j.name) for j in jobs if j.state in ACTIVE}
        still = [n for n in awaiting if n not in names and name_key(n) in active]
        last_rows, last_names = seen or (None, None)
        library_changed = names != last_names
        return (
            rows if rows != last_rows else gr.skip(),
            library_gallery(records) if library_changed else gr.skip(),
            gr.update(choices=names, value=cast + done) if library_changed or done else gr.skip(),
            still,
            (rows, names),
        )

    @user_errors
    def set_cast(self, cast: list | None) -> list[str]:
        """The cast as typed or picked; every name must be in the library."""
        return self._cast(cast, allow_empty=True)

    def toggle_cast(self, cast: list | None, evt: gr.SelectData) -> list[str]:
        """A click on a library face adds that person to the cast, or takes them out."""
        value = evt.value if isinstance(evt.value, dict) else {}
        name = value.get("caption") or ""
        cast = list(cast or [])
        if not name:
            return cast
        return [n for n in cast if n != name] if name in cast else [*cast, name]

    @user_errors
    def export_identities(self, cast: list | None) -> list[str]:
        """The cast's identity files (the whole library when no cast is picked), as .safetensors."""
        names = self._cast(cast, allow_empty=True) or [r.name for r in self.s.library.list()]
        if not names:
            raise InputError("the library is empty: train someone first, then download their identity file")
        return [str(self.s.library.export(n, self.s.exports_dir, overwrite=True)) for n in names]

    # -- 2. story --------------------------------------------------------------------------

    @user_errors
    def process_text(self, story: str, cast: list | None) -> tuple:
        """Story -> one row per panel sentence, pronouns replaced by full names."""
        names = self._cast(cast)
        script = api.parse_story(story or "", names)
        rows = [[p.sentence, ", ".join(p.characters)] for p in script.panels]
        status = f"{len(rows)} panels ({script.backend} parser)" + "".join(f"\n- ⚠ {w}" for w in script.warnings)
        return rows, status

    def update_panels(self, rows: Any, cast: list | None) -> list[list[str]]:
        """After a hand edit: full names spelled out, the characters column worked out again."""
        names = [n for n in cast or [] if n]
        return [panel_row(s, names) for s in clean_rows(rows)]

    def select_row(self, evt: gr.SelectData) -> int:
        return int(evt.index[0]) + 1 if isinstance(evt.index, (list, tuple)) else int(evt.index) + 1

    @user_errors
    def add_panel(self, rows: Any, row: Any, cast: list | None) -> tuple:
        """A blank row after the chosen one (at the end when none is chosen), to type a sentence in."""
        table = self.update_panels(rows, cast)
        at = len(table) if row in (None, "") or not table else _row_index(row, len(table)) + 1
        table.insert(at, ["", ""])
        return table, at + 1

    @user_errors
    def delete_panel(self, rows: Any, row: Any, cast: list | None) -> tuple:
        sentences = clean_rows(rows)
        index = _row_index(row, len(sentences))
        del sentences[index]
        return self.update_panels([[s] for s in sentences], cast), min(index + 1, len(sentences)) or None

    @user_errors
    def move_panel_up(self, rows: Any, row: Any, cast: list | None) -> tuple:
        return self._move(rows, row, cast, -1)

    @user_errors
    def move_panel_down(self, rows: Any, row: Any, cast: list | None) -> tuple:
        return self._move(rows, row, cast, +1)

    # -- 4. generate -----------------------------------------------------------------------

    @user_errors
    def generate(
        self,
        rows: Any,
        cast: list | None,
        styles: list | None,
        free_style: str,
        title: str,
        seed: float,
        steps: float,
        progress: gr.Progress = gr.Progress(),
    ) -> tuple:
        """Draw every panel (one image per sentence) and lay out the captioned page."""
        api.check_comic_text(free_style=free_style, title=title, styles=list(styles or []))  # before any work
        names = self._cast(cast)
        panels = api.script_from_sentences(clean_rows(rows), names)
        seed = whole_number(seed, "the seed", 0, MAX_SEED - MAX_PANELS)
        config = api.RenderConfig(steps=whole_number(steps, "render steps", 1, MAX_RENDER_STEPS))
        cast_members = api.identities_for(names, self.s.library)
        identities = [m.identity for m in cast_members]
        headshots = {m.identity.name: m.reference for m in cast_members if m.reference is not None}
        out_dir = self.s.comics_dir / f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        with self._device(progress):
            comic = api.make_comic(
                self.s.renderer, panels, identities, out_dir, styles=list(styles or []), free_style=free_style or "",
                config=config, seed=seed, title=(title or "").strip() or None, book=api.BookSettings(pdf=True),
                callback=self._render_progress(progress), references=headshots,
            )  # fmt: skip
        progress(1.0, desc="measuring likeness")
        scores = api.comic_likeness(comic, headshots)
        session = ComicSession(comic, identities, headshots, scores)
        return (*comic_outputs(comic, scores), session)

    def select_panel(self, evt: gr.SelectData) -> int:
        return int(evt.index) + 1

    @user_errors
    def regenerate_panel(self, number: float, session: ComicSession | None, progress: gr.Progress = gr.Progress()) -> tuple:
        """Draw one panel again with a fresh seed; every other panel stays exactly as it was."""
        if session is None:
            raise InputError("generate a comic first, then pick a panel to draw again")
        comic = session.comic
        index = whole_number(number, "the panel number (click a panel below the page)", 1, len(comic.panels)) - 1
        with self._device(progress):
            progress(0, desc=f"drawing panel {index + 1} again")
            comic = api.redraw_panel(self.s.renderer, comic.out_dir, index + 1, session.identities)
        scores = list(session.scores)
        scores[index] = api.comic_likeness(comic, session.references)[index]
        return (*comic_outputs(comic, scores), ComicSession(comic, session.identities, session.references, scores))

    # -- helpers ---------------------------------------------------------------------------

    def _check_name_free(self, name: str, pending: Sequence[PendingPerson]) -> None:
        """A new person's name must be new to the list, the library and the running jobs."""
        key = name_key(name)
        if any(name_key(p.name) == key for p in pending):
            raise DuplicateNameError(f"{name!r} is already on the list to train; give each person their own name")
        if name in self.s.library:
            existing = self.s.library.get(name).name
            raise DuplicateNameError(
                f"{existing!r} is already in the library (names ignore case): click their face in the library "
                "to put them in the cast, or use another name"
            )
        for job in self.s.queue.list():
            if job.state in ACTIVE and name_key(job.name) == key:
                raise DuplicateNameError(f"{job.name!r} is already being trained (job {job.state}); wait for it")

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

    def _move(self, rows: Any, row: Any, cast: list | None, offset: int) -> tuple:
        sentences = clean_rows(rows)
        index = _row_index(row, len(sentences))
        target = min(max(index + offset, 0), len(sentences) - 1)
        sentences.insert(target, sentences.pop(index))
        return self.update_panels([[s] for s in sentences], cast), target + 1

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

    @staticmethod
    def _render_progress(progress: gr.Progress) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            progress((done, total), desc="drawing panels", unit="steps")

        return report
