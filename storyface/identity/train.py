"""Learn identities from one photo each: only the MLPs train; UNet, VAE and text encoders stay frozen.

The loop reads top to bottom: build the priors and a bank of augmented latents (one VAE pass),
then each step draws a view, a timestep and a prompt template per subject, encodes the prompt with
the MLP's rows in place, and takes one AdamW step on the masked two-phase loss. Several subjects
train together as one UNet batch, each with its own MLPs.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict

from ..errors import StoryFaceError
from ..models import LoadedModel
from .augment import augment_bank
from .conditioning import add_time_ids, encode_prompts, token_ids, tokenize, unet_kwargs
from .graphed import can_graph, capture_step
from .loss import eps_and_x0, loss_weights, two_phase_loss
from .prior import TOKENS, IdentityPrior, celeb_names, celeb_stats
from .templates import TEMPLATES
from .tokens import Identity, identity_token, load_identities

log = logging.getLogger(__name__)

FAMILY_DEFAULTS = {"sdxl": {"lr": 1e-5, "alpha": 0.5}, "sd2": {"lr": 5e-5, "alpha": 0.6}}

Progress = Callable[[int, int, float], None]  # (step, total, loss)


class TrainingCancelled(StoryFaceError):
    """The user stopped training; nothing was written."""


class TrainConfig(BaseModel):
    """StableIdentity's published defaults; ``None`` means "the base family's default"."""

    model_config = ConfigDict(frozen=True)

    steps: int = 500
    lr: float | None = None
    alpha: float | None = None
    hair_weight: float = 0.1
    weight_decay: float = 1e-2
    seed: int = 0
    resolution: int | None = None
    bank_size: int = 48
    mlp_hidden: int | None = None  # None: the official width (2 x the embedding width); smaller only for tests
    max_grad_norm: float | None = 1.0  # per person, as the official clip_grad_norm_ (None: no clipping)
    templates: tuple[str, ...] = TEMPLATES
    probe_samples: int = 4
    graph: bool | None = None  # replay the step as one CUDA graph; None: whenever the device is CUDA

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
class _Batch:
    """Everything the step needs, on the device, built once before the loop."""

    latents: torch.Tensor  # [S, K, 4, h, w] augmented views, VAE-encoded once
    weights: torch.Tensor  # [S, K, 1, h, w] face/hair loss weights at latent size
    ids: dict[str, torch.Tensor]  # encoder key -> [S, T, 77] prompt-template token ids
    row_ids: dict[str, torch.Tensor]  # encoder key -> [S * 2] vocabulary ids of the identity tokens
    features: torch.Tensor  # [S, F]
    alphas_cumprod: torch.Tensor  # [T] on the device, so a step copies nothing from the host (graphable)
    scaling_factor: float  # the VAE's: the clean-latent phase of the loss is measured in unscaled latents
    time_ids: torch.Tensor | None  # [S, 6] SDXL micro-conditioning, built once; None for SD 2.x


@torch.no_grad()
def _encode_bank(model: LoadedModel, images: np.ndarray, seed: int, chunk: int = 8) -> torch.Tensor:
    """uint8 views [K, H, W, 3] -> scaled latents [K, 4, H/8, W/8] in one VAE pass per chunk."""
    vae = model.pipe.vae
    gen = torch.Generator(model.device).manual_seed(seed)
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)  # [K, 3, H, W] in [-1, 1]
    out = []
    for part in pixels.split(chunk):
        dist = vae.encode(part.to(model.device, vae.dtype)).latent_dist
        out.append(dist.sample(gen) * vae.config.scaling_factor)
    return torch.cat(out)


