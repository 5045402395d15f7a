"""The training worker: runs queued jobs one at a time, each through the same API every door uses.

A worker runs one job at a time (one worker per GPU; one on CPU). It trains with
:func:`storyface.api.learn_person` by default (one model kept loaded), stores the identity and marks
the job done in one transaction, and honours cancel and shutdown between steps. ``storyface jobs
work`` starts one (:func:`run_worker`). Tests swap the training function through the environment
variable ``STORYFACE_TRAIN_FN`` (``module:name``): an operator's setting, never a job's.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from PIL import Image

from ..errors import InputError, StoryFaceError
from ..identity.tokens import Identity
from .identities import IdentityLibrary
from .jobs import JobCancelled, JobQueue, JobRecord, Progress, TrainFn
from .space import bytes_to_keep, require_space

log = logging.getLogger(__name__)

TRAIN_FN_ENV = "STORYFACE_TRAIN_FN"


class _StopCheck:
    """``should_stop`` for one job: cancel (polled from the database) or worker shutdown."""

    def __init__(self, queue: JobQueue, job_id: str, stop_event: threading.Event, poll_s: float) -> None:
        self.queue, self.job_id, self.stop_event, self.poll_s = queue, job_id, stop_event, poll_s
        self.fired = False  # once True, what train_fn returns is not a finished identity
        self._cancel = False
        self._last = float("-inf")

    def __call__(self) -> bool:
        if self.stop_event.is_set():
            self.fired = True
        elif time.monotonic() - self._last >= self.poll_s:
            self._last = time.monotonic()
            self._cancel = self.queue.cancel_requested(self.job_id)
        self.fired = self.fired or self._cancel
        return self.fired




class Worker:
    """Runs queued jobs one at a time with an injected ``train_fn``.

    ``train_fn(job, progress, should_stop) -> (identity, headshot)`` reports ``progress(step, total,
    loss)`` and should return or raise soon after ``should_stop()`` is true; the job then ends
    cancelled (or goes back to the queue if the worker itself is stopping) and nothing is written.
    """

    def __init__(
        self,
        queue: JobQueue,
        train_fn: TrainFn,
        *,
        pid: int | None = None,
        stop_event: threading.Event | None = None,
        cancel_poll_s: float = 0.2,
    ) -> None:
        self.queue = queue
        self.train_fn = train_fn
        self.pid = pid if pid is not None else os.getpid()
        self.stop_event = stop_event or threading.Event()  # set: finish no new job, put the current one back
        self.cancel_poll_s = cancel_poll_s
        queue.remove_leftovers()

    def run_once(self) -> bool:
        """Run the next queued job to its end; False if there was none."""
        job = self.queue.claim_next(self.pid)
        if job is None:
            return False
        log.info("training %r (job %s, attempt %d)", job.name, job.id[:8], job.attempts)
        self._run(job)
        return True

    def run_forever(self, stop_event: threading.Event, poll_s: float = 1.0) -> None:
        """Until ``stop_event`` is set; a job in progress is asked to stop and re-queued."""
        self.stop_event = stop_event
        while not stop_event.is_set():
            if not self.run_once():
                stop_event.wait(poll_s)

    def _run(self, job: JobRecord) -> None:
        should_stop = _StopCheck(self.queue, job.id, self.stop_event, self.cancel_poll_s)
        try:
            require_space(self.queue.root, bytes_to_keep(), f"keeping {job.name}")  # before any model work
            identity, headshot = self.train_fn(job, self._progress(job.id), should_stop)
            failure = None
        except StoryFaceError as exc:
            failure = str(exc)
        except Exception as exc:
            log.exception("training job %s crashed", job.id)
            failure = f"internal error: {type(exc).__name__}: {exc}"
        if should_stop.fired:
            self._interrupted(job)
        elif failure is not None:
            self.queue.fail(job.id, failure)
        else:
            self._store(job, identity, headshot)

    def _progress(self, job_id: str) -> Progress:
        def progress(step: int, total: int, loss: float) -> None:
            self.queue.report_progress(job_id, step, total, loss)

        return progress

    def _interrupted(self, job: JobRecord) -> None:
        if self.stop_event.is_set() and not self.queue.cancel_requested(job.id):
            self.queue.requeue(job.id)
            log.info("job %s put back in the queue: worker stopping", job.id[:8])
        else:
            self.queue.end(job.id, "cancelled")
            log.info("job %s cancelled", job.id[:8])

    def _store(self, job: JobRecord, identity: Identity, headshot: Image.Image | None) -> None:
        """Identity row and job ``done`` commit together."""
        identity = dataclasses.replace(identity, name=job.name)
        try:
            self.queue.library.add(
                identity,
                headshot,
                job.consent,
                base_model=identity.metadata.get("base_model") or job.model,
                photo_sha256=job.photo_sha256,
                in_transaction=lambda con, record: self.queue.mark_done(con, job.id, record.id),
            )
        except JobCancelled:
            self.queue.end(job.id, "cancelled")
            return
        except StoryFaceError as exc:
            self.queue.fail(job.id, str(exc))
            return
        except Exception as exc:
            log.exception("storing the identity of job %s failed", job.id)
            self.queue.fail(job.id, f"internal error: {type(exc).__name__}: {exc}")
            return
        self.queue.discard_upload(job)
        log.info("job %s done: identity %r stored", job.id[:8], job.name)


class LibraryTrainer:
    """The default training function: :func:`storyface.api.learn_person` on a model kept loaded.

    Job params: ``face_encoder`` (default ``"dlib"``), ``face_encoder_model``, ``parsing_model``;
    every other key is a ``TrainConfig`` field.
    """

    def __init__(self, model: Any = None) -> None:
        self._model = model  # a LoadedModel; loaded on the first job when not given

    def __call__(self, job: JobRecord, progress: Progress, should_stop: Callable[[], bool]) -> tuple[Identity, Image.Image]:
        from .. import api

        model = self.model_for(job.model)
        learned = api.learn_person(
            model, job.photo_path, job.name, job.consent, job.params, progress=progress, should_stop=should_stop
        )
        return learned.identity, learned.headshot.image

    def model_for(self, source: str) -> Any:
        from ..models import load_model

        if self._model is None or self._model.source != source:
            self._model = None  # free the old pipeline before loading the next
            self._model = load_model(source)
        return self._model


def load_train_fn(spec: str) -> TrainFn:
    """``"package.module:name"`` -> the callable (a class is instantiated with no arguments)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"train function {spec!r} must look like 'package.module:function'")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"cannot load train function {spec!r}: {exc}") from exc
    fn = target() if isinstance(target, type) else target
    if not callable(fn):
        raise InputError(f"train function {spec!r} is not callable")
    return fn


