"""How ``storyface serve`` serves: checked options, no Ray (the CLI, launch and the app builder share them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..limits import LOCAL_HOSTS
from .protocol import TOKEN_ENV, check_token, token_digest

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
