"""The worker processes of ``bench/bench_scale.py``: one per GPU, on the product's own paths.

Each worker is a separate process (multiprocessing ``spawn``) that sees one GPU through
``CUDA_VISIBLE_DEVICES`` (or the CPU in smoke mode). It loads the model once, then:

1. **train phase**: :func:`storyface.library.worker.run_worker` over the shared SQLite job queue of
   the run's data folder (what ``storyface jobs work --once`` runs), with the model kept loaded by a
   :class:`~storyface.library.worker.LibraryTrainer` handed over through ``STORYFACE_TRAIN_FN`` (the
   operator's setting for the trainer), so the model load is not counted in the job's wall time;
2. **render phase**: the product has no page-rendering worker, so this is a small one: page requests
   from a multiprocessing queue, each drawn with :func:`storyface.api.make_comic` on one
   :class:`~storyface.api.Renderer` built once, featuring identities learned in phase 1.

Why one process for both phases: a GPU box runs one model per GPU; loading it twice would only add
load time to what is measured separately anyway (``start_load_s``).

Every worker also times, by wrapping the product's own functions in its own process (instrumentation
only; the code paths are unchanged), where a job's time goes: CPU photo preprocessing (dlib), the
training itself, the SQLite queue's reads and writes, storing the identity (disk + write lock), and
writing a comic folder (PNG encoding + disk). These are what limit scaling across GPUs.
"""

from __future__ import annotations

import functools
import logging
import os
import queue as queue_lib
import resource
import time
import traceback
from collections import defaultdict
from pathlib import Path
from typing import Any

GIB = 2**30
TRAIN_FN_SPEC = "scale_workers:TRAINER"  # module:attribute that run_worker loads as its train function
TRAINER: Any = None  # set in the worker process before run_worker reads STORYFACE_TRAIN_FN
PAGE_POLL_S = 0.5  # how often an idle render worker checks that the parent is still there

log = logging.getLogger("bench.scale.worker")


# ----------------------------------------------------------------------------- instrumentation


class Timings:
    """Seconds and call counts per bucket, filled by :func:`wrap` in this process."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def take(self) -> dict[str, dict[str, float]]:
        out = {k: {"s": self.seconds[k], "calls": self.calls[k]} for k in sorted(self.seconds)}
        self.seconds.clear()
        self.calls.clear()
        return out


def wrap(owner: Any, name: str, bucket: str, timings: Timings) -> None:
    """Time every call of ``owner.name`` (a module function or a class's method) into ``bucket``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timings.seconds[bucket] += time.perf_counter() - t0
            timings.calls[bucket] += 1

    setattr(owner, name, timed)


def instrument(timings: Timings) -> None:
    """Where a job's and a page's time goes; the callers look these names up at call time."""
    import storyface.api.comics as comics
    import storyface.api.people as people
    from storyface.library.identities import IdentityLibrary
    from storyface.library.jobs import JobQueue

    wrap(people, "prepare_person", "preprocess", timings)  # dlib: detect, landmarks, align, masks, encoder
    wrap(people, "train_identities", "train", timings)  # bank, probes, graph capture, steps, loading rows
    for method in ("claim_next", "report_progress", "cancel_requested", "fail"):  # mark_done runs inside add
        wrap(JobQueue, method, "queue", timings)  # SQLite: every progress report is a write transaction
    wrap(IdentityLibrary, "add", "store", timings)  # identity files + the row, under the write lock
    wrap(comics, "write_comic", "write_page", timings)  # page layout, PNG encoding, the comic folder on disk


# ----------------------------------------------------------------------------- prepared photos


class PreparedPhotos:
    """Photos whose preprocessing (dlib) was done elsewhere, keyed by the photo's SHA-256.

    For machines without dlib or its face models (the GPU image here lacks both, and the 68-landmark
    model alone is ~100 MB, more than a device call carries): ``bench_scale.py --prepare-photos FILE``
    writes them on a machine that has dlib, with the product's own :func:`storyface.api.prepare_person`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import json

        import numpy as np

        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            self.items = {
                m["sha256"]: {
                    **m,
                    "photo": data[f"photo_{i}"].tobytes(),
                    "image": data[f"image_{i}"],  # [S, S, 3] uint8
                    "face_mask": data[f"face_mask_{i}"],  # [S, S] float32
                    "hair_mask": data[f"hair_mask_{i}"],  # [S, S] float32
                    "landmarks": data[f"landmarks_{i}"],  # [68, 2] float32
                    "features": data[f"features_{i}"],  # [F] float32
                }
                for i, m in enumerate(meta)
            }

    def photos(self) -> list[bytes]:
        return [item["photo"] for item in self.items.values()]

    def person(self, job: Any) -> Any:
        """The PreparedPerson that :func:`storyface.api.prepare_person` would make for this job."""
        from PIL import Image

        from storyface import api
        from storyface.faces import Headshot
        from storyface.identity.train import Subject

        item = self.items.get(job.photo_sha256)
        if item is None:
            raise KeyError(f"job {job.id[:8]}: photo {job.photo_sha256[:12]} is not in the prepared photos")
        image = Image.fromarray(item["image"])
        headshot = Headshot(image, item["face_mask"], item["hair_mask"], item["landmarks"], tuple(item["source_box"]))
        subject = Subject(
            job.name, image, item["face_mask"], item["hair_mask"], item["features"],
            face_encoder=item["face_encoder"], photo_sha256=job.photo_sha256,
        )
        return api.PreparedPerson(subject, headshot, job.consent, api.LearnSettings.from_params(job.params))


def save_prepared(path: str | os.PathLike, photos: list[Path], consent: str) -> list[str]:
    """Run the product's photo preprocessing on ``photos`` and save what training needs; returns the hashes."""
    import hashlib
    import json

    import numpy as np

    from storyface import api

    arrays: dict[str, np.ndarray] = {}
    meta = []
    for i, photo in enumerate(photos):
        data = Path(photo).read_bytes()
        person = api.prepare_person(data, f"Prepared Photo {chr(65 + i)}", consent)
        head, subject = person.headshot, person.subject
        arrays.update({
            f"photo_{i}": np.frombuffer(data, np.uint8),
            f"image_{i}": np.asarray(head.image.convert("RGB"), np.uint8),
            f"face_mask_{i}": head.face_mask.astype(np.float32),
            f"hair_mask_{i}": head.hair_mask.astype(np.float32),
            f"landmarks_{i}": head.landmarks.astype(np.float32),
            f"features_{i}": np.asarray(subject.features, np.float32),
        })  # fmt: skip
        meta.append({
            "file": Path(photo).name, "sha256": hashlib.sha256(data).hexdigest(),
            "source_box": [int(v) for v in head.source_box], "face_encoder": subject.face_encoder,
        })  # fmt: skip
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)
    return [m["sha256"] for m in meta]


