"""A convolutional VAE whose decoder ``G(z)`` is the generator prior of latent-inversion reconstructors.

Encoder: ``n`` stride-2 conv stages down to ``S / 2^n``, then linear maps to ``mu`` and ``log sigma^2``.
Decoder: linear to the coarse grid, ``n`` nearest-upsample + conv stages, a 3x3 conv and a **sigmoid**, so
``G(z)`` lies in ``(0, 1)``, the image range of the training data. The latent prior is ``z ~ N(0, I)``.

With ``latent_channels > 0`` the latent is *spatial*: ``z`` is a ``latent_channels x S/2^n x S/2^n`` grid made
by 1x1 convolutions of the coarse features (and read back by a 3x3 convolution) instead of a vector made by
linear maps. Each latent cell then describes one ``2^n x 2^n`` patch, so the code generalises to slices the
model has not seen far better than a global vector learnt from a few heads (the shipped generators use it;
``latent_dim`` must then equal ``latent_channels x (S/2^n)^2``). Outside the class latents are always flat
``(B, latent_dim)``; :meth:`ConvVAE.decode` also takes ``(B, *latent_shape)``.

``vae.checkpointing = True`` (training's ``model.checkpointing``) recomputes each stage in the backward pass
(:func:`~genrecon.priors.unet.run_unit`); a run-time switch, not in :meth:`ConvVAE.arch_params`.

Loss per image (``P`` pixels): ``(sum_pixels l(x, G(z)) + beta KL(q(z|x) || N(0, I))) / P`` with ``l`` the
squared error (``recon="mse"``) or binary cross-entropy (``recon="bce"``), ``z = mu + sigma * e``.

Example:
    >>> import torch
    >>> vae = ConvVAE.build({"latent_dim": 8, "base_channels": 8, "channel_mults": [1, 2]}, image_size=16,
    ...                     generator=torch.Generator().manual_seed(0))
    >>> vae.decode(torch.zeros(3, 8)).shape
    torch.Size([3, 1, 16, 16])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeError
from .unet import _norm, materialise, run_unit


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, e^logvar) || N(0, I)) = 0.5 sum(mu^2 + e^logvar - 1 - logvar)`` per sample, shape ``(B,)``."""
    return 0.5 * torch.sum(mu**2 + torch.exp(logvar) - 1 - logvar, dim=1)


