"""Separable resampling between two image grids of the same field of view: ``U x = M_h x M_w^T``.

:class:`Upsample` maps images ``(B, C, h, w)`` (a prior's grid) to ``(B, C, H, W)`` (the measured image's grid)
with one 1-D matrix per axis, so the adjoint is exact by construction: ``U^H y = M_h^H y conj(M_w)``. The 1-D maps
keep intensities (a constant image stays the same constant), so ``||U||^2`` is about ``H W / (h w)``.

- ``fourier`` (sinc interpolation, complex): ``M = F_n^H P F_m sqrt(n / m)`` with ``F`` the centred orthonormal DFT
  and ``P`` the zero-padding that puts the ``m`` low frequencies at the centre of the ``n`` frequencies; in MRI terms
  ``U`` places the small image's k-space at the centre of the large k-space (no new frequencies).
- ``linear`` (real): linear interpolation between pixel centres (half-pixel convention, edges held), the
  bilinear image of the small grid; for CT, where sinc interpolation rings at the skull.

``fov < 1`` lets the small grid cover only the centred ``round(fov n)`` pixels of each axis (zero elsewhere):
a prior trained on images cropped around the anatomy sees it at its training scale. An optional ``phase`` map on
the large grid multiplies the result: ``U x = exp(i phi) (M_h x M_w^T)`` (measured MRI's low-resolution phase).

Example:
    >>> import torch
    >>> U = Upsample((1, 4, 4), (1, 8, 8), kind="linear")
    >>> U(torch.ones(1, 1, 4, 4)).unique().tolist()
    [1.0]
    >>> from genrecon.operators.base import adjoint_error
    >>> adjoint_error(Upsample((1, 4, 4), (1, 10, 6), kind="fourier")) < 1e-12
    True
"""

from __future__ import annotations

import math

import torch

from ..errors import ShapeError
from .base import LinearOperator

KINDS = ("fourier", "linear")


def _dft(n: int, dtype=torch.complex128) -> torch.Tensor:
    """The centred orthonormal DFT matrix (``fftshift(fft(ifftshift(x)))`` as a matrix), ``(n, n)``."""
    eye = torch.eye(n, dtype=dtype)
    return torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(eye, dim=0), dim=0, norm="ortho"), dim=0)


def fourier_matrix(n: int, m: int) -> torch.Tensor:
    """``(n, m)`` complex128 sinc interpolation: the ``m`` centred frequencies placed at the centre of ``n``."""
    if n < m:
        raise ShapeError(f"fourier_matrix: cannot upsample {m} samples to fewer ({n})")
    pad = torch.zeros(n, m, dtype=torch.complex128)
    start = n // 2 - m // 2  # index n // 2 is the centre (zero frequency) of the centred DFT
    pad[start : start + m] = torch.eye(m, dtype=torch.complex128)
    return _dft(n).conj().T @ pad @ _dft(m) * math.sqrt(n / m)


def linear_matrix(n: int, m: int) -> torch.Tensor:
    """``(n, m)`` float64 linear interpolation between pixel centres (half-pixel convention, edges held)."""
    pos = ((torch.arange(n, dtype=torch.float64) + 0.5) * m / n - 0.5).clamp(0, m - 1)
    lo = pos.floor().long().clamp(max=m - 1)
    hi = (lo + 1).clamp(max=m - 1)
    frac = pos - lo
    mat = torch.zeros(n, m, dtype=torch.float64)
    rows = torch.arange(n)
    mat[rows, lo] += 1 - frac
    mat[rows, hi] += frac
    return mat


def axis_matrix(n: int, m: int, kind: str, fov: float = 1.0) -> torch.Tensor:
    """The 1-D map of one axis: ``m`` samples to the centred ``round(fov n)`` of ``n`` (zero elsewhere)."""
    inner = min(n, max(m, int(round(fov * n))))
    if (n - inner) % 2:  # an even margin: the small grid's centre stays on the large grid's centre
        inner += 1
    core = fourier_matrix(inner, m) if kind == "fourier" else linear_matrix(inner, m)
    if inner == n:
        return core
    full = torch.zeros(n, m, dtype=core.dtype)
    start = n // 2 - inner // 2
    full[start : start + inner] = core
    return full


class Upsample(LinearOperator):
    """``U x = [exp(i phi)] M_h x M_w^T`` from ``(C, h, w)`` to ``(C, H, W)`` (see the module docstring).

    Args:
        small: ``(C, h, w)``, the grid of the input images.
        large: ``(C, H, W)``, the grid of the output images (``H >= h``, ``W >= w``).
        kind: ``"fourier"`` (complex domain and range) or ``"linear"`` (real, or complex with ``complex=True``).
        fov: part of each output axis the input grid covers, in ``(0, 1]``.
        complex: complex images with a real ``linear`` map (MRI with linear interpolation).
        phase: phase map ``(1 or B, C, H, W)`` in radians applied to the output (complex only), or None.
    """

    def __init__(self, small: tuple[int, int, int], large: tuple[int, int, int], *, kind: str = "fourier",
                 fov: float = 1.0, complex: bool | None = None, phase: torch.Tensor | None = None):
        super().__init__(small, large)
        if kind not in KINDS:
            raise ShapeError(f"Upsample: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if len(self.domain_shape) != 3 or self.domain_shape[0] != self.range_shape[0]:
            raise ShapeError(f"Upsample: expected (C, h, w) -> (C, H, W), got {small} -> {large}")
        if any(b < s for s, b in zip(self.domain_shape[1:], self.range_shape[1:])):
            raise ShapeError(f"Upsample: the output grid {large} is smaller than the input grid {small}")
        if not (0 < fov <= 1):
            raise ShapeError(f"Upsample: fov must be in (0, 1], got {fov}")
        self.kind, self.fov = kind, float(fov)
        cplx = kind == "fourier" or bool(complex) or phase is not None
        self.complex_domain = self.complex_range = cplx
        self.register_buffer("mh", axis_matrix(self.range_shape[1], self.domain_shape[1], kind, fov))
        self.register_buffer("mw", axis_matrix(self.range_shape[2], self.domain_shape[2], kind, fov))
        self.register_buffer("rotor", None if phase is None else torch.polar(torch.ones_like(phase), phase))

    def _mats(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if t.is_complex() or not self.mh.is_complex():
            dtype = t.dtype
        else:
            dtype = torch.complex128 if t.dtype == torch.float64 else torch.complex64
        return self.mh.to(device=t.device, dtype=dtype), self.mw.to(device=t.device, dtype=dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        mh, mw = self._mats(x)
        out = mh @ x.to(mh.dtype) @ mw.T
        if self.rotor is not None:
            out = out * self.rotor.to(device=out.device, dtype=out.dtype)
        return out

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.rotor is not None:
            y = y * self.rotor.to(device=y.device, dtype=y.dtype).conj()
        mh, mw = self._mats(y)
        return mh.conj().T @ y.to(mh.dtype) @ mw.conj()

    def extra_repr(self) -> str:
        return f"{self.domain_shape} -> {self.range_shape}, kind={self.kind}, fov={self.fov}"
