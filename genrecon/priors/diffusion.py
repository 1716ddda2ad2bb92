"""The diffusion prior: a denoiser network with its noise schedule (:mod:`.schedules`), the prior DPS consumes."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from ..errors import ConfigError
from .schedules import NoiseSchedule, TimeLike, make_schedule, randn_like_from
from .unet import UNet, materialise


class DiffusionPrior(nn.Module):
    """A denoiser network with its noise schedule: the prior a DPS reconstructor consumes.

    Args:
        net: the network ``F(x, label)``.
        schedule: a :class:`NoiseSchedule` (VP by default in configs).
        image_size: the square image size it was trained on.
        channels: image channels.

    Example:
        >>> import torch
        >>> prior = DiffusionPrior.build(
        ...     {"unet": {"base_channels": 8, "channel_mults": [1, 2], "attention_levels": []},
        ...      "schedule": {"name": "vp", "timesteps": 50}},
        ...     image_size=16, channels=1, generator=torch.Generator().manual_seed(0))
        >>> prior.sample(2, steps=5, generator=torch.Generator().manual_seed(1)).shape
        torch.Size([2, 1, 16, 16])
    """

    kind = "diffusion"
    arch = "unet-diffusion"

    def __init__(self, net: UNet, schedule: NoiseSchedule, *, image_size: int, channels: int = 1):
        super().__init__()
        self.net = net
        self.schedule = schedule
        self.image_size = int(image_size)
        self.channels = int(channels)

    @classmethod
    def build(
        cls,
        arch_params: dict[str, Any],
        *,
        image_size: int,
        channels: int = 1,
        generator: torch.Generator | None = None,
    ) -> "DiffusionPrior":
        """Build from ``{"unet": {...}, "schedule": {...}}``; initialised from ``generator`` (None: empty)."""
        unet_params = dict(arch_params.get("unet", {}))
        unet_params["channels"] = channels
        for key in ("channel_mults", "attention_levels"):
            if key in unet_params:
                unet_params[key] = tuple(unet_params[key])
        net = materialise(lambda: UNet(**unet_params), generator)
        schedule = make_schedule(**dict(arch_params.get("schedule", {"name": "vp"})))
        if image_size % net.size_multiple:
            raise ConfigError(
                f"image size {image_size} is not a multiple of {net.size_multiple} (2^(levels-1) x patch_size): "
                "use fewer channel_mults or another size"
            )
        return cls(net, schedule, image_size=image_size, channels=channels)

    def arch_params(self) -> dict[str, Any]:
        """JSON-able parameters that :meth:`build` takes back."""
        unet = {k: v for k, v in self.net.config.items() if k != "channels"}
        return {"unet": unet, "schedule": self.schedule.params()}

    # -- intensity mapping -------------------------------------------------------------------------
    @staticmethod
    def to_model(images: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` images -> diffusion space ``[-1, 1]``: ``2 x - 1``."""
        return 2 * images - 1

    @staticmethod
    def to_image(x: torch.Tensor) -> torch.Tensor:
        """Diffusion space -> image range: ``(x + 1) / 2`` (not clamped)."""
        return (x + 1) / 2

    # -- the denoiser interface --------------------------------------------------------------------
    def predict(self, x_t: torch.Tensor, t: TimeLike) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict ``(x0_hat, eps_hat)`` from ``x_t`` ``(B, C, H, W)`` at time ``t`` (scalar or ``(B,)``).

        VP: ``eps_hat = F(x_t, t)``, ``x0_hat = (x_t - s eps_hat) / a``. EDM: ``x0_hat = c_skip x_t +
        c_out F(c_in x_t, c_noise)``, ``eps_hat = (x_t - x0_hat) / sigma``. Differentiable in ``x_t``.
        """
        tb = self.schedule.as_batch(t, x_t)
        label = self.schedule.noise_label(tb)
        if self.schedule.prediction == "eps":
            eps = self.net(x_t, label)
            return self.schedule.x0_from_eps(x_t, eps, tb), eps
        c_in, c_skip, c_out = (c.to(x_t.dtype).reshape(-1, 1, 1, 1) for c in self.schedule.preconditioning(tb))
        x0 = c_skip * x_t + c_out * self.net(c_in * x_t, label)
        return x0, self.schedule.eps_from_x0(x_t, x0, tb)

    def x0(self, x_t: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """The denoised estimate ``E[x0 | x_t]`` (Tweedie), in diffusion space."""
        return self.predict(x_t, t)[0]

    def eps(self, x_t: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """The predicted noise ``eps_hat``."""
        return self.predict(x_t, t)[1]

    def forward(self, x_t: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """Same as :meth:`x0`."""
        return self.x0(x_t, t)

    # -- training ----------------------------------------------------------------------------------
    def loss(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Denoising loss on a batch of ``[0, 1]`` images ``(B, C, H, W)``; noise and times from ``generator``.

        VP: ``mean |F(x_t, t) - eps|^2`` with uniform ``t``. EDM: ``mean |F(c_in x, c_noise) - (x0 - c_skip x)
        / c_out|^2``, i.e. the weighted ``lambda(sigma) |D - x0|^2``.
        """
        x0 = self.to_model(images)
        t = self.schedule.sample_training_t(x0.shape[0], generator)
        eps = randn_like_from(generator, x0)
        t = t.to(x0.device)
        x_t = self.schedule.add_noise(x0, eps, t)
        label = self.schedule.noise_label(t)
        if self.schedule.prediction == "eps":
            return torch.mean((self.net(x_t, label) - eps) ** 2)
        c_in, c_skip, c_out = (c.to(x0.dtype).reshape(-1, 1, 1, 1) for c in self.schedule.preconditioning(t))
        target = (x0 - c_skip * x_t) / c_out
        return torch.mean((self.net(c_in * x_t, label) - target) ** 2)

    # -- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        steps: int = 50,
        generator: torch.Generator | None = None,
        *,
        eta: float = 0.0,
        clip: bool = True,
        callback: Callable[[int, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """Unconditional samples ``(n, C, S, S)`` in the image range ``[0, 1]`` (clamped).

        Args:
            n: number of samples.
            steps: sampling steps (DDIM when ``eta = 0``, ancestral/DDPM when ``eta = 1``).
            generator: noise source, on the device the samples should live on (CPU if None).
            clip: clamp ``x0_hat`` to ``[-1, 1]`` at each step.
            callback: ``callback(step, x0_hat)`` after each step.
        """
        p = next(self.parameters())
        device = generator.device if generator is not None else p.device
        shape = (n, self.channels, self.image_size, self.image_size)
        x = self.schedule.init_noise(shape, generator, device=device, dtype=p.dtype).to(p.device)
        ts = self.schedule.timesteps(steps)
        for i in range(steps):
            x0, eps = self.predict(x, ts[i])
            if clip:
                x0 = x0.clamp(-1, 1)
                eps = self.schedule.eps_from_x0(x, x0, ts[i])
            x = self.schedule.step(x, x0, eps, ts[i], ts[i + 1], eta=eta, generator=generator)
            if callback is not None:
                callback(i, x0)
        return self.to_image(x).clamp(0, 1)