def spatial_latent_dim(latent_channels: int, image_size: int, n_stages: int) -> int:
    """Entries of a spatial latent: ``latent_channels x (image_size / 2^n_stages)^2``."""
    return latent_channels * (image_size // 2**n_stages) ** 2


class _Stage(nn.Module):
    """conv (stride 2 or after upsampling) -> GN -> SiLU -> conv -> GN -> SiLU."""

    def __init__(self, c_in: int, c_out: int, groups: int, down: bool):
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=2 if down else 1, padding=1)
        self.norm1 = _norm(c_out, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm2 = _norm(c_out, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.down:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.silu(self.norm1(self.conv1(x)))
        return F.silu(self.norm2(self.conv2(x)))


class ConvVAE(nn.Module):
    """Convolutional VAE with decoder ``G: R^latent_dim -> (0, 1)^(C x S x S)``.

    Args:
        image_size: square image size ``S``; a multiple of ``2^len(channel_mults)``.
        channels: image channels.
        latent_dim: size of ``z``.
        base_channels: width of the finest stage.
        channel_mults: width multiplier per stage, finest first; one stride-2 step each.
        groups: GroupNorm groups.
        latent_channels: 0 for a latent vector of ``latent_dim`` entries; > 0 for a spatial latent grid of
            this many channels at the coarse resolution (then ``latent_dim = latent_channels * coarse^2``).
    """

    kind = "generator"
    arch = "conv-vae"

    def __init__(
        self,
        *,
        image_size: int,
        channels: int = 1,
        latent_dim: int = 128,
        base_channels: int = 16,
        channel_mults: tuple[int, ...] = (1, 2, 4, 8, 8),
        groups: int = 8,
        latent_channels: int = 0,
    ):
        super().__init__()
        n = len(channel_mults)
        if image_size % (2**n) or image_size < 2**n:
            raise ConfigError(
                f"VAE image size {image_size} must be a multiple of 2^{n} = {2**n} (one halving per "
                f"channel_mults entry): use fewer channel_mults or another size"
            )
        self.config: dict[str, Any] = {
            "latent_dim": int(latent_dim),
            "base_channels": int(base_channels),
            "channel_mults": [int(m) for m in channel_mults],
            "groups": int(groups),
        }
        if latent_channels:
            self.config["latent_channels"] = int(latent_channels)
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.latent_dim = int(latent_dim)
        self.checkpointing = False  # run-time switch (module docstring), not in config
        widths = [base_channels * m for m in channel_mults]
        self.coarse = image_size // 2**n
        self.coarse_channels = widths[-1]
        enc, c = [], channels
        for w in widths:
            enc.append(_Stage(c, w, groups, down=True))
            c = w
        self.encoder = nn.Sequential(*enc)
        self.latent_channels = int(latent_channels)
        if self.latent_channels < 0:
            raise ConfigError(f"VAE latent_channels must be >= 0, got {latent_channels}")
        if self.latent_channels:
            grid = spatial_latent_dim(self.latent_channels, self.image_size, n)
            if self.latent_dim != grid:
                raise ConfigError(
                    f"VAE with latent_channels {self.latent_channels} has a {self.latent_channels}x{self.coarse}x"
                    f"{self.coarse} latent grid: set latent_dim: {grid} (got {self.latent_dim})"
                )
            self.to_mu = nn.Conv2d(widths[-1], self.latent_channels, 1)
            self.to_logvar = nn.Conv2d(widths[-1], self.latent_channels, 1)
            self.from_z = nn.Conv2d(self.latent_channels, widths[-1], 3, padding=1)
        else:
            flat = widths[-1] * self.coarse**2
            self.to_mu = nn.Linear(flat, latent_dim)
            self.to_logvar = nn.Linear(flat, latent_dim)
            self.from_z = nn.Linear(latent_dim, flat)
        dec = []
        for w in reversed(widths):
            dec.append(_Stage(c, w, groups, down=False))
            c = w
        self.decoder = nn.Sequential(*dec)
        self.conv_out = nn.Conv2d(c, channels, 3, padding=1)

    @classmethod
    def build(
        cls,
        arch_params: dict[str, Any],
        *,
        image_size: int,
        channels: int = 1,
        generator: torch.Generator | None = None,
    ) -> "ConvVAE":
        """Build from :meth:`arch_params`; initialised from ``generator`` (None: left empty for loading)."""
        params = dict(arch_params)
        if "channel_mults" in params:
            params["channel_mults"] = tuple(params["channel_mults"])
        return materialise(lambda: cls(image_size=image_size, channels=channels, **params), generator)

    def arch_params(self) -> dict[str, Any]:
        """JSON-able parameters that :meth:`build` takes back."""
        return dict(self.config)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """Shape of one latent code: ``(latent_dim,)``, or ``(latent_channels, coarse, coarse)`` when spatial."""
        if self.latent_channels:
            return (self.latent_channels, self.coarse, self.coarse)
        return (self.latent_dim,)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each ``(B, latent_dim)``, of ``q(z | x)`` for images ``(B, C, S, S)`` in ``[0, 1]``."""
        expected = (self.channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise ShapeError(f"VAE encoder expects images (B, {', '.join(map(str, expected))}); got {tuple(x.shape)}")
        h = self._stages(self.encoder, x)
        if not self.latent_channels:
            h = h.flatten(1)
        return self.to_mu(h).flatten(1), self.to_logvar(h).flatten(1)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid decoder output ``(B, C, S, S)`` for latents ``(B, latent_dim)`` or ``(B, *latent_shape)``."""
        shape = self.latent_shape
        if not ((z.ndim == 2 and z.shape[1] == self.latent_dim) or tuple(z.shape[1:]) == shape):
            want = f"(B, {self.latent_dim})" + (f" or (B, {', '.join(map(str, shape))})" if len(shape) > 1 else "")
            raise ShapeError(f"VAE decoder expects latents {want}; got {tuple(z.shape)}")
        if self.latent_channels:
            h = self.from_z(z.reshape(-1, *shape))
        else:
            h = self.from_z(z.reshape(-1, self.latent_dim)).reshape(-1, self.coarse_channels, self.coarse, self.coarse)
        return self.conv_out(self._stages(self.decoder, F.silu(h)))

    def _stages(self, stages: nn.Sequential, h: torch.Tensor) -> torch.Tensor:
        for stage in stages:
            h = run_unit(stage, h, checkpointing=self.checkpointing)
        return h

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z) = sigmoid(decoder(z))``: images ``(B, C, S, S)`` in ``(0, 1)``; differentiable in ``z``."""
        return torch.sigmoid(self.decode_logits(z))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`decode`."""
        return self.decode(z)

    def sample_latent(self, n: int, generator: torch.Generator | None, *, device=None, dtype=None) -> torch.Tensor:
        """``z ~ N(0, I)`` of shape ``(n, latent_dim)`` drawn on ``generator``'s device, returned on the model's."""
        p = next(self.parameters())
        gdev = generator.device if generator is not None else p.device
        z = torch.randn((n, self.latent_dim), generator=generator, device=gdev, dtype=dtype or p.dtype)
        return z.to(device or p.device)

    @torch.no_grad()
    def sample(self, n: int, steps: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``G(z)`` for ``n`` prior draws: ``(n, C, S, S)`` in ``(0, 1)`` (``steps`` is ignored)."""
        return self.decode(self.sample_latent(n, generator))

    def loss(
        self,
        images: torch.Tensor,
        generator: torch.Generator,
        *,
        beta: float,
        recon: str = "mse",
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Negative ELBO-style loss on ``[0, 1]`` images ``(B, C, S, S)``; see the module docstring.

        Returns:
            ``(loss, {"recon": ..., "kl": ...})``: scalar tensors (the parts detached), per-image sums divided
            by the pixel count.
        """
        mu, logvar = self.encode(images)
        e = torch.randn(mu.shape, generator=generator, device=generator.device, dtype=mu.dtype).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * e
        logits = self.decode_logits(z)
        pixels = images[0].numel()
        if recon == "mse":
            rec = torch.sum((torch.sigmoid(logits) - images) ** 2, dim=(1, 2, 3))
        elif recon == "bce":
            rec = F.binary_cross_entropy_with_logits(logits, images, reduction="none").sum(dim=(1, 2, 3))
        else:
            raise ConfigError(f"VAE recon loss must be 'mse' or 'bce'; got {recon!r}")
        kl = kl_divergence(mu, logvar)
        loss = torch.mean(rec + beta * kl) / pixels
        return loss, {"recon": rec.mean().detach() / pixels, "kl": kl.mean().detach() / pixels}
