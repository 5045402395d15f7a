"""StableIdentity's masked two-phase diffusion loss, as pure tensor functions.

Early (noisy) timesteps decide layout, so there the loss is on the predicted noise; late ones decide
detail, so there it is on the predicted clean latent, where a face's features are directly visible.
Face pixels weigh 1, hair ``hair_weight``, everything else 0: only the person is learned.
"""

from __future__ import annotations

import torch


def eps_and_x0(
    model_output: torch.Tensor, noisy: torch.Tensor, alphas_cumprod_t: torch.Tensor, prediction_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted noise, predicted clean latent), whatever the UNet predicts. Shapes [B, C, H, W]."""
    a = alphas_cumprod_t.float().view(-1, 1, 1, 1)
    sa, s1a = a.sqrt(), (1 - a).sqrt()
    out, x = model_output.float(), noisy.float()
    if prediction_type == "epsilon":
        return out, (x - s1a * out) / sa
    if prediction_type == "v_prediction":
        return s1a * x + sa * out, sa * x - s1a * out
    if prediction_type == "sample":
        return (x - sa * out) / s1a, out
    raise ValueError(f"unsupported prediction_type {prediction_type!r}")


def loss_weights(face: torch.Tensor, hair: torch.Tensor, hair_weight: float) -> torch.Tensor:
    """Per-pixel weight [B, 1, H, W]: face 1, hair ``hair_weight`` (where not face), background 0."""
    return (face + hair_weight * hair * (1 - face)).clamp(0, 1)


def two_phase_loss(
    eps_pred: torch.Tensor,
    x0_pred: torch.Tensor,
    noise: torch.Tensor,
    latents: torch.Tensor,
    timesteps: torch.Tensor,
    weights: torch.Tensor,
    alpha: float,
    num_train_timesteps: int,
) -> torch.Tensor:
    """Per-sample masked loss [B]: noise target where t > alpha*T, clean-latent target otherwise."""
    noise_phase = (timesteps > alpha * num_train_timesteps).view(-1, 1, 1, 1)
    err = torch.where(noise_phase, eps_pred - noise.float(), x0_pred - latents.float()) ** 2  # [B, C, H, W]
    w = weights.float()
    denom = (w.sum(dim=(1, 2, 3)) * err.shape[1]).clamp_min(1e-6)  # [B]
    return (err * w).sum(dim=(1, 2, 3)) / denom
