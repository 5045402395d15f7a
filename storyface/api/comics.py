"""The core's second half: panels -> prompts -> art -> page, redrawing one panel, and likeness."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..comic_folder import ComicFolder
from ..errors import StoryError
from ..eval.likeness import PanelScore, ReferenceSource, reference_image, references_from, score_panels
from ..faces import FaceEncoder
from ..identity.tokens import Identity
from ..limits import MAX_TITLE_CHARS
from ..names import tidy
from ..render.generate import PanelImage, RenderConfig, Renderer
from ..render.layout import compose_page, save_page
from ..safety import ContentPolicy, ContentPolicyError
from ..story.schema import check_panel_count
from ..story.prompts import PanelPrompt, build_prompts, token_counter
from ..story.schema import Panel

log = logging.getLogger(__name__)


@dataclass
class Comic:
    """What :func:`make_comic` wrote, and the objects behind it."""

    out_dir: Path
    page: Image.Image
    files: list[Path]
    panels: list[PanelImage]
    prompts: list[PanelPrompt]
    script: list[Panel]
    warnings: list[str] = field(default_factory=list)

    @property
    def folder(self) -> ComicFolder:
        return ComicFolder(self.out_dir)


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

    Every prompt passes the content policy here (``policy=None``: the renderer's), so the CLI, the API
    and the web app refuse the same things before anything renders.
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
    policy = policy or renderer.policy
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
    """Render one image per panel and lay out the captioned page; write page, panels and records.

    ``policy`` (default: the renderer's) is the one every prompt and the title must pass.
    ``references`` (name -> headshot or photo) are copied into the folder so ``storyface eval`` works
    from it alone. With ``min_likeness`` every panel is scored against them and one whose weakest
    character falls below it is rendered again with a new seed, up to ``retries`` times.
    """
    policy = policy or renderer.policy
    title = _checked_title(title, policy)
    prompts = plan_prompts(renderer, panels, identities, styles, free_style, policy=policy, negative_prompt=negative_prompt)
    texts = ([p.prompt for p in prompts], [p.negative_prompt for p in prompts])
    seeds = [seed + i for i in range(len(prompts))]
    likeness = None
    if min_likeness is None:
        images = renderer.render(*texts, seeds=seeds, config=config, callback=callback, policy=policy)
    else:
        from ..eval.retry import face_scorer, render_with_retries

        vectors = references_from(references or {}, face_encoder)
        scorer = face_scorer(vectors, [p.characters for p in prompts], face_encoder)
        images, tries = render_with_retries(
            renderer, *texts, seeds, config, scorer, min_likeness, retries, rng_seed=seed, callback=callback,
            policy=policy,
        )
        likeness = [t.record() for t in tries]
    return write_comic(
        renderer, list(panels), prompts, images, identities, out_dir, title, pdf, references=references, likeness=likeness
    )


def _checked_title(title: str | None, policy: ContentPolicy) -> str | None:
    """The page title is drawn on the page, so it passes the limits and the policy like a prompt."""
    if title is None or not title.strip():
        return None
    title = tidy(title)
    if len(title) > MAX_TITLE_CHARS:
        raise StoryError(f"the title is {len(title):,} characters; keep it to {MAX_TITLE_CHARS}")
    try:
        policy.check(title, "", False)
    except ContentPolicyError as exc:
        raise ContentPolicyError(f"the title: {exc}") from None
    return title


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
    """Lay out and save (the page and panels first, ``comic.json`` last); also used after a redraw.

    ``references`` are saved under ``references/`` (without them the folder keeps the ones it has);
    ``likeness[i]`` (scores and retry attempts) goes into panel i's record.
    """
    folder = ComicFolder(out_dir)
    model = renderer.model
    notice = model.notice if model.random_weights else None
    page = compose_page([p.image for p in images], [p.sentence for p in panels], title=title, notice=notice)
    folder.path.mkdir(parents=True, exist_ok=True)
    files = save_page(page, folder.page_png, pdf=pdf)
    by_name = {i.name: i for i in identities}
    records = []
    for number, (panel, prompt, image) in enumerate(zip(panels, prompts, images), start=1):
        record = {
            **image.record(),
            "sentence": panel.sentence,
            "characters": prompt.characters,
            "identities": {n: by_name[n].metadata.get("photo_sha256", "") for n in prompt.characters if n in by_name},
            "warnings": prompt.warnings,
        }
        if likeness is not None:
            record["likeness"] = likeness[number - 1]
        files.append(folder.write_panel(number, image.image, record))
        records.append(record)
    if references:
        refs = folder.save_references({name: reference_image(src) for name, src in references.items()})
    else:
        refs = {name: path.relative_to(folder.path).as_posix() for name, path in folder.references().items()}
    manifest = {"title": title, "model": model.source, "tiny": model.is_tiny, "notice": model.notice, "panels": records}
    folder.write_record({**manifest, "references": refs})
    warnings = [w for p in prompts for w in p.warnings]
    warnings += [f"panel {i}: the model's safety checker flagged it, so it is black" for i, im in enumerate(images, 1) if im.blocked]
    return Comic(folder.path, page, files, images, prompts, panels, warnings)


def redraw_panel(
    renderer: Renderer,
    comic_dir: str | os.PathLike,
    number: int,
    identities: Sequence[Identity],
    seed: int | None = None,
    policy: ContentPolicy | None = None,
) -> Comic:
    """Draw panel ``number`` (1-based) of a comic folder again; every other panel stays as it was.

    The one redraw path for a folder on disk and a comic just made (its folder). ``seed=None`` draws a
    new seed (recorded); the panel's own seed redraws it identically. The folder's records are
    user-editable, so they are validated on reading and the prompt passes the content policy again.
    """
    folder = ComicFolder(comic_dir)
    record = folder.read()
    if not 1 <= number <= len(record.panels):
        raise StoryError(f"{folder.path} has panels 1 to {len(record.panels)}; there is no panel {number}")
    tokens = renderer.load_identities(list(identities))
    images, prompts, panels = [], [], []
    for i, rec in enumerate(record.panels, start=1):
        missing = [c for c in rec.characters if c not in tokens]
        if missing:
            raise StoryError(f"panel {i} shows {', '.join(missing)}: pass their identity (--identity) to redraw")
        fields = rec.model_dump(include={"prompt", "negative_prompt", "seed", "width", "height", "steps", "guidance", "scheduler"})
        image = folder.panel_image(i, rec)
        images.append(PanelImage(i - 1, image, model=renderer.model.source, tiny=renderer.model.is_tiny, **fields))
        prompts.append(PanelPrompt(rec.prompt, rec.negative_prompt, list(rec.characters), [tokens[c] for c in rec.characters]))
        panels.append(Panel(sentence=rec.sentence or rec.prompt, characters=list(rec.characters)))
    target = prompts[number - 1]
    (policy or renderer.policy).check(target.prompt, target.negative_prompt, bool(target.tokens), tokens=target.tokens)
    images[number - 1] = renderer.rerender(images[number - 1], seed, policy=policy)
    title = _checked_title(record.title, policy or renderer.policy)
    return write_comic(renderer, panels, prompts, images, identities, folder.path, title, pdf=folder.page_pdf.exists())


def comic_likeness(
    comic: Comic, references: Mapping[str, ReferenceSource], encoder: FaceEncoder | str = "dlib"
) -> list[PanelScore]:
    """Each panel's likeness to the references of the people it shows (a panel's score: see eval)."""
    vectors = references_from(references, encoder)
    return score_panels([p.image for p in comic.panels], vectors, [p.characters for p in comic.prompts], encoder)
