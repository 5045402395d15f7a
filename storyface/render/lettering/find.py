"""Finding the faces in panel art and telling whose they are, so tails point at the right mouth.

Detection is the face stage's dlib HOG detector; identification is the likeness matching of
``storyface.eval.likeness`` (one-to-one Hungarian assignment on cosine similarity). Every cast
member with a reference takes part in the assignment, not only the speakers: otherwise a silent
character's face could be handed to a speaker who is off-panel, and a tail would point at the
wrong person.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from ...faces import FaceEncoder
from .model import Face

log = logging.getLogger(__name__)

MOUTH_LANDMARKS = slice(48, 68)  # dlib's 68-point layout: 48-67 outline the lips


def find_faces(
    art: Image.Image,
    speakers: Sequence[str],
    references: Mapping[str, np.ndarray] | None = None,
    encoder: FaceEncoder | str = "dlib",
) -> list[Face]:
    """Faces in ``art``, left to right, each named when we can tell whom it shows.

    With one speaker and one face, that face is the speaker (no reference needed). Otherwise faces
    are matched to the cast in ``references`` (name -> unit face vector, as ``references_from``
    makes); without references, or for a face left over, the name is None: it still keeps
    balloons off it.
    """
    from ...eval.likeness import as_encoder, match_faces
    from ...faces import crop_headshot, detect_faces

    image = art.convert("RGB")
    detected = sorted(detect_faces(image), key=lambda f: (f.box[0], f.box[1]))
    mouths = [tuple(int(round(v)) for v in f.landmarks[MOUTH_LANDMARKS].mean(0)) for f in detected]
    names: list[str | None] = [None] * len(detected)
    speakers = list(dict.fromkeys(speakers))
    if len(detected) == 1 and len(speakers) == 1:
        names = [speakers[0]]
    elif detected and references:
        enc = as_encoder(encoder)
        encoded = [(f.box, f.score, enc.encode(crop_headshot(image, f))) for f in detected]
        cast = list(dict.fromkeys([*speakers, *references]))
        score = match_faces(encoded, references, cast)
        names = [m.character for m in score.faces]
    elif len(detected) > 1:
        log.info("%d faces but no reference faces to tell them apart: balloons will be placed blind", len(detected))
    return [Face(f.box, name, mouth) for f, name, mouth in zip(detected, names, mouths)]  # type: ignore[arg-type]
