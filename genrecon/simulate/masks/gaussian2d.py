"""2-D variable-density random points with a Gaussian density (``gaussian2d``)."""

from __future__ import annotations

import math

import torch

from ...registry import MASKS
from .common import (
    _center_disc,
    _check_acceleration,
    _check_call,
    _check_center_fraction,
    _check_number,
    _disc_budget_check,
    _gumbel_top_k,
    _kspace_radius,
    _uniform,
)


@MASKS.register("gaussian2d")
class Gaussian2D:
    """2-D variable-density random points with a Gaussian density and a fully sampled centre disc.

    Exactly ``round(H W / acceleration)`` points are sampled: the centre disc (diameter
    ``center_fraction * min(H, W)``), then points drawn without replacement with weights
    ``exp(-rho^2 / (2 sigma^2))``, ``rho`` the elliptical k-space radius (1 at the edge midpoints).

    Args:
        acceleration: ``H W / (sampled points)``, >= 1.
        center_fraction: diameter of the fully sampled centre disc as a fraction of ``min(H, W)``, [0, 1).
        sigma: width of the Gaussian density in units of the k-space half-width, > 0.
    """

    def __init__(self, *, acceleration: float, center_fraction: float = 0.08, sigma: float = 0.35):
        self.acceleration = _check_acceleration(acceleration)
        self.center_fraction = _check_center_fraction(center_fraction)
        self.sigma = _check_number("sigma", sigma, gt=0)
        _disc_budget_check(self.acceleration, self.center_fraction)

    def __call__(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        h, w = _check_call("gaussian2d mask", shape, generator)
        mask = _center_disc(h, w, self.center_fraction).flatten()
        u = _uniform(h * w, generator)
        log_weight = -_kspace_radius(h, w).flatten() ** 2 / (2 * self.sigma**2)
        log_weight[mask] = -math.inf
        n_extra = round(h * w / self.acceleration) - int(mask.sum())
        mask[_gumbel_top_k(log_weight, n_extra, u)] = True
        return mask.view(h, w)
