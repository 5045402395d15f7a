"""What the web app holds for its whole life: one loaded model, the renderer, library, job queue, and
one background worker thread that trains queued jobs with that same model.

Training and rendering share one device, so both take ``device_lock``: a render waits for the
training step loop to finish (and vice versa) instead of fighting it for memory and the tokenizer.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..api import ContentPolicy, IdentityLibrary, JobQueue, LoadedModel, Renderer
from ..errors import ModelError
from ..identity.tokens import Identity
from ..library.jobs import JobRecord
from ..library.worker import LibraryTrainer, Worker

log = logging.getLogger(__name__)

COMICS_DIR = "comics"
EXPORTS_DIR = "exports"
# Real models: StableIdentity's ~500 training steps and SDXL's usual 30 sampling steps.
# The tiny model draws noise whatever the count, so it gets counts that finish in seconds.
TRAIN_STEPS = {"tiny": 20, "real": 500}
RENDER_STEPS = {"tiny": 4, "real": 30}
WORKER_POLL_S = 0.5
# Pages drawn at once through a cluster (one at a time on the app's own GPU): the cluster's renderers
# merge concurrent pages into shared UNet batches, so several users' pages should reach it together;
# beyond a few batches' worth they would only wait in Serve's queue instead of the app's.
CLUSTER_RENDERS_AT_ONCE = 16


class SharedModelTrainer(LibraryTrainer):
    """The job queue's trainer, but on the app's already-loaded model and under the device lock."""

    def __init__(self, model: LoadedModel, device_lock: threading.Lock) -> None:
        super().__init__(model)
        self.device_lock = device_lock

    def __call__(
        self, job: JobRecord, progress: Callable[[int, int, float], None], should_stop: Callable[[], bool]
    ) -> tuple[Identity, Image.Image]:
        with self.device_lock:
            return super().__call__(job, progress, should_stop)

    def model_for(self, source: str) -> Any:
        if source != self._model.source:
            raise ModelError(
                f"this job was queued for base model {source!r}, but the web app runs {self._model.source!r}; "
                f"train it with `storyface jobs work` on that model, or queue it again here"
            )
        return self._model


@dataclass
class Services:
    """Everything the handlers need; built once by :meth:`start`, passed in, never global."""

    model: LoadedModel
    renderer: Renderer
    library: IdentityLibrary
    queue: JobQueue
    comics_dir: Path
    exports_dir: Path
    device_lock: threading.Lock | threading.BoundedSemaphore
    train_steps: int
    render_steps: int
    trainer: Any = None  # the job worker's training function; None: the app's own model (SharedModelTrainer)
    parallel_jobs: int = 1  # training threads: one on the app's own GPU, one per trainer of a cluster
    renders_at_once: int = 1  # generate/redraw events served together (the web page's queue)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        model: str | LoadedModel,
        data_dir: str | os.PathLike | None = None,
        *,
        train_steps: int | None = None,
        render_steps: int | None = None,
        worker: bool = True,
        cluster: str | None = None,
    ) -> Services:
        """Open the library (``data_dir`` or the default), load the model once, start the worker thread.

        With ``cluster`` (a ``storyface serve`` URL) no model is loaded here: the cluster's renderer and
        trainer take the local ones' places, and ``model`` is the cluster's (``model`` is ignored).
        """
        from ..api import load_model
        from ..paths import data_dir as resolve

        root = resolve(data_dir)
        library = IdentityLibrary(root)  # a bad data dir fails before the (slow) model load
        policy = ContentPolicy.from_env()  # the user's settings, read once here, at the door
        trainer = None
        if cluster:
            from ..cluster import connect

            renderer, trainer = connect(cluster, policy=policy)  # the replicas read their own checker
            loaded = renderer.model
        else:
            from ..safety.images import ImageSafetyChecker

            checker = ImageSafetyChecker.from_env()  # before the slow model load: a bad name fails fast
            loaded = model if isinstance(model, LoadedModel) else load_model(model)
            renderer = Renderer(loaded, policy=policy, image_checker=checker)
        kind = "tiny" if loaded.is_tiny else "real"
        services = cls(
            model=loaded,
            renderer=renderer,
            library=library,
            queue=JobQueue(library),
            comics_dir=root / COMICS_DIR,
            exports_dir=root / EXPORTS_DIR,
            # on a cluster nothing here shares a device: renders only need a bound, and training no lock
            device_lock=threading.BoundedSemaphore(CLUSTER_RENDERS_AT_ONCE) if cluster else threading.Lock(),
            train_steps=train_steps or TRAIN_STEPS[kind],
            render_steps=render_steps or RENDER_STEPS[kind],
            trainer=trainer,
            parallel_jobs=trainer.parallel_jobs() if trainer is not None else 1,
            renders_at_once=CLUSTER_RENDERS_AT_ONCE if cluster else 1,
        )
        services.comics_dir.mkdir(parents=True, exist_ok=True)
        services.exports_dir.mkdir(parents=True, exist_ok=True)
        if worker:
            services.start_worker()
        return services

    def start_worker(self) -> None:
        """Training threads: on the app's own model one, jobs one at a time under the device lock; on a
        cluster one per trainer replica."""
        if any(t.is_alive() for t in self._workers):
            return
        self._stop.clear()
        trainer = self.trainer or SharedModelTrainer(self.model, self.device_lock)
        for i in range(self.parallel_jobs):
            runner = Worker(self.queue, trainer, stop_event=self._stop)
            thread = threading.Thread(
                target=runner.run_forever, args=(self._stop, WORKER_POLL_S), name=f"storyface-train-worker-{i}", daemon=True
            )
            thread.start()
            self._workers.append(thread)
        log.info("%d training worker(s) started on %s", self.parallel_jobs, self.library.root)

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker; a job in progress goes back to the queue for the next start."""
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout)
            if worker.is_alive():
                log.warning("training worker did not stop within %.0fs", timeout)
        self._workers = []
