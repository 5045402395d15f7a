"""What the page shows, made from the core's records: pure functions (Pillow, no gradio, no model).

Status lines, the training list and its time estimate, the library with the cast ticked, and the
result: panel tiles with their caption and a likeness badge, the redrawn one outlined.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..library import IdentityRecord, JobRecord

log = logging.getLogger(__name__)

JOBS_SHOWN = 20
JOB_HEADERS = ["Name", "State", "Progress", "Note"]
DETAIL_HEADERS = ["Name", "Step", "Loss"]
CAST_HEADERS = ["Person", "Looks (kept with them)", "Looks in this story only"]
TILE_SIDE = 384  # px of a panel tile: big enough to see a face, small enough to send 24 of them
THUMB_SIDE = 128  # px of a library face
BADGE_FONT_PX = 22
HIGHLIGHT = (255, 170, 0)  # the outline of a panel just drawn again
HIGHLIGHT_PX = 10
TICK = "✓ "  # in front of a library face's name: in the cast
# dlib cosine: the same person scores ~0.95 and more, two different people ~0.85-0.9 (see eval).
GOOD_LIKENESS = 0.95
FAIR_LIKENESS = 0.9
TONES = {"good": (22, 128, 60), "fair": (196, 128, 0), "weak": (190, 40, 40), "none": (90, 90, 100)}
STATE_WORDS = {"queued": "waiting", "running": "training", "done": "done", "failed": "failed", "cancelled": "cancelled"}


# -- status lines --------------------------------------------------------------------------------


def status(text: str = "", kind: str = "ok") -> str:
    """A step's status line as HTML: ``ok`` (a tick), ``error`` (stays until the next success), ``info``."""
    if not text:
        return ""
    icon = {"ok": "✓", "error": "⚠", "info": "ℹ"}[kind]
    role = ' role="alert"' if kind == "error" else ""
    body = html.escape(text, quote=False).replace("\n", "<br>")
    return f'<div class="sf-{kind}"{role}><span class="sf-icon">{icon}</span> {body}</div>'


def error_status(message: str) -> str:
    return status(message, "error")


_BOXES = re.compile(r", at \(.*?\) \(left, top, right, bottom\)")


def plain_words(message: str) -> str:
    """A core message as a person should read it in the page: no pixel boxes."""
    return _BOXES.sub("", message)


# -- people --------------------------------------------------------------------------------------


def job_rows(jobs: Sequence[JobRecord], now: datetime | None = None) -> list[list[str]]:
    """Newest first: name, state in words, progress, and what went wrong (or, while training, the time left
    at the job's own measured pace)."""
    now = now or datetime.now(timezone.utc)
    rows = []
    for job in list(reversed(jobs))[:JOBS_SHOWN]:
        progress = f"{job.step}/{job.total}" if job.total else ""
        note = plain_words(job.error or "")
        if job.state == "running" and job.started_at and job.total and 0 < job.step < job.total:
            pace = (now - datetime.fromisoformat(job.started_at)).total_seconds() / job.step
            note = f"{duration(pace * (job.total - job.step))} left"
        rows.append([job.name, STATE_WORDS.get(job.state, job.state), progress, note])
    return rows


def job_details(jobs: Sequence[JobRecord]) -> list[list[str]]:
    """Newest first: name, step and the training loss (for the advanced drawer)."""
    return [
        [job.name, f"{job.step}/{job.total}" if job.total else "", f"{job.loss:.4f}" if job.loss is not None else ""]
        for job in list(reversed(jobs))[:JOBS_SHOWN]
    ]


def seconds_per_step(jobs: Sequence[JobRecord], model: str) -> float | None:
    """The last finished job's time per step on this model (photo checks and saving included)."""
    for job in reversed(jobs):
        if job.state == "done" and job.model == model and job.total and job.started_at and job.finished_at:
            took = (datetime.fromisoformat(job.finished_at) - datetime.fromisoformat(job.started_at)).total_seconds()
            if took > 0:
                return took / job.total
    return None


def duration(seconds: float) -> str:
    if seconds < 10:
        return "a few seconds"
    if seconds < 90:
        return f"about {round(seconds / 5) * 5:.0f} s"
    return f"about {seconds / 60:.0f} min"


def train_estimate(rate: float | None, people: int, steps: int) -> str:
    """'Training 2 people (20 steps each): about 15 s on this machine.' from the measured rate."""
    if people == 0:
        return "Add people to the list, then train them."
    who = "1 person" if people == 1 else f"{people} people"
    if rate is None:
        return f"Training {who} ({steps} steps each); the first training measures how fast this machine is."
    return f"Training {who} ({steps} steps each): {duration(rate * steps * people)} on this machine."


def training_note(names: Sequence[str], rate: float | None, steps: int) -> str:
    """What the Train button started, and when it should be done."""
    when = f" It takes {duration(rate * steps * len(names))} on this machine." if rate is not None else ""
    return f"Training {', '.join(names)} ({steps} steps each).{when} They join the cast when done."


