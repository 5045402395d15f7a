"""Learn identities from one photo each: only the MLPs train; UNet, VAE and text encoders stay frozen.

A :class:`TrainingRun` is one training of one or more people: built once (priors and a bank of
augmented latents, one VAE pass), it gives the loss of a random draw, a probe loss, the optimizer
step (eager, or captured as one CUDA graph) and the identities. :func:`train_identities` is the loop
over it, top to bottom; the graph path, the benchmarks and the tests use the same object. Each step
draws a view, a timestep and a prompt template per subject, encodes the prompt with the MLP's rows in
place, and takes one AdamW step on the masked two-phase loss. Several subjects train together as one
UNet batch, each with its own MLPs. Inside the step the UNet's transformer blocks can run compiled
(faster kernels) and checkpointed (less memory for several people); see :mod:`.unet_modes`.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from ..errors import StoryFaceError
from ..limits import MAX_SEED, MAX_TRAIN_STEPS
from ..names import identity_token
from ..models import LoadedModel
from .augment import augment_bank
from .conditioning import add_time_ids, encode_prompts, token_ids, tokenize, unet_kwargs
from .graphed import can_graph, capture_step, restore
from .loss import eps_and_x0, loss_weights, two_phase_loss
from .prior import TOKENS, IdentityPrior, celeb_names, celeb_stats
from .templates import TEMPLATES
from .tokens import Identity, load_identities
from .unet_modes import BLOCK_TYPES, ensure_compile_cache, unet_modes, wants_checkpoint, wants_compile

log = logging.getLogger(__name__)

FAMILY_DEFAULTS = {"sdxl": {"lr": 1e-5, "alpha": 0.5}, "sd2": {"lr": 5e-5, "alpha": 0.6}}
PROBE_SEED = 12345  # the probe's fixed draws, the same before and after training

Progress = Callable[[int, int, float], None]  # (step, total, loss)
Step = Callable[[], torch.Tensor]


class TrainingCancelled(StoryFaceError):
    """The user stopped training; nothing was written."""


class TrainConfig(BaseModel):
    """StableIdentity's published defaults; ``None`` means "the base family's default".

    Validated with limits, since job params and API callers hand these in: an unknown key is an error.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(500, ge=1, le=MAX_TRAIN_STEPS)
    lr: float | None = Field(None, gt=0, le=1.0)
    alpha: float | None = Field(None, ge=0, le=1)
    hair_weight: float = Field(0.1, ge=0, le=1)
    weight_decay: float = Field(1e-2, ge=0, le=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    resolution: int | None = Field(None, ge=64, le=1024, multiple_of=8)
    bank_size: int = Field(48, ge=1, le=1024)
    mlp_hidden: int | None = Field(None, ge=1, le=8192)  # None: official width (2 x embedding width)
    max_grad_norm: float | None = Field(1.0, gt=0)  # per person, as the official clip_grad_norm_ (None: none)
    templates: tuple[str, ...] = TEMPLATES
    probe_samples: int = Field(4, ge=1, le=64)
    graph: bool | None = None  # replay the step as one CUDA graph; None: whenever the device is CUDA
    compile: bool | None = None  # torch.compile the UNet's transformer blocks in the step; None: off (unet_modes)
    checkpoint: bool | None = None  # recompute those blocks in the backward (memory for time); None: on
    #                                 CUDA when several people train together

    def resolved(self, model: LoadedModel) -> TrainConfig:
        defaults = FAMILY_DEFAULTS[model.family]
        return self.model_copy(
            update={
                "lr": self.lr if self.lr is not None else defaults["lr"],
                "alpha": self.alpha if self.alpha is not None else defaults["alpha"],
                "resolution": self.resolution or model.train_resolution,
            }
        )


@dataclass
class Subject:
    """One person to learn: the aligned headshot, its masks and the face encoder's features."""

    name: str
    image: Image.Image
    face_mask: np.ndarray  # [H, W] float32 in [0, 1]
    hair_mask: np.ndarray  # [H, W] float32 in [0, 1]
    features: np.ndarray  # [F] float32
    face_encoder: str = "dlib"
    photo_sha256: str = ""


@dataclass
class Batch:
    """Everything a step needs, on the device, built once before the loop."""

    latents: torch.Tensor  # [S, K, 4, h, w] augmented views, VAE-encoded once
    weights: torch.Tensor  # [S, K, 1, h, w] face/hair loss weights at latent size
    ids: dict[str, torch.Tensor]  # encoder key -> [S, T, 77] prompt-template token ids
    row_ids: dict[str, torch.Tensor]  # encoder key -> [S * 2] vocabulary ids of the identity tokens
    features: torch.Tensor  # [S, F]
    alphas_cumprod: torch.Tensor  # [T] on the device, so a step copies nothing from the host (graphable)
    scaling_factor: float  # the VAE's: the clean-latent phase of the loss is measured in unscaled latents
    time_ids: torch.Tensor | None  # [S, 6] SDXL micro-conditioning, built once; None for SD 2.x


@torch.no_grad()
def encode_bank(model: LoadedModel, images: np.ndarray, seed: int, chunk: int = 8) -> torch.Tensor:
    """uint8 views [K, H, W, 3] -> scaled latents [K, 4, H/8, W/8] in one VAE pass per chunk."""
    vae = model.pipe.vae
    gen = torch.Generator(model.device).manual_seed(seed)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)  # [K, 3, H, W] in [-1, 1]
    out = []
    for part in pixels.split(chunk):
        dist = vae.encode(part.to(model.device, vae.dtype)).latent_dist
        out.append(dist.sample(gen) * vae.config.scaling_factor)
    return torch.cat(out)


