"""What a render is: its settings (RenderConfig, the scheduler table) and its result (PanelImage).

Plain values, checked on construction, so a bad option fails before any model work; the renderer
(:mod:`storyface.render.generate`) and the comic folder's records share them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from ..errors import InputError, StoryFaceError
from ..limits import MAX_GUIDANCE, MAX_PANEL_SIDE, MAX_PANELS, MAX_PROMPT_CHARS, MAX_RENDER_BATCH, MAX_RENDER_STEPS, MAX_SEED

if TYPE_CHECKING:
    from PIL import Image

    from ..models import LoadedModel


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
# "full": the model's own VAE; "tiny": TAESD, a small distilled decoder (render.decoders says why)
Decoder = Literal["full", "tiny"]
DECODERS: tuple[str, ...] = get_args(Decoder)


class RenderCancelled(StoryFaceError):
    """The user stopped a render; ``panels`` holds the ones finished before the stop."""

    def __init__(self, message: str, panels: list[PanelImage] | None = None) -> None:
        super().__init__(message)
        self.panels = panels or []


def _check_scheduler(name: str) -> None:
    if name not in SCHEDULERS:
        raise InputError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")


def check_decoder(name: str) -> None:
    if name not in DECODERS:
        raise InputError(f"unknown decoder {name!r}; choose one of: {', '.join(DECODERS)}")


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
    decoder: Decoder = "full"  # "tiny": TAESD decodes the latents (render.decoders); faster, softer detail

    def __post_init__(self) -> None:
        if not 1 <= self.steps <= MAX_RENDER_STEPS:
            raise InputError(f"steps must be from 1 to {MAX_RENDER_STEPS}, got {self.steps}")
        if not 0 <= self.guidance <= MAX_GUIDANCE:
            raise InputError(f"guidance must be from 0 to {MAX_GUIDANCE:g}, got {self.guidance}")
        if not 0.0 <= self.eta <= 1.0:
            raise InputError(f"eta must be from 0 to 1, got {self.eta}")
        if not 1 <= self.batch_size <= MAX_RENDER_BATCH:
            raise InputError(f"batch_size must be from 1 to {MAX_RENDER_BATCH}, got {self.batch_size}")
        for side in ("width", "height"):
            value = getattr(self, side)
            if value is not None and (not 8 <= value <= MAX_PANEL_SIDE or value % 8):
                raise InputError(f"{side} must be a multiple of 8 (the VAE downscales by 8) up to {MAX_PANEL_SIDE}, got {value}")
        _check_scheduler(self.scheduler)
        _check_seed(self.seed)
        check_decoder(self.decoder)

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
    decoder: Decoder = "full"

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
            decoder=self.decoder,
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
            "decoder": self.decoder,
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
    if n > MAX_PANELS:
        raise InputError(f"{n} prompts in one render; at most {MAX_PANELS} (a long comic's worth)")
    negatives = [negative_prompts] * n if isinstance(negative_prompts, str) else list(negative_prompts)
    if len(negatives) != n or not all(isinstance(p, str) for p in negatives):
        raise InputError(f"got {len(negatives)} negative prompts for {n} panels; give one string or one per panel")
    for what, texts in (("prompt", prompts), ("negative prompt", negatives)):
        longest = max(map(len, texts), default=0)
        if longest > MAX_PROMPT_CHARS:
            raise InputError(f"a {what} of {longest:,} characters; keep each to {MAX_PROMPT_CHARS:,}")
    seeds = [base_seed + i for i in range(n)] if seeds is None else list(seeds)
    if len(seeds) != n:
        raise InputError(f"got {len(seeds)} seeds for {n} panels; give one per panel or none")
    for seed in seeds:
        _check_seed(seed)
    return list(prompts), negatives, seeds
