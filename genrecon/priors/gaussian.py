"""An exact Gaussian "diffusion prior": the closed-form denoiser of ``x0 ~ N(mu, Sigma)``.

With ``x_t = a x0 + s eps`` the Tweedie denoiser is linear:
``E[x0 | x_t] = mu + a Sigma (a^2 Sigma + s^2 I)^{-1} (x_t - a mu)``, and with a linear measurement
``y = A x0 + n``, ``n ~ N(0, sigma_y^2 I)`` the posterior is Gaussian too:
``Sigma_post = (Sigma^{-1} + A^T A / sigma_y^2)^{-1}``, ``mu_post = Sigma_post (Sigma^{-1} mu + A^T y / sigma_y^2)``.
It exposes the interface of :class:`~genrecon.priors.diffusion.DiffusionPrior` (``predict``, ``schedule``,
``to_model``/``to_image``, ``image_size``, ``channels``, ``kind``), so samplers can be checked against exact
answers. ``conditional(y, A, sigma_y)`` gives the exact *conditional* denoiser ``E[x0 | x_t, y]``.

Everything lives in "model space" (no intensity mapping: ``to_model`` and ``to_image`` are identities).
"""

from __future__ import annotations

import torch
from torch import nn

from .schedules import NoiseSchedule, make_schedule


class GaussianDiffusionPrior(nn.Module):
    """Exact denoiser of a Gaussian image distribution on ``(C, S, S)`` images (small ``C*S*S``).

    Args:
        mean: ``(d,)`` with ``d = channels * size * size``.
        cov: ``(d, d)`` symmetric positive definite.
        size, channels: image shape.
        schedule: noise schedule (VP cosine by default, as the trained priors).
    """

    kind = "diffusion"

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, *, size: int, channels: int = 1,
                 schedule: NoiseSchedule | None = None):
        super().__init__()
        d = channels * size * size
        if mean.shape != (d,) or cov.shape != (d, d):
            raise ValueError(f"mean must be ({d},) and cov ({d}, {d}); got {tuple(mean.shape)}, {tuple(cov.shape)}")
        self.register_buffer("mean", mean.double())
        self.register_buffer("cov", cov.double())
        self.image_size, self.channels = size, channels
        self.schedule = schedule or make_schedule("vp", timesteps=1000)
        self._cond: tuple[torch.Tensor, torch.Tensor, float] | None = None

    @staticmethod
    def to_model(images: torch.Tensor) -> torch.Tensor:
        return images

    @staticmethod
    def to_image(x: torch.Tensor) -> torch.Tensor:
        return x

    def _denoise(self, x_t: torch.Tensor, t) -> torch.Tensor:
        tb = self.schedule.as_batch(t, x_t)
        a, s = self.schedule.coefficients(tb, x_t.double())
        a = a.reshape(-1).double()
        s = s.reshape(-1).double()
        flat = x_t.reshape(x_t.shape[0], -1).double()
        b, d = flat.shape
        if self._cond is None:
            prior_mean, prior_cov = self.mean.expand(b, -1), self.cov
        else:
            prior_mean, prior_cov = self._cond[0][:b], self._cond[1]
        eye = torch.eye(d, dtype=torch.float64, device=flat.device)
        out = torch.empty_like(flat)
        for value in torch.unique(torch.stack([a, s], 1), dim=0):  # one gain matrix per distinct time
            rows = (a == value[0]) & (s == value[1])
            ai, si = value[0], value[1]
            gain = ai * prior_cov @ torch.linalg.inv(ai**2 * prior_cov + si**2 * eye)
            m = prior_mean[rows]
            out[rows] = m + (flat[rows] - ai * m) @ gain.T
        return out.reshape(x_t.shape).to(x_t.dtype)

    def predict(self, x_t: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """``(E[x0 | x_t], eps_hat)``; differentiable in ``x_t`` (it is linear)."""
        x0 = self._denoise(x_t, t)
        return x0, self.schedule.eps_from_x0(x_t, x0, self.schedule.as_batch(t, x_t))

    def x0(self, x_t, t):
        return self.predict(x_t, t)[0]

    def posterior(self, y: torch.Tensor, A: torch.Tensor, sigma_y: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact posterior ``(mu_post (d,), Sigma_post (d, d))`` of ``x0`` given ``y = A x0 + n``."""
        A = A.double()
        prec = torch.linalg.inv(self.cov) + A.T @ A / sigma_y**2
        cov = torch.linalg.inv(prec)
        cov = (cov + cov.T) / 2
        mu = cov @ (torch.linalg.solve(self.cov, self.mean) + A.T @ y.reshape(-1).double() / sigma_y**2)
        return mu, cov

    def conditional(self, y: torch.Tensor, A: torch.Tensor, sigma_y: float, batch: int) -> "GaussianDiffusionPrior":
        """The same prior conditioned on ``y``: its denoiser is the exact ``E[x0 | x_t, y]``."""
        mu, cov = self.posterior(y, A, sigma_y)
        cond = GaussianDiffusionPrior(self.mean, self.cov, size=self.image_size, channels=self.channels,
                                      schedule=self.schedule)
        cond._cond = (mu.expand(batch, -1), cov, sigma_y)
        return cond
