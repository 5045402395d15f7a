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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from ..errors import InputError, StoryFaceError
from ..limits import MAX_SEED
from ..safety.policy import ContentPolicyError

if TYPE_CHECKING:
    from PIL import Image

    from ..identity.tokens import Identity
    from ..models import LoadedModel
    from ..safety import ContentPolicy

log = logging.getLogger(__name__)

# name -> diffusers class name; imported lazily so importing this module stays cheap
SCHEDULERS: dict[str, str] = {
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
    "ddim": "DDIMScheduler",
    "euler_trailing": "EulerDiscreteScheduler",  # SDXL-Lightning
    "ddim_trailing": "DDIMScheduler",  # Hyper-SD n-step LoRAs
    "lcm": "LCMScheduler",  # LCM-LoRA
    "tcd": "TCDScheduler",  # TCD-LoRA, Hyper-SD 1-step
}
# name -> settings over the model's own scheduler config. Few-step distilled models were trained on the
# last timestep of each interval ("trailing"); the default "leading" spacing never starts from pure noise.
# DDIM's clip_sample/set_alpha_to_one defaults are for pixel-space models, wrong for SDXL latents.
SCHEDULER_OVERRIDES: dict[str, dict[str, Any]] = {
    "euler_trailing": {"timestep_spacing": "trailing"},
    "ddim_trailing": {"timestep_spacing": "trailing", "clip_sample": False, "set_alpha_to_one": False},
}

Progress = Callable[[int, int], None]


class RenderCancelled(StoryFaceError):
    """The user stopped a render; ``panels`` holds the ones finished before the stop."""

    def __init__(self, message: str, panels: list[PanelImage] | None = None) -> None:
        super().__init__(message)
        self.panels = panels or []


def _check_scheduler(name: str) -> None:
    if name not in SCHEDULERS:
        raise InputError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed {seed!r} must be a whole number from 0 to {MAX_SEED}")


@dataclass(frozen=True)
class RenderConfig:
    """How to render; checked on construction so a bad option fails before any model work."""

    steps: int = 30
    guidance: float = 8.5  # StableIdentity's (and the seed's) for prompts with identities; CFG runs when > 1
    width: int | None = None  # None -> the model's render_size
    height: int | None = None
    scheduler: str = "euler"
    batch_size: int = 4
    seed: int = 0  # panel i gets seed + i unless seeds are given
    eta: float = 0.0  # DDIM/TCD stochasticity (TCD's gamma); the schedulers without it ignore it

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise InputError(f"steps must be at least 1, got {self.steps}")
        if self.guidance < 0:
            raise InputError(f"guidance must be 0 or more, got {self.guidance}")
        if not 0.0 <= self.eta <= 1.0:
            raise InputError(f"eta must be from 0 to 1, got {self.eta}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}")
        for side in ("width", "height"):
            value = getattr(self, side)
            if value is not None and (value < 8 or value % 8):
                raise InputError(f"{side} must be a positive multiple of 8 (the VAE downscales by 8), got {value}")
        _check_scheduler(self.scheduler)
        _check_seed(self.seed)

    def size_for(self, model: LoadedModel) -> tuple[int, int]:
        """(width, height), falling back to the model's panel size."""
        return self.width or model.render_size, self.height or model.render_size


@dataclass
class PanelImage:
    """One rendered panel and everything needed to render it again."""

    index: int
    image: Image.Image
    prompt: str
    negative_prompt: str
    seed: int
    width: int
    height: int
    steps: int
    guidance: float
    scheduler: str
    identities: list[dict[str, str]] = field(default_factory=list)  # {name, token, digest} in the prompt
    model: str = ""
    tiny: bool = False
    blocked: bool = False  # the model's own safety checker flagged it; the image is black
    eta: float = 0.0

    def config(self) -> RenderConfig:
        return RenderConfig(
            steps=self.steps,
            guidance=self.guidance,
            width=self.width,
            height=self.height,
            scheduler=self.scheduler,
            batch_size=1,
            seed=self.seed,
            eta=self.eta,
        )

    def record(self) -> dict[str, Any]:
        """JSON-able provenance, e.g. for a sidecar file next to the page."""
        return {
            "index": self.index,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "steps": self.steps,
            "guidance": self.guidance,
            "scheduler": self.scheduler,
            "eta": self.eta,
            "identities": [dict(i) for i in self.identities],
            "model": self.model,
            "tiny": self.tiny,
            "blocked": self.blocked,
        }


def _normalise_inputs(
    prompts: Sequence[str], negative_prompts: Sequence[str] | str, seeds: Sequence[int] | None, base_seed: int
) -> tuple[list[str], list[str], list[int]]:
    """Check lengths and types; one negative prompt string applies to every panel."""
    if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
        raise InputError("prompts must be a list of strings, one per panel")
    n = len(prompts)
    negatives = [negative_prompts] * n if isinstance(negative_prompts, str) else list(negative_prompts)
    if len(negatives) != n or not all(isinstance(p, str) for p in negatives):
        raise InputError(f"got {len(negatives)} negative prompts for {n} panels; give one string or one per panel")
    seeds = [base_seed + i for i in range(n)] if seeds is None else list(seeds)
    if len(seeds) != n:
        raise InputError(f"got {len(seeds)} seeds for {n} panels; give one per panel or none")
    for seed in seeds:
        _check_seed(seed)
    return list(prompts), negatives, seeds


