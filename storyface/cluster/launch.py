"""Start (and stop) StoryFace's Serve application on a Ray cluster: what ``storyface serve`` calls.

The HTTP endpoint binds to this machine (127.0.0.1) unless told otherwise, and a non-local bind is
refused without a token (``STORYFACE_CLUSTER_TOKEN``), as the web app refuses one without a password:
whoever reaches the port can use every GPU of the cluster.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import InputError
from .options import LOCAL_HOSTS, ServeOptions
from .protocol import TOKEN_ENV, MissingExtraError

log = logging.getLogger(__name__)

APP_NAME = "storyface"


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
