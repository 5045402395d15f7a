"""The Ray Serve application: a gateway, a trainer and a renderer deployment (imports Ray: the extra).

Each trainer or renderer replica loads the model once in ``__init__`` and holds it (one GPU per
replica where the cluster has GPUs). The renderer's ``render`` is a ``@serve.batch`` method: panels
of concurrent requests (counted in panels, not requests) are merged into one batch, which
:class:`~storyface.cluster.work.RenderWork` groups by size and settings into single UNet calls.
The gateway is the one HTTP entry: it checks the token on every request, and re-sends a request
whose replica or node died mid-way to another replica (a bounded number of times); it runs on the
head node, beside Serve's proxy, so losing a worker node never loses the gateway.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import ray
from ray import serve
from ray.exceptions import RayError, RayTaskError
from ray.serve.exceptions import RayServeException, RequestCancelledError
from starlette.requests import Request
from starlette.responses import JSONResponse

from ..limits import MAX_BODY_BYTES, MAX_PANELS_PER_REQUEST
from .protocol import (
    API,
    TOKEN_ENV,
    ClusterError,
    authorized,
    check_token,
    error_reply,
)

log = logging.getLogger(__name__)

HEAD_RESOURCE = "node:__internal_head__"  # Ray's own marker resource of the head node
RETRY_BACKOFF_S = 1.0  # wait before the second try, doubled after; a dead node takes seconds to be noticed
DEFAULT_BATCH_PANELS = 8  # panels per UNet call: 8 SDXL panels at 1024 px fit a 24 GB GPU in bf16
DEFAULT_BATCH_WAIT_S = 0.05  # how long a lone request waits for company: small next to a render's seconds


def _where() -> dict[str, Any]:
    """Which node and replica served a request (the tests and benchmarks read it)."""
    return {
        "node": ray.get_runtime_context().get_node_id(),
        "replica": serve.get_replica_context().replica_id.unique_id,
        "pid": os.getpid(),
    }


def _panels(requests: list[dict[str, Any]]) -> int:
    """A batch's size in panels (what fills the GPU), not in requests."""
    return sum(len(r.get("panels") or []) if isinstance(r, dict) else 1 for r in requests)


