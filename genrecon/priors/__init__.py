"""Generative priors: networks, noise schedules and their self-describing checkpoints.

- :class:`DiffusionPrior` (kind ``"diffusion"``): a UNet denoiser with a VP (default) or EDM schedule;
  ``x0(x_t, t)``, ``eps(x_t, t)``, ``schedule.timesteps(n)``/``schedule.step(...)``, ``sample(n, steps)``.
- :class:`ConvVAE` (kind ``"generator"``): ``decode(z)`` in ``(0, 1)``, ``encode(x) -> (mu, logvar)``.
- :func:`save_prior` / :func:`load_prior`: the checkpoint contract; ``pretrained:<name>`` names shipped files.
"""

from .checkpoint import ARCHS, build_prior, load_prior, read_checkpoint, save_prior
from .pretrained import available as available_pretrained
from .pretrained import model_card, render_model_card, resolve_prior_path
from .diffusion import DiffusionPrior
from .schedules import EDMSchedule, NoiseSchedule, VPSchedule, make_schedule
from .unet import UNet
from .vae import ConvVAE, kl_divergence

__all__ = [
    "ARCHS",
    "ConvVAE",
    "DiffusionPrior",
    "EDMSchedule",
    "NoiseSchedule",
    "UNet",
    "VPSchedule",
    "available_pretrained",
    "build_prior",
    "kl_divergence",
    "load_prior",
    "make_schedule",
    "model_card",
    "read_checkpoint",
    "render_model_card",
    "resolve_prior_path",
    "save_prior",
]
