"""Stand-ins the core uses exactly like the local ones: a renderer and a trainer whose GPU is a cluster.

:class:`ClusterRenderer` has :class:`~storyface.render.generate.Renderer`'s surface (``model``,
``policy``, ``load_identities``, ``render``, ``rerender``), so :func:`storyface.api.make_comic` and
:func:`~storyface.api.redraw_panel` run unchanged with it: prompts are planned, token-counted and
checked against the content policy here, and only the drawing happens on the cluster, chunk by
chunk (a chunk is what one local batch would be), each chunk a request that may share the UNet
with other people's. :class:`ClusterTrainer` is the job worker's training function: it sends the
job's photo and settings, and gets the identity and headshot back; the worker stores them as it
stores a local result (identity and ``done`` in one transaction), so a failed request leaves nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, ModelError, StoryFaceError
from ..library.worker import LibraryTrainer
from ..limits import MAX_PANELS_PER_REQUEST, MAX_PHOTO_BYTES
from ..render.panel import PanelImage, Progress, RenderCancelled, RenderConfig, _normalise_inputs
from .client import ClusterClient
from .protocol import b64, identity_from_bytes, panel_from_reply, png_image, render_request, unb64

if TYPE_CHECKING:
    from PIL import Image

    from ..identity.tokens import Identity
    from ..library.jobs import JobRecord
    from ..render.regions import Region
    from ..safety import ContentPolicy

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 8  # chunks of one render sent at once: enough to fill a few replicas' batches
CANCEL_POLL_S = 0.2  # how often a waiting caller looks at its cancel flag


@dataclass(frozen=True)
class RemoteEncoder:
    """An encoder slot without the encoder: its identity-file key, width and a CLIP tokenizer."""

    key: str
    dim: int
    tokenizer: Any


@dataclass(frozen=True)
class LoraRecord:
    """A LoRA the cluster's model has fused in, as its record (what comic.json keeps)."""

    data: Mapping[str, Any]

    def record(self) -> dict[str, Any]:
        return dict(self.data)


def _prompt_converter() -> Any:
    """diffusers' own multi-vector prompt rewrite (``<t>`` -> ``<t> <t>_1``), without a pipeline."""
    from diffusers.loaders import TextualInversionLoaderMixin

    return type("PromptConverter", (TextualInversionLoaderMixin,), {})()


@dataclass
class ClusterModel:
    """What the core reads of a LoadedModel, for the model the cluster holds; no weights here.

    The tokenizer is CLIP's BPE (:func:`storyface.random_models.clip_tokenizer`), the vocabulary SDXL's
    and SD 2.x's tokenizers share, so prompts are counted against the 77-token window as on the GPU.
    """

    source: str
    family: str
    is_tiny: bool
    random_weights: bool
    notice: str
    render_size: int
    train_resolution: int
    encoders: list[RemoteEncoder]
    loras: list[LoraRecord] = field(default_factory=list)
    loaded_tokens: dict[str, tuple[str, int]] = field(default_factory=dict)  # token -> (digest, vectors)
    pipe: Any = field(default_factory=_prompt_converter)

    @classmethod
    def from_info(cls, info: Mapping[str, Any]) -> ClusterModel:
        from ..random_models import clip_tokenizer

        try:
            tokenizer = clip_tokenizer()
            return cls(
                source=str(info["source"]), family=str(info["family"]), is_tiny=bool(info["is_tiny"]),
                random_weights=bool(info["random_weights"]), notice=str(info["notice"]),
                render_size=int(info["render_size"]), train_resolution=int(info["train_resolution"]),
                encoders=[RemoteEncoder(str(e["key"]), int(e["dim"]), tokenizer) for e in info["encoders"]],
                loras=[LoraRecord(r) for r in info.get("loras", [])],
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"the cluster described its model in a way this StoryFace cannot read ({exc})") from None

    def add_tokens(self, token: str, vectors: int) -> None:
        """Teach the shared tokenizer a trigger token (and ``<t>_1``...), as load_textual_inversion does."""
        from ..identity.tokens import added_tokens

        self.encoders[0].tokenizer.add_tokens(added_tokens(token, vectors))