def _augment_banks(subjects: list[Subject], cfg: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every subject's (views, masks), in threads: PIL releases the GIL and each bank has its own seed."""

    def bank(i: int) -> tuple[np.ndarray, np.ndarray]:
        s = subjects[i]
        return augment_bank(s.image, s.face_mask, s.hair_mask, cfg.resolution, cfg.bank_size, cfg.seed + i)

    with ThreadPoolExecutor(max_workers=max(1, min(len(subjects), os.cpu_count() or 1))) as pool:
        return list(pool.map(bank, range(len(subjects))))


def _prepare(model: LoadedModel, subjects: list[Subject], cfg: TrainConfig) -> tuple[list[IdentityPrior], _Batch]:
    """Priors (one per subject, seeded) and the static tensors of the loop."""
    names = celeb_names()
    stats = {slot.key: celeb_stats(slot, names) for slot in model.encoders}
    res = cfg.resolution
    priors, latents, weights = [], [], []
    for i, (subject, (images, masks)) in enumerate(zip(subjects, _augment_banks(subjects, cfg))):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + i)
            prior = IdentityPrior(len(subject.features), stats, cfg.mlp_hidden).to(model.device)
        priors.append(prior)
        lat = _encode_bank(model, images, cfg.seed + i)  # [K, 4, h, w]
        m = torch.nn.functional.interpolate(torch.from_numpy(masks), size=lat.shape[-2:], mode="area")  # [K, 2, h, w]
        latents.append(lat)
        weights.append(loss_weights(m[:, :1], m[:, 1:], cfg.hair_weight).to(model.device))
    # Load the untrained rows so the tokenizers and tables hold the ids inference will use.
    load_identities(model, [_identity(s, p, model, cfg, {}) for s, p in zip(subjects, priors)])
    feats = torch.stack([torch.from_numpy(s.features).float() for s in subjects]).to(model.device)
    prompts = [tpl.format(identity_token(s.name)) for s in subjects for tpl in cfg.templates]
    ids = {k: v.view(len(subjects), len(cfg.templates), -1) for k, v in tokenize(model, prompts).items()}
    row_ids = {
        slot.key: torch.cat([token_ids(slot, identity_token(s.name), TOKENS) for s in subjects]).to(model.device)
        for slot in model.encoders
    }
    acp = model.pipe.scheduler.alphas_cumprod.to(model.device)  # [T]
    time_ids = add_time_ids(model, res, res, len(subjects)) if model.family == "sdxl" else None
    sf = float(model.pipe.vae.config.scaling_factor)
    return priors, _Batch(torch.stack(latents), torch.stack(weights), ids, row_ids, feats, acp, sf, time_ids)


def _rows(priors: list[IdentityPrior], features: torch.Tensor, batch: _Batch) -> dict[str, tuple]:
    """Each encoder's substituted rows: (ids [S*2], values [S*2, D]) from every subject's MLP."""
    outs = [prior(features[i : i + 1]) for i, prior in enumerate(priors)]  # key -> [1, 2, D] each
    return {key: (ids, torch.cat([o[key][0] for o in outs])) for key, ids in batch.row_ids.items()}


def _step_loss(
    model: LoadedModel, priors: list[IdentityPrior], batch: _Batch, cfg: TrainConfig, gen: torch.Generator
) -> torch.Tensor:
    """Per-subject masked two-phase loss [S] for one random draw of view, template, timestep, noise."""
    sched = model.pipe.scheduler
    n_subj, k = batch.latents.shape[:2]
    dev = model.device
    rows = torch.arange(n_subj, device=dev)
    view = torch.randint(0, k, (n_subj,), generator=gen, device=dev)
    tpl = torch.randint(0, len(cfg.templates), (n_subj,), generator=gen, device=dev)
    t = torch.randint(0, sched.config.num_train_timesteps, (n_subj,), generator=gen, device=dev)
    latents = batch.latents[rows, view]  # [S, 4, h, w]
    noise = torch.randn(latents.shape, generator=gen, device=dev, dtype=latents.dtype)
    acp = batch.alphas_cumprod[t]  # [S]
    noisy = acp.sqrt().view(-1, 1, 1, 1) * latents + (1 - acp).sqrt().view(-1, 1, 1, 1) * noise
    ids = {key: v[rows, tpl] for key, v in batch.ids.items()}  # [S, 77]
    embeds, pooled = encode_prompts(model, ids, _rows(priors, batch.features, batch))
    out = model.pipe.unet(noisy.to(model.dtype), t, **unet_kwargs(embeds, pooled, batch.time_ids)).sample
    eps, x0 = eps_and_x0(out, noisy, acp, sched.config.prediction_type)
    return two_phase_loss(
        eps, x0, noise, latents, t, batch.weights[rows, view], cfg.alpha, sched.config.num_train_timesteps,
        batch.scaling_factor,
    )


