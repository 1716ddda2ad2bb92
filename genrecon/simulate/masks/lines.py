"""Cartesian line masks: random and equally spaced columns plus a fully sampled centre (fastMRI's)."""

from __future__ import annotations

import torch

from ...errors import ConfigError
from ...registry import MASKS
from .common import _check_acceleration, _check_bool, _check_call, _check_center_fraction, _randint, _uniform

# fastMRI pairs 4x with 8% and 8x with 4% of centre lines: center_fraction * acceleration = 0.32
_FASTMRI_CENTER_PRODUCT = 0.32


def _center_lines(w: int, num_low: int) -> torch.Tensor:
    """Bool ``(W,)`` with ``num_low`` centre columns set, placed as fastMRI places them."""
    mask = torch.zeros(w, dtype=torch.bool)
    pad = (w - num_low + 1) // 2
    mask[pad : pad + num_low] = True
    return mask


def _line_budget_check(acceleration: float, center_fraction: float) -> None:
    if acceleration > 1 and center_fraction * acceleration >= 1:
        raise ConfigError(
            f"mask center_fraction: the fully sampled centre ({center_fraction}) must be smaller than "
            f"1/acceleration ({1 / acceleration:.4g}); lower center_fraction or acceleration"
        )


def _default_center_fraction(acceleration: float, center_fraction) -> float:
    if center_fraction is None:
        return _FASTMRI_CENTER_PRODUCT / acceleration
    return _check_center_fraction(center_fraction)


@MASKS.register("random")
class RandomLines:
    """Random Cartesian columns plus a fully sampled centre (fastMRI's RandomMaskFunc).

    ``num_low = round(W * center_fraction)`` centre columns are always sampled; every column is also
    sampled with probability ``(W / acceleration - num_low) / (W - num_low)``, so the expected number of
    columns is ``W / acceleration``. With ``fixed_count`` exactly ``round(W / acceleration)`` columns are
    sampled (the centre plus a uniformly random choice of the rest).

    Args:
        acceleration: target ``W / (sampled columns)``, >= 1.
        center_fraction: fraction of fully sampled centre columns in [0, 1), below ``1/acceleration``;
            default ``0.32 / acceleration`` (fastMRI's pairs: 4x with 0.08, 8x with 0.04).
        fixed_count: sample exactly ``round(W / acceleration)`` columns instead of a random number.
    """

    def __init__(self, *, acceleration: float, center_fraction: float | None = None, fixed_count: bool = False):
        self.acceleration = _check_acceleration(acceleration)
        self.center_fraction = _default_center_fraction(self.acceleration, center_fraction)
        self.fixed_count = _check_bool("fixed_count", fixed_count)
        _line_budget_check(self.acceleration, self.center_fraction)

    def __call__(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        h, w = _check_call("random mask", shape, generator)
        num_low = round(w * self.center_fraction)
        lines = _center_lines(w, num_low)
        u = _uniform(w, generator)
        if self.fixed_count:
            n_extra = round(w / self.acceleration) - num_low
            if n_extra > 0:
                u[lines] = 2.0  # never chosen: smallest keys win
                lines[torch.topk(u, n_extra, largest=False).indices] = True
        elif num_low < w:
            prob = (w / self.acceleration - num_low) / (w - num_low)
            lines |= u < prob
        return lines.expand(h, w).clone()


@MASKS.register("equispaced")
class EquispacedLines:
    """Equally spaced Cartesian columns from a random offset plus a fully sampled centre (fastMRI).

    ``exact=False`` is fastMRI's EquiSpacedMaskFunc: every ``acceleration``-th column from a random
    offset in ``[0, round(acceleration))``, plus the centre, so the achieved acceleration is below the
    nominal one. ``exact=True`` is fastMRI's EquispacedMaskFractionFunc: the spacing is adjusted to
    ``acceleration (num_low - W) / (num_low acceleration - W)`` so that about ``W / acceleration``
    columns are sampled in all.

    Args:
        acceleration: nominal spacing (``exact=False``) or target acceleration (``exact=True``), >= 1.
        center_fraction: fraction of fully sampled centre columns in [0, 1), below ``1/acceleration``;
            default ``0.32 / acceleration`` (fastMRI's pairs).
        exact: adjust the spacing to match the acceleration, counting the centre.
    """

    def __init__(self, *, acceleration: float, center_fraction: float | None = None, exact: bool = False):
        self.acceleration = _check_acceleration(acceleration)
        self.center_fraction = _default_center_fraction(self.acceleration, center_fraction)
        self.exact = _check_bool("exact", exact)
        _line_budget_check(self.acceleration, self.center_fraction)

    def __call__(self, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        h, w = _check_call("equispaced mask", shape, generator)
        num_low = round(w * self.center_fraction)
        lines = _center_lines(w, num_low)
        acc = self.acceleration
        if acc == 1:
            lines[:] = True
        elif self.exact:
            if num_low * acc < w:
                spacing = acc * (num_low - w) / (num_low * acc - w)
                offset = _randint(round(spacing), generator)
                pos = torch.arange(offset, w - 1, spacing, dtype=torch.float64).round().long()
                lines[pos.clamp_(0, w - 1)] = True
        else:
            offset = _randint(round(acc), generator)
            pos = torch.arange(offset, w, acc, dtype=torch.float64).round().long()
            lines[pos[pos < w]] = True
        return lines.expand(h, w).clone()
