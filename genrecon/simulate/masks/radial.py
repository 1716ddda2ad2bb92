"""Radial spokes through the k-space centre, rasterised on the Cartesian grid (``radial``)."""

from __future__ import annotations

import math

import torch

from ...errors import ConfigError
from ...registry import MASKS
from .common import _check_acceleration, _check_bool, _check_call


@MASKS.register("radial")
class Radial:
    """Radial spokes through the k-space centre, rasterised on the Cartesian grid.

    Give ``n_spokes``, or ``acceleration`` to use the number of spokes whose rasterised mask comes
    closest to it.
    Spokes span the full width and height (an ellipse for non-square k-space); angles are uniform in
    ``[0, pi)`` or golden-angle increments (``pi / golden ratio``, about 111.25 degrees). The mask is
    deterministic: the generator is not used.

    Args:
        n_spokes: number of spokes, >= 1.
        acceleration: target ``H W / (sampled points)`` instead of ``n_spokes``, >= 1.
        golden_angle: golden-angle spoke ordering instead of uniform angles.
    """

    def __init__(self, *, n_spokes: int | None = None, acceleration: float | None = None, golden_angle: bool = False):
        if (n_spokes is None) == (acceleration is None):
            raise ConfigError(
                f"mask radial: give exactly one of n_spokes and acceleration, got n_spokes={n_spokes!r}, "
                f"acceleration={acceleration!r}"
            )
        if n_spokes is not None and (isinstance(n_spokes, bool) or not isinstance(n_spokes, int) or n_spokes < 1):
            raise ConfigError(f"mask n_spokes: expected an integer >= 1, got {n_spokes!r}")
        self.n_spokes = n_spokes
        self.acceleration = None if acceleration is None else _check_acceleration(acceleration)
        self.golden_angle = _check_bool("golden_angle", golden_angle)

    def spokes(self, h: int, w: int, n_spokes: int) -> torch.Tensor:
        """The rasterised mask of ``n_spokes`` spokes: bool ``(H, W)``."""
        if self.golden_angle:
            angles = torch.arange(n_spokes, dtype=torch.float64) * (math.pi * 2 / (1 + math.sqrt(5)))
        else:
            angles = torch.arange(n_spokes, dtype=torch.float64) * (math.pi / n_spokes)
        n_t = 4 * max(h, w) + 1  # half-pixel steps: no gaps
        t = torch.linspace(-1.0, 1.0, n_t, dtype=torch.float64)
        ky = (h // 2 + t[None, :] * torch.sin(angles)[:, None] * (h / 2)).round().long().clamp_(0, h - 1)
        kx = (w // 2 + t[None, :] * torch.cos(angles)[:, None] * (w / 2)).round().long().clamp_(0, w - 1)
        mask = torch.zeros(h * w, dtype=torch.bool)
        mask[(ky * w + kx).flatten()] = True
        return mask.view(h, w)

    def __call__(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        h, w = _check_call("radial mask", shape, generator)
        if self.n_spokes is not None:
            return self.spokes(h, w, self.n_spokes)
        target = h * w / self.acceleration
        lo, hi = 1, math.ceil(math.pi * max(h, w) / 2) + 1  # enough spokes to fill the inscribed ellipse
        while lo < hi:  # bisection: about the fewest spokes with H W / acceleration points
            mid = (lo + hi) // 2
            if int(self.spokes(h, w, mid).sum()) >= target:
                hi = mid
            else:
                lo = mid + 1
        # the count is not monotone in the number of uniform spokes: take the best nearby
        candidates = [self.spokes(h, w, n) for n in range(max(1, lo - 2), lo + 3)]
        return min(candidates, key=lambda m: abs(int(m.sum()) - target))
