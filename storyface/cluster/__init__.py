"""Training and rendering on a Ray cluster (``pip install storyface[cluster]``), past one machine.

``storyface serve`` starts a Ray Serve application (:mod:`storyface.cluster.deployments`): a gateway
that checks the token and retries, a **trainer** and a **renderer** deployment whose replicas each
hold the model (one GPU each where the cluster has GPUs), the renderer merging panels of concurrent
requests into one UNet batch. Callers (CLI ``--cluster URL``, the web app, the job worker) keep the
library, consent, content policy, lettering and eval, and send only the GPU work, by value, over
HTTP: :class:`ClusterRenderer` stands in for the local Renderer, :class:`ClusterTrainer` for the
worker's LibraryTrainer. Only :mod:`.deployments` and :mod:`.launch` import Ray; a caller needs none::

    from storyface.cluster import connect
    renderer, trainer = connect("http://127.0.0.1:8000")   # token: STORYFACE_CLUSTER_TOKEN
    comic = make_comic(renderer, panels, identities, "comic/")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .protocol import ClusterError, MissingExtraError

if TYPE_CHECKING:
    from ..safety import ContentPolicy
    from .remote import ClusterRenderer, ClusterTrainer

__all__ = ["ClusterError", "ClusterRenderer", "ClusterTrainer", "MissingExtraError", "connect"]


def connect(
    url: str, token: str | None = None, policy: ContentPolicy | None = None
) -> tuple[ClusterRenderer, ClusterTrainer]:
    """A renderer and a trainer on the cluster at ``url`` (they share one connection pool)."""
    from .client import ClusterClient
    from .remote import ClusterRenderer, ClusterTrainer

    client = ClusterClient(url, token)
    return ClusterRenderer(client, policy), ClusterTrainer(client)


def __getattr__(name: str):  # ClusterRenderer / ClusterTrainer on first use (they import the core)
    if name in ("ClusterRenderer", "ClusterTrainer"):
        from . import remote

        return getattr(remote, name)
    raise AttributeError(name)
