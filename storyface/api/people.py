"""The core's first half: photo -> identity -> library, the cast of a comic, and story -> panels."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..faces import Headshot
from ..identity.subject import LearnSettings, PhotoSource, subject_from_photo
from ..identity.tokens import TOKENS_PER_ENCODER, Identity
from ..identity.train import Progress, Subject, train_identities
from ..library import DuplicateNameError, IdentityLibrary, IdentityRecord, JobQueue, JobRecord
from ..library.checks import read_identity_file
from ..library.space import WIDEST, bytes_to_keep, require_space
from ..models import LoadedModel
from ..names import normalize_name
from ..safety.consent import Consent, require_consent
from ..story.offline import canonical_names, find_cast
from ..story.parsers import parse_story
from ..story.schema import Panel, PanelScript, check_panel_count, panels_from_json

log = logging.getLogger(__name__)


# -- photo -> identity -> library ------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedPerson:
    """A person checked and ready to learn: the subject the trainer eats, the headshot, consent, settings."""

    subject: Subject
    headshot: Headshot
    consent: Consent
    settings: LearnSettings


@dataclass(frozen=True)
class LearnedPerson:
    """A learned identity, the aligned headshot it came from, and the consent it was learned under."""

    identity: Identity
    headshot: Headshot
    consent: Consent


def prepare_person(
    photo: PhotoSource, name: str, consent: Consent | str, settings: LearnSettings | Mapping[str, Any] | None = None
) -> PreparedPerson:
    """Check everything about a person before any model work: name, consent, settings, the photo's one face."""
    settings = settings if isinstance(settings, LearnSettings) else LearnSettings.from_params(settings)
    name = normalize_name(name)
    consent = require_consent(consent, name)
    subject, headshot = subject_from_photo(photo, name, settings.encoder(), parsing_model=settings.parsing_model)
    return PreparedPerson(subject, headshot, consent, settings)


def learn_prepared(
    model: LoadedModel,
    people: Sequence[PreparedPerson],
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[LearnedPerson]:
    """Learn prepared people together (one UNet batch; the first person's training settings)."""
    if not people:
        raise InputError("nobody to learn: give at least one photo and name")
    config = people[0].settings.train
    identities = train_identities(model, [p.subject for p in people], config, progress, should_stop)
    return [LearnedPerson(i, p.headshot, p.consent) for i, p in zip(identities, people)]


def learn_identities(
    model: LoadedModel,
    people: Sequence[tuple[PhotoSource, str, Consent | str]],
    settings: LearnSettings | Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[LearnedPerson]:
    """Learn everyone at once (one UNet batch): ``(photo, full name, consent)`` each.

    Every name, consent record and photo is checked before any training starts.
    """
    prepared = [prepare_person(photo, name, consent, settings) for photo, name, consent in people]
    return learn_prepared(model, prepared, progress, should_stop)


def learn_person(
    model: LoadedModel,
    photo: PhotoSource,
    name: str,
    consent: Consent | str,
    settings: LearnSettings | Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> LearnedPerson:
    """One person from one photo; see :func:`learn_identities` (the job worker calls this)."""
    return learn_identities(model, [(photo, name, consent)], settings, progress, should_stop)[0]


def keep_person(library: IdentityLibrary, learned: LearnedPerson, **add: Any) -> IdentityRecord:
    """Store a learned person in the library with their headshot and consent record."""
    return library.add(learned.identity, learned.headshot.image, learned.consent, **add)


def require_room(library: IdentityLibrary, person: PreparedPerson, model: LoadedModel | None = None) -> None:
    """Refuse, before any model work, when the library cannot keep this person: its folder is read-only
    or its disk has less room than the identity file, headshot, thumbnail and row take (without the
    model, the widest base model's rows are assumed)."""
    width = sum(slot.dim for slot in model.encoders) if model is not None else WIDEST
    need = bytes_to_keep(width, TOKENS_PER_ENCODER, person.headshot.size)
    require_space(library.root, need, f"keeping {person.subject.name}")


def train_person(
    model: LoadedModel, library: IdentityLibrary, person: PreparedPerson, progress: Progress | None = None
) -> tuple[IdentityRecord, LearnedPerson]:
    """Learn a prepared person and keep them in the library; a taken name is refused before training."""
    name = person.subject.name
    if name in library:
        raise DuplicateNameError(
            f"{library.get(name).name!r} is already in the library (the same person); pick another name or delete them"
        )
    require_room(library, person, model)  # a full disk is found now, not after training
    [learned] = learn_prepared(model, [person], progress)
    return keep_person(library, learned), learned


def queue_person(library: IdentityLibrary, photo: bytes | str | os.PathLike, model: str, person: PreparedPerson) -> JobRecord:
    """Queue a training job for a prepared person (so the photo's face, the name, the consent and the
    settings were checked before anything is queued); the job keeps its own copy of the photo."""
    if not isinstance(photo, (bytes, str, os.PathLike)):
        raise InputError("a queued job keeps its own copy of the photo: pass the file's path or its bytes")
    return JobQueue(library).submit(photo, person.subject.name, model, person.settings.params(), person.consent)


def import_identity(
    library: IdentityLibrary, path: str | os.PathLike, consent: Consent | str, name: str | None = None
) -> IdentityRecord:
    """Add an identity file to the library under the same rules as a trained one (name, consent, rows)."""
    return library.import_file(path, consent, name=name)


@dataclass(frozen=True)
class CastMember:
    """An identity for a comic and the picture its likeness is measured against (None: none known)."""

    identity: Identity
    reference: Path | None


def identities_for(
    refs: Sequence[str], library: IdentityLibrary | None, consent: Consent | str | None = None
) -> list[CastMember]:
    """Each ref is an identity file (``*.safetensors``) or the name of a library identity.

    A file passes the same rules as a library identity: a valid name and a consent record (``consent``,
    required when any file is given); its reference picture is ``<file stem>.png`` beside it.
    """
    members = []
    for ref in refs:
        if str(ref).lower().endswith(".safetensors") or Path(ref).is_file():
            identity = read_identity_file(ref)
            require_consent(consent, identity.name, "drawing")
            photo = Path(ref).with_suffix(".png")
            members.append(CastMember(identity, photo if photo.is_file() else None))
        else:
            if library is None:
                raise InputError(f"{ref!r} is not an identity file, and no library was given to look it up in")
            record = library.get(ref)
            members.append(CastMember(library.load(ref), record.headshot_path))
    return members


# -- story -> panels ---------------------------------------------------------------------------------


def describe_panel(sentence: str, cast: Sequence[str]) -> tuple[str, list[str]]:
    """A panel sentence with cast names spelled in full (as prompts need them), and who it shows."""
    if not cast:
        return sentence, []
    sentence = canonical_names(sentence, list(cast))
    return sentence, find_cast(sentence, list(cast))


def script_from_sentences(sentences: Sequence[str], cast: Sequence[str]) -> list[Panel]:
    """Panels from sentences a person typed or edited (the web app's table), checked like any script;
    a sentence naming no one in the cast is a scene panel, drawn without identities."""
    panels = [Panel(sentence=s, characters=c) for s, c in (describe_panel(s, cast) for s in sentences if s.strip())]
    check_panel_count(panels)
    return panels


def read_script(text: str, source: str, cast: Sequence[str], backend: str = "auto") -> PanelScript:
    """A story (parsed into panels) or, for a ``.json`` source, a panel script as written."""
    if source.endswith(".json"):
        return PanelScript(panels=panels_from_json(text, source), backend="script", cast=list(cast))
    return parse_story(text, list(cast), backend=backend)

