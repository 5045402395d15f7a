"""What a replica does with the model it holds: the core's own calls, on requests that came by value.

:class:`RenderWork` renders the panels of many requests at once (what Ray Serve's request batching
hands it): requests that share a size and render settings, and no trigger token with different rows,
go through one :meth:`storyface.render.generate.Renderer.render` call, so their panels share UNet
calls. :class:`TrainWork` learns one person with :func:`storyface.api.learn_person` from the photo's
bytes. Both turn every error a user can cause into a reply, so one bad request never fails the
others of its batch. No Ray here (the deployments wrap these), so they are testable in one process.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import InputError, ModelError, StoryFaceError
from ..limits import (
    MAX_IDENTITIES_PER_REQUEST,
    MAX_PANEL_SIDE,
    MAX_PANELS_PER_REQUEST,
    MAX_PHOTO_BYTES,
    MAX_RENDER_STEPS,
    MIN_PANEL_SIDE,
)
from .protocol import (
    b64,
    error_reply,
    identity_bytes,
    identity_from_bytes,
    panel_reply,
    png_bytes,
    unb64,
)

if TYPE_CHECKING:
    from ..identity.tokens import Identity
    from ..models import LoadedModel
    from ..render.generate import RenderConfig
    from ..render.regions import Region
    from ..safety import ContentPolicy

log = logging.getLogger(__name__)


def model_info(model: LoadedModel) -> dict[str, Any]:
    """What a caller needs to plan prompts and write records without the model (see ClusterModel)."""
    return {
        "source": model.source, "family": model.family, "is_tiny": model.is_tiny, "random_weights": model.random_weights,
        "notice": model.notice, "render_size": model.render_size, "train_resolution": model.train_resolution,
        "encoders": [{"key": s.key, "dim": s.dim} for s in model.encoders],
        "loras": [lora.record() for lora in model.loras],
    }  # fmt: skip


class UNetCounter:
    """Counts the UNet's forward calls (one per denoising step of a batch), to show batching works."""

    def __init__(self, unet: Any) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        unet.register_forward_pre_hook(self._count)

    def _count(self, module: Any, args: Any) -> None:
        with self._lock:
            self.calls += 1


@dataclass
class _Job:
    """One render request, decoded and checked."""

    panels: list[tuple[str, str, int, dict[str, Region] | None]]
    size: tuple[int, int]
    config: RenderConfig
    policy: ContentPolicy
    identities: list[Identity]

    def key(self) -> tuple:
        c = self.config
        return self.size, c.steps, c.guidance, c.scheduler, c.eta, self.policy.mode

    def digests(self) -> dict[str, str]:
        return {i.token: i.digest() for i in self.identities}


def merge_groups(jobs: Sequence[tuple[int, _Job]]) -> list[list[tuple[int, _Job]]]:
    """Requests that can share one render call: same size and settings, and no trigger token that two
    of them load with different rows (two people's "Grace Hopper" never meet in one text encoder)."""
    groups: list[tuple[tuple, dict[str, str], list[tuple[int, _Job]]]] = []
    for i, job in jobs:
        digests = job.digests()
        for key, seen, members in groups:
            if key == job.key() and all(seen.get(t, d) == d for t, d in digests.items()):
                seen.update(digests)
                members.append((i, job))
                break
        else:
            groups.append((job.key(), dict(digests), [(i, job)]))
    return [members for _, _, members in groups]


