"""Noise schedules of the diffusion priors (the denoiser that wraps one: :mod:`genrecon.priors.diffusion`).

Every schedule writes the noisy image as ``x_t = a(t) x0 + s(t) eps`` with ``eps ~ N(0, I)``:

- :class:`VPSchedule` (default): DDPM, variance preserving, cosine ``alpha_bar`` (Nichol & Dhariwal 2021);
  ``t`` is an integer index in ``[0, T)``, ``a = sqrt(alpha_bar)``, ``s = sqrt(1 - alpha_bar)``; the network
  predicts ``eps``. ``t = -1`` is the clean terminal state (``alpha_bar = 1``).
- :class:`EDMSchedule`: Karras et al. 2022, variance exploding; ``t`` is the noise level ``sigma``, ``a = 1``,
  ``s = sigma``; the network is preconditioned, ``D(x; sigma) = c_skip x + c_out F(c_in x, c_noise)``, and
  trained with log-normal ``sigma``. ``sigma = 0`` is the clean terminal state.

:class:`~genrecon.priors.diffusion.DiffusionPrior` wraps a network and a schedule behind one interface, the same
for both::

    ts = prior.schedule.timesteps(steps)          # descending, ts[-1] is the clean terminal state
    x = prior.schedule.init_noise(shape, generator, device=..., dtype=...)
    for t, t_next in zip(ts[:-1], ts[1:]):
        x0, eps = prior.predict(x, t)             # or prior.x0(x, t) / prior.eps(x, t)
        x = prior.schedule.step(x, x0, eps, t, t_next, eta=0.0, generator=generator)

Diffusion runs on images mapped from ``[0, 1]`` to ``[-1, 1]`` (``DiffusionPrior.to_model``);
``x_t``, ``x0`` and ``eps`` above are all in that space, ``DiffusionPrior.to_image`` maps back.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ConfigError, ShapeError

TimeLike = int | float | torch.Tensor


def randn_like_from(generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """``N(0, I)`` noise shaped like ``like``, drawn on ``generator``'s device, returned on ``like``'s."""
    device = generator.device if generator is not None else like.device
    return torch.randn(like.shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


class NoiseSchedule:
    """Base class: ``x_t = a(t) x0 + s(t) eps``; generic conversions and the DDIM/ancestral step."""

    name = "base"
    #: what the network predicts: "eps" (VP) or "edm" (preconditioned x0)
    prediction = "eps"

    # -- to implement ------------------------------------------------------------------------------
    def coefficients(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a, s)`` for a batch ``t`` of shape ``(B,)``, shaped ``(B, 1, 1, 1)`` like ``like``."""
        raise NotImplementedError

    def timesteps(self, n_steps: int) -> torch.Tensor:
        """``n_steps + 1`` descending times; the last is the clean terminal state."""
        raise NotImplementedError

    def sample_training_t(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Times ``(batch,)`` drawn from the training distribution, on the generator's device."""
        raise NotImplementedError

    def noise_label(self, t: torch.Tensor) -> torch.Tensor:
        """The network's conditioning label, ``(B,)`` float."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """JSON-able parameters; ``make_schedule(**params)`` rebuilds the schedule."""
        raise NotImplementedError

    # -- generic -----------------------------------------------------------------------------------
    def as_batch(self, t: TimeLike, x: torch.Tensor) -> torch.Tensor:
        """Broadcast a scalar or ``(B,)`` time to a ``(B,)`` tensor on ``x``'s device."""
        b = x.shape[0]
        dtype = self.time_dtype
        t = torch.as_tensor(t, device=x.device)
        t = t.to(dtype) if dtype == torch.long else t.to(torch.float64)
        if t.ndim == 0:
            return t.expand(b)
        if t.shape != (b,):
            raise ShapeError(f"time must be a scalar or shape ({b},) for a batch of {b}; got shape {tuple(t.shape)}")
        return t

    time_dtype = torch.float64

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """``x_t = a x0 + s eps``."""
        a, s = self.coefficients(self.as_batch(t, x0), x0)
        return a * x0 + s * eps

    def x0_from_eps(self, x_t: torch.Tensor, eps: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """``x0 = (x_t - s eps) / a``."""
        a, s = self.coefficients(self.as_batch(t, x_t), x_t)
        return (x_t - s * eps) / a

    def eps_from_x0(self, x_t: torch.Tensor, x0: torch.Tensor, t: TimeLike) -> torch.Tensor:
        """``eps = (x_t - a x0) / s``."""
        a, s = self.coefficients(self.as_batch(t, x_t), x_t)
        return (x_t - a * x0) / s

    def init_noise(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """``x_T = s(T) z`` with ``z ~ N(0, I)``, at the first of :meth:`timesteps`."""
        device = torch.device(device) if device is not None else (generator.device if generator else "cpu")
        z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        _, s = self.coefficients(self.as_batch(self.timesteps(1)[0], z), z)
        return s * z

    def step(
        self,
        x_t: torch.Tensor,
        x0: torch.Tensor,
        eps: torch.Tensor,
        t: TimeLike,
        t_next: TimeLike,
        *,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One DDIM step (``eta = 0``, deterministic) or ancestral step (``eta = 1`` is DDPM).

        In the scaled variable ``y = x / a`` with ``sigma = s / a``:
        ``y' = x0 + sqrt(sigma'^2 - c^2) eps + c z``, ``c = eta sigma' sqrt(1 - sigma'^2 / sigma^2)``.
        With ``eta = 1`` the added variance is the DDPM posterior's ``beta_tilde``, which under-disperses
        samples when steps are coarse (use many steps for ancestral sampling, or ``eta = 0``).

        Args:
            x_t: current state ``(B, C, H, W)``; ``x0``/``eps``: the denoiser's predictions at ``t``.
            t, t_next: current and next time (``t_next`` later in the sampling order, less noise).
            eta: stochasticity in ``[0, 1]``.
            generator: source of ``z`` (on ``x_t``'s device); needed when ``eta > 0``.

        Returns:
            the state at ``t_next``, like ``x_t``.
        """
        a, s = self.coefficients(self.as_batch(t, x_t), x_t)
        a1, s1 = self.coefficients(self.as_batch(t_next, x_t), x_t)
        sigma, sigma1 = s / a, s1 / a1
        c = eta * sigma1 * torch.sqrt(torch.clamp(1 - sigma1**2 / sigma**2, min=0.0))
        y = x0 + torch.sqrt(torch.clamp(sigma1**2 - c**2, min=0.0)) * eps
        if eta > 0:
            y = y + c * randn_like_from(generator, x_t)
        return a1 * y


class VPSchedule(NoiseSchedule):
    """DDPM variance-preserving schedule with cosine ``alpha_bar``.

    ``alpha_bar_t = prod_{i<=t} (1 - beta_i)``, ``beta_i = min(1 - f(i+1)/f(i), max_beta)``,
    ``f(u) = cos((u/T + s) / (1 + s) * pi/2)^2``.

    Args:
        timesteps: number ``T`` of training steps.
        cosine_s: the offset ``s`` that keeps ``beta`` small near ``t = 0``.
        max_beta: cap on ``beta_i`` (avoids a singular last step).

    Example:
        >>> sch = VPSchedule(timesteps=100)
        >>> ts = sch.timesteps(10)
        >>> int(ts[0]), int(ts[-1]), len(ts)
        (99, -1, 11)
    """

    name = "vp"
    prediction = "eps"
    time_dtype = torch.long

    def __init__(self, *, timesteps: int = 1000, cosine_s: float = 0.008, max_beta: float = 0.999):
        if timesteps < 1:
            raise ConfigError(f"VP schedule: timesteps must be >= 1, got {timesteps}")
        self.T = int(timesteps)
        self.cosine_s = float(cosine_s)
        self.max_beta = float(max_beta)
        u = torch.arange(self.T + 1, dtype=torch.float64) / self.T
        f = torch.cos((u + cosine_s) / (1 + cosine_s) * math.pi / 2) ** 2
        betas = torch.clamp(1 - f[1:] / f[:-1], max=max_beta)
        alpha_bar = torch.cumprod(1 - betas, dim=0)
        # index 0 holds the clean state t = -1
        self._alpha_bar = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar])

    def alpha_bar(self, t: torch.Tensor | int) -> torch.Tensor:
        """``alpha_bar_t`` (float64) for integer ``t`` in ``[-1, T)``; ``alpha_bar_{-1} = 1``."""
        t = torch.as_tensor(t)
        if t.numel() and (int(t.min()) < -1 or int(t.max()) >= self.T):
            raise ShapeError(f"VP time index must be in [-1, {self.T - 1}]; got {t.min().item()}..{t.max().item()}")
        return self._alpha_bar.to(t.device)[t.long() + 1]

    def coefficients(self, t, like):
        ab = self.alpha_bar(t).to(like.dtype).reshape(-1, 1, 1, 1)
        return torch.sqrt(ab), torch.sqrt(1 - ab)

    def timesteps(self, n_steps: int) -> torch.Tensor:
        if not 1 <= n_steps <= self.T:
            raise ConfigError(f"VP sampling steps must be in [1, {self.T}] (the training timesteps); got {n_steps}")
        if n_steps == 1:
            idx = torch.tensor([self.T - 1], dtype=torch.float64)
        else:
            idx = torch.linspace(self.T - 1, 0, n_steps, dtype=torch.float64)
        return torch.cat([torch.round(idx).long(), torch.tensor([-1])])

    def sample_training_t(self, batch, generator):
        return torch.randint(0, self.T, (batch,), generator=generator, device=generator.device)

    def noise_label(self, t):
        return t.to(torch.float64)

    def params(self):
        return {"name": "vp", "timesteps": self.T, "cosine_s": self.cosine_s, "max_beta": self.max_beta}


class EDMSchedule(NoiseSchedule):
    """EDM (Karras et al. 2022) variance-exploding schedule: ``x = x0 + sigma eps``.

    Sampling levels ``sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho``, then 0;
    training ``ln sigma ~ N(p_mean, p_std^2)`` with weight ``(sigma^2 + sd^2) / (sigma sd)^2``.

    Example:
        >>> sch = EDMSchedule()
        >>> ts = sch.timesteps(18)
        >>> round(float(ts[0]), 3), float(ts[-1]), len(ts)
        (80.0, 0.0, 19)
    """

    name = "edm"
    prediction = "edm"

    def __init__(
        self,
        *,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        sigma_data: float = 0.5,
        rho: float = 7.0,
        p_mean: float = -1.2,
        p_std: float = 1.2,
    ):
        if not 0 < sigma_min < sigma_max:
            raise ConfigError(f"EDM schedule needs 0 < sigma_min < sigma_max; got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max, self.sigma_data = float(sigma_min), float(sigma_max), float(sigma_data)
        self.rho, self.p_mean, self.p_std = float(rho), float(p_mean), float(p_std)

    def coefficients(self, t, like):
        s = t.to(like.dtype).reshape(-1, 1, 1, 1)
        return torch.ones_like(s), s

    def preconditioning(self, sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``c_in = 1/sqrt(sigma^2+sd^2)``, ``c_skip = sd^2/(sigma^2+sd^2)``, ``c_out = sigma sd/sqrt(sigma^2+sd^2)``."""
        sd2 = self.sigma_data**2
        r = torch.sqrt(sigma**2 + sd2)
        return 1 / r, sd2 / (sigma**2 + sd2), sigma * self.sigma_data / r

    def timesteps(self, n_steps: int) -> torch.Tensor:
        if n_steps < 1:
            raise ConfigError(f"EDM sampling steps must be >= 1; got {n_steps}")
        i = torch.arange(n_steps, dtype=torch.float64) / max(n_steps - 1, 1)
        lo, hi = self.sigma_min ** (1 / self.rho), self.sigma_max ** (1 / self.rho)
        sigmas = (hi + i * (lo - hi)) ** self.rho
        return torch.cat([sigmas, torch.zeros(1, dtype=torch.float64)])

    def sample_training_t(self, batch, generator):
        z = torch.randn((batch,), generator=generator, device=generator.device, dtype=torch.float64)
        return torch.exp(self.p_mean + self.p_std * z)

    def noise_label(self, t):
        return 250.0 * torch.log(t.to(torch.float64))

    def params(self):
        return {
            "name": "edm",
            "sigma_min": self.sigma_min,
            "sigma_max": self.sigma_max,
            "sigma_data": self.sigma_data,
            "rho": self.rho,
            "p_mean": self.p_mean,
            "p_std": self.p_std,
        }


SCHEDULES: dict[str, type[NoiseSchedule]] = {"vp": VPSchedule, "edm": EDMSchedule}


def make_schedule(name: str = "vp", **params: Any) -> NoiseSchedule:
    """Build a schedule from :meth:`NoiseSchedule.params` (``name`` is ``"vp"`` or ``"edm"``)."""
    if name not in SCHEDULES:
        raise ConfigError(f"unknown noise schedule {name!r}: choose one of {', '.join(SCHEDULES)}")
    try:
        return SCHEDULES[name](**params)
    except TypeError as exc:
        raise ConfigError(f"noise schedule {name!r}: {exc}") from None
