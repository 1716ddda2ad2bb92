"""The diffusion training task: a UNet denoiser with a VP (default) or EDM schedule.

Loss: VP ``E_{x0, t ~ U{0..T-1}, eps} |eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t) - eps|^2``;
EDM: the preconditioned, ``lambda(sigma)``-weighted denoising loss with log-normal ``sigma``.
Exported weights are the EMA average when ``train.ema > 0``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..priors.diffusion import DiffusionPrior
from .config import DiffusionModel


class DiffusionTask:
    """Builds, trains and samples a :class:`DiffusionPrior`.

    Args:
        model_cfg: the ``model`` section.
        image_size: ``S`` of the training images.
        channels: image channels.
        sample_steps: sampler steps for sample grids (DDIM, ``eta = 0``).
    """

    kind = "diffusion"
    arch = DiffusionPrior.arch

    def __init__(self, model_cfg: DiffusionModel, *, image_size: int, channels: int = 1, sample_steps: int = 50):
        self.cfg = model_cfg
        self.image_size = image_size
        self.channels = channels
        self.sample_steps = sample_steps

    def arch_params(self) -> dict[str, Any]:
        return self.cfg.arch_params()

    def build(self, generator: torch.Generator) -> DiffusionPrior:
        prior = DiffusionPrior.build(
            self.arch_params(), image_size=self.image_size, channels=self.channels, generator=generator
        )
        prior.net.checkpointing = self.cfg.checkpointing  # run-time only: not in arch_params
        return prior

    def loss(
        self, model: DiffusionPrior, images: torch.Tensor, generator: torch.Generator, step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss on ``[0, 1]`` images ``(B, C, S, S)``; no extra parts."""
        return model.loss(images, generator), {}

    @torch.no_grad()
    def val_loss(self, model: DiffusionPrior, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The same loss on held-out images (the caller passes a freshly seeded generator)."""
        return model.loss(images, generator)

    @torch.no_grad()
    def samples(self, model: DiffusionPrior, n: int, generator: torch.Generator) -> torch.Tensor:
        return model.sample(n, steps=self.sample_steps, generator=generator)

    def extra(self) -> dict[str, Any]:
        return {"sampler": {"name": "ddim", "steps": self.sample_steps, "eta": 0.0}}
