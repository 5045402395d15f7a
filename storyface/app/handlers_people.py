"""Steps 1 and 2 of the web app: people to train, the training queue, the library and the cast.

No ``from __future__ import annotations`` here: Gradio resolves these hints at runtime.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, ImageOps

from .. import api
from ..demo import DEMO_CONSENT, sample_photos
from ..errors import InputError, StoryFaceError
from ..library import ACTIVE, DuplicateNameError
from ..limits import MAX_TRAIN_STEPS
from ..names import name_key, normalize_name, tidy
from . import script_table as table
from . import views
from .components import UnreadablePhoto
from .handlers_base import HandlerBase, user_errors, whole_number

PREVIEW_SIDE = 192  # px of a pending person's aligned-face tile
# The one-click example: the two public-domain photos `storyface demo` uses, and a short story with a
# line of dialogue and a scene panel (a sentence that names no one).
EXAMPLE_STORY = (
    "Grace Hopper was fixing a huge computer when Eileen Collins walked in with a flight plan. "
    '"Can you check the navigation code?" Eileen asked. '
    "Grace found a moth in the relay. "
    "Outside, the rain stopped. "
    "At dawn, the two watched a rocket launch together."
)
EXAMPLE_TITLE = "The Moth"
EXAMPLE_STYLES = ["comic style"]
EXAMPLE_LAYOUT = "dynamic"


@dataclass(frozen=True)
class PendingPerson:
    """One person added to the training list: the photo as uploaded, its aligned face, and the person
    as the core checked them (name, consent record, face)."""

    name: str
    photo: bytes
    preview: Image.Image
    person: api.PreparedPerson


def pending_tiles(pending: Sequence[PendingPerson]) -> list[tuple[Image.Image, str]]:
    return [(p.preview, p.name) for p in pending]


class PeopleHandlers(HandlerBase):
    """Add people, train them, keep the library and the cast (with each person's looks)."""

    # -- 1. people to train ------------------------------------------------------------------

    def _train_controls(self, pending: Sequence[PendingPerson], steps: Any) -> tuple:
        """The Train button (only with someone to train) and the time estimate beside it."""
        try:
            steps = whole_number(steps, "training steps", 1, MAX_TRAIN_STEPS)
        except InputError:
            steps = self.s.train_steps
        rate = views.seconds_per_step(self.s.queue.list(), self.s.model.source)
        return gr.update(interactive=bool(pending)), views.train_estimate(rate, len(pending), steps)

    def train_hint(self, pending: list, steps: float) -> tuple:
        return self._train_controls(pending, steps)

    @user_errors("people")
    def add_person(self, photo: Any, name: str, consent: bool, pending: list, steps: float,
                   request: gr.Request) -> tuple:  # fmt: skip
        """Photo + name + consent -> one more person on the training list (the face is checked now)."""
        if isinstance(photo, UnreadablePhoto):
            raise InputError(photo.message)
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
        pending = [*pending, self._prepare(data, name, f"{user} (consent box ticked in the web app)")]
        done = views.status(f"{name} is on the list. Add more people, or press Train.")
        return (pending, pending_tiles(pending), None, "", False, done, *self._train_controls(pending, steps))

    def _prepare(self, data: bytes, name: str, consent: str) -> PendingPerson:
        try:
            person = api.prepare_person(data, name, consent)
        except StoryFaceError as exc:
            raise type(exc)(f"the photo for {name}: {exc}") from None
        return PendingPerson(name, data, ImageOps.fit(person.headshot.image, (PREVIEW_SIDE, PREVIEW_SIDE)), person)

    def clear_people(self, steps: float) -> tuple:
        return ([], [], views.status("The list is empty."), *self._train_controls([], steps))

    @user_errors("people")
    def train(self, steps: float, pending: list, awaiting: list, request: gr.Request) -> tuple:
        """Queue one training job per listed person; the worker thread trains them one by one."""
        if not pending:
            raise InputError("add at least one person (photo, full name, consent tick) before pressing Train")
        count = whole_number(steps, "training steps", 1, MAX_TRAIN_STEPS)
        settings = api.LearnSettings.from_params({"steps": count})
        for i, pending_person in enumerate(pending):
            self._check_name_free(pending_person.name, pending[:i])
        jobs = [
            api.queue_person(self.s.library, p.photo, self.s.model.source, replace(p.person, settings=settings))
            for p in pending
        ]
        names = [j.name for j in jobs]
        rate = views.seconds_per_step(self.s.queue.list(), self.s.model.source)
        note = views.status(views.training_note(names, rate, count), "info")
        rows = self.s.queue.list()
        return ([], [], views.job_rows(rows), note, [*awaiting, *names], *self._train_controls([], steps))

    def jobs(self) -> tuple:
        rows = self.s.queue.list()
        return views.job_rows(rows), views.job_details(rows)

    def poll(self, cast: list | None, awaiting: list, seen: Any) -> tuple:
        """Timer tick: jobs and library when they changed; finished people join the cast, and when the
        last awaited job ends, the step says who was trained (and what failed)."""
        jobs = self.s.queue.list()
        records = self.s.library.list()
        names = [r.name for r in records]
        rows, details = views.job_rows(jobs), views.job_details(jobs)
        cast = list(cast or [])
        active = {name_key(j.name) for j in jobs if j.state in ACTIVE}
        joined = cast + [n for n in awaiting if n in names and n not in cast]
        message: Any = gr.skip()
        if awaiting and not any(name_key(n) in active for n in awaiting):
            done = [n for n in awaiting if n in names]
            failed = [j for j in reversed(jobs) if j.name in awaiting and j.name not in names and j.state == "failed"]
            failed = list({j.name: j for j in failed}.values())
            if failed:
                trained = [f"{' and '.join(done)} trained"] if done else []
                failures = [f"training {j.name} failed: {views.plain_words(j.error or '')}" for j in failed]
                message = views.error_status("; ".join(trained + failures))
            elif done:
                message = views.status(f"{' and '.join(done)} trained: in the library and in the cast.")
            awaiting = []
        last_rows, last_names = seen or (None, None)
        library_changed = names != last_names
        return (
            rows if rows != last_rows else gr.skip(),
            details if rows != last_rows else gr.skip(),
            views.library_tiles(records, joined) if library_changed else gr.skip(),
            gr.update(choices=names, value=joined) if library_changed or joined != cast else gr.skip(),
            awaiting,
            (rows, names),
            message,
        )

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

    @user_errors("people")
    def load_example(self, pending: list, steps: float, request: gr.Request) -> tuple:
        """The one-click example: both public-domain photos on the list (or already in the library),
        the story split into panels, a style, a layout and a title."""
        pending, ready, added = list(pending), [], []
        names = [name for _, name in sample_photos()]
        for photo, name in sample_photos():
            if name in self.s.library:
                ready.append(self.s.library.get(name).name)
            elif not any(name_key(p.name) == name_key(name) for p in pending) and not self._training(name):
                pending.append(self._prepare(Path(photo).read_bytes(), name, DEMO_CONSENT))
                added.append(name)
        script = api.parse_story(EXAMPLE_STORY, names)
        panels, scenes, lines = table.tables_of(table.drafts_from_panels(script.panels), names)
        if added:
            note = (f"Example loaded: {' and '.join(added)} (public-domain photos) on the list. Press Train, "
                    "then Make the comic when they are done.")  # fmt: skip
        else:
            note = "Example loaded: both people are in the library and in the cast. Press Make the comic."
        return (
            pending, pending_tiles(pending), EXAMPLE_STORY, panels, scenes, lines, ready, views.status(note),
            views.status(f"{len(panels)} panels from the example story."), *self._train_controls(pending, steps),
            EXAMPLE_STYLES, EXAMPLE_LAYOUT, EXAMPLE_TITLE,
        )  # fmt: skip

    def _training(self, name: str) -> bool:
        return any(j.state in ACTIVE and name_key(j.name) == name_key(name) for j in self.s.queue.list())

    # -- 2. the cast ---------------------------------------------------------------------------

    def library(self, cast: list | None) -> tuple:
        """On page load: the cast picker's choices (every identity in the library)."""
        names = self.library_names()
        return gr.update(choices=names, value=[n for n in cast or [] if n in names])

    def show_cast(self, cast: list | None, shown: Any) -> tuple:
        """After any change of the cast: the library with the cast ticked, and the cast's looks. A typed
        name that is no identity is taken out again at once, and the step says why."""
        kept, refused = self._checked_cast(cast)
        records = {r.name: r for r in self.s.library.list()}
        fixed = gr.update(value=kept) if refused else gr.skip()
        note = views.error_status("; ".join(refused) + ". Add new people in step 1.") if refused else gr.skip()
        return views.library_tiles(list(records.values()), kept), views.cast_rows(kept, records, shown), fixed, note

    def _checked_cast(self, cast: list | None) -> tuple[list[str], list[str]]:
        """(the names that are identities, in the library's spelling; why the others were refused)."""
        kept, refused = [], []
        for raw in cast or []:
            try:
                kept += [n for n in self._cast([raw], allow_empty=True) if n not in kept]
            except StoryFaceError as exc:
                refused.append(views.plain_words(str(exc)))
        return kept, refused

    def toggle_cast(self, cast: list | None, evt: gr.SelectData) -> tuple:
        """A click on a library face adds that person to the cast, or takes them out."""
        value = evt.value if isinstance(evt.value, dict) else {}
        name = views.untick(value.get("caption") or "")
        cast = list(cast or [])
        if not name:
            return cast, gr.skip()
        cast = [n for n in cast if n != name] if name in cast else [*cast, name]
        return cast, views.status(f"In the cast: {', '.join(cast)}." if cast else "The cast is empty.")

    def set_cast(self, cast: list | None) -> tuple:
        """The cast as typed or picked: a name that is no identity in the library is refused at once."""
        kept, refused = self._checked_cast(cast)
        if refused:
            return kept, views.error_status("; ".join(refused) + ". Add new people in step 1.")
        return kept, views.status(f"In the cast: {', '.join(kept)}." if kept else "")

    @user_errors("cast")
    def edit_appearance(self, rows: Any, request: gr.Request) -> tuple:
        """Looks typed in the cast table: the kept column is saved with the person (every story), the
        other column is for this story only (it goes with Make the comic)."""
        records = {r.name: r for r in self.s.library.list()}
        saved = []
        for row in rows or []:
            name = tidy(row[0]) if isinstance(row, (list, tuple)) and row and row[0] else ""
            if name not in records:
                continue
            notes = tidy(row[1] or "") if len(row) > 1 else ""
            if notes != (records[name].appearance or ""):
                records[name] = self.s.library.set_appearance(name, notes or None)
                saved.append(name)
        cast = [tidy(r[0]) for r in rows or [] if isinstance(r, (list, tuple)) and r and tidy(r[0] or "") in records]
        note = f"Saved the looks of {', '.join(saved)}: they go into every panel they appear in." if saved else ""
        return views.cast_rows(cast, records, rows), views.status(note)

    @user_errors("cast")
    def export_identities(self, cast: list | None, request: gr.Request) -> tuple:
        """The cast's identity files (the whole library when no cast is picked), as .safetensors."""
        names = self._cast(cast, allow_empty=True) or self.library_names()
        if not names:
            raise InputError("the library is empty: train someone first, then download their identity file")
        files = [str(self.s.library.export(n, self.s.exports_dir, overwrite=True)) for n in names]
        return files, views.status(f"Identity files of {', '.join(names)} are ready to download.")
