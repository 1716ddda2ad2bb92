"""Maps between a prior's image range and an operator's image domain, shared by the prior-based reconstructors.

A generative prior makes real images ``g`` of shape ``(B, C, S, S)`` in ``[0, 1]`` (the training normalisation,
``meta["normalisation"]``). An operator's domain may be complex (MRI, ``(1, H, W)`` complex) or real (CT
attenuation, ``(1, N, N)``) and its intensities need not be those of the prior. :class:`ImageAdapter` is the
affine-free bridge between the two:

    to_domain:    x = s * g * exp(i phi)          (complex domain; ``x = s * g`` for a real one)
    from_domain:  g = |x| / s                     (complex domain; ``g = x / s`` for a real one)

with a per-measurement intensity scale ``s > 0`` and phase map ``phi``:

- phase ``"zero"``: ``phi = 0``, right for simulated MRI of real (magnitude) images;
- phase ``"lowres"``: ``phi = angle(A^H (w * y))`` with ``w`` a centred separable Hann window over the central
  ``lowres_fraction`` of each k-space axis: the classical low-resolution phase estimate for measured data.
  It needs Cartesian k-space whose last two dims are the image's (the MRI operators' convention).
- intensity scale a number (default 1.0: the pipeline normalises images to about [0, 1], the prior's range), or
  ``"auto"``: ``s = q99.5(|x_ls|) / reference_level``, where ``x_ls`` is a least-squares estimate of the image
  (:func:`least_squares_estimate`: a few CG iterations on ``A^H A x = A^H y`` from 0; for Cartesian MRI this is
  exactly the zero-filled image, whose low frequencies, which carry the bright tissue level, are measured) and
  ``reference_level`` the 99.5th percentile of typical prior images (1.0 for data normalised by their own
  99.5th percentile, genrecon's training convention; a generator-based method passes the level of a few of its
  own samples). The 99.5th percentile ignores a few hot pixels and streaks; it is a coarse match of intensity
  levels, good to about 10-20 %, meant for data whose normalisation is unknown.

Example:
    >>> import torch
    >>> from genrecon.operators import SingleCoilMRI
    >>> op = SingleCoilMRI(torch.ones(8, 8, dtype=torch.bool))
    >>> g = torch.rand(1, 1, 8, 8)
    >>> adapter = ImageAdapter.fit(op(g.to(torch.complex64)), op)       # zero phase, scale 1
    >>> x = adapter.to_domain(g)
    >>> x.dtype, torch.allclose(adapter.from_domain(x), g)
    (torch.complex64, True)
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from ..errors import ShapeError
from ..operators.base import LinearOperator
from ..solvers.cg import conjugate_gradient

PhaseMode = Literal["zero", "lowres"]
PHASE_MODES = ("zero", "lowres")
#: fraction of each k-space axis (centred) that the low-resolution phase estimate keeps
LOWRES_FRACTION = 0.125
#: percentile used to match intensity levels ("auto" scale)
LEVEL_QUANTILE = 0.995
#: CG iterations of the least-squares estimate
CG_ITER = 10
#: relative residual ``||A^H (y - A x)|| / ||A^H y||`` at which the least-squares estimate stops
CG_TOL = 1e-6


def check_adapter_params(phase, intensity_scale, who: str) -> list[str]:
    """Problems with the ``phase`` / ``intensity_scale`` parameters of a reconstructor (empty if fine)."""
    problems = []
    if phase not in PHASE_MODES:
        problems.append(f"{who}: phase must be one of {', '.join(PHASE_MODES)}, got {phase!r}")
    if isinstance(intensity_scale, str):
        if intensity_scale != "auto":
            problems.append(f"{who}: intensity_scale must be a positive number or 'auto', got {intensity_scale!r}")
    elif isinstance(intensity_scale, bool) or not isinstance(intensity_scale, (int, float)):
        problems.append(f"{who}: intensity_scale must be a positive number or 'auto', got {intensity_scale!r}")
    elif not (math.isfinite(intensity_scale) and intensity_scale > 0):
        problems.append(f"{who}: intensity_scale must be a positive number or 'auto', got {intensity_scale}")
    return problems


def least_squares_estimate(y: torch.Tensor, op: LinearOperator, n_iter: int = CG_ITER) -> torch.Tensor:
    """A rough image from ``n_iter`` conjugate-gradient iterations on ``A^H A x = A^H y`` from ``x = 0`` (CGNR).

    Early-stopped CG is a regularised least-squares solution: low frequencies converge first. For Cartesian
    MRI (``A^H A`` a projection) it stops after one iteration at the zero-filled image ``A^H y``. Stops early
    when every batch element has ``||A^H (y - A x)|| <= 1e-6 ||A^H y||``.

    Args:
        y: measurements ``(B, *op.range_shape)``.
        op: the operator.
        n_iter: maximum CG iterations.

    Returns:
        ``(B, *op.domain_shape)`` of the domain's dtype.
    """
    with torch.no_grad():
        return conjugate_gradient(op.normal, op.adjoint(y), None, n_iter=n_iter, tol=CG_TOL)


def _hann(n: int, fraction: float, dtype, device) -> torch.Tensor:
    """Centred Hann window of length ``n`` that is non-zero on the central ``fraction`` (at least 3 samples)."""
    half = max(fraction * n / 2.0, 1.5)
    k = torch.arange(n, dtype=dtype, device=device) - n // 2  # index n // 2 is k-space centre (centred FFT)
    w = 0.5 * (1.0 + torch.cos(math.pi * k / half))
    return torch.where(k.abs() < half, w, torch.zeros_like(w))


def lowres_phase(y: torch.Tensor, op: LinearOperator, fraction: float = LOWRES_FRACTION) -> torch.Tensor:
    """Low-resolution phase ``angle(A^H (w * y))`` with a centred Hann window ``w`` on the last two dims of ``y``.

    Args:
        y: centred Cartesian k-space ``(B, *op.range_shape)``, complex; its last two dims must be the image's.
        op: the (MRI) operator.
        fraction: part of each k-space axis the window keeps.

    Returns:
        phase in radians, real ``(B, *op.domain_shape)``.

    Raises:
        ShapeError: the operator is not complex or its measurements are not image-shaped k-space.
    """
    if not (op.complex_domain and op.complex_range) or tuple(op.range_shape[-2:]) != tuple(op.domain_shape[-2:]):
        raise ShapeError(
            f"phase 'lowres' needs Cartesian k-space with the image's size (MRI operators); {op.name} maps "
            f"{tuple(op.domain_shape)} to {tuple(op.range_shape)}: use phase 'zero'"
        )
    h, w = y.shape[-2:]
    rdtype = y.real.dtype
    win = _hann(h, fraction, rdtype, y.device)[:, None] * _hann(w, fraction, rdtype, y.device)[None, :]
    with torch.no_grad():
        return torch.angle(op.adjoint(y * win))


def image_level(x: torch.Tensor, q: float = LEVEL_QUANTILE) -> torch.Tensor:
    """Per-batch ``q``-quantile of ``|x|``, shape ``(B,)``: the bright-tissue level of images ``(B, ...)``."""
    mag = x.abs()
    flat = mag.flatten(1).to(torch.float64 if mag.dtype == torch.float64 else torch.float32)
    return torch.quantile(flat, q, dim=1)


def auto_intensity_scale(
    y: torch.Tensor, op: LinearOperator, reference_level: float = 1.0, *, n_iter: int = CG_ITER
) -> torch.Tensor:
    """``s = q99.5(|x_ls|) / reference_level`` per batch element, shape ``(B,)`` (see the module docstring).

    Falls back to 1 for an all-zero estimate.
    """
    if not (reference_level > 0 and math.isfinite(reference_level)):
        raise ShapeError(f"auto intensity scale: the prior's reference level must be > 0, got {reference_level}")
    level = image_level(least_squares_estimate(y, op, n_iter)) / float(reference_level)
    return torch.where(level > 0, level, torch.ones_like(level))


class ImageAdapter:
    """Maps prior images ``g`` ``(B, C, S, S)`` in ``[0, 1]`` to operator images ``x`` ``(B, C, S, S)`` and back.

    ``to_domain(g) = s * g * exp(i phi)`` (complex domain) or ``s * g`` (real); ``from_domain`` inverts it for
    in-range images (magnitude for a complex domain). Build it with :meth:`fit` from the measurement; the
    batch of ``g`` must equal the fitted batch, or the fitted batch is 1 and broadcasts (e.g. over restarts).

    Args:
        complex_domain: whether the operator's images are complex.
        scale: intensity scale ``s``: a positive number or a tensor ``(B,)``.
        phase: phase map in radians ``(B, C or 1, H, W)``, or None for zero phase (complex domains only).

    Example:
        >>> import torch
        >>> a = ImageAdapter(complex_domain=False, scale=2.0)
        >>> a.to_domain(torch.full((1, 1, 2, 2), 0.5)).flatten().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """

    def __init__(self, *, complex_domain: bool, scale: float | torch.Tensor = 1.0, phase: torch.Tensor | None = None):
        self.complex_domain = bool(complex_domain)
        self.scale = scale
        self.phase = phase if self.complex_domain else None
        self._rotor_cache: dict[tuple, torch.Tensor] = {}

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        y: torch.Tensor,
        op: LinearOperator,
        *,
        phase: PhaseMode = "zero",
        intensity_scale: float | Literal["auto"] = 1.0,
        reference_level: float = 1.0,
        lowres_fraction: float = LOWRES_FRACTION,
    ) -> "ImageAdapter":
        """The adapter for measurements ``y`` ``(B, *op.range_shape)`` of ``op``.

        Args:
            y: the measurements.
            op: the operator.
            phase: ``"zero"`` or ``"lowres"`` (ignored for a real domain: real images have no phase).
            intensity_scale: a positive number, or ``"auto"`` (see the module docstring).
            reference_level: the prior's typical 99.5th-percentile intensity, for ``"auto"``.
            lowres_fraction: central fraction of k-space used by the ``"lowres"`` phase.
        """
        problems = check_adapter_params(phase, intensity_scale, "ImageAdapter")
        if problems:
            raise ShapeError("; ".join(problems))
        if intensity_scale == "auto":
            scale: float | torch.Tensor = auto_intensity_scale(y, op, reference_level)
        else:
            scale = float(intensity_scale)
        phi = lowres_phase(y, op, lowres_fraction) if (op.complex_domain and phase == "lowres") else None
        return cls(complex_domain=op.complex_domain, scale=scale, phase=phi)

    # -- maps ---------------------------------------------------------------------------------------
    def _scale_for(self, t: torch.Tensor) -> torch.Tensor | float:
        if isinstance(self.scale, torch.Tensor):
            return self.scale.to(device=t.device, dtype=t.real.dtype).view(-1, *([1] * (t.dim() - 1)))
        return self.scale

    def _rotor(self, g: torch.Tensor) -> torch.Tensor:
        """``exp(i phi)`` in ``g``'s complex dtype and device (cached)."""
        cdtype = torch.complex128 if g.dtype == torch.float64 else torch.complex64
        key = (cdtype, g.device)
        if key not in self._rotor_cache:
            phi = self.phase.to(device=g.device, dtype=g.dtype)
            self._rotor_cache[key] = torch.polar(torch.ones_like(phi), phi).to(cdtype)
        return self._rotor_cache[key]

    def to_domain(self, g: torch.Tensor) -> torch.Tensor:
        """Prior images ``g`` ``(B, C, S, S)`` real -> operator images: ``s g`` or ``s g exp(i phi)`` (complex)."""
        x = g * self._scale_for(g)
        if not self.complex_domain:
            return x
        cdtype = torch.complex128 if g.dtype == torch.float64 else torch.complex64
        if self.phase is None:
            return x.to(cdtype)
        return x.to(cdtype) * self._rotor(g)

    def from_domain(self, x: torch.Tensor) -> torch.Tensor:
        """Operator images -> prior images: ``|x| / s`` (complex domain) or ``x / s`` (real), same shape."""
        g = x.abs() if x.is_complex() else x
        return g / self._scale_for(g)

    def scale_value(self) -> float:
        """The intensity scale as one float (the mean over the batch for ``"auto"``), for reports."""
        if isinstance(self.scale, torch.Tensor):
            return float(self.scale.float().mean())
        return float(self.scale)