@torch.no_grad()
def probe_loss(model: LoadedModel, priors: list[IdentityPrior], batch: _Batch, cfg: TrainConfig) -> float:
    """Mean loss on a fixed set of draws: comparable before and after training, unlike step losses."""
    gen = torch.Generator(model.device).manual_seed(12345)
    return float(torch.stack([_step_loss(model, priors, batch, cfg, gen) for _ in range(cfg.probe_samples)]).mean())


def eager_step(
    model: LoadedModel, priors: list[IdentityPrior], batch: _Batch, cfg: TrainConfig, capturable: bool = False
) -> tuple[Callable[[], torch.Tensor], list[torch.Tensor], torch.optim.Optimizer, torch.Generator]:
    """The plain step and what a graph capture needs of it: (step, parameters, optimizer, generator)."""
    params = [p for prior in priors for p in prior.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, capturable=capturable)
    gen = torch.Generator(model.device).manual_seed(cfg.seed)

    def step() -> torch.Tensor:
        loss = _step_loss(model, priors, batch, cfg, gen).sum()  # sum: each subject's MLPs get their own gradient
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:  # per person, so one person's gradient never scales another's
            for prior in priors:
                torch.nn.utils.clip_grad_norm_(prior.parameters(), cfg.max_grad_norm, foreach=True)
        opt.step()
        return loss

    return step, params, opt, gen


def _make_step(
    model: LoadedModel, priors: list[IdentityPrior], batch: _Batch, cfg: TrainConfig
) -> Callable[[], torch.Tensor]:
    """One AdamW step on the summed loss (each subject's MLPs get their own gradient); graphed on CUDA."""
    use_graph = can_graph(model.device) if cfg.graph is None else cfg.graph
    if use_graph and not can_graph(model.device):
        raise StoryFaceError(f"graph=True needs a CUDA device, but the model is on {model.device}; leave graph unset")
    step, params, opt, gen = eager_step(model, priors, batch, cfg, capturable=use_graph)
    if not use_graph:
        return step
    try:
        return capture_step(step, params, opt, gen)
    except RuntimeError as exc:  # an op that cannot be captured: slower, still right
        if cfg.graph:
            raise
        log.warning("CUDA graph capture failed, training eagerly: %s", exc)
        gen.manual_seed(cfg.seed)
        return step


def train_identities(
    model: LoadedModel,
    subjects: list[Subject],
    config: TrainConfig = TrainConfig(),
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[Identity]:
    """Learn one identity per subject (batched through one UNet) and load each into the pipeline."""
    cfg = config.resolved(model)
    priors, batch = _prepare(model, subjects, cfg)
    start = probe_loss(model, priors, batch, cfg)
    train_step = _make_step(model, priors, batch, cfg)
    for step in range(1, cfg.steps + 1):
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"training stopped by the user at step {step - 1} of {cfg.steps}")
        loss = train_step()
        if progress is not None:
            progress(step, cfg.steps, loss.item() / len(subjects))
    end = probe_loss(model, priors, batch, cfg)
    log.info("probe loss %.4f -> %.4f over %d steps", start, end, cfg.steps)
    stats = {"probe_loss_start": f"{start:.6f}", "probe_loss_end": f"{end:.6f}"}
    identities = [_identity(s, p, model, cfg, stats) for s, p in zip(subjects, priors)]
    load_identities(model, identities)  # same tokens, same vector count: rows written in place
    return identities


def train_identity(model: LoadedModel, subject: Subject, config: TrainConfig = TrainConfig(), **kwargs) -> Identity:
    """One person from one photo; see :func:`train_identities`."""
    return train_identities(model, [subject], config, **kwargs)[0]


@torch.no_grad()
def _identity(subject: Subject, prior: IdentityPrior, model: LoadedModel, cfg: TrainConfig, extra: dict) -> Identity:
    feats = torch.from_numpy(subject.features).float()[None].to(model.device)
    rows = {key: v[0].float().cpu() for key, v in prior(feats).items()}  # key -> [2, D]
    meta = {
        "base_model": model.source,
        "tiny": "true" if model.is_tiny else "false",
        "face_encoder": subject.face_encoder,
        "photo_sha256": subject.photo_sha256,
        "steps": str(cfg.steps),
        "lr": str(cfg.lr),
        "alpha": str(cfg.alpha),
        "resolution": str(cfg.resolution),
        "seed": str(cfg.seed),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
    return Identity(subject.name, model.family, rows, meta)
