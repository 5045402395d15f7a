"""StableIdentity's masked two-phase diffusion loss, as pure tensor functions.

Early (noisy) timesteps decide layout, so there the loss is on the predicted noise; late ones decide
detail, so there it is on the predicted clean latent, where a face's features are directly visible.
Face pixels weigh 1, hair ``hair_weight``, everything else 0: only the person is learned. StoryFace's
masks are soft (landmark geometry, blurred edges); the official ones are thresholded face-parsing masks.
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
    scaling_factor: float,
) -> torch.Tensor:
    """Per-sample masked loss [B]: noise target where t > alpha*T, clean-latent target otherwise.

    As in the official code (train.py): the clean-latent phase compares latents divided by the VAE's
    ``scaling_factor`` (the VAE's own latent units), which weighs that phase 1/sf^2 (~30 for SD 2.x,
    ~59 for SDXL) against the noise phase; and both are means over every element, masked ones included
    (``F.mse_loss(w * pred, w * target)`` with face 1, hair 0.1), not normalised by the mask's area.
    """
    noise_phase = (timesteps > alpha * num_train_timesteps).view(-1, 1, 1, 1)
    x0_err = (x0_pred - latents.float()) / scaling_factor
    err = torch.where(noise_phase, eps_pred - noise.float(), x0_err) ** 2  # [B, C, H, W]
    return (err * weights.float()).mean(dim=(1, 2, 3))
