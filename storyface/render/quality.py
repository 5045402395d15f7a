"""Render quality presets: ``standard`` (the base model's own sampler) and ``fast`` (a distilled one).

A few-step distillation LoRA only works with the sampler, timestep spacing and guidance it was
distilled for; used with the base model's 30-step Euler it draws mush. Each kind's settings come
from its authors' model cards (all for SDXL):

- SDXL-Lightning (ByteDance/SDXL-Lightning, 2/4/8-step LoRAs): Euler with ``timestep_spacing=
  "trailing"``, no classifier-free guidance (guidance 0), as many steps as the LoRA was made for.
- Hyper-SD (ByteDance/Hyper-SD, ``Hyper-SDXL-Nstep-lora``): DDIM with trailing timesteps and
  guidance 0; the 1-step LoRA with TCD at eta 1.0; the ``-CFG-`` LoRAs (8 and 12 steps) keep
  guidance, 5-8 on the card (5 here).
- LCM-LoRA (latent-consistency/lcm-lora-sdxl): the LCM scheduler, 2-8 steps, guidance off or
  1.0-2.0 (1.0 here: no CFG pass, so half the UNet work).
- TCD-LoRA (h1t/TCD-SDXL-LoRA): the TCD scheduler, 4 steps, guidance 0, eta ("gamma") 0.3.

Pure module: no torch, no model; the renderer turns a preset into a :class:`RenderConfig`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import InputError

if TYPE_CHECKING:
    from .panel import RenderConfig

log = logging.getLogger(__name__)

QUALITIES = ("standard", "fast")
STANDARD_STEPS = 30  # today's default (RenderConfig.steps); SDXL's Euler is converged by ~30
STANDARD_SCHEDULER = "euler"
DISTILL_KINDS = ("lightning", "hyper", "lcm", "tcd")
STYLE_KIND = "style"
LORA_KINDS = (STYLE_KIND, *DISTILL_KINDS)

# kind -> (scheduler name in render.panel.SCHEDULERS, guidance, eta, default steps, steps it was made for)
# eta only matters to TCD (its "gamma"); the pipeline passes 0.0 unless told, which makes TCD deterministic.
_KIND_SETTINGS: dict[str, tuple[str, float, float, int, tuple[int, ...]]] = {
    "lightning": ("euler_trailing", 0.0, 0.0, 4, (2, 4, 8)),
    "hyper": ("ddim_trailing", 0.0, 0.0, 4, (1, 2, 4, 8)),
    "lcm": ("lcm", 1.0, 0.0, 4, (2, 3, 4, 5, 6, 7, 8)),
    "tcd": ("tcd", 0.0, 0.3, 4, (2, 3, 4, 5, 6, 7, 8)),
}
HYPER_CFG_GUIDANCE = 5.0  # the Hyper-SD card: the CFG-preserved LoRAs take guidance 5-8
HYPER_CFG_STEPS = (8, 12)
HYPER_ONE_STEP = ("tcd", 1.0)  # the card's 1-step unified LoRA: TCD scheduler, eta 1.0
MAX_FAST_STEPS = 50  # LCM's scheduler refuses more than its 50 original steps; none of these needs more

_KIND_PATTERNS = (  # first match wins; matched against the file name or hub id, lower-cased
    ("lightning", re.compile(r"lightning")),
    ("hyper", re.compile(r"hyper[-_ ]?sd")),
    ("tcd", re.compile(r"(^|[^a-z])tcd([^a-z]|$)")),
    ("lcm", re.compile(r"(^|[^a-z])lcm([^a-z]|$)")),
)
_STEPS_PATTERN = re.compile(r"(\d{1,2})[-_ ]?steps?")


class _HasKindAndName(Protocol):
    kind: str

    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class QualityPreset:
    """Steps, sampler and guidance for one quality; ``guidance=None`` keeps RenderConfig's default."""

    quality: str
    steps: int
    scheduler: str
    guidance: float | None
    eta: float = 0.0
    kind: str | None = None  # the distillation kind a fast preset was made for

    def render_config(self, base: RenderConfig | None = None) -> RenderConfig:
        """``base`` with this preset's steps, scheduler, guidance and eta; its size, batch and seed kept."""
        from .panel import RenderConfig

        base = base or RenderConfig()
        guidance = base.guidance if self.guidance is None else self.guidance
        return dataclasses.replace(base, steps=self.steps, scheduler=self.scheduler, guidance=guidance, eta=self.eta)

    def record(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def detect_kind(name: str) -> str | None:
    """The distillation kind a file name or hub id names (``sdxl_lightning_4step_lora``), else None."""
    lowered = name.lower()
    for kind, pattern in _KIND_PATTERNS:
        if pattern.search(lowered):
            return kind
    return None


def steps_from_name(name: str) -> int | None:
    """``Hyper-SDXL-8steps-lora`` -> 8; None when the name says no step count."""
    match = _STEPS_PATTERN.search(name.lower())
    return int(match.group(1)) if match else None


def check_kind(kind: str) -> str:
    """A LoRA kind a person typed, lower-cased; anything else is an InputError listing the choices."""
    lowered = str(kind).strip().lower()
    if lowered not in LORA_KINDS:
        raise InputError(f"unknown LoRA kind {kind!r}; choose one of: {', '.join(LORA_KINDS)}")
    return lowered


def standard_preset() -> QualityPreset:
    """Today's rendering: 30 Euler steps, guidance as RenderConfig says."""
    return QualityPreset("standard", STANDARD_STEPS, STANDARD_SCHEDULER, None)


def fast_preset(kind: str, name: str = "", steps: int | None = None) -> QualityPreset:
    """The preset a distillation LoRA of ``kind`` needs; ``name`` (file or hub id) gives its step count."""
    kind = check_kind(kind)
    if kind not in DISTILL_KINDS:
        raise InputError(f"fast quality needs a distillation LoRA ({', '.join(DISTILL_KINDS)}), not a {kind} LoRA")
    scheduler, guidance, eta, default_steps, made_for = _KIND_SETTINGS[kind]
    named = steps_from_name(name)
    if kind == "hyper" and "cfg" in name.lower():
        guidance, made_for = HYPER_CFG_GUIDANCE, HYPER_CFG_STEPS
        default_steps = named if named in HYPER_CFG_STEPS else HYPER_CFG_STEPS[0]
    elif named in made_for:
        default_steps = named
    if steps is None:
        steps = default_steps
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_FAST_STEPS:
        raise InputError(f"fast quality takes 1 to {MAX_FAST_STEPS} steps, got {steps!r}")
    if named is not None and steps != named:
        log.warning("%s was distilled for %d steps; rendering with %d", name or kind, named, steps)
    if kind == "hyper" and steps == 1 and "cfg" not in name.lower():
        scheduler, eta = HYPER_ONE_STEP
    return QualityPreset("fast", steps, scheduler, guidance, eta, kind)


def quality_preset(
    quality: str,
    loras: Sequence[_HasKindAndName] = (),
    steps: int | None = None,
    kind: str | None = None,
) -> QualityPreset:
    """The preset for ``--quality``: ``fast`` takes its kind from the one distillation LoRA loaded.

    ``kind`` names the distillation of a base model that is itself distilled (a Lightning merge, say),
    when no distillation LoRA is loaded. ``steps`` overrides the preset's step count.
    """
    quality = str(quality).strip().lower()
    if quality not in QUALITIES:
        raise InputError(f"unknown quality {quality!r}; choose one of: {', '.join(QUALITIES)}")
    distill = [lora for lora in loras if lora.kind in DISTILL_KINDS]
    if len(distill) > 1:
        raise InputError(f"use one distillation LoRA at a time, got {len(distill)}: {', '.join(d.name for d in distill)}")
    if quality == "standard":
        if distill:
            raise InputError(
                f"{distill[0].name} is a {distill[0].kind} distillation LoRA: it only draws well in fast quality; "
                "remove it or choose --quality fast"
            )
        preset = standard_preset()
        return preset if steps is None else dataclasses.replace(preset, steps=steps)
    if distill:
        if kind is not None and check_kind(kind) != distill[0].kind:
            raise InputError(f"{distill[0].name} is a {distill[0].kind} LoRA, not {kind}")
        return fast_preset(distill[0].kind, distill[0].name, steps)
    if kind is None:
        raise InputError(
            "fast quality needs a few-step distillation LoRA (SDXL-Lightning, Hyper-SD, LCM or TCD): "
            "load one, or name the distillation of an already distilled model with its kind "
            f"({', '.join(DISTILL_KINDS)})"
        )
    return fast_preset(kind, "", steps)
