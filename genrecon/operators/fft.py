"""Centred, orthonormal 2-D Fourier transform over the last two dimensions.

Convention (fastMRI's): the zero frequency sits at index ``(H // 2, W // 2)`` of k-space and the image
centre at ``(H // 2, W // 2)`` of image space; ``norm="ortho"`` makes the transform unitary, so
``||fft2c(x)|| == ||x||`` and ``ifft2c`` is both its inverse and its adjoint.

    fft2c(x)[k] = (H W)^(-1/2) sum_n x[n] exp(-2 pi i <k - c, n - c> / (H, W)),  c = (H // 2, W // 2)

implemented as ``fftshift(fft2(ifftshift(x), norm="ortho"))``; ``ifft2c`` flips the sign of the exponent.

Example:
    >>> import torch
    >>> x = torch.randn(1, 1, 8, 8, dtype=torch.complex64)
    >>> torch.allclose(ifft2c(fft2c(x)), x, atol=1e-6)
    True
"""

from __future__ import annotations

import torch

from ..errors import ShapeError
from ..registry import OPERATORS
from .base import LinearOperator

_DIMS = (-2, -1)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two dims.

    Args:
        x: image ``(..., H, W)``, complex (a real tensor is treated as complex with zero imaginary part).

    Returns:
        k-space ``(..., H, W)`` of the complex dtype matching ``x``.
    """
    x = torch.fft.ifftshift(x, dim=_DIMS)
    x = torch.fft.fft2(x, dim=_DIMS, norm="ortho")
    return torch.fft.fftshift(x, dim=_DIMS)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse 2-D FFT over the last two dims (the inverse and adjoint of :func:`fft2c`).

    Args:
        k: k-space ``(..., H, W)``, complex.

    Returns:
        image ``(..., H, W)``, complex.
    """
    k = torch.fft.ifftshift(k, dim=_DIMS)
    k = torch.fft.ifft2(k, dim=_DIMS, norm="ortho")
    return torch.fft.fftshift(k, dim=_DIMS)


@OPERATORS.register("fft")
class FFT2(LinearOperator):
    """Centred orthonormal 2-D Fourier transform ``y = F x`` (unitary: ``F^H F = I``).

    Args:
        shape: ``(C, H, W)`` of one input; the transform acts on each channel.

    Example:
        >>> import torch
        >>> F = FFT2((1, 8, 8))
        >>> x = torch.randn(2, 1, 8, 8, dtype=torch.complex128)
        >>> torch.allclose(F.adjoint(F(x)), x)
        True
    """

    complex_domain = True
    complex_range = True

    def __init__(self, shape: tuple[int, int, int]):
        shape = tuple(shape)
        if len(shape) != 3 or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ShapeError(f"FFT2: expected shape (C, H, W) of positive integers, got {shape}")
        super().__init__(shape, shape)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return fft2c(x)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return ifft2c(y)

    @classmethod
    def example(cls, size: int = 32) -> "FFT2":
        """A small instance for generic operator tests."""
        return cls((1, size, size))
