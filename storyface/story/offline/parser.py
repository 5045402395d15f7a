"""The offline parser's driver: sentences -> clauses -> dialogue -> who is who -> panels."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ...errors import StoryError
from ..schema import Panel, PanelScript, cap_panels, check_story, clean_cast, missing_cast_warning
from .cast import Cast, learn_genders
from .clauses import split_clauses
from .coref import State, resolve_clause
from .sentences import sentence_units

log = logging.getLogger(__name__)


def parse_story_offline(story: str, cast: list[str], *, genders: Mapping[str, str | None] | None = None) -> PanelScript:
    """Turn a story into panels with rules only (see :mod:`storyface.story.offline`); no network, deterministic.

    ``genders`` (full name -> "m" / "f" / None) overrides the first-name list where it guesses wrong.
    """
    text, names = check_story(story), clean_cast(cast)
    people = Cast.build(names)
    learn_genders(people, text, genders)
    state, warnings, panels = State(), [], []
    for unit in sentence_units(text):
        for clause in split_clauses(unit.text, people):
            resolved, _ = resolve_clause(clause, people, state, warnings)
            panels.append(Panel(sentence=resolved, characters=people.full_names_in(resolved), caption=clause))
    if not any(p.characters for p in panels):
        raise StoryError(
            f"the story names no one in the cast ({', '.join(names)}): use their names (a first or last name is enough)"
        )
    panels = cap_panels(panels, warnings)
    note = missing_cast_warning(names, panels)
    script = PanelScript(panels=panels, backend="offline", warnings=[*([note] if note else []), *warnings], cast=names)
    log.info("offline parser: %d panels, %d warnings", len(script.panels), len(script.warnings))
    return script
