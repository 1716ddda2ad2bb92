"""Cartesian MRI forward models: single-coil ``y = M F x`` and multi-coil SENSE ``y_c = M F (S_c x)``.

``F`` is the centred orthonormal FFT (:func:`~genrecon.operators.fft.fft2c`), ``M`` a 0/1 sampling mask
(unsampled k-space entries are exact zeros, fastMRI's convention) and ``S_c`` the coil sensitivity maps.
Both operators follow the input's complex dtype (complex64 or complex128) and device; the mask and maps
are buffers, so ``op.to("cuda")`` moves them, and they are cast to the input on the fly otherwise.

The normal operator, the hot loop of iterative methods, needs no shifts: ``F = S_k fft2 S_n`` with the
permutations ``S_k = fftshift``, ``S_n = ifftshift``, so ``F^H M F = S_n^T (ifft2 M_u fft2) S_n`` with
``M_u = ifftshift(M)``; ``ifft2 M_u fft2`` is a circular convolution, which commutes with the cyclic shift
``S_n``, hence ``F^H M F = ifft2 M_u fft2`` for every image size. When the mask is the same on every row (a
Cartesian column mask, fastMRI's), the transform along H cancels as well and only 1-D FFTs along W remain.
"""

from __future__ import annotations

import math

import torch

from ..errors import ShapeError
from ..registry import OPERATORS
from .base import LinearOperator
from .fft import fft2c, ifft2c


