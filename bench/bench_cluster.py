#!/usr/bin/env python3
"""Cluster throughput (issue 14): render and training requests per minute with one replica vs two.

Starts a local Ray cluster of separate node processes (a head and two worker nodes, one fake GPU
each, ``storyface.cluster.local``), serves the tiny model with ``storyface serve`` at one renderer
and one trainer replica, then at two of each (the second on the other node: half a GPU per replica),
and in each phase keeps ``--clients`` callers busy over HTTP, as the web app or job workers would:

* render: each request is one chunk of ``--panels`` panels (``ClusterRenderer.render``, the path
  ``make_comic`` takes), ``--steps`` sampling steps, the two cast identities sent by value;
* train: each request is one job's photo and settings (``--train-steps`` steps), as ``jobs work
  --cluster`` sends it.

Rates are counted from the first request sent to the last reply, with every replica already loaded.
On this 2-core machine each replica runs torch on one thread (``num_cpus=1``), so two replicas can at
best use both cores; other work on the machine shows in the load average printed with the figures.

    python bench/bench_cluster.py                        # CPU, tiny model, a few minutes
    python bench/bench_cluster.py --requests 8 --train-requests 4   # quicker
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CONSENT = "StoryFace benchmark, public-domain photos"
FIRST_NAMES = ("Ada", "Bruno", "Chiara", "Dmitri", "Elif", "Farid", "Greta", "Hiro")  # made up, not public figures
SCENES = ("{} reads a map in a train station", "{} laughs at a kitchen table", "{} flies a red kite on a hill",
          "{} steers a small boat through a storm")  # fmt: skip


def serve(cluster, port: int, token: str, replicas: int, args: argparse.Namespace) -> None:
    """(Re)deploy through the real door; a second call with more replicas updates the running app."""
    command = [
        sys.executable, "-m", "storyface", "serve", "--model", "tiny", "--address", cluster.address, "--port", str(port),
        "--renderers", str(replicas), "--trainers", str(replicas), "--gpus-per-replica", "0.5",
        "--max-replicas-per-node", "1",  # the second replica of each goes to the other node
        "--max-batch-panels", str(args.batch_panels), "--batch-wait", str(args.batch_wait), "--detach",
    ]  # fmt: skip
    result = subprocess.run(command, env={**cluster.env, "STORYFACE_CLUSTER_TOKEN": token}, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"storyface serve failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def busy(clients: int, requests: int, send) -> tuple[float, list[float]]:
    """``clients`` threads take requests from one counter until ``requests`` were sent; wall time and latencies."""
    lock, sent, latencies = threading.Lock(), [0], []

    def client() -> None:
        while True:
            with lock:
                if sent[0] >= requests:
                    return
                sent[0] += 1
                number = sent[0]
            t0 = time.perf_counter()
            send(number)
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies


def phase(url: str, token: str, cast, photos, replicas: int, args: argparse.Namespace, cluster) -> dict:
    from storyface.api import RenderConfig
    from storyface.cluster.client import ClusterClient
    from storyface.cluster.protocol import b64
    from storyface.cluster.remote import ClusterRenderer

    client = ClusterClient(url, token)
    renderer = ClusterRenderer(client)
    renderer.load_identities(cast)
    config = RenderConfig(steps=args.steps, batch_size=args.panels)

    def render(n: int) -> None:
        prompts = [SCENES[(n + i) % 4].format(cast[(n + i) % 2].token) for i in range(args.panels)]
        renderer.render(prompts, seeds=[n * 100 + i for i in range(args.panels)], config=config)

    def train(n: int) -> None:
        photo = photos[n % len(photos)]
        reply = client.call("POST", "train", {
            "photo": b64(photo.read_bytes()), "name": f"{FIRST_NAMES[n % len(FIRST_NAMES)]} Bench", "model": "tiny",
            "consent": {"by": CONSENT}, "params": {"steps": args.train_steps},
        })  # fmt: skip
        trained.append(reply["served"]["pid"])

    trained: list[int] = []
    render(0)  # warm: identities into both text encoders of a replica, connections open
    renderer.served.clear()
    render_s, render_lat = busy(args.clients, args.requests, render)
    train_s, train_lat = busy(args.clients, args.train_requests, train)
    nodes = Counter(cluster.node_of(s["pid"]) for s in renderer.served)
    batches = {(s["replica"], s["batch"]): s for s in renderer.served}
    return {
        "replicas": replicas,
        "render_per_min": round(args.requests / render_s * 60, 1),
        "render_panels_per_min": round(args.requests * args.panels / render_s * 60, 1),
        "render_latency_s": round(sorted(render_lat)[len(render_lat) // 2], 2),
        "render_nodes": dict(nodes),
        "unet_calls": sum(b["unet_calls"] for b in batches.values()),
        "mean_batch_panels": round(sum(b["batch_panels"] for b in batches.values()) / max(1, len(batches)), 2),
        "train_per_min": round(args.train_requests / train_s * 60, 1),
        "train_latency_s": round(sorted(train_lat)[len(train_lat) // 2], 2),
        "train_nodes": dict(Counter(cluster.node_of(pid) for pid in trained)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="callers sending at once")
    parser.add_argument("--requests", type=int, default=24, help="render requests per phase")
    parser.add_argument("--panels", type=int, default=3, help="panels per render request")
    parser.add_argument("--steps", type=int, default=10, help="sampling steps per panel")
    parser.add_argument("--train-requests", type=int, default=8, help="training requests per phase")
    parser.add_argument("--train-steps", type=int, default=50, help="training steps per request")
    parser.add_argument("--batch-panels", type=int, default=8, help="--max-batch-panels of the renderer")
    parser.add_argument("--batch-wait", type=float, default=0.05, help="--batch-wait of the renderer (s)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import matplotlib.cbook
    import skimage.data

    from storyface.api import learn_person, load_model
    from storyface.cluster.local import LocalCluster, free_port

    photos = [Path(skimage.data.__file__).parent / "astronaut.png",
              Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))]  # fmt: skip
    tiny = load_model("tiny")
    cast = [learn_person(tiny, photos[0], "Eileen Collins", CONSENT, {"steps": 2}).identity,
            learn_person(tiny, photos[1], "Grace Hopper", CONSENT, {"steps": 2}).identity]  # fmt: skip
    del tiny
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    port, token = free_port(), secrets.token_urlsafe(24)
    rows = []
    with LocalCluster(workers=2, gpus_per_worker=1, cpus_per_worker=2, env=env) as cluster:
        url = f"http://127.0.0.1:{port}"
        for replicas in (1, 2):
            t0 = time.perf_counter()
            serve(cluster, port, token, replicas, args)
            print(f"{replicas} replica(s) of each deployment ready in {time.perf_counter() - t0:.0f} s", flush=True)
            rows.append(phase(url, token, cast, photos, replicas, args, cluster))
            print(json.dumps(rows[-1]), flush=True)
    report(rows, args)


def report(rows: list[dict], args: argparse.Namespace) -> None:
    import ray

    load = os.getloadavg()
    print(f"\nmachine: {platform.node()}, {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
          f"load average {load[0]:.1f}/{load[1]:.1f}; {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; "
          f"Ray {ray.__version__}, Python {platform.python_version()}")  # fmt: skip
    print(f"tiny model on CPU; {args.clients} clients; render: {args.requests} requests x {args.panels} panels x "
          f"{args.steps} steps; train: {args.train_requests} requests x {args.train_steps} steps\n")
    print("| replicas (nodes) | render req/min | panels/min | median latency | panels per UNet batch | "
          "train req/min | median latency |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['replicas']} ({len(r['render_nodes'])}) | {r['render_per_min']} | {r['render_panels_per_min']} | "
              f"{r['render_latency_s']} s | {r['mean_batch_panels']} | {r['train_per_min']} | {r['train_latency_s']} s |")
    one, two = rows[0], rows[-1]
    print(f"\nscaling 1 -> 2 replicas: render x{two['render_per_min'] / one['render_per_min']:.2f}, "
          f"train x{two['train_per_min'] / one['train_per_min']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "args": vars(args) | {"json": str(args.json)}}, indent=2))


if __name__ == "__main__":
    main()
