"""The offline demo: two real photos that ship with scikit-image and matplotlib -> a comic page.

Eileen Collins (NASA astronaut, skimage's ``astronaut.png``) and Grace Hopper (matplotlib's
``grace_hopper.jpg``), both public-domain photos. On the tiny model the panels are noise: the demo
proves the chain runs end to end; real weights make real pictures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InputError
from .identity.tokens import Identity, save_identity
from .models import LoadedModel
from .names import file_slug

DEMO_STORY = (
    "Grace Hopper was fixing a huge computer in the lab when Eileen Collins walked in with a flight plan. "
    '"Can you check the navigation code?" Eileen asked. '
    "They worked through the night, and Grace found a moth in the relay. "
    '"There is our bug," she whispered. '
    "At dawn, the two watched a rocket launch together."
)
DEMO_STYLES = ("comic style",)
# Both photos are public domain (a NASA portrait, a US Navy portrait): nobody's consent can be asked;
# the record says so plainly.
DEMO_CONSENT = "StoryFace demo, public-domain photos"

Report = Callable[..., None]  # (stage, done, total, info="")


def sample_photos() -> list[tuple[Path, str]]:
    """Paths of the two real photos, or a clear message on how to get them."""
    try:
        import matplotlib
        import skimage
    except ImportError as exc:
        raise InputError(
            "the demo photos ship with scikit-image and matplotlib: pip install 'storyface[demo]'"
        ) from exc
    astronaut = Path(skimage.__file__).parent / "data" / "astronaut.png"
    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return [(astronaut, "Eileen Collins"), (hopper, "Grace Hopper")]


@dataclass
class DemoResult:
    out_dir: Path
    identities: list[Path]
    page: Path
    panels: int
    sentences: list[str]
    timings: dict[str, float] = field(default_factory=dict)
    notice: str = ""

    def summary(self) -> list[str]:
        lines = [f"identities: {', '.join(str(p) for p in self.identities)}"]
        lines += [f"panel {i}: {s}" for i, s in enumerate(self.sentences, 1)]
        lines += [f"page: {self.page} ({self.panels} panels)"]
        lines += [" | ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())]
        if self.notice:
            lines.append(f"note: {self.notice}")
        return lines


def run_demo(model: LoadedModel, out_dir: str | Path, steps: int = 100, report: Report | None = None) -> DemoResult:
    """Learn both people at once, parse the built-in story, render and lay out the page."""
    from .api import BookSettings, RenderConfig, Renderer, learn_identities, make_comic, parse_story

    report = report or (lambda *a, **k: None)
    out = Path(out_dir)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    people = [(photo, name, DEMO_CONSENT) for photo, name in sample_photos()]
    learned = learn_identities(
        model, people, {"steps": steps},
        progress=lambda s, n, loss: report("training 2 identities", s, n, f"loss {loss:.4f}"),
    )
    identities: list[Identity] = [p.identity for p in learned]
    files = [save_identity(i, out / "identities" / f"{file_slug(i.name)}.safetensors") for i in identities]
    for person in learned:
        person.headshot.image.save(out / "identities" / f"{file_slug(person.identity.name)}.png")
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    script = parse_story(DEMO_STORY, [i.name for i in identities], backend="offline")
    timings["parse"] = time.perf_counter() - t

    t = time.perf_counter()
    steps_render = 8 if model.is_tiny else 30
    comic = make_comic(
        Renderer(model), script.panels, identities, out, styles=DEMO_STYLES,
        config=RenderConfig(steps=steps_render), title="StoryFace demo", book=BookSettings(layout="dynamic", pdf=True),
        references={p.identity.name: p.headshot for p in learned},
        callback=lambda done, total: report("rendering panels", done, total),
    )
    timings["render"] = time.perf_counter() - t
    return DemoResult(
        out, files, comic.folder.page_png(1), len(comic.panels), [p.sentence for p in script.panels], timings,
        model.notice if model.random_weights else "",
    )
