"""The Python API: the straight line photo -> identity -> story -> panels -> page.

The CLI and the web app are thin doors onto these functions; each takes the loaded model (or the
renderer that holds it) so nothing reloads per call.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .errors import StoryError
from .eval.likeness import ReferenceSource
from .faces import FaceEncoder, Headshot, get_face_encoder
from .identity.tokens import Identity
from .identity.subject import PhotoSource, subject_from_photo
from .identity.train import Progress, TrainConfig, train_identities
from .models import LoadedModel
from .render.generate import PanelImage, RenderConfig, Renderer
from .render.layout import compose_page, save_page
from .safety import ContentPolicy, ContentPolicyError
from .safety.inputs import check_panel_count
from .story.prompts import PanelPrompt, build_prompts, token_counter
from .story.schema import Panel

log = logging.getLogger(__name__)


def learn_identities(
    model: LoadedModel,
    people: Sequence[tuple[PhotoSource, str]],
    config: TrainConfig = TrainConfig(),
    encoder: FaceEncoder | str = "dlib",
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[tuple[Identity, Headshot]]:
    """Learn everyone at once (one UNet batch). Every photo is checked before any training starts."""
    encoder = get_face_encoder(encoder) if isinstance(encoder, str) else encoder
    prepared = [subject_from_photo(photo, name, encoder) for photo, name in people]
    identities = train_identities(model, [s for s, _ in prepared], config, progress, should_stop)
    return list(zip(identities, (h for _, h in prepared)))


@dataclass
class Comic:
    """What ``make_comic`` wrote, and the objects behind it (kept for re-rendering one panel)."""

    out_dir: Path
    page: Image.Image
    files: list[Path]
    panels: list[PanelImage]
    prompts: list[PanelPrompt]
    script: list[Panel]
    warnings: list[str] = field(default_factory=list)


def plan_prompts(
    renderer: Renderer,
    panels: Sequence[Panel],
    identities: Sequence[Identity],
    styles: Sequence[str] = (),
    free_style: str = "",
    cast: Sequence[str] | None = None,
    policy: ContentPolicy | None = None,
    negative_prompt: str | None = None,
) -> list[PanelPrompt]:
    """Check identities against the model, load them, and turn each panel into a prompt.

    Every prompt passes the content policy here (``policy=None``: ``STORYFACE_CONTENT_POLICY``, strict
    by default), so the CLI, the API and the web app refuse the same things before anything renders.
    """
    check_panel_count(panels)
    tokens = renderer.load_identities(list(identities))  # refuses another family's identity before loading any
    tokenizer, pipe = renderer.model.encoders[0].tokenizer, renderer.model.pipe
    prompts = build_prompts(
        list(panels),
        tokens,
        styles=list(styles),
        free_style=free_style,
        cast=list(cast) if cast is not None else None,
        negative_prompt=negative_prompt,
        count_tokens=token_counter(tokenizer, lambda text: pipe.maybe_convert_prompt(text, tokenizer)),
    )
    policy = policy or ContentPolicy.from_env()
    for number, prompt in enumerate(prompts, 1):
        try:
            policy.check(prompt.prompt, prompt.negative_prompt, bool(prompt.tokens), tokens=prompt.tokens)
        except ContentPolicyError as exc:
            raise ContentPolicyError(f"panel {number}: {exc}") from None
    return prompts


def make_comic(
    renderer: Renderer,
    panels: Sequence[Panel],
    identities: Sequence[Identity],
    out_dir: str | os.PathLike,
    styles: Sequence[str] = (),
    free_style: str = "",
    config: RenderConfig = RenderConfig(),
    seed: int = 0,
    title: str | None = None,
    pdf: bool = False,
    callback: Callable[[int, int], None] | None = None,
    references: Mapping[str, ReferenceSource] | None = None,
    min_likeness: float | None = None,
    retries: int = 0,
    face_encoder: FaceEncoder | str = "dlib",
    policy: ContentPolicy | None = None,
    negative_prompt: str | None = None,
) -> Comic:
    """Render one image per sentence and lay out the captioned page; write page, panels and records.

    ``references`` (name -> headshot or photo) are copied into the folder so ``storyface eval``
    works from it alone. With ``min_likeness`` every panel is scored against them and one whose
    weakest character falls below it is rendered again with a new seed, up to ``retries`` times.
    """
    prompts = plan_prompts(renderer, panels, identities, styles, free_style, policy=policy, negative_prompt=negative_prompt)
    texts = ([p.prompt for p in prompts], [p.negative_prompt for p in prompts])
    seeds = [seed + i for i in range(len(prompts))]
    likeness = None
    if min_likeness is None:
        images = renderer.render(*texts, seeds=seeds, config=config, callback=callback)
    else:
        from .eval.likeness import references_from
        from .eval.retry import face_scorer, render_with_retries

        vectors = references_from(references or {}, face_encoder)
        scorer = face_scorer(vectors, [p.characters for p in prompts], face_encoder)
        images, tries = render_with_retries(
            renderer, *texts, seeds, config, scorer, min_likeness, retries, rng_seed=seed, callback=callback
        )
        likeness = [t.record() for t in tries]
    return write_comic(
        renderer, list(panels), prompts, images, identities, out_dir, title, pdf, references=references, likeness=likeness
    )


def write_comic(
    renderer: Renderer,
    panels: list[Panel],
    prompts: list[PanelPrompt],
    images: list[PanelImage],
    identities: Sequence[Identity],
    out_dir: str | os.PathLike,
    title: str | None = None,
    pdf: bool = False,
    references: Mapping[str, ReferenceSource] | None = None,
    likeness: Sequence[dict] | None = None,
) -> Comic:
    """Lay out and save; also used after re-rendering a single panel.

    ``references`` are saved under ``references/`` (without them the folder keeps the ones it has);
    ``likeness[i]`` (scores and retry attempts) goes into panel i's record.
    """
    from .eval.report import existing_references, save_references

    out = Path(out_dir)
    (out / "panels").mkdir(parents=True, exist_ok=True)
    model = renderer.model
    notice = model.notice if model.random_weights else None
    page = compose_page([p.image for p in images], [p.sentence for p in panels], title=title, notice=notice)
    files = save_page(page, out / "page.png", pdf=pdf)
    by_name = {i.name: i for i in identities}
    records = []
    for i, (panel, prompt, image) in enumerate(zip(panels, prompts, images), start=1):
        stem = out / "panels" / f"panel-{i:02d}"
        image.image.save(stem.with_suffix(".png"))
        record = {
            **image.record(),
            "sentence": panel.sentence,
            "characters": prompt.characters,
            "identities": {n: by_name[n].metadata.get("photo_sha256", "") for n in prompt.characters if n in by_name},
            "warnings": prompt.warnings,
        }
        if likeness is not None:
            record["likeness"] = likeness[i - 1]
        stem.with_suffix(".json").write_text(json.dumps(record, indent=2))
        records.append(record)
        files.append(stem.with_suffix(".png"))
    refs = save_references(references, out) if references else existing_references(out)
    manifest = {"title": title, "model": model.source, "tiny": model.is_tiny, "notice": model.notice, "panels": records}
    manifest["references"] = refs
    (out / "comic.json").write_text(json.dumps(manifest, indent=2))
    warnings = [w for p in prompts for w in p.warnings]
    blocked = [i for i, image in enumerate(images, 1) if image.blocked]
    warnings += [f"panel {i}: the model's safety checker flagged it, so it is black" for i in blocked]
    return Comic(out, page, files, images, prompts, panels, warnings)


def redraw_panel(
    renderer: Renderer,
    comic_dir: str | os.PathLike,
    number: int,
    identities: Sequence[Identity],
    seed: int | None = None,
    policy: ContentPolicy | None = None,
) -> Comic:
    """Draw panel ``number`` (1-based) of a comic folder again; every other panel stays as it was.

    ``seed=None`` draws a new seed (recorded); the panel's own seed redraws it identically. The folder's
    records are user-editable, so the prompt passes the content policy again before anything renders.
    """
    from .eval.report import read_manifest

    out = Path(comic_dir)
    manifest = read_manifest(out)
    records = manifest["panels"]
    if not 1 <= number <= len(records):
        raise StoryError(f"{out} has panels 1 to {len(records)}; there is no panel {number}")
    tokens = renderer.load_identities(list(identities))
    images, prompts, panels = [], [], []
    for i, rec in enumerate(records, start=1):
        try:
            with Image.open(out / "panels" / f"panel-{i:02d}.png") as im:
                image = im.convert("RGB")
            fields = {k: rec[k] for k in ("prompt", "negative_prompt", "seed", "width", "height", "steps", "guidance", "scheduler")}
            characters = [str(c) for c in rec["characters"]]
        except (OSError, KeyError, TypeError) as exc:
            raise StoryError(f"{out}: panel {i}'s image or record is missing or damaged ({exc}); render the comic again") from None
        missing = [c for c in characters if c not in tokens]
        if missing:
            raise StoryError(f"panel {i} shows {', '.join(missing)}: pass their identity (--identity) to redraw")
        images.append(PanelImage(i - 1, image, model=renderer.model.source, tiny=renderer.model.is_tiny, **fields))
        prompts.append(PanelPrompt(fields["prompt"], fields["negative_prompt"], characters, [tokens[c] for c in characters]))
        panels.append(Panel(sentence=rec.get("sentence", ""), characters=characters))
    target = prompts[number - 1]
    (policy or ContentPolicy.from_env()).check(target.prompt, target.negative_prompt, True, tokens=target.tokens)
    images[number - 1] = renderer.rerender(images[number - 1], seed)
    pdf = (out / "page.pdf").exists()
    return write_comic(renderer, panels, prompts, images, identities, out, manifest.get("title"), pdf=pdf)
