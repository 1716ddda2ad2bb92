"""Measurement noise: complex Gaussian k-space noise and its level from a target SNR.

Convention: ``sigma`` is the standard deviation of the complex noise, ``E|n|^2 = sigma^2``: the real and
imaginary parts are independent with standard deviation ``sigma / sqrt(2)`` each (for a real tensor the
noise is real with standard deviation ``sigma``). The SNR is ``10 log10(mean |y|^2 / sigma^2)`` over the
sampled entries only (unsampled k-space is zero and carries no noise).

Example:
    >>> import torch
    >>> y = torch.ones(1, 1, 64, 64, dtype=torch.complex64)
    >>> round(sigma_from_snr(y, 20.0), 6)
    0.1
    >>> n = complex_gaussian(y, 0.1, torch.Generator().manual_seed(0))
    >>> n.shape, n.dtype
    (torch.Size([1, 1, 64, 64]), torch.complex64)
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError, ShapeError


def complex_gaussian(shape_like: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Zero-mean Gaussian noise shaped like ``shape_like``, with ``E|n|^2 = sigma^2`` per entry.

    Args:
        shape_like: tensor whose shape, dtype and device the noise takes; complex -> complex noise with
            real and imaginary standard deviation ``sigma / sqrt(2)``, real -> real noise of std ``sigma``.
        sigma: noise standard deviation >= 0.
        generator: the random source (drawn on its device, then moved: same seed, same noise on any device).

    Returns:
        noise of ``shape_like``'s shape, dtype and device.
    """
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
        raise ConfigError(f"noise sigma: expected a finite number >= 0, got {sigma!r}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"complex_gaussian: pass a torch.Generator (never the global RNG), got {generator!r}")
    like = shape_like
    real_dtype = like.real.dtype if like.is_complex() else like.dtype
    if like.is_complex():
        draw = torch.randn((2, *like.shape), generator=generator, dtype=real_dtype, device=generator.device)
        noise = torch.complex(draw[0], draw[1]) * (sigma / math.sqrt(2.0))
    else:
        noise = torch.randn(like.shape, generator=generator, dtype=real_dtype, device=generator.device) * sigma
    return noise.to(like.device)


def sigma_from_snr(y_clean: torch.Tensor, snr_db: float, mask: torch.Tensor | None = None) -> float:
    """Noise ``sigma`` that gives ``snr_db = 10 log10(mean_sampled |y|^2 / sigma^2)``.

    Args:
        y_clean: noiseless measurements ``(..., H, W)``.
        snr_db: target SNR in decibels.
        mask: bool ``(H, W)`` (or broadcastable) of sampled entries; ``None``: every entry counts.

    Returns:
        ``sigma`` (a float).
    """
    if isinstance(snr_db, bool) or not isinstance(snr_db, (int, float)) or not math.isfinite(snr_db):
        raise ConfigError(f"noise snr_db: expected a finite number, got {snr_db!r}")
    power = y_clean.abs().pow(2)
    if mask is None:
        mean_power = power.mean()
    else:
        try:
            weight = torch.broadcast_to(mask.to(power.device, torch.bool), power.shape)
        except RuntimeError:
            raise ShapeError(
                f"sigma_from_snr: mask {tuple(mask.shape)} does not broadcast to the data {tuple(power.shape)}"
            ) from None
        n = int(weight.sum())
        if n == 0:
            raise ShapeError("sigma_from_snr: the mask samples nothing")
        mean_power = power[weight].sum() / n
    return math.sqrt(float(mean_power) / 10 ** (snr_db / 10))
