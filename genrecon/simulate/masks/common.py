"""What every mask family shares: parameter checks, the call check, random draws and k-space geometry.

Example:
    >>> import torch
    >>> achieved_acceleration(torch.tensor([True, False, False, False]))
    4.0
"""

from __future__ import annotations

import math
from numbers import Real

import torch

from ...errors import ConfigError, ShapeError


def achieved_acceleration(mask: torch.Tensor) -> float:
    """``(number of locations) / (number sampled)`` of a mask ``(H, W)`` or ``(W,)``; ``inf`` if empty."""
    sampled = int(torch.count_nonzero(mask))
    return mask.numel() / sampled if sampled else math.inf


def _check_number(name: str, value, *, ge: float | None = None, lt: float | None = None, gt: float | None = None):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ConfigError(f"mask {name}: expected a finite number, got {value!r}")
    if ge is not None and value < ge:
        raise ConfigError(f"mask {name}: must be >= {ge}, got {value}")
    if gt is not None and value <= gt:
        raise ConfigError(f"mask {name}: must be > {gt}, got {value}")
    if lt is not None and value >= lt:
        raise ConfigError(f"mask {name}: must be < {lt}, got {value}")
    return float(value)


def _check_acceleration(value) -> float:
    return _check_number("acceleration", value, ge=1)


def _check_center_fraction(value) -> float:
    return _check_number("center_fraction", value, ge=0, lt=1)


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"mask {name}: expected true or false, got {value!r}")
    return value


def _check_call(who: str, shape, generator) -> tuple[int, int]:
    try:
        h, w = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ShapeError(f"{who}: expected shape (H, W), got {shape!r}") from None
    if h < 1 or w < 1:
        raise ShapeError(f"{who}: expected a positive shape (H, W), got {(h, w)}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{who}: pass a torch.Generator (masks never use the global RNG), got {generator!r}")
    return h, w


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` uniform numbers in [0, 1), float64 on the CPU, drawn from ``generator`` (on its device)."""
    return torch.rand(n, generator=generator, dtype=torch.float64, device=generator.device).cpu()


def _randint(high: int, generator: torch.Generator) -> int:
    return int(torch.randint(0, max(int(high), 1), (1,), generator=generator, device=generator.device).item())


def _kspace_radius(h: int, w: int) -> torch.Tensor:
    """Elliptical distance from the k-space centre, 1 at the middle of each edge: ``(H, W)`` float64."""
    ky = (torch.arange(h, dtype=torch.float64) - h // 2) / max(h / 2, 0.5)
    kx = (torch.arange(w, dtype=torch.float64) - w // 2) / max(w / 2, 0.5)
    return torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def _center_disc(h: int, w: int, center_fraction: float) -> torch.Tensor:
    """Bool ``(H, W)`` disc of diameter ``center_fraction * min(H, W)`` around the k-space centre."""
    radius = center_fraction * min(h, w) / 2
    yy = (torch.arange(h, dtype=torch.float64) - h // 2)[:, None]
    xx = (torch.arange(w, dtype=torch.float64) - w // 2)[None, :]
    return yy**2 + xx**2 <= radius**2


def _gumbel_top_k(log_weight: torch.Tensor, k: int, u: torch.Tensor) -> torch.Tensor:
    """Indices of ``k`` items drawn without replacement with probabilities ``~ exp(log_weight)``.

    Gumbel-top-k: ``argtop_k(log_weight - log(-log u))`` with ``u`` uniform (one per item).
    """
    if k <= 0:
        return torch.zeros(0, dtype=torch.long)
    keys = log_weight - torch.log(-torch.log(u.clamp_min(1e-300)))
    return torch.argsort(keys, descending=True)[:k]


def _disc_budget_check(acceleration: float, center_fraction: float) -> None:
    if acceleration > 1 and math.pi / 4 * center_fraction**2 * acceleration >= 1:
        raise ConfigError(
            f"mask center_fraction: the fully sampled centre disc ({center_fraction}) holds more than "
            f"1/acceleration of k-space; lower center_fraction or acceleration"
        )
