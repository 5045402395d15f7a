"""The core's second half: panels -> prompts -> art -> lettered pages, redrawing one panel, likeness."""

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
from ..library.checks import clean_appearance
from ..names import tidy
from ..render.book import Book
from ..render.generate import PanelImage, RenderConfig, Renderer, check_prompts
from ..render.lettering import Face
from ..render.regions import plan_from_dict
from ..safety import ContentPolicy, ContentPolicyError
from ..story.prompts import PanelPrompt, build_prompts, token_counter
from ..story.schema import Panel, check_panel_count
from .checks import check_comic_text, check_render_request
from .book import (
    BookSettings,
    check_texts,
    find_panel_faces,
    panel_sizes,
    panel_texts,
    region_plans,
    regions_record,
    write_book,
)

log = logging.getLogger(__name__)


@dataclass
class Comic:
    """What :func:`make_comic` wrote, and the objects behind it."""

    out_dir: Path
    book: Book
    files: list[Path]
    panels: list[PanelImage]
    prompts: list[PanelPrompt]
    script: list[Panel]
    warnings: list[str] = field(default_factory=list)

    @property
    def folder(self) -> ComicFolder:
        return ComicFolder(self.out_dir)

    @property
    def pages(self) -> list[Image.Image]:
        return self.book.pages


def plan_prompts(
    renderer: Renderer,
    panels: Sequence[Panel],
    identities: Sequence[Identity],
    styles: Sequence[str] = (),
    free_style: str = "",
    cast: Sequence[str] | None = None,
    policy: ContentPolicy | None = None,
    negative_prompt: str | None = None,
    appearance: Mapping[str, str] | None = None,
) -> list[PanelPrompt]:
    """Check identities against the model, load them, and turn each panel into a prompt.

    Each person's appearance notes (kept with their identity; ``appearance`` overrides them for this
    story, e.g. a costume change) go into every prompt they appear in. Every prompt passes the content
    policy here (``policy=None``: the renderer's), so the CLI, the API and the web app refuse the same
    things before anything renders.
    """
    check_panel_count(panels)
    check_comic_text(free_style=free_style, negative_prompt=negative_prompt, styles=styles)
    free_style = tidy(free_style or "")
    negative_prompt = tidy(negative_prompt) if negative_prompt is not None else None
    notes = {i.name: i.metadata["appearance"] for i in identities if i.metadata.get("appearance")}
    notes.update({name: text for name, text in (appearance or {}).items()})
    notes = {name: clean_appearance(text) for name, text in notes.items() if clean_appearance(text)}
    tokens = renderer.load_identities(list(identities))  # refuses another family's identity before loading any
    tokenizer, pipe = renderer.model.encoders[0].tokenizer, renderer.model.pipe
    prompts = build_prompts(
        list(panels), tokens, styles=list(styles), free_style=free_style, appearance=notes,
        cast=list(cast) if cast is not None else None, negative_prompt=negative_prompt,
        count_tokens=token_counter(tokenizer, lambda text: pipe.maybe_convert_prompt(text, tokenizer)),
    )  # fmt: skip
    check_prompts(renderer.model.loaded_tokens, [p.prompt for p in prompts], [p.negative_prompt for p in prompts],
                  policy or renderer.policy)  # fmt: skip
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
    book: BookSettings | None = None,
    callback: Callable[[int, int], None] | None = None,
    references: Mapping[str, ReferenceSource] | None = None,
    min_likeness: float | None = None,
    retries: int = 0,
    face_encoder: FaceEncoder | str = "dlib",
    policy: ContentPolicy | None = None,
    negative_prompt: str | None = None,
    appearance: Mapping[str, str] | None = None,
) -> Comic:
    """Render each panel's clean art, letter it, lay out the pages; write art, pages and records.

    ``policy`` (default: the renderer's) is the one every prompt and every text on the page must pass.
    ``references`` (name -> headshot or photo) tell faces apart for the balloons and are copied into the
    folder so ``storyface eval`` works from it alone. With ``min_likeness`` every panel is scored against
    them (and checked for swapped people) and a weak one is rendered again with a new seed, up to
    ``retries`` times.
    """
    # 1. everything a person typed, checked before any model work
    check_render_request(len(panels), seed, retries, min_likeness)
    policy, book = policy or renderer.policy, book or BookSettings()
    title = _checked_title(title, policy)
    texts = panel_texts([p.caption for p in panels], [p.dialogue for p in panels], [p.characters for p in panels])
    check_texts(texts, policy)
    prompts = plan_prompts(renderer, panels, identities, styles, free_style, policy=policy,
                           negative_prompt=negative_prompt, appearance=appearance)  # fmt: skip
    # 2. where people stand, and each panel's size on the page
    by_name, by_token = region_plans([p.characters for p in prompts], [p.regions for p in panels])
    sizes = panel_sizes(len(prompts), book, renderer.model, config)
    # 3. the clean art (with retries of weak or swapped panels)
    vectors = references_from(references or {}, face_encoder) if references else {}
    images, likeness = _render(renderer, prompts, seed, config, sizes, by_token, by_name, vectors, policy, callback,
                               min_likeness, retries, face_encoder)  # fmt: skip
    # 4. faces, lettering, pages, files
    faces = find_panel_faces([i.image for i in images], texts, vectors) if book.lettering else [[] for _ in images]
    return write_comic(renderer, list(panels), prompts, images, identities, out_dir, title, book, references,
                       likeness, by_name, faces)  # fmt: skip


