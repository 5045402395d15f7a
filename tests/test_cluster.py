"""Training and rendering on a Ray cluster: a real local cluster of separate node processes.

A head and two worker nodes (``ray start``, every node ``--node-ip-address=127.0.0.1``), each worker
declaring one fake GPU (``--num-gpus=1``: Ray only counts it; torch finds no CUDA and runs on CPU),
with two trainer and two renderer replicas of the tiny model at half a GPU each, so each worker node
holds one of each. The app is started by the real door (``storyface serve --detach``), with a token.
Every Ray process the tests start is stopped by pid at the end (the fixture's ``finally``), also when
a test fails. The node-kill test runs last (it leaves one worker node).

The unit tests at the top need no Ray; the cluster tests skip only when Ray is not importable.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from storyface import api
from storyface.cluster.protocol import ClusterError
from storyface.errors import IdentityFileError, InputError

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[1]
NO_RAY = "the cluster tests need Ray Serve: pip install 'storyface[cluster]'"
STEPS = 3  # sampling steps per panel: enough to count UNet calls, quick on the tiny model
# Float rounding only: replicas run torch on 1 thread and may batch a panel with others, which changes
# the order of sums in matmuls; panel k still equals itself rendered locally (see render.generate).
PIXEL_TOLERANCE = 2
KILL_TRAIN_STEPS = 250  # ~8 s on a replica (1 thread): long enough to kill its node mid-request
CONSENT = api.Consent("Test Runner")


# -- no Ray needed ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return api.load_model("tiny")


@pytest.fixture(scope="module")
def cast(tiny, astronaut_path, grace_hopper_path):
    """Two identities learned here (2 steps) that the pages show."""
    return [
        api.learn_person(tiny, astronaut_path, "Eileen Collins", CONSENT, {"steps": 2}).identity,
        api.learn_person(tiny, grace_hopper_path, "Grace Hopper", CONSENT, {"steps": 2}).identity,
    ]


def test_without_ray_everything_else_imports_and_serve_names_the_extra() -> None:
    """With ``ray`` unimportable: the core, the cluster client and the doors import; `serve` says what to install."""
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import storyface.api, storyface.cli, storyface.app.services, storyface.cluster, storyface.cluster.remote\n"
        "from storyface.cluster.launch import require_ray\n"
        "try:\n    require_ray()\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n"
        "assert 'ray' not in [m for m in sys.modules if sys.modules[m] is not None and m.split('.')[0] == 'ray']\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "MissingExtraError" in result.stdout and "pip install 'storyface[cluster]'" in result.stdout


def test_serve_refuses_an_open_port_without_a_token() -> None:
    from storyface.cluster.options import ServeOptions

    with pytest.raises(InputError, match="without a token"):
        ServeOptions(model="tiny", host="0.0.0.0")
    with pytest.raises(InputError, match="at least 16"):
        ServeOptions(model="tiny", host="0.0.0.0", token="short")
    assert ServeOptions(model="tiny", host="0.0.0.0", token="x" * 32).host == "0.0.0.0"
    assert ServeOptions(model="tiny").token is None  # this machine only: no token needed


def test_app_builder_for_config_files_requires_the_token(monkeypatch) -> None:
    """``import_path: storyface.cluster.deployments:app`` (Serve config, KubeRay): always behind a token."""
    if find_spec("ray") is None:
        pytest.skip(NO_RAY)
    from storyface.cluster.deployments import app

    monkeypatch.delenv("STORYFACE_CLUSTER_TOKEN", raising=False)
    with pytest.raises(InputError, match="STORYFACE_CLUSTER_TOKEN"):
        app({"model": "tiny"})
    monkeypatch.setenv("STORYFACE_CLUSTER_TOKEN", "k" * 24)
    with pytest.raises(ClusterError, match="'model' is required"):
        app({"renderers": 2})
    with pytest.raises(ClusterError, match="known"):
        app({"model": "tiny", "gpus": 1})
    built = app({"model": "tiny", "renderers": 2, "max_renderers": 4, "gpus_per_replica": 0.5})
    assert type(built).__name__ == "Application"


def test_token_check_is_constant_time_hash_compare() -> None:
    from storyface.cluster.protocol import authorized, token_digest

    digest = token_digest("a-long-enough-secret-token")
    assert authorized("Bearer a-long-enough-secret-token", digest)
    assert not authorized("Bearer a-long-enough-secret-tokeN", digest)
    assert not authorized("a-long-enough-secret-token", digest)  # no scheme
    assert not authorized(None, digest)
    assert authorized(None, None)  # no token configured: local bind only (ServeOptions enforces it)


def test_errors_come_back_as_their_own_class() -> None:
    from storyface.cluster.protocol import error_reply, raise_reply_error
    from storyface.errors import NoFaceError, SeveralFacesError
    from storyface.safety import ContentPolicyError

    for exc in (NoFaceError("no face in it"), SeveralFacesError("two faces"), ContentPolicyError("refused")):
        with pytest.raises(type(exc), match=str(exc)):
            raise_reply_error(error_reply(exc))
    with pytest.raises(ClusterError, match="internal error in the cluster: KeyError"):
        raise_reply_error(error_reply(KeyError("x")))
    with pytest.raises(ClusterError, match="SomethingNew: hello"):  # a class this side does not know
        raise_reply_error({"error": {"type": "SomethingNew", "message": "hello"}})
    raise_reply_error({"panels": []})  # no error: nothing raised


def test_identity_travels_by_value_unchanged(cast) -> None:
    from storyface.cluster.protocol import identity_bytes, identity_from_bytes

    data = identity_bytes(cast[0])
    assert len(data) < 16_000  # a few KB
    back = identity_from_bytes(data)
    assert back.name == cast[0].name and back.digest() == cast[0].digest()
    with pytest.raises(IdentityFileError):
        identity_from_bytes(b"not a safetensors file")


def test_cluster_model_counts_tokens_like_the_model(tiny, cast) -> None:
    """The stand-in's tokenizer and multi-vector rewrite give what the pipeline's own give."""
    from storyface.cluster.remote import ClusterModel
    from storyface.cluster.work import model_info
    from storyface.identity.tokens import load_identities

    stand_in = ClusterModel.from_info(model_info(tiny))
    load_identities(tiny, cast)
    for identity in cast:
        stand_in.add_tokens(identity.token, 2)
    prompt = f"{cast[0].token} and {cast[1].token} fix a computer, comic style"
    ours = stand_in.pipe.maybe_convert_prompt(prompt, stand_in.encoders[0].tokenizer)
    theirs = tiny.pipe.maybe_convert_prompt(prompt, tiny.encoders[0].tokenizer)
    assert ours == theirs and f"{cast[0].token}_1" in ours
    assert stand_in.encoders[0].tokenizer(ours).input_ids == tiny.encoders[0].tokenizer(theirs).input_ids
    assert [(e.key, e.dim) for e in stand_in.encoders] == [(e.key, e.dim) for e in tiny.encoders]


def _request(cast, prompts, size=(128, 128), seed=0, steps=2):
    from storyface.cluster.protocol import render_request

    panels = [(p, "", seed + i, None) for i, p in enumerate(prompts)]
    return render_request(panels, size, api.RenderConfig(steps=steps), cast, "strict", "tiny")


def test_render_work_merges_requests_into_one_unet_call_per_step(tiny, cast) -> None:
    """In one process (what a replica does with a batch): same size -> one call per step; a bad request fails alone."""
    from storyface.cluster.work import RenderWork

    work = RenderWork(tiny)
    a, b = cast[0].token, cast[1].token
    replies = work.render_many([
        _request(cast, [f"{a} reads"]), _request(cast, [f"{b} reads", f"{a} walks"], seed=5),
        _request(cast, [f"{a} sits"], size=(64, 128)), {**_request(cast, ["x"]), "size": [3, 3]},
    ])  # fmt: skip
    assert [len(r.get("panels", [])) for r in replies] == [1, 2, 1, 0]
    assert "panel size" in replies[3]["error"]["message"]
    first, second, third = (r["served"] for r in replies[:3])
    assert first["batch"] == second["batch"] != third["batch"]  # the two 128x128 requests shared a batch
    assert first["batch_panels"] == 3 and first["unet_calls"] == 2  # 3 panels, 2 steps: 2 UNet calls
    assert third["unet_calls"] == 2
    assert replies[1]["panels"][0]["seed"] == 5 and replies[1]["panels"][1]["seed"] == 6


def test_render_work_keeps_two_people_with_one_token_apart(tiny, cast) -> None:
    """Two requests whose identities share a trigger token with different rows never share a text encoder."""
    import dataclasses

    import torch

    from storyface.cluster.work import RenderWork

    other = dataclasses.replace(cast[0], embeddings={k: v + 0.5 for k, v in cast[0].embeddings.items()})
    work = RenderWork(tiny)
    token = cast[0].token
    one, two = work.render_many([_request([cast[0]], [f"{token} reads"]), _request([other], [f"{token} reads"])])
    assert one["served"]["batch"] != two["served"]["batch"]
    assert one["panels"][0]["identities"][0]["digest"] == cast[0].digest()
    assert two["panels"][0]["identities"][0]["digest"] == other.digest()
    assert not torch.equal(other.embeddings["clip_l"], cast[0].embeddings["clip_l"])


# -- the cluster -----------------------------------------------------------------------------------


@dataclass
class Served:
    cluster: object  # storyface.cluster.local.LocalCluster
    url: str
    token: str

    def client(self, token: str | None = None):
        from storyface.cluster.client import ClusterClient

        return ClusterClient(self.url, token=token if token is not None else self.token)

    def connect(self):
        from storyface.cluster.remote import ClusterRenderer, ClusterTrainer

        client = self.client()
        return ClusterRenderer(client), ClusterTrainer(client)

    def node(self, served: dict) -> str | None:
        return self.cluster.node_of(served["pid"])


@pytest.fixture(scope="module")
def served():
    """A head and two worker nodes (one fake GPU each) running `storyface serve` of the tiny model."""
    if find_spec("ray") is None:
        pytest.skip(NO_RAY)
    from storyface.cluster.local import LocalCluster, free_port

    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    cluster = LocalCluster(workers=2, gpus_per_worker=1, cpus_per_worker=2, env=env)
    try:
        cluster.start()
        port, token = free_port(), secrets.token_urlsafe(24)
        command = [
            sys.executable, "-m", "storyface", "serve", "--model", "tiny", "--address", cluster.address,
            "--port", str(port), "--renderers", "2", "--trainers", "2", "--gpus-per-replica", "0.5",
            "--max-replicas-per-node", "1",
            "--max-batch-panels", "8", "--batch-wait", "0.5", "--detach",
        ]  # fmt: skip
        result = subprocess.run(command, env={**cluster.env, "STORYFACE_CLUSTER_TOKEN": token}, capture_output=True,
                                text=True, timeout=400)  # fmt: skip
        assert result.returncode == 0, f"storyface serve failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        assert f"http://127.0.0.1:{port}" in result.stdout
        yield Served(cluster, f"http://127.0.0.1:{port}", token)
    finally:
        cluster.stop()


def _library(tmp_path: Path):
    return api.IdentityLibrary(tmp_path / "library")


def _queue(lib, people):
    """Queue each (photo, name, steps) job as the doors do: face, name and consent checked first."""
    for photo, name, steps in people:
        person = api.prepare_person(photo, name, CONSENT, {"steps": steps})
        api.queue_person(lib, photo, "tiny", person)


def _work(lib, trainer, n: int) -> list[threading.Thread]:
    """n job workers (threads of this process, as n `jobs work` processes would be) running one job each."""
    from storyface.library.worker import Worker

    workers = [Worker(api.JobQueue(lib), trainer, pid=os.getpid()) for _ in range(n)]
    threads = [threading.Thread(target=w.run_once) for w in workers]
    for t in threads:
        t.start()
    return threads


def _pages(n_panels: int, cast) -> list:
    from storyface.story.schema import Panel

    scenes = ["{} fixes a huge computer", "{} walks to a rocket", "{} laughs at a moth", "{} reads a flight plan"]
    return [Panel(sentence=scenes[i % 4].format(cast[i % 2].name), characters=[cast[i % 2].name]) for i in range(n_panels)]


def _comic(renderer, cast, out: Path, seed: int):
    config = api.RenderConfig(steps=STEPS)
    return api.make_comic(renderer, _pages(3, cast), cast, out, config=config, seed=seed, title=f"page {seed}")


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_four_trainings_and_three_pages_at_once_on_both_nodes_equal_local(
    served, tiny, cast, tmp_path, astronaut_path, grace_hopper_path
) -> None:
    renderer, trainer = served.connect()
    lib = _library(tmp_path)
    people = [(astronaut_path, "Eileen Collins", 2), (grace_hopper_path, "Grace Hopper", 2),
              (astronaut_path, "Ada Lovelace", 2), (grace_hopper_path, "Alan Turing", 2)]  # fmt: skip
    _queue(lib, people)
    comics: dict[int, object] = {}
    pages = [threading.Thread(target=lambda s=s: comics.__setitem__(s, _comic(renderer, cast, tmp_path / f"c{s}", s)))
             for s in (0, 10, 20)]  # fmt: skip
    threads = _work(lib, trainer, 4) + pages
    for t in pages:
        t.start()
    for t in threads:
        t.join(300)
    # everything completed
    jobs = api.JobQueue(lib).list()
    assert sorted(j.state for j in jobs) == ["done"] * 4, [(j.name, j.state, j.error) for j in jobs]
    assert sorted(r.name for r in lib.list()) == sorted(name for _, name, _ in people)
    assert sorted(comics) == [0, 10, 20] and all(len(c.panels) == 3 for c in comics.values())
    # both worker nodes did work (which node served each request is recorded)
    where = [(s.get("job") or f"panels {s['panels']}", served.node(s)) for s in trainer.served + renderer.served]
    print("served:", where)
    assert {node for _, node in where} == {"worker1", "worker2"}
    assert len(trainer.served) == 4 and len(renderer.served) == 3  # one request per page (3 panels, batch 4)
    # the same results as the local path for the same seeds
    local = api.learn_person(tiny, grace_hopper_path, "Grace Hopper", CONSENT, {"steps": 2}).identity
    remote = lib.load("Grace Hopper")
    for key in local.embeddings:
        np.testing.assert_allclose(remote.embeddings[key].numpy(), local.embeddings[key].numpy(), rtol=1e-4, atol=1e-5)
    here = _comic(api.Renderer(tiny), cast, tmp_path / "local", 10)
    for ours, theirs in zip(here.panels, comics[10].panels):
        assert ours.record() == theirs.record()
        assert np.abs(_pixels(ours.image) - _pixels(theirs.image)).max() <= PIXEL_TOLERANCE


def test_two_concurrent_pages_take_fewer_unet_calls_than_one_after_the_other(served, cast) -> None:
    """Each panel its own request (batch_size 1); the replicas count their UNet calls and say so."""
    client = served.client()
    from storyface.cluster.remote import ClusterRenderer

    page_a, page_b = ClusterRenderer(client), ClusterRenderer(client)
    for r in (page_a, page_b):
        r.load_identities(cast)
    config = api.RenderConfig(steps=STEPS, batch_size=1)
    prompts = [f"{cast[i % 2].token} in scene {i}" for i in range(4)]

    def draw(renderer, seed):
        renderer.render(prompts, seeds=[seed + i for i in range(4)], config=config)

    def calls(*renderers) -> tuple[int, set]:
        batches = {(s["replica"], s["batch"]): s["unet_calls"] for r in renderers for s in r.served}
        return sum(batches.values()), set(batches)

    draw(page_a, 0)
    draw(page_b, 100)
    one_after_other, _ = calls(page_a, page_b)
    page_a.served.clear()
    page_b.served.clear()
    both = [threading.Thread(target=draw, args=(page_a, 0)), threading.Thread(target=draw, args=(page_b, 100))]
    for t in both:
        t.start()
    for t in both:
        t.join(120)
    at_once, batches_a = calls(page_a)
    at_once, _ = calls(page_a, page_b)
    print(f"UNet calls: one after the other {one_after_other}, at once {at_once}")
    assert len(page_a.served) == len(page_b.served) == 4
    assert at_once < one_after_other
    assert batches_a & calls(page_b)[1]  # at least one UNet batch drew panels of both pages


def test_bad_input_through_the_cluster_gets_the_local_errors(served, tiny, cast, tmp_path, two_faces_path) -> None:
    from storyface.cluster.protocol import render_request
    from storyface.cluster.remote import ClusterTrainer
    from storyface.errors import NoFaceError, SeveralFacesError
    from storyface.library.worker import Worker
    from storyface.safety import ContentPolicyError
    from storyface.story.schema import Panel

    renderer, trainer = served.connect()
    lib = _library(tmp_path)
    queue = api.JobQueue(lib)
    blank = tmp_path / "no_face.png"
    Image.new("RGB", (256, 256), (120, 160, 200)).save(blank)
    for photo, error in ((blank, NoFaceError), (two_faces_path, SeveralFacesError)):
        with pytest.raises(error) as here:
            api.prepare_person(photo, "Nobody Here", CONSENT)
        job = queue.submit(photo, "Nobody Here", "tiny", {"steps": 2}, CONSENT)
        Worker(queue, trainer).run_once()
        after = queue.get(job.id)
        assert after.state == "failed" and after.error == str(here.value)
        with pytest.raises(error, match=re.escape(str(here.value))):  # the same class, raised on this side
            trainer.client.call("POST", "train", ClusterTrainer.request_for(after))
    # a policy refusal: before anything is sent, and on the replica for a request that skipped the check
    panels = [Panel(sentence=f"{cast[0].name} poses nude on a beach", characters=[cast[0].name])]
    with pytest.raises(ContentPolicyError) as here:
        api.make_comic(api.Renderer(tiny), panels, cast, tmp_path / "local")
    with pytest.raises(ContentPolicyError) as there:
        api.make_comic(renderer, panels, cast, tmp_path / "remote")
    assert str(there.value) == str(here.value) and renderer.served == []
    raw = render_request([(f"{cast[0].token} poses nude", "", 0, None)], (128, 128), api.RenderConfig(steps=1), cast[:1],
                         "strict", "tiny")  # fmt: skip
    with pytest.raises(ContentPolicyError, match="refused by StoryFace's content policy"):
        trainer.client.call("POST", "render", raw)
    assert lib.list() == [] and not (tmp_path / "remote").exists()


def test_the_token_is_checked_on_every_request(served) -> None:
    assert served.client().info()["source"] == "tiny"
    for token in ("", "wrong-token-of-enough-length"):
        client = served.client(token=token)
        client.token = token or None
        with pytest.raises(ClusterError, match="token"):
            client.call("POST", "render", {"panels": []})
    with pytest.raises(ClusterError, match="token"):
        served.client(token="wrong-token-of-enough-length").info()


def test_the_doors_send_their_gpu_work_to_the_cluster(
    served, tmp_path, monkeypatch, start_app, astronaut_path, grace_hopper_path
) -> None:
    """`jobs work`, `comic` and `redraw` with --cluster, and the web app's services with cluster=URL;
    the job workers train as many jobs at once as the cluster has trainers (2)."""
    import json

    from typer.testing import CliRunner

    from storyface.cli import app
    from storyface.cluster.remote import ClusterRenderer, ClusterTrainer

    monkeypatch.setenv("STORYFACE_CLUSTER_TOKEN", served.token)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    home, out = tmp_path / "home", tmp_path / "comic"
    runner = CliRunner()

    def cli(*args):
        result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    for photo, name in ((grace_hopper_path, "Grace Hopper"), (astronaut_path, "Eileen Collins")):
        cli("train", photo, "--name", name, "--consent-by", "Test Runner", "--model", "tiny", "--steps", "2",
            "--queue", "--data-dir", home)  # fmt: skip
    cli("jobs", "work", "--once", "--data-dir", home, "--cluster", served.url)
    assert sorted(r.name for r in api.IdentityLibrary(home).list()) == ["Eileen Collins", "Grace Hopper"]
    jobs = api.JobQueue(api.IdentityLibrary(home)).list()
    assert max(j.started_at for j in jobs) < min(j.finished_at for j in jobs)  # the two trained at the same time
    story = tmp_path / "story.txt"
    story.write_text("Grace Hopper found a moth in the computer. Grace Hopper laughed.", encoding="utf-8")
    cli("comic", "--story", story, "--identity", "Grace Hopper", "--data-dir", home, "--cluster", served.url,
        "--steps", "2", "--out", out, "--backend", "offline")  # fmt: skip
    record = json.loads((out / "comic.json").read_text())
    assert record["model"] == "tiny" and len(record["panels"]) == 2 and list((out / "pages").glob("*.png"))
    cli("redraw", out, "--panel", "1", "--seed", "5", "--identity", "Grace Hopper", "--data-dir", home,
        "--cluster", served.url)  # fmt: skip
    assert json.loads((out / "comic.json").read_text())["panels"][0]["seed"] == 5
    # the web app: no model here, the cluster's renderer and trainer in the local ones' places
    from gradio_client import Client, handle_file

    running = start_app("not-loaded-here", tmp_path / "app", cluster=served.url, train_steps=2, render_steps=2)
    try:
        services = running.services
        assert isinstance(services.renderer, ClusterRenderer) and isinstance(services.trainer, ClusterTrainer)
        assert services.model.source == "tiny" and services.parallel_jobs == 2 and len(services._workers) == 2
        assert services.renders_at_once > 1  # pages of several users reach the cluster together
        client = Client(running.url, verbose=False)
        client.predict(handle_file(str(grace_hopper_path)), "Grace Hopper", True, 2, api_name="/add_person")
        client.predict(2, api_name="/train")
        deadline = time.monotonic() + 120
        while not services.library.list():
            assert time.monotonic() < deadline, f"the app's job never finished: {services.queue.list()}"
            time.sleep(0.5)
        panels, scenes, lines, cast, _ = client.predict("Grace Hopper fixed a computer. Grace Hopper laughed.", [],
                                                        api_name="/process_text")  # fmt: skip
        assert cast == ["Grace Hopper"]
        pages, tiles, _, record, status, *_ = client.predict(
            panels=panels, cast=cast, scenes=scenes, lines=lines, styles=["comic style"], title="Cluster page",
            seed="3", steps="2", api_name="/generate",
        )  # fmt: skip
        assert len(record["panels"]) == 2 and [p["seed"] for p in record["panels"]] == [3, 4] and len(pages) == 1
        assert len(services.renderer.served) >= 1  # drawn on the cluster
    finally:
        running.close()


def _cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def test_a_node_killed_mid_request_loses_nothing(served, cast, tmp_path, astronaut_path, grace_hopper_path) -> None:
    """Runs last: kills worker2 (every process of it, by pid) while both trainers are training."""
    renderer, trainer = served.connect()
    lib = _library(tmp_path)
    _queue(lib, [(astronaut_path, "Eileen Collins", KILL_TRAIN_STEPS), (grace_hopper_path, "Grace Hopper", KILL_TRAIN_STEPS)])
    trainers = {n: served.cluster.processes(n, "Trainer") for n in ("worker1", "worker2")}
    assert all(len(p) == 1 for p in trainers.values()), trainers
    before = {n: _cpu_seconds(p[0]) for n, p in trainers.items()}
    threads = _work(lib, trainer, 2)
    deadline = time.monotonic() + 120
    while not all(_cpu_seconds(p[0]) - before[n] > 1.5 for n, p in trainers.items()):  # both are training now
        assert time.monotonic() < deadline, "the trainers never got busy"
        time.sleep(0.2)
    killed = served.cluster.kill("worker2")
    comic = _comic(renderer, cast, tmp_path / "during", 7)  # rendering goes on meanwhile
    for t in threads:
        t.join(300)
    # every job done, each identity once, nothing half-written
    jobs = api.JobQueue(lib).list()
    assert sorted(j.state for j in jobs) == ["done", "done"], [(j.name, j.state, j.error) for j in jobs]
    assert sorted(r.name for r in lib.list()) == ["Eileen Collins", "Grace Hopper"]
    assert lib.unindexed() == [] and not list(lib.root.rglob(".tmp-*"))
    assert all(lib.load(r.name).family == "sdxl" for r in lib.list())
    # the request on the killed node was re-run from its photo on the other node
    where = [(s["job"][:8], served.node(s), s["attempts"]) for s in trainer.served]
    print(f"killed {len(killed)} processes of worker2; trainings served: {where}")
    assert {node for _, node, _ in where} == {"worker1"} and max(a for *_, a in where) >= 2
    assert len(comic.panels) == 3 and {served.node(s) for s in renderer.served} == {"worker1"}
