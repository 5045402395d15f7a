"""Evaluating a comic folder and reporting it: ``eval.json``, a terminal table, a one-file HTML page.

The folder's files are read through :class:`storyface.comic_folder.ComicFolder` (its records, panel
pictures and reference headshots): that is all the evaluation needs.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw

from ..comic_folder import ComicFolder, ComicRecord
from ..errors import InputError
from ..faces import FaceEncoder
from ..files import write_atomic
from ..render.regions import plan_from_dict
from .likeness import ClipScorer, PanelScore, ReferenceSource, as_encoder, references_from, score_panel

if TYPE_CHECKING:
    from rich.table import Table

log = logging.getLogger(__name__)

THUMB_SIDE = 384  # px, the longer side of a panel thumbnail in the HTML report


# -- the comic folder ----------------------------------------------------------------------------


def parse_reference_args(items: Sequence[str]) -> dict[str, Path]:
    """``["Grace Hopper=grace.png", ...]`` (the CLI's ``--reference``) -> name -> photo path."""
    refs = {}
    for item in items:
        name, sep, photo = item.partition("=")
        if not sep or not name.strip() or not photo.strip():
            raise InputError(f"--reference {item!r}: write it as 'Full Name=photo.png'")
        refs[name.strip()] = Path(photo.strip())
    return refs


def retry_lines(comic_dir: str | os.PathLike) -> list[str]:
    """One line per panel that was scored while rendering: attempts, kept seed, weakest likeness."""
    lines = []
    for number, record in enumerate(ComicFolder(comic_dir).read().panels, start=1):
        tries = record.likeness
        if not tries:
            continue
        best = tries["attempts"][tries["kept"]]
        verdict = "ok" if tries["passed"] else f"below {tries['min_likeness']:.3f}"
        lines.append(
            f"panel {number}: {len(tries['attempts'])} attempt(s), kept seed {tries['kept_seed']} "
            f"(weakest {_fmt(best['weakest'])}, {verdict})"
        )
    return lines


# -- evaluation ----------------------------------------------------------------------------------


@dataclass
class PanelEval:
    number: int  # 1-based, as on the page
    image: Path
    sentence: str
    score: PanelScore

    def to_dict(self) -> dict[str, Any]:
        return {"panel": self.number, "image": self.image.name, "sentence": self.sentence, **self.score.to_dict()}


@dataclass
class ComicEval:
    """The evaluation of one comic folder."""

    comic_dir: Path
    encoder: str
    clip_model: str | None
    references: dict[str, str]  # name -> path of the reference picture used
    panels: list[PanelEval]
    min_likeness: float | None = None
    warnings: list[str] = field(default_factory=list)

    def weak(self) -> list[PanelEval]:
        """Panels below ``min_likeness`` (none when no bar was set)."""
        if self.min_likeness is None:
            return []
        return [p for p in self.panels if not p.score.passes(self.min_likeness)]

    def to_dict(self) -> dict[str, Any]:
        sims = [s for p in self.panels for s in p.score.similarities.values()]
        return {
            "comic_dir": str(self.comic_dir),
            "face_encoder": self.encoder,
            "clip_model": self.clip_model,
            "min_likeness": self.min_likeness,
            "references": dict(self.references),
            "summary": {
                "panels": len(self.panels),
                "mean_similarity": round(sum(sims) / len(sims), 4) if sims else None,
                "characters_missing": sum(len(p.score.missing) for p in self.panels),
                "extra_faces": sum(len(p.score.extra) for p in self.panels),
                "weak_panels": [p.number for p in self.weak()],
            },
            "warnings": list(self.warnings),
            "panels": [p.to_dict() for p in self.panels],
        }


def evaluate_comic(
    comic_dir: str | os.PathLike,
    encoder: FaceEncoder | str = "dlib",
    clip: ClipScorer | str | None = None,
    references: Mapping[str, ReferenceSource] | None = None,
    min_likeness: float | None = None,
) -> ComicEval:
    """Score every panel of a comic folder against the references it recorded (``references`` override)."""
    # 1. what the folder says: panels, their characters, the reference pictures
    folder = ComicFolder(comic_dir)
    record = folder.read()
    sources: dict[str, ReferenceSource] = dict(folder.references(record))
    sources.update(references or {})
    # 2. models, each loaded once
    encoder = as_encoder(encoder)
    clip = ClipScorer(clip) if isinstance(clip, (str, os.PathLike)) else clip
    vectors = references_from(sources, encoder)
    # 3. one score per panel
    panels = []
    for number, panel in enumerate(record.panels, start=1):
        image = folder.panel_image(number)
        plan = plan_from_dict(panel.regions) if len(panel.regions) >= 2 else None  # where each person should stand
        score = score_panel(image, vectors, panel.characters, encoder, clip=clip, text=panel.sentence, plan=plan)
        panels.append(PanelEval(number, folder.panel_png(number), panel.sentence, score))
    log.info("scored %d panels of %s with %s", len(panels), folder, encoder.name)
    return ComicEval(
        folder.path, encoder.name, clip.model_id if clip else None, {n: _describe(p) for n, p in sources.items()},
        panels, min_likeness, _warnings(record, panels),
    )  # fmt: skip


def _describe(source: ReferenceSource) -> str:
    """A reference as the report names it: its path, or what it was when given in memory."""
    return str(source) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"


def _warnings(record: ComicRecord, panels: Sequence[PanelEval]) -> list[str]:
    """What a reader should know before trusting the numbers."""
    notes = []
    if record.tiny:
        notes.append("rendered with the random-weight tiny test model: panels are noise, so no faces are expected")
    unscored = sorted({n for p in panels for n in p.score.unscored})
    if unscored:
        notes.append(
            f"no reference photo for {', '.join(unscored)}: not scored; pass --reference 'Name=photo.png'"
        )
    missing = [p.number for p in panels if p.score.missing]
    if missing:
        notes.append(f"characters missing (no face found for them) in panel(s) {', '.join(map(str, missing))}")
    return notes


# -- outputs -------------------------------------------------------------------------------------


def write_json(evaluation: ComicEval, path: str | os.PathLike | None = None) -> Path:
    """``eval.json`` in the comic folder unless ``path`` says otherwise."""
    path = Path(path) if path is not None else ComicFolder(evaluation.comic_dir).eval_json
    return write_atomic(path, json.dumps(evaluation.to_dict(), indent=2))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def panel_summary(score: PanelScore) -> list[str]:
    """(likeness per character, missing, extra, weakest, prompt fit) as short strings."""
    likeness = ", ".join(f"{name} {sim:.3f}" for name, sim in score.similarities.items()) or "-"
    return [
        likeness,
        ", ".join(score.missing) or "-",
        str(len(score.extra)) if score.extra else "-",
        _fmt(score.weakest),
        _fmt(score.prompt_fit),
    ]


def eval_table(evaluation: ComicEval) -> Table:
    """The terminal summary: one row per panel, weak panels in red."""
    from rich.table import Table

    table = Table("#", "faces", "likeness", "missing", "extra", "weakest", "prompt fit",
                  title=f"likeness ({evaluation.encoder})", caption="\n".join(evaluation.warnings) or None)  # fmt: skip
    weak = {p.number for p in evaluation.weak()}
    for p in evaluation.panels:
        style = "red" if p.number in weak else None
        table.add_row(str(p.number), str(len(p.score.faces)), *panel_summary(p.score), style=style)
    return table


def write_html(evaluation: ComicEval, path: str | os.PathLike | None = None) -> Path:
    """``eval.html``: one self-contained page (images embedded), readable offline and shareable."""
    path = Path(path) if path is not None else ComicFolder(evaluation.comic_dir).eval_html
    return write_atomic(path, render_html(evaluation))


def render_html(evaluation: ComicEval) -> str:
    esc = html.escape
    refs = "".join(
        f'<figure><img src="{_data_uri(_open_rgb(p), 128)}" alt=""><figcaption>{esc(n)}</figcaption></figure>'
        for n, p in evaluation.references.items()
        if Path(p).is_file()
    )
    weak = {p.number for p in evaluation.weak()}
    rows = "".join(_html_row(p, p.number in weak) for p in evaluation.panels)
    notes = "".join(f"<li>{esc(w)}</li>" for w in evaluation.warnings)
    bar = f" &middot; min likeness {evaluation.min_likeness:.3f}" if evaluation.min_likeness is not None else ""
    clip = f" &middot; CLIP {esc(evaluation.clip_model)}" if evaluation.clip_model else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>StoryFace evaluation</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.4em .6em;vertical-align:top;text-align:left}}
