"""A Ray cluster of separate node processes on this machine: a head and worker nodes (tests, benchmarks).

Each node is one ``ray start --block`` process in its own session, so everything it starts (GCS,
raylet, workers, replicas) is in its process tree: a node is stopped, or killed mid-request, by pid,
without touching any other Ray on the machine. Every node is started with
``--node-ip-address=127.0.0.1``; note that Ray itself rewrites a loopback address to the machine's
own (``resolve_ip_for_localhost``), which the kernel still routes over the loopback device, and its
servers listen on every interface, so keep such clusters on machines you trust. No Ray import here:
the nodes are started with the ``ray`` command of this Python.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .protocol import ClusterError

log = logging.getLogger(__name__)

NODE_START_S = 120.0  # a node starts in ~6 s on an idle 2-core machine; allow for a loaded one
STOP_GRACE_S = 3.0  # after SIGTERM, before SIGKILL (a test cluster keeps nothing worth a longer wait)
OBJECT_STORE_BYTES = 100 * 1024 * 1024  # requests are small; keep /dev/shm for everyone else
WORKER_PORTS = 200  # worker processes per node (each Ray worker takes a port from its node's range)
# Find a dead node in ~2 s instead of Ray's default ~15 s, so a killed node's requests are retried soon.
FAST_FAILURE = {"RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "1000",
                "RAY_health_check_failure_threshold": "2", "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
STARTED = "Ray runtime started"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    name: str
    process: subprocess.Popen
    log_path: Path
    seen: dict[int, float] = field(default_factory=dict)  # pid -> start time of every process seen in its tree

    def tree(self) -> list[int]:
        """The node's live processes: ``ray start`` and everything under it."""
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            procs = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            procs = []
        for proc in procs:
            try:
                self.seen.setdefault(proc.pid, proc.create_time())
            except psutil.NoSuchProcess:
                pass
        return [p.pid for p in procs]

    def strays(self) -> list[int]:
        """Processes once in the tree that still run, though they left it (same pid *and* start time)."""
        import psutil

        alive = []
        for pid, started in self.seen.items():
            try:
                if psutil.Process(pid).create_time() == started:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        return alive


class LocalCluster:
    """``with LocalCluster(workers=2) as cluster:`` a head (no GPUs) and worker nodes with (fake) GPUs."""

    def __init__(
        self, workers: int = 2, gpus_per_worker: int = 1, cpus_per_worker: int = 2, env: Mapping[str, str] | None = None
    ) -> None:
        self.workers, self.gpus, self.cpus = workers, gpus_per_worker, cpus_per_worker
        # Ray's own token auth, with a token of this cluster's (not ~/.ray/auth_token): pass `env` to drivers.
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.env = {**os.environ, **FAST_FAILURE, **auth, **(env or {})}
        self.temp_dir = Path(tempfile.mkdtemp(prefix="sfray-", dir="/tmp"))  # short: Ray's socket paths are limited
        self.port = free_port()
        self.nodes: dict[str, Node] = {}
        # Worker port ranges of this cluster's nodes: below Linux's ephemeral range (32768+, where
        # free_port's picks come from), above Ray's default worker ports (10002-19999) of any other Ray.
        self._next_port = 20000 + (os.getpid() * 997) % 11000

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalCluster:
        try:
            self._start_node("head", ["--head", f"--port={self.port}", f"--temp-dir={self.temp_dir}", "--num-gpus=0",
                                      "--include-dashboard=false",
                                      "--num-cpus=1", f"--ray-client-server-port={free_port()}",
                                      f"--dashboard-port={free_port()}"])  # fmt: skip
            for i in range(1, self.workers + 1):
                self.add_worker(f"worker{i}")
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self, name: str) -> Node:
        return self._start_node(name, [f"--address={self.address}", f"--num-gpus={self.gpus}", f"--num-cpus={self.cpus}"])

    def _start_node(self, name: str, args: list[str]) -> Node:
        low = self._next_port
        self._next_port += WORKER_PORTS + 1
        command = [
            str(Path(sys.executable).with_name("ray")), "start", "--block", "--node-ip-address=127.0.0.1",
            "--disable-usage-stats", f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--dashboard-agent-listen-port={free_port()}", f"--min-worker-port={low}",
            f"--max-worker-port={low + WORKER_PORTS}", *args,
        ]  # fmt: skip
        log_path = self.temp_dir / f"{name}.log"
        out = open(log_path, "wb")
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        out.close()
        node = self.nodes[name] = Node(name, process, log_path)
        deadline = time.monotonic() + NODE_START_S
        while STARTED not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(f"Ray node {name} did not start; its log ({log_path}):\n{log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        node.tree()
        log.info("Ray node %s up (pid %d)", name, process.pid)
        return node

    def node_of(self, pid: int) -> str | None:
        """Which node a process (a replica's pid) runs on."""
        for node in self.nodes.values():
            if pid in node.tree() or pid in node.seen:
                return node.name
        return None

    def processes(self, name: str, label: str) -> list[int]:
        """Live pids of a node whose process title holds ``label`` (e.g. a deployment's name)."""
        import psutil

        found = []
        for pid in self.nodes[name].tree():
            try:
                if label in " ".join(psutil.Process(pid).cmdline()) or label in psutil.Process(pid).name():
                    found.append(pid)
            except psutil.NoSuchProcess:
                pass
        return found

    def kill(self, name: str) -> list[int]:
        """Kill a node at once (SIGKILL to every process of its tree, by pid), as a machine that dies."""
        node = self.nodes[name]
        pids = node.tree()
        for pid in reversed(pids):  # children before the `ray start` that would notice them going
            _signal(pid, signal.SIGKILL)
        node.process.wait(timeout=STOP_GRACE_S)
        log.info("killed Ray node %s (%d processes)", name, len(pids))
        return pids

    def stop(self) -> None:
        """Stop every node: workers first, then the head; SIGKILL whatever is left after the grace period."""
        order = [n for n in self.nodes if n != "head"] + (["head"] if "head" in self.nodes else [])
        for name in order:
            node = self.nodes[name]
            node.tree()
            if node.process.poll() is None:
                _signal(node.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for name in order:
            try:
                self.nodes[name].process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for node in self.nodes.values():  # anything still alive that this cluster started: by pid
            for pid in set(node.tree()) | set(node.strays()):
                _signal(pid, signal.SIGKILL)
            try:
                node.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.warning("Ray node %s (pid %d) did not exit", node.name, node.process.pid)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
