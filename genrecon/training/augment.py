"""Random augmentation of training batches, drawn from an explicit generator.

Per image, in this order (each step only when its setting is on; defaults are off):

1. random crop: a square of side ``U(crop_min, 1)`` of the image at a uniform position, resized back (bilinear);
2. left-right flip with probability 1/2 (``flips``); up-down flip with probability 1/2 (``vflips``);
3. affine: rotation by ``U(-r, r)`` degrees, zoom by ``U(1 - s, 1 + s)``, shear by ``U(-h, h)`` degrees about the
   centre (one bilinear resampling, zero fill);
4. elastic deformation: a displacement field bilinearly interpolated from uniform ``[-1, 1]`` values on an
   ``elastic_grid`` x ``elastic_grid`` lattice, times ``elastic_px`` pixels (so ``|d| <= elastic_px``);
5. gamma ``x ** g``, ``g = exp(U(-ln G, ln G))``; intensity factor ``U(1 - s, 1 + s)``; contrast about the image
   mean, ``m + c (x - m)`` with ``c ~ U(1 - s, 1 + s)``; a smooth multiplicative bias field ``exp(b)``, ``b`` a
   random quadratic with ``|b| <= bias_field``; additive Gaussian noise of std ``U(0, noise_std)``;
6. a clamp to ``[0, 1]``.

Stream: three uniforms per image are drawn first whatever the settings (flip, rotation, intensity factor: the
stream from before the other keys existed, so configs without them give bit-identical batches), then each enabled new
step draws its own numbers in the order above. Nothing touches the global RNG.

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


def _uniform(generator: torch.Generator, shape, lo: float, hi: float, device) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64).to(device)
    return lo + (hi - lo) * u


def _sample(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate(x: torch.Tensor, angles_rad: torch.Tensor) -> torch.Tensor:
    """Rotate each image of ``x`` ``(B, C, H, W)`` about its centre by ``angles_rad`` ``(B,)``; zero fill."""
    cos, sin = torch.cos(angles_rad).to(x.dtype), torch.sin(angles_rad).to(x.dtype)
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    return _sample(x, theta)


def affine(x: torch.Tensor, angles_rad: torch.Tensor, zoom: torch.Tensor, shear_rad: torch.Tensor) -> torch.Tensor:
    """Rotate, zoom (``> 1`` enlarges) and shear each image about its centre, one bilinear resampling, zero fill.

    The sampling map is ``R(angle) Sh(shear) / zoom`` (output -> input coordinates), all ``(B,)`` float64.
    """
    cos, sin = torch.cos(angles_rad), torch.sin(angles_rad)
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    one, zero = torch.ones_like(cos), torch.zeros_like(cos)
    shear = torch.stack([torch.stack([one, torch.tan(shear_rad)], 1), torch.stack([zero, one], 1)], 1)
    lin = rot @ shear / zoom.reshape(-1, 1, 1)
    return _sample(x, torch.cat([lin, torch.zeros_like(lin[:, :, :1])], 2))


def crop_resize(x: torch.Tensor, side: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """The square window of relative side ``side`` ``(B,)`` centred at ``centre`` ``(B, 2)`` (normalised
    ``[-1, 1]`` coordinates, x then y) of each image, resized back to ``(H, W)`` by bilinear interpolation."""
    zero = torch.zeros_like(side)
    theta = torch.stack([torch.stack([side, zero, centre[:, 0]], 1), torch.stack([zero, side, centre[:, 1]], 1)], 1)
    return _sample(x, theta)


def elastic_field(generator: torch.Generator, b: int, h: int, w: int, magnitude_px: float, grid: int,
                  device) -> torch.Tensor:
    """Displacements ``(B, 2, H, W)`` in pixels (x then y): uniform ``[-1, 1]`` on a ``grid`` x ``grid`` lattice,
    bilinearly interpolated (so smooth, piecewise linear) and scaled by ``magnitude_px``; ``|d| <= magnitude_px``."""
    coarse = _uniform(generator, (b, 2, grid, grid), -1.0, 1.0, device)
    return magnitude_px * F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)


def elastic(x: torch.Tensor, displacement_px: torch.Tensor) -> torch.Tensor:
    """Warp ``x`` ``(B, C, H, W)``: output pixel p takes the input at ``p + d(p)`` (bilinear, zero fill)."""
    b, _, h, w = x.shape
    eye = torch.eye(2, 3, dtype=x.dtype, device=x.device).expand(b, 2, 3)
    base = F.affine_grid(eye, list(x.shape), align_corners=False)
    scale = torch.tensor([2.0 / w, 2.0 / h], dtype=x.dtype, device=x.device)
    grid = base + displacement_px.to(x.dtype).permute(0, 2, 3, 1) * scale
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def bias_log_field(coeffs: torch.Tensor, h: int, w: int, magnitude: float) -> torch.Tensor:
    """``b = magnitude * sum_k c_k phi_k / sum_k |c_k|`` over ``phi = (x, y, x^2, y^2, xy)`` on ``[-1, 1]^2``;
    ``coeffs`` ``(B, 5)``; returns ``(B, 1, H, W)`` with ``|b| <= magnitude``."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h, dtype=coeffs.dtype, device=coeffs.device),
                            torch.linspace(-1, 1, w, dtype=coeffs.dtype, device=coeffs.device), indexing="ij")
    basis = torch.stack([xx, yy, xx * xx, yy * yy, xx * yy])  # (5, H, W), each in [-1, 1]
    norm = coeffs.abs().sum(1).clamp_min(1e-12).reshape(-1, 1, 1)
    return (magnitude * torch.einsum("bk,khw->bhw", coeffs, basis) / norm).unsqueeze(1)