@serve.deployment(name="Renderer")
class RenderReplica:
    """Holds the model and renders the panels of every request of a batch together."""

    def __init__(self, model: str, max_batch_panels: int = DEFAULT_BATCH_PANELS, batch_wait_s: float = DEFAULT_BATCH_WAIT_S) -> None:
        from ..models import load_model
        from .work import RenderWork

        self.work = RenderWork(load_model(model), _where(), max_panels=min(max_batch_panels, MAX_PANELS_PER_REQUEST))
        self.render.set_max_batch_size(max_batch_panels)
        self.render.set_batch_wait_timeout_s(batch_wait_s)

    @serve.batch(max_batch_size=DEFAULT_BATCH_PANELS, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S, batch_size_fn=_panels)
    async def render(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # The drawing runs in a thread, so the replica keeps answering health checks and queueing requests.
        return await asyncio.to_thread(self.work.render_many, requests)

    def info(self) -> dict[str, Any]:
        return self.work.info()


@serve.deployment(name="Trainer")
class TrainReplica:
    """Holds the model and learns one person at a time (a training step fills a GPU on its own)."""

    def __init__(self, model: str) -> None:
        from ..models import load_model
        from .work import TrainWork

        self.work = TrainWork(load_model(model), _where())

    async def train(self, request: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(self.work.train, request)


@serve.deployment(name="Gateway")
class Gateway:
    """``GET /v1/info``, ``POST /v1/render``, ``POST /v1/train``: token, size limit, retries, JSON."""

    def __init__(
        self, renderer: Any, trainer: Any, token_digest: str | None = None, attempts: int = 3, trainers: int = 1
    ) -> None:
        self.handles = {"render": renderer, "train": trainer, "info": renderer}
        self.digest = token_digest
        self.attempts = max(1, attempts)
        self.trainers = trainers  # at most this many jobs train at once: what a caller's job worker runs in parallel

    async def __call__(self, request: Request) -> JSONResponse:
        if not authorized(request.headers.get("authorization"), self.digest):
            return _reply(error_reply(ClusterError("a valid cluster token is needed (Authorization: Bearer ...)")), 401)
        method = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        expected = {"info": "GET", "render": "POST", "train": "POST"}.get(method)
        if not request.url.path.startswith(API + "/") or expected is None:
            return _reply(error_reply(ClusterError(f"no such endpoint {request.url.path}")), 404)
        if request.method != expected:
            return _reply(error_reply(ClusterError(f"{request.url.path} takes {expected}")), 405)
        try:
            payload = await _payload(request) if expected == "POST" else None
            reply = await self._call(method, payload)
            if method == "info":
                reply = {**reply, "trainers": self.trainers}
        except ClusterError as exc:
            return _reply(error_reply(exc), 503)
        except Exception as exc:  # a bug in a replica or here: a clear line, and the details in the log
            log.exception("%s failed", request.url.path)
            return _reply(error_reply(exc), 500)
        return _reply(reply, 422 if "error" in reply else 200)

    async def _call(self, method: str, payload: dict[str, Any] | None) -> dict[str, Any]:
        """The replica's reply; a replica or node that died mid-request has it re-sent to another one."""
        call = getattr(self.handles[method], method)
        last: BaseException | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                reply = await (call.remote(payload) if payload is not None else call.remote())
                return {**reply, "attempts": attempt}
            except (RayTaskError, RequestCancelledError):
                raise  # the replica's own bug (retrying repeats it) or the caller left
            except (RayError, RayServeException) as exc:  # dead actor or node, lost object, no replica yet
                last = exc
                log.warning("%s attempt %d of %d failed: %s", method, attempt, self.attempts, type(exc).__name__)
                if attempt < self.attempts:
                    await asyncio.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
        raise ClusterError(
            f"the cluster could not {method} this: it failed on {self.attempts} tries ({type(last).__name__}); "
            "replicas keep dying (out of memory? a node going away?): see `ray status` and the Serve logs"
        )


async def _payload(request: Request) -> dict[str, Any]:
    size = request.headers.get("content-length")
    if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
        raise ClusterError(f"a request is at most {MAX_BODY_BYTES // 2**20} MB")
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > MAX_BODY_BYTES:
            raise ClusterError(f"a request is at most {MAX_BODY_BYTES // 2**20} MB")
    try:
        data = json.loads(body)
    except ValueError:
        raise ClusterError("a request body must be JSON") from None
    if not isinstance(data, dict):
        raise ClusterError("a request body must be a JSON object")
    return data


def _reply(data: dict[str, Any], status: int) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def build_app(
    model: str,
    *,
    renderers: tuple[int, int] = (1, 1),
    trainers: tuple[int, int] = (1, 1),
    gpus_per_replica: float = 0.0,
    cpus_per_replica: float = 1.0,
    max_batch_panels: int = DEFAULT_BATCH_PANELS,
    batch_wait_s: float = DEFAULT_BATCH_WAIT_S,
    token_digest: str | None = None,
    attempts: int = 3,
    max_replicas_per_node: int | None = None,
) -> Any:
    """The bound application; ``renderers``/``trainers`` are (min, max) replicas (autoscaling when max > min);
    ``max_replicas_per_node`` (of each deployment) spreads them over nodes, so one node going away
    takes at most that many of each."""
    actor = {"num_gpus": gpus_per_replica, "num_cpus": cpus_per_replica}
    spread = {"max_replicas_per_node": max_replicas_per_node} if max_replicas_per_node else {}
    renderer = RenderReplica.options(
        ray_actor_options=actor, max_ongoing_requests=4 * max_batch_panels, **spread,
        **_replicas(renderers, target=max_batch_panels),
    ).bind(model, max_batch_panels, batch_wait_s)  # fmt: skip
    trainer = TrainReplica.options(
        ray_actor_options=actor, max_ongoing_requests=1, **spread, **_replicas(trainers, target=1)
    ).bind(model)
    gateway = Gateway.options(
        num_replicas=1, max_ongoing_requests=10_000, ray_actor_options={"num_cpus": 0, "resources": {HEAD_RESOURCE: 0.001}}
    )  # fmt: skip
    return gateway.bind(renderer, trainer, token_digest, attempts, max(trainers))


def _replicas(bounds: tuple[int, int], target: float) -> dict[str, Any]:
    low, high = bounds
    if high <= low:
        return {"num_replicas": low}
    return {"autoscaling_config": {"min_replicas": low, "max_replicas": high, "target_ongoing_requests": target}}


def app(args: dict[str, Any]) -> Any:
    """Serve's application builder, for a Serve config file or KubeRay's RayService::

        applications:
          - name: storyface
            route_prefix: /
            import_path: storyface.cluster.deployments:app
            args: {model: stabilityai/stable-diffusion-xl-base-1.0, renderers: 6, trainers: 2, max_renderers: 12}
            runtime_env: {env_vars: {STORYFACE_CLUSTER_TOKEN: "..."}}   # or from a Kubernetes secret

    A config-file deployment usually listens beyond the head (a Kubernetes Service), so the token
    (``STORYFACE_CLUSTER_TOKEN``) is required here, whatever the host.
    """
    from .options import ServeOptions

    token = os.environ.get(TOKEN_ENV)
    known = {"model", "renderers", "max_renderers", "trainers", "max_trainers", "gpus_per_replica", "cpus_per_replica",
             "max_batch_panels", "batch_wait_s", "attempts", "max_replicas_per_node"}  # fmt: skip
    unknown = set(args) - known
    if unknown or "model" not in args:
        raise ClusterError(f"storyface app args: 'model' is required; known: {', '.join(sorted(known))}; got {sorted(args)}")
    options = ServeOptions(host="0.0.0.0", token=check_token(token), **{"gpus_per_replica": 1.0, **args})
    return build_app(options.model, **options.app_args(options.gpus_per_replica))
