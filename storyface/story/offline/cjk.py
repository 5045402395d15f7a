"""Speech tags in Chinese and Japanese, which put no space between a quotation and its speaker:
``“你好！”格蕾丝·霍珀说。``, ``格蕾丝说：“你好。”``, ``「見て！」とグレースは言った。``.

The speaker must be a cast name written next to the verb (Chinese and Japanese pronouns are not
resolved: a tag "她说" is left to the narration with a warning, like any tag naming no cast member).
"""

from __future__ import annotations

import re

from .cast import Mention
from .quotes import Quote

CJK_VERBS = {
    **dict.fromkeys(
        "说道 說道 说 說 问道 問道 问 問 喊道 喊 叫道 答道 回答道 回答 言った 言いました 聞いた 尋ねた 叫んだ 答えた".split(),
        "speech",
    ),
    **dict.fromkeys("低声说 小声说 轻声说 低聲說 小聲說 輕聲說 囁いた ささやいた つぶやいた 呟いた".split(), "whisper"),
    **dict.fromkeys("心想 想道 想 思った 考えた".split(), "thought"),
}
_VERB = "|".join(sorted(CJK_VERBS, key=len, reverse=True))
WINDOW = 24  # characters before a quotation searched for "格蕾丝说：": a verb and a colon
_PARTICLE = r"(?:は|が|も)?"  # Japanese topic and subject particles between the name and the verb
_AFTER_LEAD = re.compile(r"\s*(と|って)?\s*")  # 「…」と言った: と marks the quotation
_VERB_AFTER_NAME = re.compile(rf"{_PARTICLE}\s*({_VERB})(?!\s*[：:，,]\s*[“「『\"])")  # not the next quote's tag
_VERB_BEFORE_QUOTE = re.compile(rf"({_VERB})\s*[：:，,]?\s*$")


_OTHER_SPEAKER = re.compile(r"[^。！？，、：；.!?,\s]{1,6}?")  # 她, 彼女は, 店员: a speaker outside the cast


def tag_after_cjk(
    clause: str, q: Quote, mentions: list[Mention]
) -> tuple[int, int, int, Mention | None, str, int | None] | None:
    """``“…”格蕾丝说`` / ``「…」とグレースは言った`` -> (verb start, verb end, tag end, speaker, kind, と start);
    the speaker is None when the tag names no cast member (``“…”她说``)."""
    lead = _AFTER_LEAD.match(clause, q.end)
    speaker = next((m for m in mentions if m.start == lead.end() and m.kind == "name" and not m.suffix), None)
    if speaker is None:
        other = _OTHER_SPEAKER.match(clause, lead.end())
        verb = _VERB_AFTER_NAME.match(clause, other.end()) if other else None
        for end in range(lead.end() + 1, other.end() + 1) if other and not verb else ():
            verb = _VERB_AFTER_NAME.match(clause, end)
            if verb:
                break
        if verb is None:
            return None
        particle = lead.start(1) if lead.group(1) else None
        return verb.start(1), verb.end(1), verb.end(), None, CJK_VERBS[verb.group(1)], particle
    verb = _VERB_AFTER_NAME.match(clause, speaker.end)
    if verb is None:
        return None
    particle = lead.start(1) if lead.group(1) else None
    return verb.start(1), verb.end(1), verb.end(), speaker, CJK_VERBS[verb.group(1)], particle


def tag_before_cjk(clause: str, q: Quote, mentions: list[Mention]) -> tuple[int, int, int, Mention, str] | None:
    """``格蕾丝说：“…”`` / ``グレースは言った：「…」`` -> (verb start, verb end, tag end, speaker, kind)."""
    window = max(0, q.start - WINDOW)
    verb = _VERB_BEFORE_QUOTE.search(clause, window, q.start)
    if verb is None:
        return None
    head = re.search(rf"{_PARTICLE}\s*$", clause[window : verb.start(1)]).start() + window
    speaker = next((m for m in mentions if m.end == head and m.kind == "name" and not m.suffix), None)
    if speaker is None:
        return None
    return verb.start(1), verb.end(1), verb.end(1), speaker, CJK_VERBS[verb.group(1)]