def augment(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    flips: bool,
    rotation_deg: float,
    intensity_scale: float,
    vflips: bool = False,
    scale: float = 0.0,
    shear_deg: float = 0.0,
    elastic_px: float = 0.0,
    elastic_grid: int = 5,
    crop_min: float = 1.0,
    gamma: float = 1.0,
    contrast: float = 0.0,
    bias_field: float = 0.0,
    noise_std: float = 0.0,
) -> torch.Tensor:
    """Augment a batch ``(B, C, H, W)`` of ``[0, 1]`` images; returns a new tensor of the same shape in ``[0, 1]``.

    Args:
        x: images (float).
        generator: the augmentation stream (3 uniforms per image always, more for each enabled new step).
        flips: random left-right flips.
        rotation_deg: maximum absolute rotation in degrees (0: none).
        intensity_scale: ``s`` of the factor ``U(1 - s, 1 + s)`` (0: none).
        vflips: random up-down flips.
        scale: ``s`` of the zoom ``U(1 - s, 1 + s)`` (0: none).
        shear_deg: maximum absolute shear angle in degrees (0: none).
        elastic_px: maximum displacement of the elastic field in pixels (0: none).
        elastic_grid: control points per side of the elastic field (>= 2; more: finer deformations).
        crop_min: smallest crop side as a fraction of the image (1: no crop).
        gamma: ``G >= 1``: exponent ``exp(U(-ln G, ln G))`` (1: none).
        contrast: ``s`` of the contrast factor ``U(1 - s, 1 + s)`` about the image mean (0: none).
        bias_field: maximum absolute log of the multiplicative bias field (0: none).
        noise_std: maximum std of additive Gaussian noise (0: none).
    """
    b, _, h, w = x.shape
    dev = x.device
    u = _uniform(generator, (3, b), 0.0, 1.0, dev)
    out = x
    if crop_min < 1:
        side = _uniform(generator, (b,), crop_min, 1.0, dev)
        centre = (1 - side).unsqueeze(1) * _uniform(generator, (b, 2), -1.0, 1.0, dev)
        out = crop_resize(out, side.to(x.dtype), centre.to(x.dtype))
    if flips:
        out = torch.where((u[0] < 0.5).reshape(-1, 1, 1, 1), out.flip(-1), out)
    if vflips:
        v = _uniform(generator, (b,), 0.0, 1.0, dev)
        out = torch.where((v < 0.5).reshape(-1, 1, 1, 1), out.flip(-2), out)
    angles = (2 * u[1] - 1) * math.radians(rotation_deg)
    if scale > 0 or shear_deg > 0:
        zoom = _uniform(generator, (b,), 1 - scale, 1 + scale, dev) if scale > 0 else torch.ones_like(angles)
        shear = (_uniform(generator, (b,), -1.0, 1.0, dev) * math.radians(shear_deg) if shear_deg > 0
                 else torch.zeros_like(angles))
        out = affine(out, angles, zoom, shear)
    elif rotation_deg > 0:
        out = rotate(out, angles)
    if elastic_px > 0:
        out = elastic(out, elastic_field(generator, b, h, w, elastic_px, elastic_grid, dev))
    if gamma > 1:
        g = torch.exp(_uniform(generator, (b,), -math.log(gamma), math.log(gamma), dev)).to(x.dtype)
        out = out.clamp_min(0) ** g.reshape(-1, 1, 1, 1)
    if intensity_scale > 0:
        factor = (1 + intensity_scale * (2 * u[2] - 1)).to(x.dtype).reshape(-1, 1, 1, 1)
        out = out * factor
    if contrast > 0:
        c = _uniform(generator, (b,), 1 - contrast, 1 + contrast, dev).to(x.dtype).reshape(-1, 1, 1, 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = mean + c * (out - mean)
    if bias_field > 0:
        coeffs = _uniform(generator, (b, 5), -1.0, 1.0, dev)
        out = out * torch.exp(bias_log_field(coeffs, h, w, bias_field)).to(x.dtype)
    if noise_std > 0:
        sigma = _uniform(generator, (b,), 0.0, noise_std, dev).to(x.dtype).reshape(-1, 1, 1, 1)
        noise = torch.randn(out.shape, generator=generator, device=generator.device, dtype=x.dtype).to(dev)
        out = out + sigma * noise
    return out.clamp(0, 1)
