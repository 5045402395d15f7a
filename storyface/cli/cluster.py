"""``storyface serve``: training and rendering on a Ray cluster (the doors' ``--cluster URL`` uses it)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Optional

import typer

from .common import DEFAULT_MODEL, ModelOpt, friendly_errors, say


@friendly_errors
def serve(
    model: ModelOpt = DEFAULT_MODEL,
    address: Annotated[Optional[str], typer.Option(help="A running Ray cluster ('auto', HOST:PORT or ray://...); default: start one on this machine.")] = None,
    host: Annotated[str, typer.Option(help="Interface for the HTTP endpoint (default: this machine only); any other needs STORYFACE_CLUSTER_TOKEN.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port.")] = 8000,
    renderers: Annotated[int, typer.Option(min=1, help="Renderer replicas (each holds the model; one GPU each by default).")] = 1,
    max_renderers: Annotated[Optional[int], typer.Option(min=1, help="Autoscale renderers up to this many under load.")] = None,
    trainers: Annotated[int, typer.Option(min=1, help="Trainer replicas (one training job at a time each).")] = 1,
    max_trainers: Annotated[Optional[int], typer.Option(min=1, help="Autoscale trainers up to this many under load.")] = None,
    gpus_per_replica: Annotated[Optional[float], typer.Option(min=0, help="GPUs per replica (default: 1 where the cluster has GPUs, else 0); 0.5 puts two replicas on a GPU.")] = None,
    cpus_per_replica: Annotated[float, typer.Option(min=0, help="CPUs per replica.")] = 1.0,
    max_batch_panels: Annotated[int, typer.Option(min=1, max=64, help="Panels of concurrent requests drawn in one UNet batch.")] = 8,
    batch_wait: Annotated[float, typer.Option(min=0, max=10, help="Seconds a request waits for others to share its batch.")] = 0.05,
    attempts: Annotated[int, typer.Option(min=1, max=10, help="Tries of a request whose replica or node died.")] = 3,
    max_replicas_per_node: Annotated[Optional[int], typer.Option(min=1, help="At most this many renderers (and trainers) per node: spreads them, so losing a node loses fewer.")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="Deploy and return (needs --address); the app keeps running.")] = False,
    stop: Annotated[bool, typer.Option("--stop", help="Remove StoryFace's app from the cluster at --address.")] = False,
) -> None:
    """Serve training and rendering on a Ray cluster: `storyface ui --cluster URL` (and comic, redraw, jobs work) use it."""
    import os

    from ..cluster.options import ServeOptions
    from ..cluster.launch import serve as start
    from ..cluster.launch import status
    from ..cluster.launch import stop as remove
    from ..cluster.protocol import TOKEN_ENV
    from ..errors import InputError

    if (detach or stop) and address is None:
        raise InputError("--detach and --stop need --address: a cluster started here ends with this command")
    if stop:
        remove(address)
        say(f"removed StoryFace's app from {address}")
        return
    options = ServeOptions(
        model=model, address=address, host=host, port=port, token=os.environ.get(TOKEN_ENV) or None,
        renderers=renderers, max_renderers=max_renderers, trainers=trainers, max_trainers=max_trainers,
        gpus_per_replica=gpus_per_replica, cpus_per_replica=cpus_per_replica, max_batch_panels=max_batch_panels,
        batch_wait_s=batch_wait, attempts=attempts, max_replicas_per_node=max_replicas_per_node,
    )  # fmt: skip
    say(f"starting {renderers} renderer(s) and {trainers} trainer(s) of {model} (each loads the model) ...")
    url = start(options)
    for name, state in status().items():
        say(f"  {name}: {state['status']} {state['replicas']}")
    say(f"StoryFace cluster ready: {url}  (use it with --cluster {url})", stdout=True)
    if detach:
        return
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(1.0):  # wakes each second: a signal that reached one of Ray's threads is seen here
        pass
    remove(address)  # no address: the Ray started here stops, and the app with it
    say("stopped")
