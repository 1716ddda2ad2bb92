"""Synthetic test images: modified Shepp-Logan, random ellipses and a disc (pure functions).

All images are ``(n, n)`` real tensors with values in ``[0, 1]``, sampled at pixel centres on the square
``[-1, 1]^2`` (x to the right, y up, so row 0 is the top, ``y = 1 - (2 i + 1) / n``). Each ellipse adds its
intensity inside ``((x' / a)^2 + (y' / b)^2 <= 1)`` with ``(x', y')`` the point relative to the centre, rotated
by ``-phi`` (``phi`` counter-clockwise).

Example:
    >>> import torch
    >>> from genrecon.phantoms import shepp_logan, random_ellipses, disc
    >>> shepp_logan(64).shape
    torch.Size([64, 64])
    >>> img = random_ellipses(32, torch.Generator().manual_seed(0), count=5)
    >>> bool(img.min() >= 0) and bool(img.max() <= 1)
    True
    >>> float(disc(4, 1.0).sum())
    12.0
"""

from __future__ import annotations

import math

import torch

from .errors import ConfigError

#: Modified Shepp-Logan (Toft, 1996): intensity, semi-axes a (x) and b (y), centre x0, y0, angle in degrees
SHEPP_LOGAN_ELLIPSES: tuple[tuple[float, float, float, float, float, float], ...] = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.8740, 0.0, -0.0184, 0.0),
    (-0.2, 0.1100, 0.3100, 0.22, 0.0, -18.0),
    (-0.2, 0.1600, 0.4100, -0.22, 0.0, 18.0),
    (0.1, 0.2100, 0.2500, 0.0, 0.35, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, 0.1, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, -0.1, 0.0),
    (0.1, 0.0460, 0.0230, -0.08, -0.605, 0.0),
    (0.1, 0.0230, 0.0230, 0.0, -0.606, 0.0),
    (0.1, 0.0230, 0.0460, 0.06, -0.605, 0.0),
)


def _check_size(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"phantom size: expected an integer >= 1, got {n!r}")
    return n


def _grid(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = (2 * torch.arange(n, dtype=torch.float64) + 1) / n - 1
    return c.view(1, n).expand(n, n), (-c).view(n, 1).expand(n, n)


def _paint(n: int, ellipses) -> torch.Tensor:
    """Sum of ellipse indicator functions times their intensities, float64 ``(n, n)``."""
    x, y = _grid(n)
    image = torch.zeros(n, n, dtype=torch.float64)
    for value, a, b, x0, y0, phi_deg in ellipses:
        phi = math.radians(float(phi_deg))
        c, s = math.cos(phi), math.sin(phi)
        xr = (x - x0) * c + (y - y0) * s
        yr = -(x - x0) * s + (y - y0) * c
        image += float(value) * ((xr / a) ** 2 + (yr / b) ** 2 <= 1.0)
    return image


def shepp_logan(n: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The modified Shepp-Logan head phantom ``(n, n)``, values in ``[0, 1]`` (skull 1, brain 0.2).

    Its integral over ``[-1, 1]^2`` is ``sum_k A_k pi a_k b_k`` (the ellipses add), which the tests use.

    Args:
        n: image side in pixels.
        dtype: output dtype (float32 or float64).
    """
    n = _check_size(n)
    return _paint(n, SHEPP_LOGAN_ELLIPSES).clamp(0.0, 1.0).to(dtype)


def random_ellipses(n: int, generator: torch.Generator, *, count: int = 10) -> torch.Tensor:
    """A random phantom ``(n, n)`` float32 in ``[0, 1]``: a body ellipse and ``count - 1`` inner ones.

    The body has intensity in ``[0.3, 0.6]``; inner ellipses add intensities in ``[-0.3, 0.5]``; the sum is
    clipped to ``[0, 1]``. All randomness comes from ``generator`` (drawn on its device): the same
    generator state gives the same image.

    Args:
        n: image side in pixels.
        generator: the random source (never the global RNG).
        count: number of ellipses (>= 1), the body included.
    """
    n = _check_size(n)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"random_ellipses: pass a torch.Generator, got {type(generator).__name__}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"random_ellipses count: expected an integer >= 1, got {count!r}")
    u = torch.rand((count, 6), generator=generator, dtype=torch.float64, device=generator.device).cpu().tolist()
    ellipses = []
    for i, (r_val, r_a, r_b, r_rad, r_ang, r_phi) in enumerate(u):
        if i == 0:
            value, a, b, x0, y0 = 0.3 + 0.3 * r_val, 0.6 + 0.3 * r_a, 0.6 + 0.3 * r_b, 0.0, 0.0
        else:
            value = -0.3 + 0.8 * r_val
            a, b = 0.03 + 0.27 * r_a, 0.03 + 0.27 * r_b
            radius, angle = 0.5 * math.sqrt(r_rad), 2 * math.pi * r_ang
            x0, y0 = radius * math.cos(angle), radius * math.sin(angle)
        ellipses.append((value, a, b, x0, y0, 180.0 * r_phi))
    return _paint(n, ellipses).clamp(0.0, 1.0).to(torch.float32)


def disc(n: int, radius_fraction: float, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A centred disc ``(n, n)``: 1 inside radius ``radius_fraction * n / 2`` pixels, 0 outside.

    Args:
        n: image side in pixels.
        radius_fraction: radius relative to half the image side, in ``(0, 1]``.
        dtype: output dtype.
    """
    n = _check_size(n)
    if isinstance(radius_fraction, bool) or not isinstance(radius_fraction, (int, float)) or not (
        0 < radius_fraction <= 1
    ):
        raise ConfigError(f"disc radius_fraction: expected a number in (0, 1], got {radius_fraction!r}")
    x, y = _grid(n)
    return (x**2 + y**2 <= float(radius_fraction) ** 2).to(dtype)
