"""Re-render the panels whose weakest character does not look enough like their reference.

A panel is scored right after rendering; if its weakest expected character (see
:attr:`~storyface.eval.likeness.PanelScore.weakest`) falls below ``min_likeness`` it is rendered
again with a new seed, up to ``retries`` times; so is a panel where a face stands in another person's
region (a swap, see :mod:`storyface.eval.swaps`). All weak panels of a round are re-rendered in one
batch. The best attempt (no swap first, then the highest weakest score; the earlier one on ties) is
kept, and every panel
keeps a record of the seeds it tried, their scores, and which one won.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from .likeness import PanelScore, as_encoder, score_panel

if TYPE_CHECKING:
    from ..faces import FaceEncoder
    from ..render.generate import PanelImage, RenderConfig, Renderer
    from ..safety import ContentPolicy
    from ..render.regions import Region

log = logging.getLogger(__name__)

Scorer = Callable[[int, "PanelImage"], PanelScore]  # (panel position, rendered panel) -> its score
SEED_RANGE = 2**31  # new seeds stay in the range every backend's generator accepts


@dataclass(frozen=True)
class Attempt:
    """One render of a panel and how it scored."""

    seed: int
    score: PanelScore

    @property
    def rank(self) -> tuple[bool, float]:
        """What 'best' maximises: no swapped people first, then the weakest likeness; a panel with
        nobody to score can't be improved (+inf)."""
        weakest = self.score.weakest
        return not self.score.swaps, float("inf") if weakest is None else weakest

    def to_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, **self.score.to_dict()}


@dataclass
class PanelAttempts:
    """Every attempt at one panel; ``image`` is the render of ``attempts[kept]``."""

    index: int
    min_likeness: float
    attempts: list[Attempt]
    kept: int
    image: PanelImage

    @property
    def best(self) -> Attempt:
        return self.attempts[self.kept]

    @property
    def passed(self) -> bool:
        return self.best.score.passes(self.min_likeness)

    @property
    def seeds(self) -> list[int]:
        return [a.seed for a in self.attempts]

    def add(self, image: PanelImage, score: PanelScore) -> None:
        """Record a new attempt; keep its image only if it beats the best so far."""
        self.attempts.append(Attempt(image.seed, score))
        if self.attempts[-1].rank > self.best.rank:
            self.kept, self.image = len(self.attempts) - 1, image

    def record(self) -> dict[str, Any]:
        """JSON-able: the panel's sidecar stores this under ``likeness``."""
        return {
            "min_likeness": self.min_likeness,
            "passed": self.passed,
            "kept": self.kept,
            "kept_seed": self.best.seed,
            "seeds": self.seeds,
            "attempts": [a.to_dict() for a in self.attempts],
        }


def fresh_seed(rng: random.Random, used: Sequence[int]) -> int:
    """A seed this panel has not tried yet, drawn from ``rng`` so a run is reproducible."""
    while (seed := rng.randrange(SEED_RANGE)) in used:
        pass
    return seed


def render_with_retries(
    renderer: Renderer,
    prompts: Sequence[str],
    negative_prompts: Sequence[str] | str,
    seeds: Sequence[int],
    config: RenderConfig,
    scorer: Scorer,
    min_likeness: float,
    retries: int,
    rng_seed: int = 0,
    callback: Callable[[int, int], None] | None = None,
    policy: ContentPolicy | None = None,
    sizes: Sequence[tuple[int, int] | None] | None = None,
    regions: Sequence[Mapping[str, Any] | None] | None = None,
) -> tuple[list[PanelImage], list[PanelAttempts]]:
    """Render every panel, then re-render the weak ones with new seeds; return kept images + records.

    ``callback(done, total)`` is passed to each render call (the first pass, then each retry round).
    """
    if retries < 0:
        raise InputError(f"retries must be 0 or more, got {retries}")
    if not -1.0 <= min_likeness <= 1.0:
        raise InputError(f"min_likeness is a cosine similarity from -1 to 1, got {min_likeness}")
    n = len(prompts)
    negatives = [negative_prompts] * n if isinstance(negative_prompts, str) else list(negative_prompts)
    # 1. the first pass, batched like a normal render
    images = renderer.render(prompts, negatives, seeds, config, callback, policy=policy, sizes=sizes, regions=regions)
    panels = [PanelAttempts(i, min_likeness, [Attempt(im.seed, scorer(i, im))], 0, im) for i, im in enumerate(images)]
    # 2. retry rounds: all panels still below the bar, in one batch per round
    rng = random.Random(rng_seed)
    for round_ in range(1, retries + 1):
        weak = [p for p in panels if not p.passed]
        if not weak:
            break
        log.info("retry round %d: re-rendering panels %s", round_, [p.index + 1 for p in weak])
        new_seeds = [fresh_seed(rng, p.seeds) for p in weak]
        redo = renderer.render(
            [prompts[p.index] for p in weak], [negatives[p.index] for p in weak], new_seeds, config, callback,
            policy=policy, sizes=[sizes[p.index] for p in weak] if sizes else None,
            regions=[regions[p.index] for p in weak] if regions else None,
        )
        for panel, image in zip(weak, redo, strict=True):
            image = dataclasses.replace(image, index=panel.index)
            panel.add(image, scorer(panel.index, image))
    for p in panels:
        if not p.passed:
            log.warning("panel %d stays below likeness %.3f after %d attempts", p.index + 1, min_likeness, len(p.attempts))
    return [p.image for p in panels], panels


def face_scorer(
    references: Mapping[str, np.ndarray],
    expected: Sequence[Sequence[str]],
    encoder: FaceEncoder | str = "dlib",
    plans: Sequence[Mapping[str, Region] | None] | None = None,
) -> Scorer:
    """The real scorer: panel i is judged against the characters ``expected[i]`` names.

    Every character must have a reference, or a retry could never see it. With ``plans[i]`` (the
    panel's region plan, name -> Region) a panel with swapped people fails and is re-drawn.
    """
    if plans is not None and len(plans) != len(expected):
        raise InputError(f"got {len(plans)} region plans for {len(expected)} panels; give one per panel (or None)")
    lacking = sorted({name for names in expected for name in names if name not in references})
    if lacking:
        raise InputError(
            f"no reference photo for {', '.join(lacking)}, so their likeness cannot be measured; use "
            "library identities (they keep the training headshot) or put the photo next to the identity "
            "file as <same name>.png"
        )
    encoder = as_encoder(encoder)
    plans = list(plans) if plans is not None else [None] * len(expected)
    return lambda i, panel: score_panel(panel.image, references, expected[i], encoder, plan=plans[i])
