"""Who each pronoun and short name means: every clause rewritten with the cast named in full.

* he/him/his, she/her/hers mean the person mentioned last whose gender fits (a first-name list, a
  title, or the caller's ``genders``); a person of unknown gender fits both. A subject pronoun that
  opens its clause ("She showed her a moth.") prefers the previous clause's subject when that one
  person's gender fits: readers keep the subject ("Grace Hopper met Eileen Collins. She ..." is Grace).
* ``him``/``her``/``them`` never mean the subject of their own clause part ("Hugh met Chris and
  thanked him" -> Chris), and he/she never mean someone named after them in it ("She asked Grace"). ``her`` is possessive when a noun-like word follows.
* they/them/their/theirs, "both (of them)", "the two (of them)", "the pair" mean the active group:
  everyone in the last clause naming two or more people, plus anyone named since; with fewer than two
  people active, "they" is left alone (it may be apples).
* A first or last name shared by two cast members means the one mentioned last.
* Possessives become ``Full Name's`` / ``A and B's``. Reflexives (herself) are left: their person is
  already named in the same sentence.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .cast import Cast, Mention
from .words import NOT_A_NOUN, PRONOUNS, THEY_CONTRACTIONS, is_adverb, next_word, snippet


@dataclass
class State:
    """What the reader remembers between clauses."""

    recent: list[int] = field(default_factory=list)  # people, most recently mentioned last
    order: dict[int, int] = field(default_factory=dict)  # person -> rank of first appearance
    anchor: list[int] | None = None  # people of the last clause naming two or more
    since: list[int] = field(default_factory=list)  # people named after that clause
    subject: tuple[int, ...] | None = None  # the last clause's subject (kept over clauses naming no one)

    def saw(self, people: tuple[int, ...]) -> None:
        for i in people:
            self.order.setdefault(i, len(self.order))
            if i in self.recent:
                self.recent.remove(i)
            self.recent.append(i)

    def group(self, clause_people: list[int]) -> list[int]:
        """Who "they" means now (see the module docstring)."""
        if len(set(clause_people)) >= 2:
            base = clause_people
        elif self.anchor is None:
            base = self.recent + clause_people
        else:
            base = self.anchor + self.since + clause_people
        return sorted(set(base), key=lambda i: self.order.get(i, len(self.order)))

    def end_clause(self, clause_people: list[int], subject: tuple[int, ...] | None) -> None:
        if len(set(clause_people)) >= 2:
            self.anchor, self.since = list(dict.fromkeys(clause_people)), []
        else:
            self.since += clause_people
        if subject:
            self.subject = subject


@dataclass(frozen=True)
class Resolved:
    """One mention in a clause and whom it was found to mean (None: left as written)."""

    mention: Mention
    role: str  # "name" | "subj" | "obj" | "poss" | "group"
    people: tuple[int, ...] | None


def pick_gendered(
    gender: str, state: State, cast: Cast, exclude: set[int], prefer: int | None = None
) -> tuple[int, ...] | None:
    """``prefer`` if its gender fits exactly, else the last-mentioned person whose gender fits, then the
    same with unknown genders; else the only cast member it can be."""
    recent = [i for i in reversed(state.recent) if i not in exclude]
    for wanted in (gender, None):
        if prefer is not None and prefer not in exclude and cast.genders[prefer] == wanted:
            return (prefer,)
        for i in recent:
            if cast.genders[i] == wanted:
                return (i,)
    for wanted in (gender, None):
        fits = [i for i, g in enumerate(cast.genders) if g == wanted and i not in exclude]
        if fits:
            return (fits[0],) if len(fits) == 1 else None
    return None


def _her_is_possessive(clause: str, end: int, cast: Cast) -> bool:
    nxt = next_word(clause, end)
    if nxt is None or nxt.lower() in NOT_A_NOUN or is_adverb(nxt):
        return False
    gap = re.compile(r"\s+").match(clause, end)
    return cast.pattern.match(clause, gap.end()) is None


def _segment_subject(clause: str, pos: int, resolved: list[Resolved]) -> set[int]:
    """The first person named in the comma-delimited part of the clause before ``pos``."""
    seg = max(clause.rfind(c, 0, pos) for c in ",;:") + 1
    return next((set(r.people) for r in resolved if r.people and seg <= r.mention.start < pos), set())


def role_of(m: Mention, clause: str, cast: Cast) -> str:
    if m.kind != "pronoun":
        return "name" if m.kind == "name" else "group"
    role = PRONOUNS[m.word][1]
    if m.word == "her" and _her_is_possessive(clause, m.end, cast):
        return "poss"
    return role


def _named_later(clause: str, m: Mention, mentions: list[Mention]) -> set[int]:
    """People named by name after ``m`` in its comma-delimited part: "She asked Grace" is not Grace."""
    stops = [i for i in (clause.find(c, m.end) for c in ",;:") if i >= 0]
    end = min(stops, default=len(clause))
    return {n.people[0] for n in mentions if n.kind == "name" and len(n.people) == 1 and m.end <= n.start < end}


def _referent(m: Mention, role: str, clause: str, cast: Cast, state: State, clause_people: list[int],
              resolved: list[Resolved], hint: int | None, mentions: list[Mention]) -> tuple[int, ...] | None:  # fmt: skip
    if m.kind == "name":
        if len(m.people) == 1:
            return m.people
        latest = [i for i in reversed(state.recent) if i in m.people]
        return (latest[0],) if latest else None
    exclude = _segment_subject(clause, m.start, resolved) if role == "obj" else set()
    if role == "subj":
        exclude = _named_later(clause, m, mentions)
    if m.kind in ("group", "bare") or PRONOUNS[m.word][0] == "group":
        group = [i for i in state.group(clause_people) if i not in exclude]
        return tuple(group) if len(group) >= 2 else None
    prefer = hint
    if prefer is None and role == "subj" and not resolved and state.subject and len(state.subject) == 1:
        prefer = state.subject[0]  # a clause-opening "she" keeps the last subject
    return pick_gendered(PRONOUNS[m.word][0], state, cast, exclude, prefer)


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _spell(m: Mention, role: str, names: list[str]) -> str:
    """The words that replace a mention: the full name(s), keeping possessives and contractions."""
    joined = _join(names)
    if m.kind == "name":
        return joined + m.suffix
    if role == "poss":
        return joined + "'s"
    contraction = m.suffix.replace("’", "'").lower()
    if len(names) > 1 and contraction:
        return joined + THEY_CONTRACTIONS.get(contraction, contraction)
    return joined + m.suffix


def subject_of(resolved: list[Resolved]) -> tuple[int, ...] | None:
    """The clause's subject: its first person, when named plainly or as a subject pronoun."""
    if not resolved:
        return None
    first = resolved[0]
    plain_name = first.role == "name" and not first.mention.suffix
    return first.people if first.people and (plain_name or first.role in ("subj", "group")) else None