def thumbnail(record: IdentityRecord) -> Image.Image:
    """The library's face tile, or a plain grey one for an imported identity without a photo (or with a
    damaged one: a bad file in the data folder must not break the whole page)."""
    path = record.thumb_path or record.headshot_path
    if path is not None:
        try:
            with Image.open(path) as im:
                return ImageOps.fit(im.convert("RGB"), (THUMB_SIDE, THUMB_SIDE))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:  # the tile, not the page, says so
            log.warning("cannot show the picture of %r (%s): %s", record.name, path, exc)
    return Image.new("RGB", (THUMB_SIDE, THUMB_SIDE), (200, 200, 205))


def library_tiles(records: Sequence[IdentityRecord], cast: Sequence[str]) -> list[tuple[Image.Image, str]]:
    """Every face in the library; the cast's names ticked."""
    return [(thumbnail(r), (TICK if r.name in cast else "") + r.name) for r in records]


def untick(caption: str) -> str:
    return caption[len(TICK) :] if caption.startswith(TICK) else caption


def cast_rows(cast: Sequence[str], records: Mapping[str, IdentityRecord], shown: Any) -> list[list[str]]:
    """One row per cast member: their kept appearance notes and this story's (kept from ``shown``)."""
    story = {row[0]: row[2] or "" for row in shown or [] if isinstance(row, (list, tuple)) and len(row) >= 3}
    return [[name, records[name].appearance or "" if name in records else "", story.get(name, "")] for name in cast]


# -- the result ----------------------------------------------------------------------------------


def likeness_badge(score: Any, characters: Sequence[str]) -> tuple[str, str]:
    """(badge text, tone): the weakest likeness of the panel's people; scene panels have none."""
    if not characters:
        return "scene", "none"
    if score is None:
        return "not measured", "none"
    values = list(score.similarities.values())
    if score.swaps:
        return "people swapped?", "weak"
    if not values:
        return "no face found", "none"
    worst = min(values) if not score.missing else None
    if worst is None:
        return f"{len(score.missing)} face(s) missing", "weak"
    tone = "good" if worst >= GOOD_LIKENESS else "fair" if worst >= FAIR_LIKENESS else "weak"
    return f"likeness {worst:.2f}", tone


def likeness_words(score: Any) -> str:
    """'Grace Hopper 0.95, Eileen Collins not found' (dlib cosine; same person ~0.95+)."""
    if score is None:
        return ""
    parts = [f"{name} {value:.2f}" for name, value in score.similarities.items()]
    parts += [f"{name} not found" for name in score.missing]
    parts += [f"{len(score.extra)} other face(s)"] if score.extra else []
    return ", ".join(parts)


def _font(px: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def tile_image(art: Image.Image, badge: str, tone: str, highlight: bool) -> Image.Image:
    """A panel's art, fitted into a square tile (white bars), with its badge in the top-left corner."""
    tile = ImageOps.pad(art.convert("RGB"), (TILE_SIDE, TILE_SIDE), color=(255, 255, 255))
    draw = ImageDraw.Draw(tile)
    font = _font(BADGE_FONT_PX)
    x0, y0, x1, y1 = draw.textbbox((0, 0), badge, font=font)
    pad = 6
    box = (8, 8, 8 + (x1 - x0) + 2 * pad, 8 + (y1 - y0) + 2 * pad)
    draw.rounded_rectangle(box, radius=8, fill=TONES[tone])
    draw.text((box[0] + pad - x0, box[1] + pad - y0), badge, fill="white", font=font)
    if highlight:
        draw.rectangle((0, 0, tile.width - 1, tile.height - 1), outline=HIGHLIGHT, width=HIGHLIGHT_PX)
    return tile


def tile_caption(number: int, panel: Any, score: Any, redrawn: bool) -> str:
    """The tile's full caption: the author's words (or what is said, or the scene), then the likeness."""
    words = panel.caption or " ".join(f"{line.speaker}: “{line.text}”" for line in panel.dialogue) or panel.sentence
    text = f"{number}. {words}"
    likeness = likeness_words(score) if panel.characters else ""
    if likeness:
        text += f" — likeness: {likeness}"
    return ("↻ drawn again · " if redrawn else "") + text


def comic_summary(pages: int, panels: int, warnings: Sequence[str], tiny_notice: str | None) -> str:
    """The success line of step 4: what was made and what to do next."""
    text = (
        f"{panels} panel{'s' if panels != 1 else ''} on {pages} page{'s' if pages != 1 else ''}. Click a panel "
        "to draw it again; edit a caption or a line of dialogue in step 3 and the page is lettered again without "
        "redrawing."
    )
    text += "".join(f"\nNote: {w}" for w in warnings)
    if tiny_notice:
        text += f"\nTest mode: {tiny_notice}."
    return text