class ClusterRenderer:
    """A :class:`~storyface.render.generate.Renderer` whose drawing happens on a cluster."""

    def __init__(self, client: ClusterClient, policy: ContentPolicy | None = None) -> None:
        from ..safety import ContentPolicy

        info = client.info()
        self.client = client
        self.model = ClusterModel.from_info(info)
        self.policy = policy if policy is not None else ContentPolicy()
        self.max_panels = min(int(info.get("max_panels_per_request", MAX_PANELS_PER_REQUEST)), MAX_PANELS_PER_REQUEST)
        self.served: list[dict[str, Any]] = []  # per request: node, replica, batch, UNet calls, attempts
        self._identities: dict[str, Identity] = {}  # token -> identity, sent with every prompt that shows it
        self._lock = threading.Lock()

    def load_identities(self, identities: Sequence[Identity]) -> dict[str, str]:
        """Check each identity against the cluster's model and keep it to send; returns name -> token."""
        from ..identity.tokens import by_trigger_token

        by_token = by_trigger_token(identities, self.model)
        with self._lock:
            for token, identity in by_token.items():
                vectors = int(next(iter(identity.embeddings.values())).shape[0])
                self._identities[token] = identity
                self.model.loaded_tokens[token] = (identity.digest(), vectors)
                self.model.add_tokens(token, vectors)
        return {identity.name: identity.token for identity in identities}

    # The model's weights, decoder and compiled code live on the replicas, as `storyface serve` set them
    # up: the Renderer methods that change them say so here instead of failing with an AttributeError.
    def use_loras(self, specs: Sequence[Any], permanent: bool = False) -> list[Any]:
        if specs:
            raise InputError("LoRAs are fused where the model runs: with --cluster the replicas use the model as served")
        return list(self.model.loras)

    def use_tiny_decoder(self, source: str | None = None) -> None:
        if source is not None:
            raise InputError("with --cluster the replicas load the tiny decoder themselves (its default); --decoder-source is not sent")

    def compile(self, mode: str = "regional") -> int:
        raise InputError("compilation happens where the model runs; with --cluster it is the replicas' setting")

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
        """Render panels on the cluster, in story order; the same contract as Renderer.render.

        Progress counts panel-steps as each chunk comes back; ``cancel`` stops waiting (chunks in
        flight finish on the cluster and are dropped).
        """
        from ..render.generate import _batches, _ordered, _per_panel

        prompts, negatives, seeds = _normalise_inputs(prompts, negative_prompts, seeds, config.seed)
        sizes = _per_panel(sizes, len(prompts), "sizes", config.size_for(self.model))
        plans = _per_panel(regions, len(prompts), "regions", None)
        policy = policy or self.policy
        self._check_policy(prompts, negatives, policy)
        chunks = _batches(sizes, min(config.batch_size, self.max_panels))
        requests = [self._request(c, prompts, negatives, seeds, sizes, plans, config, policy) for c in chunks]
        done: dict[int, PanelImage] = {}
        total = len(prompts) * config.steps
        pool = ThreadPoolExecutor(max_workers=min(len(chunks), MAX_IN_FLIGHT) or 1, thread_name_prefix="storyface-cluster")
        try:
            pending = {pool.submit(self.client.call, "POST", "render", r): c for r, c in zip(requests, chunks)}
            while pending:
                if cancel is not None and cancel.is_set():
                    raise RenderCancelled(f"render stopped after {len(done)} of {len(prompts)} panels", _ordered(done))
                finished, _ = wait(pending, timeout=CANCEL_POLL_S, return_when=FIRST_COMPLETED)
                for future in finished:
                    self._collect(pending.pop(future), future, done)
                    if callback is not None:
                        callback(len(done) * config.steps, total)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return _ordered(done)

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

    def _check_policy(self, prompts: Sequence[str], negatives: Sequence[str], policy: ContentPolicy) -> None:
        from ..render.generate import check_prompts

        check_prompts(self.model.loaded_tokens, prompts, negatives, policy)  # before anything leaves this process

    def _request(self, chunk, prompts, negatives, seeds, sizes, plans, config, policy) -> dict[str, Any]:
        """A chunk's request, with the identities its prompts and region plans name (by value)."""
        texts = " ".join(prompts[i] for i in chunk)
        named = {t for i in chunk for t in (plans[i] or {})}
        with self._lock:
            identities = [i for t, i in self._identities.items() if t in texts or t in named]
        panels = [(prompts[i], negatives[i], seeds[i], plans[i]) for i in chunk]
        return render_request(panels, sizes[chunk[0]], config, identities, policy.mode, self.model.source)

    def _collect(self, chunk: list[int], future: Future, done: dict[int, PanelImage]) -> None:
        reply = future.result()  # a chunk's error (a user's or the cluster's) is raised here
        panels = reply.get("panels") or []
        if len(panels) != len(chunk):
            raise StoryFaceError(f"the cluster sent {len(panels)} panels for a chunk of {len(chunk)}")
        for i, data in zip(chunk, panels):
            done[i] = panel_from_reply(i, data)
        with self._lock:
            self.served.append({**reply.get("served", {}), "attempts": reply.get("attempts", 1), "panels": list(chunk)})


