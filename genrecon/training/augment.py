"""Random augmentation of training batches, drawn from an explicit generator.

Per image: a left-right flip with probability 1/2, a rotation by ``U(-r, r)`` degrees (bilinear, zero
fill), an intensity factor ``U(1 - s, 1 + s)``, then a clamp to ``[0, 1]``. Three uniforms are drawn per
image whatever the settings, so the generator's stream does not depend on them.

Example:
    >>> import torch
    >>> x = torch.rand(4, 1, 8, 8)
    >>> y = augment(x, torch.Generator().manual_seed(0), flips=True, rotation_deg=0.0, intensity_scale=0.0)
    >>> bool(((y == x) | (y == x.flip(-1))).flatten(1).all(1).all())
    True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rotate(x: torch.Tensor, angles_rad: torch.Tensor) -> torch.Tensor:
    """Rotate each image of ``x`` ``(B, C, H, W)`` about its centre by ``angles_rad`` ``(B,)``; zero fill."""
    cos, sin = torch.cos(angles_rad).to(x.dtype), torch.sin(angles_rad).to(x.dtype)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    flips: bool,
    rotation_deg: float,
    intensity_scale: float,
) -> torch.Tensor:
    """Augment a batch ``(B, C, H, W)`` of ``[0, 1]`` images; returns a new tensor of the same shape.

    Args:
        x: images on ``generator``'s device.
        generator: the augmentation stream (3 uniforms per image are drawn).
        flips: random left-right flips.
        rotation_deg: maximum absolute rotation in degrees (0: none).
        intensity_scale: ``s`` of the factor ``U(1 - s, 1 + s)`` (0: none).
    """
    b = x.shape[0]
    u = torch.rand((3, b), generator=generator, device=generator.device, dtype=torch.float64).to(x.device)
    out = x
    if flips:
        out = torch.where((u[0] < 0.5).reshape(-1, 1, 1, 1), out.flip(-1), out)
    if rotation_deg > 0:
        out = rotate(out, (2 * u[1] - 1) * math.radians(rotation_deg))
    if intensity_scale > 0:
        factor = (1 + intensity_scale * (2 * u[2] - 1)).to(x.dtype).reshape(-1, 1, 1, 1)
        out = out * factor
    return out.clamp(0, 1)
