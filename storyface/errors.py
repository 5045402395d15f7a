"""Errors a user can cause, each with a message a person can act on.

Every module raises a subclass of :class:`StoryFaceError`; the CLI prints the message,
the web app shows it as ``gr.Error``. Module-specific errors subclass these.
"""

from __future__ import annotations


class StoryFaceError(Exception):
    """Base class: anything a user can fix by changing their input or settings."""


class InputError(StoryFaceError, ValueError):
    """Bad user input (a file, a name, a story, an option)."""


class ImageError(InputError):
    """A file that is not a usable image (corrupt, wrong format, too large)."""


class FaceError(InputError):
    """A photo that does not show exactly one usable face."""


class NoFaceError(FaceError):
    """No face was found in the photo."""


class SeveralFacesError(FaceError):
    """More than one face was found; a headshot must show one person."""


class ModelError(StoryFaceError):
    """A base model that cannot be loaded or does not fit the request."""


class FamilyMismatchError(ModelError):
    """An identity trained for one base family (SDXL) used with another (SD 2.x)."""


class IdentityFileError(InputError):
    """An identity file that is not a valid StoryFace/textual-inversion embedding."""


class StoryError(InputError):
    """A story or panel script that cannot be turned into prompts."""