def _render(renderer, prompts, seed, config, sizes, by_token, by_name, vectors, policy, callback, min_likeness,
            retries, face_encoder) -> tuple[list[PanelImage], list[dict] | None]:  # fmt: skip
    texts = ([p.prompt for p in prompts], [p.negative_prompt for p in prompts])
    seeds = [seed + i for i in range(len(prompts))]
    if min_likeness is None:
        images = renderer.render(*texts, seeds=seeds, config=config, callback=callback, policy=policy, sizes=sizes,
                                 regions=by_token)  # fmt: skip
        return images, None
    from ..eval.retry import face_scorer, render_with_retries

    scorer = face_scorer(vectors, [p.characters for p in prompts], face_encoder, plans=by_name)
    images, tries = render_with_retries(
        renderer, *texts, seeds, config, scorer, min_likeness, retries, rng_seed=seed, callback=callback,
        policy=policy, sizes=sizes, regions=by_token,
    )  # fmt: skip
    return images, [t.record() for t in tries]


def _checked_title(title: str | None, policy: ContentPolicy) -> str | None:
    """The page title is drawn on the page, so it passes the limits and the policy like a prompt."""
    check_comic_text(title=title)
    title = tidy(title or "")
    if not title:
        return None
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
    book: BookSettings | None = None,
    references: Mapping[str, ReferenceSource] | None = None,
    likeness: Sequence[dict] | None = None,
    regions: Sequence[Mapping] | None = None,
    faces: Sequence[Sequence[Face]] | None = None,
) -> Comic:
    """Letter, lay out and save (clean art and pages first, ``comic.json`` last); also used after a redraw.

    ``references`` are saved under ``references/`` (without them the folder keeps the ones it has);
    ``likeness[i]`` (scores and retry attempts) goes into panel i's record.
    """
    folder, book = ComicFolder(out_dir), book or BookSettings()
    model = renderer.model
    notice = model.notice if model.random_weights else None
    faces = faces if faces is not None else [[] for _ in images]
    regions = regions if regions is not None else [{} for _ in images]
    texts = panel_texts([p.caption for p in panels], [p.dialogue for p in panels], [p.characters for p in prompts])
    folder.path.mkdir(parents=True, exist_ok=True)
    lettered, pages = write_book(folder, [i.image for i in images], texts, faces, book, title, notice,
                                 [c for p in prompts for c in p.characters])  # fmt: skip
    by_name = {i.name: i for i in identities}
    records = []
    for i, (panel, prompt, image, placed) in enumerate(zip(panels, prompts, images, lettered.records())):
        records.append({
            **image.record(), "sentence": panel.sentence, "characters": prompt.characters,
            "caption": panel.caption, "dialogue": [line.model_dump() for line in panel.dialogue],
            "region_overrides": panel.regions, "regions": regions_record(regions[i]),
            "faces": [f.to_dict() for f in faces[i]], "lettering": placed,
            "photos": {n: by_name[n].metadata.get("photo_sha256", "") for n in prompt.characters if n in by_name},
            "warnings": prompt.warnings, **({"likeness": likeness[i]} if likeness is not None else {}),
        })  # fmt: skip
    files = [folder.write_panel(i, image.image, rec) for i, (image, rec) in enumerate(zip(images, records), start=1)]
    if references:
        refs = folder.save_references({name: reference_image(src) for name, src in references.items()})
    else:
        refs = {name: path.relative_to(folder.path).as_posix() for name, path in folder.references().items()}
    folder.write_record({
        "title": title, "model": model.source, "tiny": model.is_tiny, "notice": model.notice,
        "book": book.model_dump(), "loras": [lora.record() for lora in getattr(model, "loras", [])],
        "pages": len(lettered.pages), "panels": records, "references": refs,
    })  # fmt: skip
    warnings = [w for p in prompts for w in p.warnings]
    warnings += [f"panel {i}: a safety checker (the model's own or STORYFACE_IMAGE_CHECKER) flagged it, so it is black" for i, im in enumerate(images, 1) if im.blocked]
    return Comic(folder.path, lettered, files + pages, images, prompts, panels, warnings)


