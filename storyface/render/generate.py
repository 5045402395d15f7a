"""Render panel prompts into images: batched, seeded per panel, with progress and cancel.

Every panel gets its own ``torch.Generator`` seeded with its own seed, so a panel is reproducible
alone: panel k rendered in a batch of 4 equals panel k rendered by itself with the same seed (up to
float rounding of batched matmuls). The pipeline is loaded once and passed in; the renderer never
reloads it, and it puts the pipeline's own scheduler back after every call.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InputError
from ..safety.policy import ContentPolicyError
from .decoders import decode_latents, load_tiny_decoder, to_pil
from .panel import (  # noqa: F401  (re-exported: the render stage's public names)
    SCHEDULER_OVERRIDES,
    SCHEDULERS,
    PanelImage,
    Progress,
    RenderCancelled,
    RenderConfig,
    _check_scheduler,
    _normalise_inputs,
)

if TYPE_CHECKING:
    from PIL import Image

    from ..identity.tokens import Identity
    from ..models import LoadedModel
    from ..safety import ContentPolicy
    from ..safety.images import ImageSafetyChecker
    from .regions import Region

log = logging.getLogger(__name__)

class Renderer:
    """Renders panels with one loaded pipeline; safe to share between threads (calls serialise)."""

    def __init__(
        self, model: LoadedModel, policy: ContentPolicy | None = None, image_checker: ImageSafetyChecker | None = None
    ) -> None:
        """``policy`` is what every prompt this renderer draws must pass (strict when not given); the
        doors read the user's setting (``STORYFACE_CONTENT_POLICY``) once and pass it here. With an
        ``image_checker`` (``STORYFACE_IMAGE_CHECKER``) every panel is also judged as a picture, and a
        flagged one is blacked out and recorded as blocked, as the model's own checker does."""
        from ..safety import ContentPolicy

        self.model = model
        self.policy = policy if policy is not None else ContentPolicy()
        self.image_checker = image_checker
        self._lock = threading.RLock()
        self._scheduler_config = dict(model.pipe.scheduler.config)  # the model's own, never mutated
        self._schedulers: dict[str, Any] = {}
        self._identities: dict[str, tuple[str, str]] = {}  # token -> (name, digest)
        self._regional: Any = None  # the regional-attention controller, installed on first need
        self._tiny_decoder: Any = None  # TAESD, loaded on the first config that asks for it

    # ------------------------------------------------------------------ identities

    def load_identities(self, identities: Sequence[Identity]) -> dict[str, str]:
        """Put each identity's rows into the text encoders; returns name -> trigger token."""
        from ..identity.tokens import load_identities

        with self._lock:
            tokens = load_identities(self.model, identities)
            for identity, token in zip(identities, tokens):
                self._identities[token] = (identity.name, identity.digest())
        return {identity.name: token for identity, token in zip(identities, tokens)}

    def use_loras(self, specs: Sequence[Any], permanent: bool = False) -> list[Any]:
        """Fuse LoRAs (distillation or style) into the model, replacing the ones fused before; an empty
        list goes back to the base weights. Under the renderer's lock, so no render sees half a change."""
        from .adapters import apply_loras, remove_loras

        with self._lock:
            if not specs:
                remove_loras(self.model)
                return []
            return apply_loras(self.model, specs, permanent=permanent)

    def use_tiny_decoder(self, source: str | None = None) -> None:
        """Load the tiny decoder now (hub id or folder; default: the family's TAESD) for configs with
        ``decoder="tiny"``; a door calls this so a missing decoder fails before any panel is drawn."""
        with self._lock:
            self._tiny_decoder = load_tiny_decoder(self.model, source)

    def compile(self, mode: str = "regional") -> int:
        """``torch.compile`` the UNet in place (default inductor mode, never autotuning), with inductor's
        caches under the data folder so only the first process on a machine pays for it; returns the
        modules compiled. Worth it for a long session of renders, not for one page (render.compile)."""
        from .compile import compile_unet, enable_compile_cache

        with self._lock:
            enable_compile_cache()
            return compile_unet(self.model.pipe, mode)  # type: ignore[arg-type]  (checked there)

    def _identities_in(self, prompt: str) -> list[dict[str, str]]:
        return [
            {"name": name, "token": token, "digest": digest}
            for token, (name, digest) in self._identities.items()
            if token in prompt
        ]

    # ------------------------------------------------------------------ rendering

    def render(
        self,
        prompts: Sequence[str],
        negative_prompts: Sequence[str] | str = "",
        seeds: Sequence[int] | None = None,
        config: RenderConfig = RenderConfig(),
        callback: Progress | None = None,
        cancel: threading.Event | None = None,
        policy: ContentPolicy | None = None,
        sizes: Sequence[tuple[int, int] | None] | None = None,
        regions: Sequence[Mapping[str, Region] | None] | None = None,
    ) -> list[PanelImage]:
        """Render panels (returned in story order), ``config.batch_size`` at a time.

        ``sizes[i]`` (width, height) renders panel i at its own size (default: the config's); panels
        that share a size share batches. ``regions[i]`` (trigger token -> Region) keeps each person of
        a panel with two or more identities in their region (see :mod:`storyface.render.attention`).
        ``callback(done, total)`` counts denoising steps over all panels (panel-steps); setting
        ``cancel`` stops within one step and raises :class:`RenderCancelled`. Every prompt passes
        ``policy`` (the renderer's own when not given) before anything is drawn.
        """
        prompts, negatives, seeds = _normalise_inputs(prompts, negative_prompts, seeds, config.seed)
        sizes = _per_panel(sizes, len(prompts), "sizes", config.size_for(self.model))
        plans = _per_panel(regions, len(prompts), "regions", None)
        self._check_policy(prompts, negatives, policy or self.policy)
        total = len(prompts) * config.steps
        done: dict[int, PanelImage] = {}
        with self._lock, torch.inference_mode(), self._using_scheduler(config.scheduler):
            for batch in _batches(sizes, config.batch_size):
                if cancel is not None and cancel.is_set():
                    raise RenderCancelled(f"render stopped after {len(done)} of {len(prompts)} panels", _ordered(done))
                on_step = self._step_callback(len(done) * config.steps, len(batch), config.steps, total, callback,
                                              cancel, _ordered(done))  # fmt: skip
                images, flagged = self._render_batch(
                    [prompts[i] for i in batch], [negatives[i] for i in batch], [seeds[i] for i in batch], config,
                    on_step, sizes[batch[0]], [plans[i] for i in batch],
                )  # fmt: skip
                if self.image_checker is not None:
                    flagged = [a or b for a, b in zip(flagged, self.image_checker.flagged(images))]
                for i, image, hit in zip(batch, images, flagged):
                    panel = self._panel(i, image, prompts[i], negatives[i], seeds[i], config, sizes[i])
                    done[i] = _blocked(panel) if hit else panel
                log.info("rendered panels %s of %d at %dx%d", [i + 1 for i in batch], len(prompts), *sizes[batch[0]])
        return _ordered(done)

    def _check_policy(self, prompts: Sequence[str], negatives: Sequence[str], policy: ContentPolicy) -> None:
        check_prompts(self.model.loaded_tokens, prompts, negatives, policy)

    def rerender(
        self, panel: PanelImage, seed: int | None = None, policy: ContentPolicy | None = None,
        regions: Mapping[str, Region] | None = None,
    ) -> PanelImage:
        """Render one panel again with its own settings; ``seed=None`` draws a fresh seed (recorded)."""
        seed = random.SystemRandom().randrange(2**31) if seed is None else seed
        [new] = self.render(
            [panel.prompt], [panel.negative_prompt], [seed], panel.config(), policy=policy, regions=[regions]
        )
        return dataclasses.replace(new, index=panel.index)

    # ------------------------------------------------------------------ helpers

    def _scheduler(self, name: str) -> Any:
        """One scheduler instance per name, built from the model's own schedule settings."""
        _check_scheduler(name)
        if name not in self._schedulers:
            import diffusers

            cls = getattr(diffusers, SCHEDULERS[name])
            self._schedulers[name] = cls.from_config(self._scheduler_config, **SCHEDULER_OVERRIDES.get(name, {}))
        return self._schedulers[name]

    @contextmanager
    def _using_scheduler(self, name: str) -> Iterator[None]:
        """Swap the pipeline's scheduler for one call and put the original back afterwards."""
        pipe = self.model.pipe
        original = pipe.scheduler
        pipe.scheduler = self._scheduler(name)
        try:
            yield
        finally:
            pipe.scheduler = original

    def _generators(self, seeds: Sequence[int]) -> list[torch.Generator]:
        """One generator per panel, on the model's device (CPU for MPS, which lacks them)."""
        device = self.model.device
        device = torch.device("cpu") if device.type == "mps" else device
        return [torch.Generator(device=device).manual_seed(seed) for seed in seeds]

    def _render_batch(
        self, prompts: list[str], negatives: list[str], seeds: list[int], config: RenderConfig, on_step: Callable,
        size: tuple[int, int], plans: list[Mapping[str, Region] | None],
    ) -> tuple[list[Image.Image], list[bool]]:
        """The batch's images and, per image, whether the pipeline's safety checker (SD 2.x/1.x) flagged it."""
        width, height = size
        kwargs: dict[str, Any] = {}
        if self.model.family == "sdxl":  # micro-conditioning: "a full, uncropped image of this size"
            kwargs.update(original_size=(height, width), target_size=(height, width))
        tiny = config.decoder == "tiny"
        if tiny and self._tiny_decoder is None:
            self.use_tiny_decoder()
        with self._regions(prompts, negatives, plans, size):
            result = self.model.pipe(
                prompt=prompts,
                negative_prompt=negatives,
                num_inference_steps=config.steps,
                guidance_scale=config.guidance,
                eta=config.eta,
                width=width,
                height=height,
                generator=self._generators(seeds),
                output_type="latent" if tiny else "pt",  # "pt": converted to PIL on the device (to_pil)
                callback_on_step_end=on_step,
                **kwargs,
            )
        if tiny:
            return decode_latents(self.model.pipe, self._tiny_decoder, result.images)
        flagged = getattr(result, "nsfw_content_detected", None) or [False] * len(result.images)
        return to_pil(result.images), [bool(f) for f in flagged]

    @contextmanager
    def _regions(
        self, prompts: list[str], negatives: list[str], plans: list[Mapping[str, Region] | None], size: tuple[int, int]
    ) -> Iterator[None]:
        """Region masks for the panels of this batch that show two or more people (the processor is put
        on the UNet the first time one is needed; a batch without any runs the stock attention)."""
        from .attention import MIN_IDENTITIES, RegionalAttention, panel_masks

        wanted = [p if p is not None and len(p) >= MIN_IDENTITIES else None for p in plans]
        if not any(wanted):
            yield
            return
        unet = self.model.pipe.unet
        if self._regional is None or not RegionalAttention.installed_on(unet):
            self._regional = RegionalAttention.install(unet)
        masks = panel_masks(self.model.pipe, prompts, negatives, wanted)
        with self._regional.active(masks, latent_hw=(size[1] // 8, size[0] // 8)):
            yield

    @staticmethod
    def _step_callback(
        done_before: int,
        n_panels: int,
        steps: int,
        total: int,
        progress: Progress | None,
        cancel: threading.Event | None,
        panels: list[PanelImage],
    ) -> Callable:
        """diffusers' ``callback_on_step_end``: report panel-steps done and honour cancel."""

        def on_step(pipe: Any, step: int, timestep: Any, tensors: dict) -> dict:
            if cancel is not None and cancel.is_set():
                raise RenderCancelled(f"render stopped after {len(panels)} finished panels", list(panels))
            if progress is not None:
                progress(done_before + min(step + 1, steps) * n_panels, total)
            return tensors

        return on_step

    def _panel(
        self, index: int, image: Image.Image, prompt: str, negative: str, seed: int, config: RenderConfig,
        size: tuple[int, int],
    ) -> PanelImage:
        return PanelImage(
            index=index, image=image, prompt=prompt, negative_prompt=negative, seed=seed, width=size[0],
            height=size[1], steps=config.steps, guidance=config.guidance, scheduler=config.scheduler,
            identities=self._identities_in(prompt), model=self.model.source, tiny=self.model.is_tiny, eta=config.eta,
            decoder=config.decoder,
        )  # fmt: skip


def check_prompts(loaded_tokens: Iterable[str], prompts: Sequence[str], negatives: Sequence[str], policy: ContentPolicy) -> None:
    """Every prompt passes the content policy before it is drawn, so no caller can skip it: one that
    shows a loaded identity (its trigger token) as a real person; any other under the policy's own
    rule for prompts without one. The local renderer and the cluster's client both call this."""
    loaded = list(loaded_tokens)
    for number, (prompt, negative) in enumerate(zip(prompts, negatives), 1):
        tokens = [token for token in loaded if token in prompt]
        try:
            policy.check(prompt, negative, bool(tokens), tokens=tokens)
        except ContentPolicyError as exc:
            raise ContentPolicyError(f"panel {number}: {exc}") from None


def _per_panel(values: Sequence | None, n: int, what: str, default: Any) -> list:
    if values is None:
        return [default] * n
    if len(values) != n:
        raise InputError(f"got {len(values)} {what} for {n} panels; give one per panel")
    return [default if v is None else v for v in values]


def _batches(sizes: Sequence[tuple[int, int]], batch_size: int) -> list[list[int]]:
    """Panel indices grouped by size (in order of first appearance), each group cut into batches."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(tuple(size), []).append(i)
    return [group[k : k + batch_size] for group in groups.values() for k in range(0, len(group), batch_size)]


def _ordered(done: Mapping[int, PanelImage]) -> list[PanelImage]:
    return [done[i] for i in sorted(done)]


def _blocked(panel: PanelImage) -> PanelImage:
    """A flagged panel is kept (so the page keeps its order) but black, and its record says why."""
    from PIL import Image

    log.warning("panel %d was flagged by the model's safety checker; it is left black", panel.index + 1)
    black = Image.new("RGB", panel.image.size)
    return dataclasses.replace(panel, image=black, blocked=True)