def _as_mask(mask: torch.Tensor, shape: tuple[int, int] | None, who: str) -> torch.Tensor:
    """Validate a 0/1 mask ``(H, W)`` or ``(W,)`` and return it as a bool ``(H, W)`` tensor."""
    if not isinstance(mask, torch.Tensor):
        raise ShapeError(f"{who}: mask must be a torch.Tensor of shape (H, W) or (W,), got {type(mask).__name__}")
    if mask.is_complex():
        raise ShapeError(f"{who}: mask must be bool or real 0/1 values, got {mask.dtype}")
    if mask.dim() not in (1, 2):
        raise ShapeError(f"{who}: mask must have shape (H, W) or (W,), got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ShapeError(f"{who}: mask values must be 0 or 1 (a sampling pattern), got other values")
        mask = mask != 0
    if shape is not None:
        shape = (int(shape[0]), int(shape[1]))
        if mask.dim() == 2 and tuple(mask.shape) != shape:
            raise ShapeError(f"{who}: mask shape {tuple(mask.shape)} does not match the image shape {shape}")
        if mask.dim() == 1 and mask.shape[0] != shape[1]:
            raise ShapeError(
                f"{who}: a 1-D mask masks the width (phase-encoding) dim; expected ({shape[1]},), got "
                f"({mask.shape[0]},)"
            )
    if mask.dim() == 1:
        if shape is None:
            raise ShapeError(f"{who}: a 1-D mask (W,) needs shape=(H, W) to set the image height")
        mask = mask.expand(shape[0], -1)
    return mask.contiguous()


class _CartesianMRI(LinearOperator):
    complex_domain = True
    complex_range = True

    def _mask_for(self, k: torch.Tensor) -> torch.Tensor:
        mask = self.mask
        return mask if mask.device == k.device else mask.to(k.device)

    def _uncentred_mask(self, t: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """``(ifftshift(M) as t's dtype, columns_only)``: the mask on the FFT's own frequency order, cached per
        dtype and device. ``columns_only``: every row is the same, returned as ``(W,)``; else ``(H, W)``."""
        cache = self.__dict__.setdefault("_mask_u", {})
        key = (t.dtype, t.device)
        if key not in cache:
            mask = self.mask
            columns = bool((mask == mask[:1]).all())
            m = torch.fft.ifftshift(mask[0] if columns else mask, dim=-1 if columns else (-2, -1))
            cache.clear()
            cache[key] = (m.to(device=t.device, dtype=t.dtype), columns)
        return cache[key]

    def _shift_free_normal(self, x: torch.Tensor) -> torch.Tensor:
        """``F^H M F x = ifft2(ifftshift(M) fft2(x))`` (1-D FFTs along W for a column mask); see the module."""
        m, columns = self._uncentred_mask(x)
        if columns:
            k = torch.fft.fft(x, dim=-1, norm="ortho")
            k.mul_(m)
            return torch.fft.ifft(k, dim=-1, norm="ortho")
        k = torch.fft.fft2(x, dim=(-2, -1), norm="ortho")
        k.mul_(m)
        return torch.fft.ifft2(k, dim=(-2, -1), norm="ortho")

    @property
    def acceleration(self) -> float:
        """``H W / (number of sampled k-space locations)``."""
        return self.mask.numel() / max(int(self.mask.sum()), 1)


@OPERATORS.register("mri_single")
class SingleCoilMRI(_CartesianMRI):
    """Single-coil Cartesian MRI: ``y = M F x`` (zeros where ``M`` is 0).

    Args:
        mask: sampling mask, bool or 0/1 real, ``(H, W)`` or ``(W,)`` (columns, broadcast along ``H``).
        shape: image ``(H, W)``; required for a 1-D mask, checked against a 2-D one.

    Domain ``(1, H, W)`` complex, range ``(1, H, W)`` complex; the adjoint ``F^H M y`` is the
    zero-filled reconstruction.

    Example:
        >>> import torch
        >>> mask = torch.zeros(8, dtype=torch.bool); mask[::2] = True
        >>> A = SingleCoilMRI(mask, shape=(8, 8))
        >>> x = torch.randn(1, 1, 8, 8, dtype=torch.complex64)
        >>> A(x).shape
        torch.Size([1, 1, 8, 8])
    """

    def __init__(self, mask: torch.Tensor, shape: tuple[int, int] | None = None):
        mask = _as_mask(mask, shape, "SingleCoilMRI")
        h, w = mask.shape
        super().__init__((1, h, w), (1, h, w))
        self.register_buffer("mask", mask)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        k = fft2c(x)
        return k * self._mask_for(k)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return ifft2c(y * self._mask_for(y))

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x = F^H M F x``, computed without shifts (see the module)."""
        self._check(x, self.domain_shape, True, "normal")
        return self._shift_free_normal(x)

    def norm_squared(self, *, dtype: torch.dtype | None = None, device=None) -> float:
        """``||A||^2`` exactly: ``F^H M F`` is an orthogonal projection, so 1 (0 for an empty mask)."""
        return 1.0 if bool(self.mask.any()) else 0.0

    @classmethod
    def example(cls, size: int = 32) -> "SingleCoilMRI":
        """A small instance with a seeded random 4x column mask, for generic operator tests."""
        return cls(_example_mask(size, torch.Generator().manual_seed(1234)))


@OPERATORS.register("mri_multi")
class MultiCoilMRI(_CartesianMRI):
    """Multi-coil SENSE MRI: ``y_c = M F (S_c x)``; adjoint ``sum_c conj(S_c) F^H M y_c``.

    Args:
        maps: coil sensitivities ``(C, H, W)``, complex. With ``sum_c |S_c|^2 = 1`` at every pixel and a
            full mask, ``A^H A = I``.
        mask: sampling mask, bool or 0/1 real, ``(H, W)`` or ``(W,)`` (columns, broadcast along ``H``).

    Domain ``(1, H, W)`` complex, range ``(C, H, W)`` complex.

    Example:
        >>> import torch
        >>> maps = torch.ones(2, 8, 8, dtype=torch.complex64) / 2 ** 0.5
        >>> A = MultiCoilMRI(maps, torch.ones(8, 8, dtype=torch.bool))
        >>> x = torch.randn(1, 1, 8, 8, dtype=torch.complex64)
        >>> torch.allclose(A.normal(x), x, atol=1e-5)
        True
    """

    def __init__(self, maps: torch.Tensor, mask: torch.Tensor):
        if not isinstance(maps, torch.Tensor) or maps.dim() != 3:
            got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
            raise ShapeError(f"MultiCoilMRI: maps must be a tensor of shape (C, H, W), got {got}")
        if not maps.is_complex():
            maps = maps.to(torch.complex128 if maps.dtype == torch.float64 else torch.complex64)
        c, h, w = maps.shape
        mask = _as_mask(mask, (h, w), "MultiCoilMRI")
        super().__init__((1, h, w), (c, h, w))
        self.register_buffer("maps", maps.contiguous())
        self.register_buffer("mask", mask.to(maps.device))

    @property
    def n_coils(self) -> int:
        return self.range_shape[0]

    def _maps_for(self, t: torch.Tensor) -> torch.Tensor:
        maps = self.maps
        if maps.dtype != t.dtype or maps.device != t.device:
            maps = maps.to(device=t.device, dtype=t.dtype)
        return maps

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        k = fft2c(x * self._maps_for(x))  # (B, 1, H, W) * (C, H, W) -> (B, C, H, W)
        return k * self._mask_for(k)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        coil_images = ifft2c(y * self._mask_for(y))
        return torch.sum(coil_images * self._maps_for(y).conj(), dim=1, keepdim=True)

    def _known_norm_squared(self) -> float | None:
        """A full mask gives ``||A||^2`` exactly: ``A^H A = diag(sum_c |S_c|^2)``, so ``max_pixels sum_c |S_c|^2``.
        Otherwise None: the base class's power method, on the shift-free :meth:`normal`. (``max sum_c |S_c|^2`` is
        then only an upper bound; on ESPIRiT maps with a calibration region it is within 1e-3 of ``||A||^2``, but
        using it would change the step size, so it is not used.)
        """
        return float(self.maps.abs().square().sum(0).max()) if bool(self.mask.all()) else None

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x = sum_c conj(S_c) F^H M F (S_c x)``, the per-coil normal without shifts (see the module)."""
        self._check(x, self.domain_shape, True, "normal")
        maps = self._maps_for(x)
        coil_images = self._shift_free_normal(x * maps)
        return coil_images.mul_(self._conj_maps_for(maps)).sum(dim=1, keepdim=True)

    def _conj_maps_for(self, maps: torch.Tensor) -> torch.Tensor:
        """``conj(maps)`` materialised (a conjugate view would be resolved on every product), cached per dtype
        and device."""
        cache = self.__dict__.setdefault("_conj_maps", {})
        key = (maps.dtype, maps.device)
        if key not in cache:
            cache.clear()
            cache[key] = maps.conj().resolve_conj()
        return cache[key]

    @classmethod
    def example(cls, size: int = 32) -> "MultiCoilMRI":
        """A small 4-coil instance with seeded maps and a random 4x column mask, for generic tests."""
        g = torch.Generator().manual_seed(1234)
        mask = _example_mask(size, g)
        return cls(_example_maps(4, size, g), mask)


# -- test instances (``example``): self-contained, as an operator takes its mask and maps as data; the
# simulator's mask families and coil model (genrecon.simulate) sit in a higher layer -----------------------
def _example_mask(size: int, g: torch.Generator) -> torch.Tensor:
    """``(size, size)`` bool: about a quarter of the columns at random plus a fully sampled centre."""
    cols = torch.rand(size, generator=g) < 0.25
    half = max(1, size // 16)
    cols[size // 2 - half : size // 2 + half] = True
    return cols.expand(size, size).clone()


def _example_maps(n_coils: int, size: int, g: torch.Generator) -> torch.Tensor:
    """``(n_coils, size, size)`` complex64 smooth maps (loops on a ring, linear phase), ``sum |S_c|^2 = 1``."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    offset = float(torch.rand(1, generator=g)) * 2 * math.pi
    maps = []
    for c in range(n_coils):
        a = offset + 2 * math.pi * c / n_coils
        d2 = (xx - 1.5 * math.cos(a)) ** 2 + (yy - 1.5 * math.sin(a)) ** 2
        maps.append(torch.polar((1 + d2 / 0.64) ** -1.5, 0.3 * c + 0.5 * (xx * math.cos(a) + yy * math.sin(a))))
    m = torch.stack(maps)
    return (m / m.abs().square().sum(0).sqrt()).to(torch.complex64)