def redraw_panel(
    renderer: Renderer,
    comic_dir: str | os.PathLike,
    number: int,
    identities: Sequence[Identity],
    seed: int | None = None,
    policy: ContentPolicy | None = None,
    references: Mapping[str, ReferenceSource] | None = None,
) -> Comic:
    """Draw panel ``number`` (1-based) of a comic folder again; every other panel's art stays as it was.

    The one redraw path for a folder on disk and a comic just made (its folder). ``seed=None`` draws a
    new seed (recorded); the panel's own seed redraws it identically. The folder's records are
    user-editable, so they are validated on reading and the prompt passes the content policy again.
    """
    policy = policy or renderer.policy
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
        fields = rec.model_dump(include={"prompt", "negative_prompt", "seed", "width", "height", "steps", "guidance", "scheduler", "eta", "decoder"})
        images.append(PanelImage(i - 1, folder.panel_image(i, rec), model=renderer.model.source, tiny=renderer.model.is_tiny, **fields))
        prompts.append(PanelPrompt(rec.prompt, rec.negative_prompt, list(rec.characters), [tokens[c] for c in rec.characters]))
        panels.append(Panel(sentence=rec.sentence or rec.prompt, characters=list(rec.characters), caption=rec.caption,
                            dialogue=rec.dialogue, regions=rec.region_overrides))  # fmt: skip
    target, rec = prompts[number - 1], record.panels[number - 1]
    policy.check(target.prompt, target.negative_prompt, bool(target.tokens), tokens=target.tokens)
    plan = plan_from_dict(rec.regions)
    by_token = {tokens[n]: r for n, r in plan.items()} if len(plan) >= 2 else None
    images[number - 1] = renderer.rerender(images[number - 1], seed, policy=policy, regions=by_token)
    faces = [[Face.from_dict(f) for f in p.faces] for p in record.panels]
    if rec.dialogue or rec.caption:
        texts = panel_texts([rec.caption], [rec.dialogue], [rec.characters])
        vectors = references_from(references or dict(folder.references(record)), "dlib") if (references or record.references) else None
        faces[number - 1] = find_panel_faces([images[number - 1].image], texts, vectors)[0]
    likeness = [p.likeness for p in record.panels] if any(p.likeness for p in record.panels) else None
    return write_comic(renderer, panels, prompts, images, identities, folder.path, _checked_title(record.title, policy),
                       BookSettings.of(**record.book), references, likeness,
                       [plan_from_dict(p.regions) for p in record.panels], faces)  # fmt: skip


def comic_likeness(
    comic: Comic, references: Mapping[str, ReferenceSource], encoder: FaceEncoder | str = "dlib"
) -> list[PanelScore]:
    """Each panel's likeness to the references of the people it shows, and swapped people (see eval)."""
    vectors = references_from(references, encoder)
    plans = [plan_from_dict(p.regions) or None for p in comic.folder.read().panels]
    return score_panels([p.image for p in comic.panels], vectors, [p.characters for p in comic.prompts], encoder,
                        plans=plans)  # fmt: skip
