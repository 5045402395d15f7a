"""The offline parser's word lists and the small word tests built on them (English; see each list).

Kept apart from the rules so a list can grow without touching them. Every list is lower-case.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from importlib import resources

from ..matching import is_unbroken

ABBREVIATIONS = frozenset(
    "mr mrs ms mx dr prof st jr sr vs etc e.g i.e mt capt col gen lt sgt rev hon no approx dept est fig".split()
)
TITLES = {"mr": "m", "sir": "m", "mrs": "f", "ms": "f", "miss": "f", "lady": "f", "madam": "f",
          "mx": None, "dr": None, "prof": None}  # fmt: skip

# Verbs that attribute a quote to its speaker, with the balloon they make. "said softly" and friends
# make a whisper too (QUIET_ADVERBS).
SPEECH_KINDS: dict[str, str] = {
    **dict.fromkeys(
        "said says say asked asks replied replies shouted shouts yelled yells cried cries exclaimed exclaims "
        "answered answers added adds called calls muttered mutters told tells laughed laughs sang sings "
        "screamed screams began begins continued continues explained explains insisted insists agreed agrees "
        "admitted admits announced announces declared declares demanded demands suggested suggests remarked "
        "remarks protested protests snapped snaps sighed sighs grumbled grumbles groaned groans giggled "
        "giggles chuckled chuckles teased teases joked jokes warned warns promised promises repeated repeats "
        "interrupted interrupts responded responds retorted retorts stammered stammers stuttered stutters "
        "gasped gasps begged begs pleaded pleads corrected corrects mumbled mumbles hissed hisses "
        "barked barks growled growls squealed squeals wailed wails sobbed sobs bellowed bellows "
        "confessed confesses mused muses observed noted".split(),
        "speech",
    ),
    **dict.fromkeys("whispered whispers murmured murmurs breathed breathes".split(), "whisper"),
    **dict.fromkeys(
        "thought thinks wondered wonders pondered ponders reflected reflects realized realised realizes "
        "realises".split(),
        "thought",
    ),
}
REPLY_VERBS = frozenset("replied replies answered answers responded responds retorted retorts".split())
QUIET_ADVERBS = frozenset("softly quietly faintly hushedly".split())
# Tag verbs that make no sentence on their own ("Grace said."): the scene says "spoke" instead.
SCENE_VERBS = {"said": "spoke", "says": "speaks", "say": "speak", "added": "spoke", "adds": "speaks",
               "told": "spoke to", "tells": "speaks to", "began": "spoke", "begins": "speaks",
               "continued": "spoke", "continues": "speaks"}  # fmt: skip
# Name parts that are also everyday words: they are names only when capitalised.
COMMON_WORDS = frozenset(
    "will grace hope faith joy rose lily may june april august summer autumn dawn mark bill frank art "
    "jack rob pat sue gene ray sky amber holly iris violet ruby pearl rich chance drew bob cliff dean "
    "guy major king queen page young brown white black green little long short hill wood stone swift "
    "bell hunter baker cook miller taylor smith carpenter mason fisher price love banks rivers".split()
)
# Words after "her" that show it is an object ("gave her the apple"), not a possessive ("her apple").
NOT_A_NOUN = frozenset(
    "a an the this that these those to and or but nor so yet at in on with for from by about as into onto "
    "of off up down out over under near behind across through toward towards around after before while "
    "when because if since until though although where why how who whom what which whose again too back "
    "home away there here now then later soon once twice yesterday today tonight tomorrow all some any "
    "every each his her its their my your our him them me us it he she they we you i is was were be been "
    "am are not never always very really just also even still something nothing anything everything "
    "two three four five half enough more less much instead anyway already".split()
)
ADVERBS = frozenset("together again also then now still just soon finally later instead alone too".split())
LY_NOT_ADVERBS = frozenset(
    "family lovely friendly ugly lonely silly jolly holy curly early daily belly ally lily jelly bully "
    "rally reply supply assembly butterfly fly holly only italy sally emily kelly molly".split()
)
# Words after bare "both" / "the two" that show they are the subject ("Both laughed").
VERBISH = frozenset(
    "were are was had have has went ran ate sat stood left saw came got took made said began felt knew "
    "thought fell met found gave kept held spoke wrote sang drank drove rode swam won lost bought sold "
    "paid heard told went walk walked will would could should might can must did do shook".split()
)
PEOPLE_NOUNS = (
    "friends|men|women|strangers|people|kids|children|girls|boys|stars|celebrities|companions|"
    "shoppers|neighbours|neighbors|colleagues|singers|actors|heroes|travellers|travelers"
)
PRONOUNS = {  # word -> (gender or "group", role)
    "he": ("m", "subj"), "him": ("m", "obj"), "his": ("m", "poss"),
    "she": ("f", "subj"), "her": ("f", "obj"), "hers": ("f", "poss"),
    "they": ("group", "subj"), "them": ("group", "obj"), "their": ("group", "poss"), "theirs": ("group", "poss"),
}  # fmt: skip
THEY_CONTRACTIONS = {"'re": " are", "'ve": " have", "'ll": " will", "'d": " would"}
# Words a caption may keep that say nothing alone ("Then", "and"): a caption of only these is no caption.
EMPTY_CAPTION_WORDS = frozenset("and then but so as while or yet now again also too".split())

WORD = re.compile(r"[^\W\d_][\w'’-]*")  # a word starting with a letter, any alphabet
_GREEK_QUESTION_END = re.compile("[\u0370-\u03ff\u1f00-\u1fff][;\u037e]$")  # Greek writes "?" as ";"
_SENTENCE_END = re.compile(
    r"(?:[.!?…。！？؟۔।॥።։]|[\u0370-\u03ff\u1f00-\u1fff][;\u037e])[\"'”’»«」』)\]）]*$"
)
SPACED_WORD = re.compile(r"\s+([^\W\d_][\w'’-]*)")


@lru_cache(maxsize=1)
def first_name_genders() -> dict[str, str]:
    """The shipped first-name list: lower-case name -> "m" | "f"."""
    text = resources.files("storyface").joinpath("data/first_names.txt").read_text("utf-8")
    pairs = (line.split() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {name.lower(): gender for name, gender in pairs}


def fold(word: str) -> str:
    """"Zoë" -> "zoe": the name list is plain ASCII."""
    return unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().casefold()


def is_adverb(word: str) -> bool:
    w = word.lower()
    return w in ADVERBS or (w.endswith("ly") and w not in LY_NOT_ADVERBS)


def is_verbish(word: str) -> bool:
    w = word.lower()
    return w in VERBISH or (w.endswith("ed") and len(w) > 3) or is_adverb(w)


def next_word(text: str, pos: int) -> str | None:
    """The word right after ``pos`` if only spaces separate them (punctuation ends the phrase)."""
    m = SPACED_WORD.match(text, pos)
    return m.group(1) if m else None


def previous_word(text: str, pos: int) -> str | None:
    m = re.search(r"([^\W\d_][\w'’-]*)\s+$", text[max(0, pos - 80) : pos])
    return m.group(1) if m else None


def trim_end(text: str, marks: str) -> str:
    """``text`` without trailing ``marks``, except a Greek question mark (a ";" that ends a question)."""
    text = text.rstrip()
    return text if _GREEK_QUESTION_END.search(text) else text.rstrip(marks).rstrip()


def as_sentence(text: str) -> str:
    """``text`` with a capital first letter and a final stop (unless it has one, in any script)."""
    if not _SENTENCE_END.search(text):
        text += "。" if is_unbroken(text[-1:]) else "."
    return text[:1].upper() + text[1:]


def snippet(text: str) -> str:
    """A short quote of a sentence for a warning."""
    return repr(text if len(text) <= 60 else text[:57] + "...")
