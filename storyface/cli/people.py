"""``storyface train | ids ... | jobs ...``: learn people and look after the library and its jobs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from .common import (
    DEFAULT_MODEL,
    ClusterOpt,
    ConsentOpt,
    DataDirOpt,
    JsonOpt,
    ModelOpt,
    connect,
    friendly_errors,
    library,
    load,
    note,
    out,
    progress,
    say,
)

ids_app = typer.Typer(no_args_is_help=True, help="The identity library: list, show, rename, delete, export, import, recover.")
jobs_app = typer.Typer(no_args_is_help=True, help="Training jobs: list, cancel, work.")
NameArg = Annotated[str, typer.Argument(help="A person's name as the library has it (case and spacing do not matter).")]


@friendly_errors
def train(
    photo: Annotated[Path, typer.Argument(help="One photo showing exactly one face.")],
    name: Annotated[str, typer.Option(help="The person's full name, e.g. 'Grace Hopper'.")],
    consent_by: Annotated[
        Optional[str],
        typer.Option("--consent-by", help="Required: who confirmed the person in the photo agreed to have their face learned."),
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    steps: Annotated[int, typer.Option(min=1, help="Training steps (StableIdentity: ~500).")] = 500,
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Also write the identity file here (.safetensors).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the MLPs' start and every random draw.")] = 0,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default: 1e-5 SDXL, 5e-5 SD 2.x).")] = None,
    encoder: Annotated[str, typer.Option(help="Face encoder: dlib (offline), vit or arcface.")] = "dlib",
    encoder_model: Annotated[
        Optional[str],
        typer.Option(envvar="STORYFACE_FACE_ENCODER_MODEL", help="Model folder or hub id (vit), or .onnx file (arcface)."),
    ] = None,
    parsing_model: Annotated[
        Optional[str], typer.Option(help="A face-parsing segmentation model for the face/hair masks (default: landmarks).")
    ] = None,
    queue: Annotated[bool, typer.Option("--queue", help="Queue a job for `storyface jobs work` instead of training now.")] = False,
    data_dir: DataDirOpt = None,
) -> None:
    """Learn an identity from one photo, keep it in the library and optionally write it as a file."""
    from .. import api

    if out_file is not None and out_file.suffix != ".safetensors":
        raise typer.BadParameter("--out must end in .safetensors")
    settings = {"steps": steps, "seed": seed, "lr": lr, "face_encoder": encoder,
                "face_encoder_model": encoder_model, "parsing_model": parsing_model}  # fmt: skip
    settings = {k: v for k, v in settings.items() if v is not None}
    person = api.prepare_person(photo, name, consent_by, settings)  # bad input fails before anything is written
    lib = library(data_dir)
    if queue:
        job = api.queue_person(lib, photo, model, person)
        say(f"queued job {job.id[:8]} for {job.name}; run `storyface jobs work` to train it")
        return
    api.require_room(lib, person)  # a full disk or a read-only folder is found before the model loads
    loaded = load(model)
    t0 = time.perf_counter()
    with progress() as bar:
        task = bar.add_task(f"training {person.subject.name}", total=steps, info="")
        record, learned = api.train_person(
            loaded, lib, person, progress=lambda s, n, loss: bar.update(task, completed=s, info=f"loss {loss:.4f}")
        )
    if out_file is not None:
        say(f"wrote {lib.export(record.name, out_file, overwrite=True)}")
    meta = learned.identity.metadata
    say(
        f"learned {record.name} ({record.family}, token {record.token}) in {time.perf_counter() - t0:.1f}s; "
        f"probe loss {float(meta['probe_loss_start']):.4f} -> {float(meta['probe_loss_end']):.4f}; "
        f"library: {record.embedding_path}"
    )
    if loaded.is_tiny:
        note("note", "this identity was trained on the tiny test model and only works with it")


@ids_app.command("list")
@friendly_errors
def ids_list(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Every identity in the library."""
    lib = library(data_dir, readonly=True)
    records = lib.list()
    lost = lib.unindexed()
    if lost:
        note("warning", f"{len(lost)} identity folder(s) in {lib.identities_dir} are not in the database "
             "(restored from an older backup?); `storyface ids recover` adds them back")  # fmt: skip
    if as_json:
        out.print_json(json.dumps([r.to_dict() for r in records], default=str))
        return
    table = Table("name", "token", "family", "model", "encoder", "created", "consent", title=f"{len(records)} identities")
    for r in records:
        table.add_row(r.name, r.token, r.family, str(r.base_model), str(r.face_encoder), r.created_at, r.consent_by or "-")
    out.print(table)


