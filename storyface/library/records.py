"""The library's rows as Python values: an identity, a training job (read back from SQLite)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..names import identity_token
from ..safety.consent import Consent
from .store import EMBEDDING_FILE, HEADSHOT_FILE, THUMB_FILE


@dataclasses.dataclass(frozen=True)
class IdentityRecord:
    """One library entry: its row plus where its files are."""

    id: str
    name: str
    family: str
    base_model: str | None
    face_encoder: str | None
    photo_sha256: str | None
    created_at: str
    consent_by: str | None
    consent_at: str | None
    tiny: bool
    dir: Path
    appearance: str | None = None  # notes added to every prompt the person appears in

    @property
    def token(self) -> str:
        return identity_token(self.name)

    @property
    def embedding_path(self) -> Path:
        return self.dir / EMBEDDING_FILE

    @property
    def headshot_path(self) -> Path | None:
        return _file(self.dir / HEADSHOT_FILE)

    @property
    def thumb_path(self) -> Path | None:
        return _file(self.dir / THUMB_FILE)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the CLI's ``--json`` and the web app."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        paths = {"dir": self.dir, "embedding": self.embedding_path, "headshot": self.headshot_path, "thumb": self.thumb_path}
        out.update({k: (str(v) if v is not None else None) for k, v in paths.items()})
        out["token"] = self.token
        return out


@dataclasses.dataclass(frozen=True)
class JobRecord:
    """One training job as stored; ``step``/``total``/``loss`` are the latest progress report."""

    id: str
    kind: str
    state: str
    name: str
    photo_path: Path
    photo_sha256: str
    model: str
    params: dict[str, Any]
    consent_by: str | None
    consent_at: str | None
    step: int
    total: int | None
    loss: float | None
    error: str | None
    attempts: int
    worker_pid: int | None
    cancel_requested: bool
    created_at: str
    started_at: str | None
    finished_at: str | None
    identity_id: str | None

    @property
    def consent(self) -> Consent | None:
        """The consent record the job was queued with (None only for jobs queued before one was required)."""
        if not self.consent_by:
            return None
        return Consent(self.consent_by, self.consent_at) if self.consent_at else Consent(self.consent_by)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["photo_path"] = str(self.photo_path)
        return out


def _file(path: Path) -> Path | None:
    """The path if a readable file is there; None if not (missing, or a folder this user may not read)."""
    try:
        return path if path.is_file() else None
    except OSError:
        return None