def resolve_clause(
    clause: str, cast: Cast, state: State, warnings: list[str], hints: Mapping[int, int] | None = None
) -> tuple[str, list[Resolved]]:
    """Rewrite one clause with every person named in full; also who each mention turned out to be.

    ``hints`` (mention start -> person) names the preferred person for a pronoun, used when the
    gender fits (the dialogue rules know that "she replied" is the other person of an exchange).
    """
    out, pos = [], 0
    clause_people: list[int] = []
    resolved: list[Resolved] = []
    mentions = cast.mentions(clause)
    for m in mentions:
        role = role_of(m, clause, cast)
        hint = (hints or {}).get(m.start)
        people = _referent(m, role, clause, cast, state, clause_people, [r for r in resolved if r.people], hint, mentions)
        resolved.append(Resolved(m, role, people))
        if people is None:
            if m.kind == "name":
                options = " or ".join(cast.names[i] for i in m.people)
                warnings.append(f"{clause[m.start:m.end]!r} could be {options}; left as written in {snippet(clause)}")
            elif m.word not in ("they", "them", "their", "theirs"):
                said = clause[m.start : m.end]
                warnings.append(f"could not tell who {said!r} is in {snippet(clause)}; left as written")
            continue
        out += [clause[pos : m.start], _spell(m, role, [cast.names[i] for i in people])]
        pos = m.end
        state.saw(people)
        clause_people += people
    state.end_clause(clause_people, subject_of(resolved))
    text = "".join(out) + clause[pos:]
    return text[:1].upper() + text[1:], resolved