def run_worker(
    data_dir: str | os.PathLike | None = None,
    *,
    once: bool = False,
    poll_s: float = 1.0,
    train_fn: TrainFn | None = None,
    parallel: int = 1,
) -> int:
    """Run queued jobs until stopped (SIGTERM/SIGINT stop it cleanly) or, with ``once``, until the queue is empty.

    ``train_fn`` (e.g. a cluster's trainer) replaces the default LibraryTrainer; ``parallel`` jobs run
    at once, each in its own thread (for a trainer whose GPUs are elsewhere: one per cluster trainer)."""
    from ..paths import data_dir as resolve

    queue = JobQueue(IdentityLibrary(resolve(data_dir)))
    spec = os.environ.get(TRAIN_FN_ENV)
    stop = threading.Event()
    train_fn = train_fn or (load_train_fn(spec) if spec else LibraryTrainer())
    workers = [Worker(queue, train_fn, stop_event=stop) for _ in range(max(1, parallel))]
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("worker %d on %s (%d at once)", workers[0].pid, queue.root, len(workers))

    def run(worker: Worker) -> None:
        if once:
            while not stop.is_set() and worker.run_once():
                pass
        else:
            worker.run_forever(stop, poll_s)

    if len(workers) == 1:
        run(workers[0])
        return 0
    threads = [threading.Thread(target=run, args=(w,), name=f"storyface-worker-{i}") for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):  # the main thread stays free to take the stop signal
        for t in threads:
            t.join(0.5)
    return 0