def augment_banks(subjects: list[Subject], cfg: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every subject's (views, masks), in threads: PIL releases the GIL and each bank has its own seed."""

    def bank(i: int) -> tuple[np.ndarray, np.ndarray]:
        s = subjects[i]
        return augment_bank(s.image, s.face_mask, s.hair_mask, cfg.resolution, cfg.bank_size, cfg.seed + i)

    with ThreadPoolExecutor(max_workers=max(1, min(len(subjects), os.cpu_count() or 1))) as pool:
        return list(pool.map(bank, range(len(subjects))))


class TrainingRun:
    """One training of ``subjects`` on ``model``: priors, the static batch, and what a step needs.

    Building it loads the untrained rows into the pipeline, so the tokenizers and tables hold the very
    ids inference will use.
    """

    def __init__(self, model: LoadedModel, subjects: list[Subject], config: TrainConfig = TrainConfig()) -> None:
        self.model, self.subjects = model, list(subjects)
        self.cfg = cfg = config.resolved(model)
        self.compile = wants_compile(cfg.compile)
        self.checkpoint = wants_checkpoint(cfg.checkpoint, len(self.subjects), model.device)
        self.block_types: tuple[str, ...] = BLOCK_TYPES  # which blocks compile/checkpoint acts on
        names = celeb_names()
        stats = {slot.key: celeb_stats(slot, names) for slot in model.encoders}
        self.priors: list[IdentityPrior] = []
        latents, weights = [], []
        for i, (subject, (images, masks)) in enumerate(zip(subjects, augment_banks(self.subjects, cfg))):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed + i)
                self.priors.append(IdentityPrior(len(subject.features), stats, cfg.mlp_hidden).to(model.device))
            lat = encode_bank(model, images, cfg.seed + i)  # [K, 4, h, w]
            m = torch.nn.functional.interpolate(torch.from_numpy(masks), size=lat.shape[-2:], mode="area")  # [K, 2, h, w]
            latents.append(lat)
            weights.append(loss_weights(m[:, :1], m[:, 1:], cfg.hair_weight).to(model.device))
        load_identities(model, self.identities())
        tokens = [identity_token(s.name) for s in subjects]
        prompts = [tpl.format(token) for token in tokens for tpl in cfg.templates]
        ids = {k: v.view(len(subjects), len(cfg.templates), -1) for k, v in tokenize(model, prompts).items()}
        row_ids = {
            slot.key: torch.cat([token_ids(slot, token, TOKENS) for token in tokens]).to(model.device)
            for slot in model.encoders
        }
        feats = torch.stack([torch.from_numpy(s.features).float() for s in subjects]).to(model.device)
        self.batch = Batch(
            torch.stack(latents), torch.stack(weights), ids, row_ids, feats,
            model.pipe.scheduler.alphas_cumprod.to(model.device),  # [T]
            float(model.pipe.vae.config.scaling_factor),
            add_time_ids(model, cfg.resolution, cfg.resolution, len(subjects)) if model.family == "sdxl" else None,
        )  # fmt: skip

    @property
    def parameters(self) -> list[torch.Tensor]:
        return [p for prior in self.priors for p in prior.parameters()]

    def rows(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Each encoder's substituted rows: (ids [S*2], values [S*2, D]) from every subject's MLP."""
        features = self.batch.features
        outs = [prior(features[i : i + 1]) for i, prior in enumerate(self.priors)]  # key -> [1, 2, D] each
        return {key: (ids, torch.cat([o[key][0] for o in outs])) for key, ids in self.batch.row_ids.items()}

    def loss(self, gen: torch.Generator) -> torch.Tensor:
        """Per-subject masked two-phase loss [S] for one random draw of view, template, timestep, noise."""
        model, batch, cfg = self.model, self.batch, self.cfg
        sched = model.pipe.scheduler
        n_subj, k = batch.latents.shape[:2]
        dev = model.device
        subj = torch.arange(n_subj, device=dev)
        view = torch.randint(0, k, (n_subj,), generator=gen, device=dev)
        tpl = torch.randint(0, len(cfg.templates), (n_subj,), generator=gen, device=dev)
        t = torch.randint(0, sched.config.num_train_timesteps, (n_subj,), generator=gen, device=dev)
        latents = batch.latents[subj, view]  # [S, 4, h, w]
        noise = torch.randn(latents.shape, generator=gen, device=dev, dtype=latents.dtype)
        acp = batch.alphas_cumprod[t]  # [S]
        noisy = acp.sqrt().view(-1, 1, 1, 1) * latents + (1 - acp).sqrt().view(-1, 1, 1, 1) * noise
        ids = {key: v[subj, tpl] for key, v in batch.ids.items()}  # [S, 77]
        embeds, pooled = encode_prompts(model, ids, self.rows())
        out = model.pipe.unet(noisy.to(model.dtype), t, **unet_kwargs(embeds, pooled, batch.time_ids)).sample
        eps, x0 = eps_and_x0(out, noisy, acp, sched.config.prediction_type)
        return two_phase_loss(
            eps, x0, noise, latents, t, batch.weights[subj, view], cfg.alpha, sched.config.num_train_timesteps,
            batch.scaling_factor,
        )  # fmt: skip

    def modes(self, compile: bool | None = None, checkpoint: bool | None = None) -> AbstractContextManager[None]:
        """The UNet as this run's step runs it (compiled and/or checkpointed blocks), put back on exit."""
        return unet_modes(
            self.model.pipe.unet,
            compile=self.compile if compile is None else compile,
            checkpoint=self.checkpoint if checkpoint is None else checkpoint,
            types=self.block_types,
        )

    @torch.no_grad()
    def probe(self) -> float:
        """Mean loss on a fixed set of draws: comparable before and after training, unlike step losses.

        Plain blocks: a few no-grad forwards are not worth a compile of their own.
        """
        gen = torch.Generator(self.model.device).manual_seed(PROBE_SEED)
        with self.modes(compile=False, checkpoint=False):
            return float(torch.stack([self.loss(gen) for _ in range(self.cfg.probe_samples)]).mean())

    def eager_step(self, capturable: bool = False) -> tuple[Step, torch.optim.Optimizer, torch.Generator]:
        """The plain step and what a graph capture needs of it: (step, optimizer, generator)."""
        cfg = self.cfg
        opt = torch.optim.AdamW(self.parameters, lr=cfg.lr, weight_decay=cfg.weight_decay, capturable=capturable)
        gen = torch.Generator(self.model.device).manual_seed(cfg.seed)

        def step() -> torch.Tensor:
            loss = self.loss(gen).sum()  # sum: each subject's MLPs get their own gradient
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm is not None:  # per person, so one person's gradient never scales another's
                for prior in self.priors:
                    torch.nn.utils.clip_grad_norm_(prior.parameters(), cfg.max_grad_norm, foreach=True)
            opt.step()
            return loss

        return step, opt, gen

    def step_fn(self) -> Step:
        """One AdamW step on the summed loss, with the UNet in this run's modes.

        On CUDA (config ``graph``) the step is captured as one CUDA graph after a warm-up step, which
        also compiles the blocks when ``compile`` is on; replays then run with no Python at all. If
        compiling or capturing fails and the setting was left to its default, the step falls back
        (compile off, then eager), slower but still right.
        """
        cfg = self.cfg
        use_graph = can_graph(self.model.device) if cfg.graph is None else cfg.graph
        if use_graph and not can_graph(self.model.device):
            raise StoryFaceError(f"graph=True needs a CUDA device, but the model is on {self.model.device}; leave graph unset")
        step, opt, gen = self.eager_step(capturable=use_graph)
        if self.compile:
            ensure_compile_cache()
        log.info("training step: graph %s, compiled blocks %s, checkpointed blocks %s", use_graph, self.compile, self.checkpoint)
        if not use_graph:
            return self._in_modes(step)
        params = self.parameters
        start = [p.detach().clone() for p in params]
        tries = [self.compile, False] if self.compile and cfg.compile is None else [self.compile]
        for i, compile in enumerate(tries):
            try:
                with self.modes(compile=compile):
                    return capture_step(step, params, opt, gen)
            except RuntimeError as exc:  # an op that cannot be captured or compiled: slower, still right
                restore(params, start, opt)
                gen.manual_seed(cfg.seed)
                if i + 1 < len(tries):
                    log.warning("compiling the training step failed, capturing it uncompiled: %s", exc)
                    self.compile = False
                    continue
                if cfg.graph:
                    raise
                log.warning("CUDA graph capture failed, training eagerly: %s", exc)
        return self._in_modes(step)

    def _in_modes(self, step: Step) -> Step:
        """The eager step with the UNet in this run's modes for each call (cheap attribute writes)."""

        def run() -> torch.Tensor:
            with self.modes():
                return step()

        return run

    @torch.no_grad()
    def identities(self, extra: dict[str, str] | None = None) -> list[Identity]:
        """Each subject's identity as its MLP now maps it (rows [2, D] per encoder, with provenance)."""
        model, cfg = self.model, self.cfg
        out = []
        for subject, prior in zip(self.subjects, self.priors):
            feats = torch.from_numpy(subject.features).float()[None].to(model.device)
            rows = {key: v[0].float().cpu() for key, v in prior(feats).items()}  # key -> [2, D]
            meta = {
                "base_model": model.source, "tiny": "true" if model.is_tiny else "false",
                "face_encoder": subject.face_encoder, "photo_sha256": subject.photo_sha256,
                "steps": str(cfg.steps), "lr": str(cfg.lr), "alpha": str(cfg.alpha),
                "resolution": str(cfg.resolution), "seed": str(cfg.seed),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **(extra or {}),
            }  # fmt: skip
            out.append(Identity(subject.name, model.family, rows, meta))
        return out


def train_identities(
    model: LoadedModel,
    subjects: list[Subject],
    config: TrainConfig = TrainConfig(),
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Identity]:
    """Learn one identity per subject (batched through one UNet) and load each into the pipeline."""
    run = TrainingRun(model, subjects, config)
    steps = run.cfg.steps
    start = run.probe()
    train_step = run.step_fn()
    for step in range(1, steps + 1):
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"training stopped by the user at step {step - 1} of {steps}")
        loss = train_step()
        if progress is not None:
            progress(step, steps, loss.item() / len(subjects))
    end = run.probe()
    log.info("probe loss %.4f -> %.4f over %d steps", start, end, steps)
    identities = run.identities({"probe_loss_start": f"{start:.6f}", "probe_loss_end": f"{end:.6f}"})
    load_identities(model, identities)  # same tokens, same vector count: rows written in place
    return identities


def train_identity(model: LoadedModel, subject: Subject, config: TrainConfig = TrainConfig(), **kwargs) -> Identity:
    """One person from one photo; see :func:`train_identities`."""
    return train_identities(model, [subject], config, **kwargs)[0]