class TrainingStopped(StoryFaceError):
    """The job was cancelled (or the worker is stopping) while the cluster trained it; the result is dropped."""


class ClusterTrainer(LibraryTrainer):
    """The job worker's training function, on the cluster: photo and settings go, identity and headshot come back.

    The replica runs :func:`storyface.api.learn_person` on the photo's bytes (the same core call as a
    local worker). A replica that dies mid-job has the job re-run from its photo on another replica
    (the gateway's retries); the worker stores the result only when it came back whole.
    """

    def __init__(self, client: ClusterClient) -> None:
        super().__init__(None)
        self.client = client
        self.served: list[dict[str, Any]] = []  # per job: node, replica, attempts
        self._cluster_info: dict[str, Any] | None = None

    def parallel_jobs(self) -> int:
        """How many jobs the cluster trains at once (its trainer replicas, at most): what a job worker runs."""
        return max(1, int(self._info().get("trainers", 1)))

    def _info(self) -> dict[str, Any]:
        if self._cluster_info is None:
            self._cluster_info = self.client.info()
        return self._cluster_info

    def model_for(self, source: str) -> ClusterModel:
        if self._model is None:
            self._model = ClusterModel.from_info(self._info())
        if source != self._model.source:
            raise ModelError(
                f"this job was queued for base model {source!r}, but the cluster runs {self._model.source!r}; "
                "train it on a cluster (or with `storyface jobs work`) running that model"
            )
        return self._model

    def __call__(
        self, job: JobRecord, progress: Callable[[int, int, float], None], should_stop: Callable[[], bool]
    ) -> tuple[Identity, Image.Image]:
        self.model_for(job.model)
        reply = self._send(self.request_for(job), should_stop)
        identity = identity_from_bytes(unb64(reply.get("identity"), "the identity"))
        headshot = png_image(unb64(reply.get("headshot"), "the headshot"), "the headshot")
        self.served.append({**reply.get("served", {}), "attempts": reply.get("attempts", 1), "job": job.id})
        steps = int(identity.metadata.get("steps") or 1)
        progress(steps, steps, float(identity.metadata.get("probe_loss_end") or math.nan))
        return identity, headshot

    @staticmethod
    def request_for(job: JobRecord) -> dict[str, Any]:
        """The job by value: the photo's bytes, the name, the consent record, the settings, the model."""
        path = Path(job.photo_path)
        if not path.is_file() or path.stat().st_size > MAX_PHOTO_BYTES:
            raise InputError(f"job {job.id[:8]}'s photo copy {path} is missing or too big; queue the person again")
        consent = job.consent
        return {
            "photo": b64(path.read_bytes()), "name": job.name, "params": job.params, "model": job.model,
            "consent": {"by": consent.by, "at": consent.at} if consent is not None else None,
        }  # fmt: skip

    def _send(self, request: dict[str, Any], should_stop: Callable[[], bool]) -> dict[str, Any]:
        """The reply, waiting in a side thread so a cancel or shutdown is honoured within CANCEL_POLL_S."""
        result: dict[str, Any] = {}

        def call() -> None:
            try:
                result["reply"] = self.client.call("POST", "train", request)
            except BaseException as exc:  # handed to the waiting thread
                result["error"] = exc

        thread = threading.Thread(target=call, name="storyface-cluster-train", daemon=True)
        thread.start()
        while thread.is_alive():
            if should_stop():
                raise TrainingStopped("stopped while the cluster was training; its result will be dropped")
            thread.join(CANCEL_POLL_S)
        if "error" in result:
            raise result["error"]
        return result["reply"]
