"""The offline story parser: plain rules, no network, the same answer every time.

Each panel must name its people in full, because the prompt builder swaps full names for identity
tokens one sentence at a time. The rules live in one module each, in the order they run:

1. :mod:`.sentences`: cut the story into sentences (English and other scripts' full stops, CJK included).
2. :mod:`.clauses`: cut compound sentences into one action per panel.
3. :mod:`.dialogue`: take quoted speech out of the scene, into dialogue lines with their speakers.
4. :mod:`.cast` and :mod:`.coref`: spell every name, short name and pronoun as the cast's full name.
5. :mod:`.parser`: one panel per clause; a clause naming no one is a scene panel (no characters); the
   caption is the author's own words; more than 24 panels keep the first 24 with a warning.
"""

from .cast import canonical_names, find_cast
from .parser import parse_story_offline
from .sentences import split_sentences
from .words import first_name_genders

__all__ = ["canonical_names", "find_cast", "first_name_genders", "parse_story_offline", "split_sentences"]
