"""Start (and stop) StoryFace's Serve application on a Ray cluster: what ``storyface serve`` calls.

The HTTP endpoint binds to this machine (127.0.0.1) unless told otherwise, and a non-local bind is
refused without a token (``STORYFACE_CLUSTER_TOKEN``), as the web app refuses one without a password:
whoever reaches the port can use every GPU of the cluster.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .protocol import TOKEN_ENV, MissingExtraError, check_token, token_digest

log = logging.getLogger(__name__)

APP_NAME = "storyface"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_PORT = 8000  # Ray Serve's own default
MAX_REPLICAS = 1024  # a sanity bound on the options, far above any cluster StoryFace would run on


@dataclass(frozen=True)
class ServeOptions:
    """How to serve: the model, where, how many replicas of each kind, and the batching."""

    model: str
    address: str | None = None  # a running cluster ("auto", "HOST:PORT", "ray://..."); None: start one here
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    renderers: int = 1
    max_renderers: int | None = None  # above `renderers`: autoscale between the two
    trainers: int = 1
    max_trainers: int | None = None
    gpus_per_replica: float | None = None  # None: 1 where the cluster has GPUs, else 0 (CPU)
    cpus_per_replica: float = 1.0
    max_batch_panels: int = 8
    batch_wait_s: float = 0.05
    attempts: int = 3
    max_replicas_per_node: int | None = None  # of each deployment; None: as many as the node's GPUs hold

    def __post_init__(self) -> None:
        for name in ("renderers", "trainers"):
            low, high = getattr(self, name), getattr(self, f"max_{name}")
            if not 1 <= low <= MAX_REPLICAS or (high is not None and not low <= high <= MAX_REPLICAS):
                raise InputError(f"{name}: at least 1 replica, and --max-{name} no fewer than --{name}")
        if self.gpus_per_replica is not None and not 0 <= self.gpus_per_replica <= 8:
            raise InputError("--gpus-per-replica is from 0 (CPU) to 8; a fraction shares a GPU between replicas")
        if self.max_replicas_per_node is not None and not 1 <= self.max_replicas_per_node <= MAX_REPLICAS:
            raise InputError("--max-replicas-per-node is at least 1")
        if not 1 <= self.max_batch_panels <= 64 or not 0 <= self.batch_wait_s <= 10 or not 1 <= self.attempts <= 10:
            raise InputError("--max-batch-panels is 1 to 64, --batch-wait 0 to 10 s, --attempts 1 to 10")
        if self.host not in LOCAL_HOSTS and not self.token:
            raise InputError(
                f"refusing to serve on {self.host!r} without a token: anyone who reaches that port could use "
                f"every GPU of the cluster. Set {TOKEN_ENV} (16+ random characters), or keep --host 127.0.0.1"
            )
        if self.token:
            check_token(self.token)

    def app_args(self, gpus_per_replica: float) -> dict[str, Any]:
        """What :func:`storyface.cluster.deployments.build_app` takes (the token only as its hash)."""
        return {
            "renderers": (self.renderers, self.max_renderers or self.renderers),
            "trainers": (self.trainers, self.max_trainers or self.trainers), "gpus_per_replica": gpus_per_replica,
            "cpus_per_replica": self.cpus_per_replica, "max_batch_panels": self.max_batch_panels,
            "batch_wait_s": self.batch_wait_s, "token_digest": token_digest(self.token) if self.token else None,
            "attempts": self.attempts, "max_replicas_per_node": self.max_replicas_per_node,
        }  # fmt: skip


def require_ray() -> None:
    """Ray and Ray Serve, or an error that names the extra to install."""
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError:
        raise MissingExtraError(
            "running a cluster needs Ray Serve: pip install 'storyface[cluster]' (on every node of the cluster)"
        ) from None


def serve(options: ServeOptions) -> str:
    """Connect to (or start) Ray, start Serve's HTTP proxy and deploy the app; returns its URL.

    Returns once every replica has loaded the model and is healthy.
    """
    require_ray()
    import ray
    from ray import serve as ray_serve

    from .deployments import build_app

    if not ray.is_initialized():
        ray.init(address=options.address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    gpus = options.gpus_per_replica
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    ray_serve.start(proxy_location="HeadOnly", http_options={"host": options.host, "port": options.port})
    host, port = _serving_at(options)
    ray_serve.run(build_app(options.model, **options.app_args(gpus)), name=APP_NAME, route_prefix="/", blocking=False)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    log.info("StoryFace serves %s on %s (%s GPU per replica)", options.model, url, gpus)
    return url


def _serving_at(options: ServeOptions) -> tuple[str, int]:
    """Where Serve's proxy really listens: Serve already running on a cluster keeps the HTTP settings
    it was started with, so a local-only request could be served on an open port. Refused without a token."""
    from ray.serve.context import _get_global_client

    http = _get_global_client().http_config
    host, port = str(http.host), int(http.port)
    if (host, port) != (options.host, options.port):
        log.warning("Serve already runs on this cluster at %s:%d; StoryFace's app is served there", host, port)
    if host not in LOCAL_HOSTS and not options.token:
        raise InputError(
            f"Serve already runs on this cluster on {host!r} (beyond this machine); serving StoryFace there needs "
            f"{TOKEN_ENV}, or restart Serve (`serve shutdown`) to bind it to 127.0.0.1"
        )
    return host, port


def stop(address: str | None, shutdown: bool = False) -> None:
    """Remove StoryFace's app from the cluster (``shutdown``: stop Serve too); with no address, stop
    the Ray this process started (the app goes with it)."""
    require_ray()
    import ray
    from ray import serve as ray_serve

    if address is None:
        ray.shutdown()
        return
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    if shutdown:
        ray_serve.shutdown()
    else:
        ray_serve.delete(APP_NAME)


def status() -> dict[str, Any]:
    """Serve's view of the app (for the CLI's summary)."""
    from ray import serve as ray_serve

    app = ray_serve.status().applications.get(APP_NAME)
    if app is None:
        return {}
    return {name: {"status": str(d.status), "replicas": dict(d.replica_states)} for name, d in app.deployments.items()}