class RenderWork:
    """A renderer on the replica's model; :meth:`render_many` serves a batch of requests."""

    def __init__(self, model: LoadedModel, where: Mapping[str, Any] | None = None, max_panels: int = MAX_PANELS_PER_REQUEST) -> None:
        from ..render.generate import Renderer

        self.model = model
        self.max_panels = max_panels  # per request: what the batch may hold (Serve refuses a bigger one)
        from ..safety.images import ImageSafetyChecker

        self.renderer = Renderer(model, image_checker=ImageSafetyChecker.from_env())  # this node's setting
        self.unet = UNetCounter(model.pipe.unet)
        self.where = dict(where or {})  # node and replica ids, added to every reply
        self._batches = itertools.count(1)

    def info(self) -> dict[str, Any]:
        return {**model_info(self.model), "max_panels_per_request": self.max_panels}

    def render_many(self, requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One reply per request, in order: its panels, or the error that request alone caused."""
        replies: list[dict[str, Any] | None] = [None] * len(requests)
        jobs = []
        for i, request in enumerate(requests):
            try:
                jobs.append((i, self._decode(request)))
            except StoryFaceError as exc:
                replies[i] = error_reply(exc)
        for group in merge_groups(jobs):
            try:
                for i, reply in self._render_group(group, len(requests)).items():
                    replies[i] = reply
            except Exception as exc:  # a user's error or a bug: only this group's requests fail
                if not isinstance(exc, StoryFaceError):
                    log.exception("rendering a batch of %d requests failed", len(group))
                for i, _ in group:
                    replies[i] = error_reply(exc)
        return [r if r is not None else error_reply(RuntimeError("no reply")) for r in replies]

    def _render_group(self, group: list[tuple[int, _Job]], requests: int) -> dict[int, dict[str, Any]]:
        """One Renderer.render call for every panel of the group: its batch is the whole group."""
        first = group[0][1]
        identities = {i.token: i for _, job in group for i in job.identities}
        panels = [p for _, job in group for p in job.panels]
        self.renderer.load_identities(list(identities.values()))
        before = self.unet.calls
        images = self.renderer.render(
            [p[0] for p in panels], [p[1] for p in panels], [p[2] for p in panels],
            dataclasses.replace(first.config, batch_size=len(panels)), policy=first.policy,
            sizes=[first.size] * len(panels), regions=[p[3] for p in panels],
        )  # fmt: skip
        served = {
            **self.where, "batch": next(self._batches), "batch_panels": len(panels), "batch_requests": len(group),
            "requests_in_call": requests, "unet_calls": self.unet.calls - before,
        }  # fmt: skip
        replies, start = {}, 0
        for i, job in group:
            mine = images[start : start + len(job.panels)]
            start += len(job.panels)
            replies[i] = {"panels": [panel_reply(p) for p in mine], "served": served}
        log.info("rendered %d panels of %d requests in %d UNet calls", len(panels), len(group), served["unet_calls"])
        return replies

    def _decode(self, request: Mapping[str, Any]) -> _Job:
        from ..render.generate import RenderConfig
        from ..render.regions import plan_from_dict
        from ..safety import ContentPolicy

        if not isinstance(request, Mapping):
            raise InputError("a render request must be a JSON object")
        _check_model(request.get("model"), self.model.source)
        panels_in, ids_in = request.get("panels"), request.get("identities") or []
        if not isinstance(panels_in, list) or not 1 <= len(panels_in) <= self.max_panels:
            raise InputError(f"a render request holds 1 to {self.max_panels} panels")
        if not isinstance(ids_in, list) or len(ids_in) > MAX_IDENTITIES_PER_REQUEST:
            raise InputError(f"a render request holds at most {MAX_IDENTITIES_PER_REQUEST} identities")
        config = request.get("config")
        if not isinstance(config, Mapping) or set(config) - {"steps", "guidance", "scheduler", "eta", "decoder"}:
            raise InputError("a render request's config holds steps, guidance, scheduler, eta and decoder")
        if not isinstance(config.get("steps"), int) or config["steps"] > MAX_RENDER_STEPS:
            raise InputError(f"a render takes at most {MAX_RENDER_STEPS} steps")
        size = _size(request.get("size"))
        panels = []
        for p in panels_in:
            if not isinstance(p, Mapping) or not isinstance(p.get("prompt"), str) or not isinstance(p.get("seed"), int):
                raise InputError("each panel needs a prompt (text) and a seed (a whole number)")
            regions = p.get("regions")
            panels.append((p["prompt"], str(p.get("negative_prompt") or ""), p["seed"], plan_from_dict(regions) if regions else None))
        return _Job(
            panels=panels, size=size, config=RenderConfig(**config, width=size[0], height=size[1]),
            policy=ContentPolicy.from_env(env={}, mode=str(request.get("policy") or "strict")),
            identities=[identity_from_bytes(unb64(i, "an identity")) for i in ids_in],
        )  # fmt: skip


class TrainWork:
    """Learns one person per request on the replica's model, through the same core call as a local worker."""

    def __init__(self, model: LoadedModel, where: Mapping[str, Any] | None = None) -> None:
        self.model = model
        self.where = dict(where or {})

    def train(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The identity and headshot learned from the photo's bytes, or the error the request caused."""
        from .. import api

        try:
            photo, name, consent, params = self._decode(request)
            learned = api.learn_person(self.model, photo, name, consent, params)
        except Exception as exc:
            if not isinstance(exc, StoryFaceError):
                log.exception("training failed")
            return {**error_reply(exc), "served": self.where}
        return {
            "identity": b64(identity_bytes(learned.identity)),
            "headshot": b64(png_bytes(learned.headshot.image)),
            "served": self.where,
        }

    def _decode(self, request: Mapping[str, Any]) -> tuple[bytes, str, Any, dict[str, Any]]:
        from ..safety.consent import Consent

        if not isinstance(request, Mapping):
            raise InputError("a training request must be a JSON object")
        _check_model(request.get("model"), self.model.source)
        photo = unb64(request.get("photo"), "the photo")
        if len(photo) > MAX_PHOTO_BYTES:
            raise InputError(f"the photo is over {MAX_PHOTO_BYTES // 1_000_000} MB")
        consent, params = request.get("consent"), request.get("params") or {}
        if not isinstance(consent, (Mapping, type(None))) or not isinstance(params, Mapping):
            raise InputError("a training request's consent is a record (or null) and its settings a mapping")
        record = None  # none: learn_person refuses it with the same message as a local run
        if consent is not None:
            record = Consent(str(consent.get("by") or ""), **({"at": str(consent["at"])} if consent.get("at") else {}))
        return photo, str(request.get("name") or ""), record, dict(params)


def _check_model(source: Any, own: str) -> None:
    if source is not None and source != own:
        raise ModelError(
            f"this request is for base model {source!r}, but the cluster runs {own!r}; "
            "start the cluster with that model (`storyface serve --model`), or use the one it runs"
        )


def _size(value: Any) -> tuple[int, int]:
    ok = isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if not ok or not all(MIN_PANEL_SIDE <= v <= MAX_PANEL_SIDE for v in value):
        raise InputError(f"a panel size is [width, height], each from {MIN_PANEL_SIDE} to {MAX_PANEL_SIDE} px")
    return value[0], value[1]
