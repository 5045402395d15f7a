"""Panel sentence -> diffusion prompt: full names become identity tokens, styles are appended.

Matching is on full names only (the story stage already spelled everyone in full), case-insensitive
and word-bounded, longest name first, so "Tay Swift" never matches inside "Tay Swiftly" (word bounds
per script: see :mod:`storyface.story.matching`).

A scene panel (``characters == []``: "It was raining outside.") becomes a prompt without identities.
A panel that should show people but shows no one with an identity, or names a cast member who has
none, is an error: drawing a stranger in their place would be a silent lie.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import StoryError
from ..names import name_key, tidy
from .matching import name_pattern
from .schema import Panel
from .styles import DEFAULT_NEGATIVE_PROMPT, style_suffix

CLIP_MAX_TOKENS = 77  # CLIP's context, start and end tokens included; the rest is cut off


@dataclass
class PanelPrompt:
    """What the renderer needs for one panel."""

    prompt: str
    negative_prompt: str
    characters: list[str]  # identity names in order of appearance
    tokens: list[str]  # their trigger tokens, same order
    warnings: list[str] = field(default_factory=list)


def _substitute(
    sentence: str, identity_tokens: Mapping[str, str], cast: Iterable[str], appearance: Mapping[str, str] | None = None
) -> tuple[str, list[str], list[str]]:
    """Swap names (and tokens typed by hand) for tokens -> (text, characters, cast names lacking an identity).

    A name in the sentence matches the identity of the same person (:func:`storyface.names.name_key`),
    whatever its case, spacing or punctuation. A person's ``appearance`` notes follow their first token
    in parentheses ("<grace-hopper> (short grey hair, navy uniform) fixes a computer"), so clothes and
    hair stay the same from panel to panel.
    """
    known = {name_key(n): (n, t) for n, t in identity_tokens.items()}
    typed = {t.casefold(): (n, t) for n, t in identity_tokens.items()}
    lacking = {name_key(n): n for n in cast if name_key(n) not in known}
    characters: list[str] = []
    missing: list[str] = []

    def swap(m: re.Match) -> str:
        said = m.group("name")
        found = typed.get(said.casefold()) or known.get(name_key(said))
        if found is None:
            missing.append(lacking.get(name_key(said), said))
            return m.group(0)
        name, token = found
        notes = ""
        if name not in characters:
            characters.append(name)
            notes = f" ({appearance[name]})" if appearance and appearance.get(name) else ""
        return token + ("'" + m.group("poss")[1:] if m.group("poss") else "") + notes

    if not known and not lacking:
        return sentence, [], []
    forms = [*identity_tokens, *identity_tokens.values(), *lacking.values()]
    text = name_pattern(forms).sub(swap, sentence)
    return text, characters, list(dict.fromkeys(missing))


def build_prompt(
    sentence: str,
    identity_tokens: Mapping[str, str],
    styles: Iterable[str] = (),
    free_style: str = "",
    negative_prompt: str | None = None,
    count_tokens: Callable[[str], int] | None = None,
    cast: Iterable[str] | None = None,
    characters: Sequence[str] | None = None,
    appearance: Mapping[str, str] | None = None,
) -> PanelPrompt:
    """One panel's prompt; ``identity_tokens`` maps full name -> trigger token ("<taylor-swift>").

    ``cast`` (the panel script's names) lets a cast member without an identity fail loudly instead of
    being drawn as a stranger. ``count_tokens`` (e.g. :func:`token_counter`) enables the 77-token check.
    ``characters`` is the panel's list: ``[]`` makes a scene panel, drawn without identities; a
    non-empty list (or None, a bare sentence) needs at least one person with an identity in the sentence.
    """
    sentence = tidy(sentence)
    text, shown, missing = _substitute(sentence, identity_tokens, cast or (), appearance)
    if missing:
        raise StoryError(f"no identity for {missing[0]!r}: train or import one (or remove them from the panel)")
    scene = characters is not None and not list(characters)
    if not shown and not scene:
        who = ", ".join(identity_tokens) or "nobody yet"
        wanted = f" (it should show {', '.join(characters)})" if characters else ""
        raise StoryError(
            f"the panel {sentence!r} names no one with an identity{wanted}; the cast with identities: {who}"
        )
    text = text.rstrip().rstrip(".").rstrip()
    suffix = style_suffix(list(styles), free_style)
    prompt = f"{text}, {suffix}" if suffix else text
    warnings: list[str] = []
    if count_tokens is not None and (n := count_tokens(prompt)) > CLIP_MAX_TOKENS:
        warnings.append(
            f"prompt is {n} tokens; CLIP reads only the first {CLIP_MAX_TOKENS} — shorten the sentence or styles"
        )
    negative = DEFAULT_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt.strip()
    tokens = [identity_tokens[name] for name in shown]
    return PanelPrompt(prompt, negative, shown, tokens, warnings)


def build_prompts(
    panels: Iterable[Panel],
    identity_tokens: Mapping[str, str],
    styles: Iterable[str] = (),
    free_style: str = "",
    negative_prompt: str | None = None,
    count_tokens: Callable[[str], int] | None = None,
    cast: Iterable[str] | None = None,
    appearance: Mapping[str, str] | None = None,
) -> list[PanelPrompt]:
    """Prompts for every panel (a panel with no characters is a scene); an error names the panel it comes from.

    ``appearance`` (full name -> notes) is added after each person's first mention in every panel.
    """
    styles, cast = list(styles), list(cast or ())
    prompts = []
    for number, panel in enumerate(panels, 1):
        try:
            prompts.append(
                build_prompt(
                    panel.sentence, identity_tokens, styles, free_style, negative_prompt, count_tokens, cast,
                    characters=panel.characters, appearance=appearance,
                )
            )
        except StoryError as exc:
            raise type(exc)(f"panel {number}: {exc}") from None
    return prompts


def token_counter(tokenizer: object, expand: Callable[[str], str] | None = None) -> Callable[[str], int]:
    """Count a prompt's CLIP tokens (start/end included) with a Hugging Face tokenizer.

    ``expand`` turns each multi-vector identity token into its vectors first, as the pipeline does
    (``lambda t: pipe.maybe_convert_prompt(t, tokenizer)``); without it, a loaded "<taylor-swift>"
    counts once, and on a bare tokenizer it costs several BPE pieces (an overestimate).
    """

    def count(text: str) -> int:
        return len(tokenizer(expand(text) if expand else text, truncation=False)["input_ids"])

    return count
