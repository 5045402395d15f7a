"""Consent: nobody's face is learned unless someone vouches that the person agreed, and the library
records who and when.

The record is a required argument of everything that adds an identity (training, the job queue, the
library, imports), so no door can skip it: the CLI asks for ``--consent-by NAME``, the web app for a
tick per photo (recorded as the signed-in user), the Python API for a :class:`Consent` or the name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import InputError
from ..names import normalize_name


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Consent:
    """Who confirmed that the person in the photo agreed to have their face learned, and when (UTC)."""

    by: str
    at: str = field(default_factory=_now)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "by", normalize_name(self.by, "consent"))
        except InputError as exc:
            raise InputError(f"consent: {exc}") from None


def require_consent(consent: object, person: str, use: str = "learning") -> Consent:
    """A :class:`Consent` from what a caller passed (a Consent or the name of who confirmed), or an error.

    ``use`` says what needs it ("learning" a face, "drawing" one from an identity file).
    """
    if isinstance(consent, Consent):
        return consent
    if isinstance(consent, str) and consent.strip():
        return Consent(consent)
    if consent is None or isinstance(consent, str):
        raise InputError(
            f"{use} {person}'s face needs consent: give the name of whoever confirmed that {person} agreed "
            "(CLI: --consent-by NAME; web app: the consent tick; Python: consent=Consent('NAME')); see README 'Safety'"
        )
    raise InputError(f"consent must be a Consent or the name of who confirmed it, got {type(consent).__name__}")
