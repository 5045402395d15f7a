"""Storage: the identity library (SQLite + files) and the training-job queue, one floor below the doors.

``storyface.library.worker`` (the job worker) is a door of its own and is imported by those who start one.
"""

from .identities import DuplicateNameError, IdentityLibrary, IdentityRecord, UnknownIdentityError
from .jobs import ACTIVE, JobQueue, JobRecord
from .store import DB_NAME, LibraryError

__all__ = [
    "ACTIVE",
    "DB_NAME",
    "DuplicateNameError",
    "IdentityLibrary",
    "IdentityRecord",
    "JobQueue",
    "JobRecord",
    "LibraryError",
    "UnknownIdentityError",
]