@ids_app.command("show")
@friendly_errors
def ids_show(name: NameArg, data_dir: DataDirOpt = None) -> None:
    """One identity's record and files."""
    out.print_json(json.dumps(library(data_dir, readonly=True).get(name).to_dict(), default=str))


@ids_app.command("rename")
@friendly_errors
def ids_rename(
    old: NameArg, new: Annotated[str, typer.Argument(help="The new full name.")], data_dir: DataDirOpt = None
) -> None:
    """Give an identity another name (its trigger token follows the name)."""
    record = library(data_dir).rename(old, new)
    say(f"renamed {old!r} to {record.name} (token {record.token})")


@ids_app.command("delete")
@friendly_errors
def ids_delete(name: NameArg, data_dir: DataDirOpt = None) -> None:
    """Remove an identity and its files (headshot included)."""
    record = library(data_dir).delete(name)
    say(f"deleted {record.name!r}")


@ids_app.command("export")
@friendly_errors
def ids_export(
    name: NameArg,
    dest: Annotated[Path, typer.Argument(help="A .safetensors file, or a folder to write <token>.safetensors into.")],
    data_dir: DataDirOpt = None,
) -> None:
    """Write the identity as a standard embedding file other tools read (diffusers, A1111, ComfyUI)."""
    say(f"wrote {library(data_dir, readonly=True).export(name, dest)}")


@ids_app.command("import")
@friendly_errors
def ids_import(
    path: Annotated[Path, typer.Argument(help="A .safetensors textual-inversion file (never a pickle).")],
    consent_by: ConsentOpt = None,
    name: Annotated[Optional[str], typer.Option(help="Name to store it under (default: the file's).")] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Add an embedding file to the library, under the same rules as a trained identity (consent included)."""
    from .. import api

    record = api.import_identity(library(data_dir), path, consent_by, name=name)
    say(f"imported {record.name} ({record.family}, token {record.token})")


@ids_app.command("recover")
@friendly_errors
def ids_recover(data_dir: DataDirOpt = None) -> None:
    """Rebuild the database rows of identity folders it lost (a restore, a missing file); deletes nothing."""
    lib = library(data_dir)
    say(f"{len(lib.notes)} folder(s) recovered; the library holds {len(lib.list())} identities")


@jobs_app.command("list")
@friendly_errors
def jobs_list(data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Queued, running (with step and loss), done and failed jobs."""
    from ..api import JobQueue

    jobs = JobQueue(library(data_dir)).list()
    if as_json:
        out.print_json(json.dumps([j.to_dict() for j in jobs], default=str))
        return
    table = Table("id", "name", "state", "progress", "loss", "error", title=f"{len(jobs)} jobs")
    for j in jobs:
        steps = f"{j.step}/{j.total}" if j.total else "-"
        loss = f"{j.loss:.4f}" if j.loss is not None else "-"
        table.add_row(j.id[:8], j.name, j.state, steps, loss, j.error or "")
    out.print(table)


@jobs_app.command("cancel")
@friendly_errors
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="The job's id, or its first few (4+) characters.")], data_dir: DataDirOpt = None
) -> None:
    """Stop a job: a queued one at once, a running one at its next step."""
    from ..api import JobQueue

    job = JobQueue(library(data_dir)).cancel(job_id)
    say(f"job {job.id[:8]} ({job.name}): {job.state}{' (cancel requested)' if job.cancel_requested else ''}")


@jobs_app.command("work")
@friendly_errors
def jobs_work(
    data_dir: DataDirOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Exit when the queue is empty.")] = False,
    poll: Annotated[float, typer.Option(min=0.05, max=60, help="Seconds between queue checks when idle.")] = 1.0,
    cluster: ClusterOpt = None,
) -> None:
    """Run queued training jobs one at a time (one worker per GPU, with CUDA_VISIBLE_DEVICES; one on CPU)."""
    from ..library.worker import run_worker

    trainer = connect(cluster)[1] if cluster else None  # with a cluster: as many jobs at once as it has trainers
    parallel = trainer.parallel_jobs() if trainer is not None else 1
    raise typer.Exit(run_worker(data_dir, once=once, poll_s=poll, train_fn=trainer, parallel=parallel))