tr.weak td{{background:#fde8e8}} figure{{display:inline-block;margin:0 1em 1em 0}}
img{{max-width:{THUMB_SIDE}px}} .missing{{color:#b00}}
</style></head><body>
<h1>StoryFace evaluation</h1>
<p>{esc(str(evaluation.comic_dir))} &middot; face encoder {esc(evaluation.encoder)}{clip}{bar}</p>
<ul>{notes}</ul>
<h2>References</h2><div>{refs or "<p>none</p>"}</div>
<h2>Panels</h2>
<table><tr><th>#</th><th>panel</th><th>sentence</th><th>likeness</th><th>missing</th><th>extra faces</th>
<th>weakest</th><th>prompt fit</th></tr>{rows}</table>
</body></html>
"""


def _html_row(panel: PanelEval, weak: bool) -> str:
    likeness, missing, extra, weakest, fit = (html.escape(s) for s in panel_summary(panel.score))
    with Image.open(panel.image) as image:
        thumb = _data_uri(_draw_faces(image.convert("RGB"), panel.score, THUMB_SIDE), THUMB_SIDE)
    return (
        f'<tr class="{"weak" if weak else ""}"><td>{panel.number}</td><td><img src="{thumb}" alt="panel {panel.number}"></td>'
        f"<td>{html.escape(panel.sentence)}</td><td>{likeness}</td><td class=\"missing\">{missing}</td>"
        f"<td>{extra}</td><td>{weakest}</td><td>{fit}</td></tr>"
    )


def _draw_faces(image: Image.Image, score: PanelScore, side: int) -> Image.Image:
    """A thumbnail with a box per face: green with the character's name, orange for extra faces."""
    thumb = image.copy()
    thumb.thumbnail((side, side))
    scale = thumb.width / image.width
    draw = ImageDraw.Draw(thumb)
    for face in score.faces:
        colour = (40, 180, 60) if face.character else (240, 140, 0)
        box = [round(v * scale) for v in face.box]
        draw.rectangle(box, outline=colour, width=2)
        label = f"{face.character.split()[0]} {face.similarity:.2f}" if face.character else "extra"
        corner = (box[0], box[3] + 2)
        draw.rectangle(draw.textbbox(corner, label), fill=(0, 0, 0))  # legible on any background
        draw.text(corner, label, fill=colour)
    return thumb


def _open_rgb(path: str | os.PathLike) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _data_uri(image: Image.Image, side: int) -> str:
    """A JPEG thumbnail as a data: URI, so the HTML needs no other files."""
    thumb = image.copy()
    thumb.thumbnail((side, side))
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
