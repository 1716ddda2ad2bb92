"""The generator training task: a convolutional VAE whose decoder is the prior ``G(z)``.

Loss per image (``P`` pixels): ``(sum l(x, G(z)) + beta_n KL(q(z|x) || N(0, I))) / P`` with ``z`` drawn by
reparameterisation and ``beta_n = beta min(1, n / warmup)`` at step ``n`` (KL warm-up avoids posterior
collapse early on). The validation loss uses the full ``beta``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..priors.vae import ConvVAE
from .config import GeneratorModel


class GeneratorTask:
    """Builds, trains and samples a :class:`ConvVAE`.

    Args:
        model_cfg: the ``model`` section.
        image_size: ``S`` of the training images.
        channels: image channels.
    """

    kind = "generator"
    arch = ConvVAE.arch

    def __init__(self, model_cfg: GeneratorModel, *, image_size: int, channels: int = 1, sample_steps: int = 0):
        self.cfg = model_cfg
        self.image_size = image_size
        self.channels = channels

    def arch_params(self) -> dict[str, Any]:
        return self.cfg.arch_params()

    def build(self, generator: torch.Generator) -> ConvVAE:
        vae = ConvVAE.build(self.arch_params(), image_size=self.image_size, channels=self.channels, generator=generator)
        vae.checkpointing = self.cfg.checkpointing  # run-time only: not in arch_params
        return vae

    def beta_at(self, step: int) -> float:
        """``beta_n = beta min(1, n / warmup)``."""
        warm = self.cfg.beta_warmup_steps
        return self.cfg.beta * (1.0 if warm == 0 else min(1.0, step / warm))

    def loss(
        self, model: ConvVAE, images: torch.Tensor, generator: torch.Generator, step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return model.loss(images, generator, beta=self.beta_at(step), recon=self.cfg.recon)

    @torch.no_grad()
    def val_loss(self, model: ConvVAE, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return model.loss(images, generator, beta=self.cfg.beta, recon=self.cfg.recon)[0]

    @torch.no_grad()
    def samples(self, model: ConvVAE, n: int, generator: torch.Generator) -> torch.Tensor:
        return model.sample(n, generator=generator)

    def extra(self) -> dict[str, Any]:
        return {"latent": {"dim": self.cfg.latent_dim, "prior": "standard normal"},
                "output": "sigmoid, (0, 1)", "loss": {"recon": self.cfg.recon, "beta": self.cfg.beta}}