class Renderer:
    """Renders panels with one loaded pipeline; safe to share between threads (calls serialise)."""

    def __init__(self, model: LoadedModel, policy: ContentPolicy | None = None) -> None:
        """``policy`` is what every prompt this renderer draws must pass (strict when not given); the
        doors read the user's setting (``STORYFACE_CONTENT_POLICY``) once and pass it here."""
        from ..safety import ContentPolicy

        self.model = model
        self.policy = policy if policy is not None else ContentPolicy()
        self._lock = threading.RLock()
        self._scheduler_config = dict(model.pipe.scheduler.config)  # the model's own, never mutated
        self._schedulers: dict[str, Any] = {}
        self._identities: dict[str, tuple[str, str]] = {}  # token -> (name, digest)

    # ------------------------------------------------------------------ identities

    def load_identities(self, identities: Sequence[Identity]) -> dict[str, str]:
        """Put each identity's rows into the text encoders; returns name -> trigger token."""
        from ..identity.tokens import load_identities

        with self._lock:
            tokens = load_identities(self.model, identities)
            for identity, token in zip(identities, tokens):
                self._identities[token] = (identity.name, identity.digest())
        return {identity.name: token for identity, token in zip(identities, tokens)}

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
    ) -> list[PanelImage]:
        """Render panels in story order, ``config.batch_size`` at a time.

        ``callback(done, total)`` counts denoising steps over all panels (panel-steps);
        setting ``cancel`` stops within one step and raises :class:`RenderCancelled`. Every prompt
        passes ``policy`` (the renderer's own when not given) before anything is drawn.
        """
        prompts, negatives, seeds = _normalise_inputs(prompts, negative_prompts, seeds, config.seed)
        self._check_policy(prompts, negatives, policy or self.policy)
        total = len(prompts) * config.steps
        panels: list[PanelImage] = []
        with self._lock, torch.inference_mode(), self._using_scheduler(config.scheduler):
            for start in range(0, len(prompts), config.batch_size):
                batch = slice(start, start + config.batch_size)
                if cancel is not None and cancel.is_set():
                    raise RenderCancelled(f"render stopped after {len(panels)} of {len(prompts)} panels", panels)
                on_step = self._step_callback(
                    start * config.steps, len(prompts[batch]), config.steps, total, callback, cancel, panels
                )
                images, flagged = self._render_batch(prompts[batch], negatives[batch], seeds[batch], config, on_step)
                panels += [
                    self._panel(start + i, image, prompts[start + i], negatives[start + i], seeds[start + i], config)
                    for i, image in enumerate(images)
                ]
                for i in (i for i, hit in enumerate(flagged) if hit):
                    panels[start + i] = _blocked(panels[start + i])
                log.info("rendered panels %d-%d of %d", start + 1, start + len(images), len(prompts))
        return panels

    def _check_policy(self, prompts: Sequence[str], negatives: Sequence[str], policy: ContentPolicy) -> None:
        """Every prompt passes the content policy here, so no caller can skip it: one that shows a loaded
        identity as a real person; any other under the policy's own rule for prompts without one."""
        for number, (prompt, negative) in enumerate(zip(prompts, negatives), 1):
            tokens = [token for token in self.model.loaded_tokens if token in prompt]
            try:
                policy.check(prompt, negative, bool(tokens), tokens=tokens)
            except ContentPolicyError as exc:
                raise ContentPolicyError(f"panel {number}: {exc}") from None

    def rerender(self, panel: PanelImage, seed: int | None = None, policy: ContentPolicy | None = None) -> PanelImage:
        """Render one panel again with its own settings; ``seed=None`` draws a fresh seed (recorded)."""
        seed = random.SystemRandom().randrange(2**31) if seed is None else seed
        [new] = self.render([panel.prompt], [panel.negative_prompt], [seed], panel.config(), policy=policy)
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
        self, prompts: list[str], negatives: list[str], seeds: list[int], config: RenderConfig, on_step: Callable
    ) -> tuple[list[Image.Image], list[bool]]:
        """The batch's images and, per image, whether the pipeline's safety checker (SD 2.x/1.x) flagged it."""
        width, height = config.size_for(self.model)
        kwargs: dict[str, Any] = {}
        if self.model.family == "sdxl":  # micro-conditioning: "a full, uncropped image of this size"
            kwargs.update(original_size=(height, width), target_size=(height, width))
        result = self.model.pipe(
            prompt=prompts,
            negative_prompt=negatives,
            num_inference_steps=config.steps,
            guidance_scale=config.guidance,
            eta=config.eta,
            width=width,
            height=height,
            generator=self._generators(seeds),
            output_type="pil",
            callback_on_step_end=on_step,
            **kwargs,
        )
        flagged = getattr(result, "nsfw_content_detected", None) or [False] * len(result.images)
        return list(result.images), [bool(f) for f in flagged]

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
        self, index: int, image: Image.Image, prompt: str, negative: str, seed: int, config: RenderConfig
    ) -> PanelImage:
        width, height = config.size_for(self.model)
        return PanelImage(
            index=index,
            image=image,
            prompt=prompt,
            negative_prompt=negative,
            seed=seed,
            width=width,
            height=height,
            steps=config.steps,
            guidance=config.guidance,
            scheduler=config.scheduler,
            eta=config.eta,
            identities=self._identities_in(prompt),
            model=self.model.source,
            tiny=self.model.is_tiny,
        )


def _blocked(panel: PanelImage) -> PanelImage:
    """A flagged panel is kept (so the page keeps its order) but black, and its record says why."""
    from PIL import Image

    log.warning("panel %d was flagged by the model's safety checker; it is left black", panel.index + 1)
    black = Image.new("RGB", panel.image.size)
    return dataclasses.replace(panel, image=black, blocked=True)
