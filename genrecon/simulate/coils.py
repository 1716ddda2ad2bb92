"""Simulated coil sensitivity maps for multi-coil (SENSE) MRI.

Each coil is a small loop on a circle around the field of view: its magnitude falls off like the on-axis
field of a current loop (Biot-Savart), ``|S_c(r)| ~ (1 + d_c(r)^2 / a^2)^(-3/2)`` with ``d_c`` the distance
to the coil, and its phase varies smoothly (a constant plus a linear ramp). The maps are normalised so
that ``sum_c |S_c|^2 = 1`` at every pixel: then ``A^H A = I`` for the SENSE operator with a full mask,
and the adjoint of fully sampled data returns the image itself.

Example:
    >>> import torch
    >>> maps = simulate_coil_maps(8, (32, 32), generator=torch.Generator().manual_seed(0))
    >>> maps.shape, maps.dtype
    (torch.Size([8, 32, 32]), torch.complex64)
    >>> bool(torch.allclose(maps.abs().pow(2).sum(0), torch.ones(32, 32), atol=1e-5))
    True
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError

COIL_RADIUS = 0.8
"""Loop radius ``a`` in units of the image half-width."""

RING_RADIUS = 1.5
"""Distance of the coils from the image centre, in units of the image half-width (outside the FOV)."""


def simulate_coil_maps(
    n_coils: int,
    shape: tuple[int, int],
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """Smooth, normalised coil sensitivities around a circle.

    Args:
        n_coils: number of coils ``C`` >= 1 (one coil gives a pure phase map of magnitude 1).
        shape: image ``(H, W)``.
        generator: jitters the coil angles, phases and phase ramps; ``None`` gives a fixed, evenly spaced
            set (no randomness is drawn, the global RNG is never used).
        dtype: complex dtype of the result (complex64 or complex128).

    Returns:
        ``(C, H, W)`` complex maps with ``sum_c |S_c|^2 = 1`` at every pixel, on the CPU.
    """
    if isinstance(n_coils, bool) or not isinstance(n_coils, int) or n_coils < 1:
        raise ConfigError(f"coils: expected an integer >= 1, got {n_coils!r}")
    if not dtype.is_complex:
        raise ConfigError(f"coil maps: dtype must be complex64 or complex128, got {dtype}")
    h, w = (int(s) for s in shape)
    c = n_coils
    base = torch.arange(c, dtype=torch.float64) * (2 * math.pi / c)
    if generator is None:
        angle = base
        phase0 = base.clone()
        ramp = torch.full((c,), math.pi / 2, dtype=torch.float64)
    else:
        jitter = torch.rand(3, c, generator=generator, dtype=torch.float64, device=generator.device).cpu()
        angle = base + (jitter[0] - 0.5) * (math.pi / c)  # coils stay in order around the ring
        phase0 = jitter[1] * 2 * math.pi
        ramp = (0.25 + 0.75 * jitter[2]) * math.pi  # radians across the half-width
    y = ((torch.arange(h, dtype=torch.float64) - h // 2) / max(h / 2, 0.5))[None, :, None]
    x = ((torch.arange(w, dtype=torch.float64) - w // 2) / max(w / 2, 0.5))[None, None, :]
    cy = (RING_RADIUS * torch.sin(angle))[:, None, None]
    cx = (RING_RADIUS * torch.cos(angle))[:, None, None]
    d2 = (y - cy) ** 2 + (x - cx) ** 2
    magnitude = (1 + d2 / COIL_RADIUS**2) ** -1.5
    # phase ramps along the direction of the coil from the centre
    direction = (x * torch.cos(angle)[:, None, None] + y * torch.sin(angle)[:, None, None]) / RING_RADIUS
    phase = phase0[:, None, None] + ramp[:, None, None] * direction
    maps = torch.polar(magnitude, phase)
    maps = maps / torch.sqrt(torch.sum(magnitude**2, dim=0, keepdim=True))
    return maps.to(dtype)