def prepared_trainer(model: Any, prepared: PreparedPhotos) -> Any:
    """A LibraryTrainer that takes each job's person from ``prepared`` instead of running dlib."""
    from storyface import api
    from storyface.library.worker import LibraryTrainer

    class PreparedTrainer(LibraryTrainer):
        def __call__(self, job: Any, progress: Any, should_stop: Any) -> Any:
            [learned] = api.learn_prepared(self.model_for(job.model), [prepared.person(job)], progress, should_stop)
            return learned.identity, learned.headshot.image

    return PreparedTrainer(model)


# ----------------------------------------------------------------------------- the worker


def _peaks(device: Any) -> dict[str, float]:
    """Peak GPU memory since the last reset (the allocator's; the CUDA context comes on top), and RSS."""
    import torch

    out = {"rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB}  # Linux: KiB
    if device.type == "cuda":
        out["reserved_gib"] = torch.cuda.max_memory_reserved(device) / GIB
        out["allocated_gib"] = torch.cuda.max_memory_allocated(device) / GIB
        torch.cuda.reset_peak_memory_stats(device)
    return out


def _render_pages(spec: dict, renderer: Any, pages: Any, timings: Timings) -> list[dict]:
    """Draw page requests until the parent's sentinel (None)."""
    from storyface import api
    from storyface.story.schema import Panel

    library = api.IdentityLibrary(spec["data_dir"], readonly=True)
    cfg = api.RenderConfig(**spec["render"])
    done = []
    while True:
        try:
            request = pages.get(timeout=PAGE_POLL_S)
        except queue_lib.Empty:
            if os.getppid() == 1:  # the parent died: nobody will send the sentinel
                break
            continue
        if request is None:
            break
        t0 = time.time()
        identities = [library.load(name) for name in request["cast"]]
        panels = [Panel(sentence=s, characters=c) for s, c in zip(request["sentences"], request["characters"])]
        comic = api.make_comic(renderer, panels, identities, request["out_dir"], config=cfg, seed=request["page"])
        done.append({"page": request["page"], "start": t0, "end": time.time(), "panels": len(comic.panels),
                     "warnings": comic.warnings})  # fmt: skip
    return done


def worker_main(rank: int, spec: dict, go: Any, pages: Any, results: Any) -> None:
    """One worker: load once, train queued jobs until the queue is empty, then render pages."""
    try:
        _worker(rank, spec, go, pages, results)
    except BaseException:  # the parent must hear of it, whatever it was
        results.put(("error", rank, traceback.format_exc()))
        raise


def _worker(rank: int, spec: dict, go: Any, pages: Any, results: Any) -> None:
    entered = time.time()
    os.environ["CUDA_VISIBLE_DEVICES"] = spec["visible"]  # before torch touches CUDA (also set by the parent)
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s worker{rank} %(name)s %(message)s")
    import torch

    torch.set_num_threads(spec["threads"])
    from storyface import api
    from storyface.library import worker as library_worker

    timings = Timings()
    instrument(timings)
    device = torch.device(spec["device"])
    model = api.load_model(spec["model"], device=device)
    global TRAINER
    if spec.get("prepared"):
        TRAINER = prepared_trainer(model, PreparedPhotos(spec["prepared"]))
    else:
        TRAINER = library_worker.LibraryTrainer(model)
    os.environ[library_worker.TRAIN_FN_ENV] = TRAIN_FN_SPEC
    renderer = api.Renderer(model)
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    load_peak = _peaks(device)
    results.put(("ready", rank, {"entered": entered, "ready": time.time(), "pid": os.getpid(), "card": card,
                                 "load_peak": load_peak}))  # fmt: skip

    go.wait()
    t0 = time.time()
    library_worker.run_worker(spec["data_dir"], once=True, poll_s=spec["poll_s"])
    results.put(("trained", rank, {"start": t0, "end": time.time(), "peak": _peaks(device), "timings": timings.take()}))

    done = _render_pages(spec, renderer, pages, timings)
    results.put(("rendered", rank, {"pages": done, "peak": _peaks(device), "timings": timings.take()}))
