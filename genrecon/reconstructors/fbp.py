"""Filtered backprojection for the CT projectors of :mod:`genrecon.operators.ct`.

Parallel beam (``theta`` over 180 degrees; larger or irregular sets are weighted by their angular gaps):

    x = du / scale^2 * A^T ( w_theta * (h * y) ),    h: the ramp filter |nu| (Ram-Lak) times a window

where ``A^T`` is the operator's exact adjoint, ``du`` the detector spacing and ``scale`` the operator's
normalisation (``A = scale * A_raw``), so normalised and raw operators give the same image.

Fan beam with a flat detector (Kak & Slaney, weighted FBP), detector rescaled to the isocentre
(``u' = u D_so / D_sd``):

    x(p) = sum_beta dbeta (D_so / L(p, beta))^2 q_beta(u'(p)),   q = h * (w * D_so / sqrt(D_so^2 + u'^2) * y)

with ``L`` the source-to-pixel distance along the central ray and ``w`` the redundancy weights: 1/2 for a
full 360-degree scan, Parker weights for a short scan (at least 180 degrees plus the fan angle), 1 for less
(incomplete data: only approximate). The fan-beam backprojection is pixel-driven (linear interpolation), not
the operator's adjoint, since the weight ``1/L^2`` is not that of ``A^T``.

Example:
    >>> import math, torch
    >>> from genrecon.operators.ct import ParallelBeam
    >>> from genrecon.phantoms import disc
    >>> A = ParallelBeam(image_size=64, angles=torch.arange(90) * math.pi / 90)
    >>> x = disc(64, 0.5).view(1, 1, 64, 64)
    >>> x_hat = FBP(filter="ramp")(A(x), A)
    >>> bool((x_hat - x).abs().mean() < 0.05)
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..errors import ConfigError
from ..operators.ct import CTProjector, FanBeam, ParallelBeam, pixel_coordinates
from ..registry import RECONSTRUCTORS
from .base import Reconstructor

FILTERS = ("ramp", "shepp-logan", "cosine", "hann")


def filter_response(
    n_detectors: int,
    spacing: float,
    filter: str = "ramp",
    frequency_scaling: float = 1.0,
    *,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> tuple[torch.Tensor, int]:
    """Frequency response of the windowed ramp filter on a zero-padded detector: ``(H (P//2+1,), P)``.

    The ramp comes from the band-limited spatial kernel (``h[0] = 1/4``, ``h[n] = -1/(pi n)^2`` for odd
    ``n``), divided by ``spacing``, so the DC term is right. Windows follow ODL: with the normalised
    frequency ``f`` (1 at Nyquist), ``shepp-logan: sinc(f / (2 c))``, ``cosine: cos(pi f / (2 c))``,
    ``hann: cos^2(pi f / (2 c))``, and 0 above ``f > c`` where ``c = frequency_scaling``.
    """
    if filter not in FILTERS:
        raise ConfigError(f"fbp: filter must be one of {', '.join(FILTERS)}, got {filter!r}")
    size = max(64, 1 << int(math.ceil(math.log2(2 * n_detectors))))
    n = torch.arange(size, dtype=torch.float64)
    n = torch.minimum(n, size - n)
    kernel = torch.where(n % 2 == 1, -1.0 / (math.pi * n.clamp(min=1)) ** 2, torch.zeros_like(n))
    kernel[0] = 0.25
    response = torch.fft.rfft(kernel).real / spacing
    f = torch.arange(response.numel(), dtype=torch.float64) * 2.0 / size
    c = float(frequency_scaling)
    if filter == "shepp-logan":
        response = response * torch.sinc(f / (2 * c))
    elif filter == "cosine":
        response = response * torch.cos(math.pi * f / (2 * c))
    elif filter == "hann":
        response = response * torch.cos(math.pi * f / (2 * c)) ** 2
    response = torch.where(f > c, torch.zeros_like(response), response)
    return response.to(dtype=dtype, device=device), size


def filter_rows(p: torch.Tensor, spacing: float, filter: str = "ramp", frequency_scaling: float = 1.0) -> torch.Tensor:
    """Filter the last axis (the detector) of ``p`` with the windowed ramp: ``(..., D) -> (..., D)``."""
    d = p.shape[-1]
    response, size = filter_response(d, spacing, filter, frequency_scaling, dtype=p.dtype, device=p.device)
    return torch.fft.irfft(torch.fft.rfft(p, n=size) * response, n=size)[..., :d]


def angular_weights(angles: torch.Tensor, period: float) -> torch.Tensor:
    """Quadrature weights ``dtheta`` of view angles on a circle of ``period`` (pi parallel, 2 pi fan).

    Each view gets half of the gaps to its neighbours (angles taken modulo ``period``). A gap wider than four
    typical gaps is a missing wedge: it contributes only half a typical gap to each of its two views.
    """
    v = angles.numel()
    if v == 1:
        return torch.full_like(angles, period)
    a = torch.remainder(angles.to(torch.float64), period)
    sorted_a, order = torch.sort(a)
    gaps = torch.diff(sorted_a, append=sorted_a[:1] + period)  # gap after each sorted view (circular)
    typical = (period - float(gaps.max())) / (v - 1)
    typical = typical if typical > 0 else period / v
    half = torch.where(gaps <= 4 * typical, gaps, torch.full_like(gaps, typical)) / 2
    w_sorted = half + torch.roll(half, 1)
    weights = torch.empty_like(w_sorted)
    weights[order] = w_sorted
    return weights.to(angles.dtype)


def redundancy_weights(op: FanBeam, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Fan-beam redundancy weights ``(V, D)``: 1/2 (full scan), Parker (short scan) or 1 (less).

    A ray ``(beta, gamma)`` (``gamma = atan(u / D_sd)``) meets its conjugate at ``beta + pi - 2 gamma``.
    """
    beta = op.angles_tensor()
    gamma = torch.atan(op.detector_positions() / (op.source_distance + op.detector_distance))
    v = beta.numel()
    a = torch.remainder(beta, 2 * math.pi)
    sorted_a, _ = torch.sort(a)
    gaps = torch.diff(sorted_a, append=sorted_a[:1] + 2 * math.pi)
    typical = (2 * math.pi - float(gaps.max())) / max(v - 1, 1)
    if v > 1 and float(gaps.max()) <= 4 * typical:
        return torch.full((v, gamma.numel()), 0.5, dtype=dtype, device=device)
    start = float(sorted_a[(int(torch.argmax(gaps)) + 1) % v])
    b = torch.remainder(a - start, 2 * math.pi).view(-1, 1)  # position within the scanned arc
    span = float(b.max())
    delta = (span - math.pi) / 2
    half_fan = float(gamma.abs().max())
    if delta < half_fan:
        return torch.ones((v, gamma.numel()), dtype=dtype, device=device)
    g = gamma.view(1, -1)
    eps = 1e-12
    rise = torch.sin(math.pi / 4 * b / (delta + g).clamp(min=eps)) ** 2
    fall = torch.sin(math.pi / 4 * (math.pi + 2 * delta - b) / (delta - g).clamp(min=eps)) ** 2
    w = torch.where(b < 2 * (delta + g), rise, torch.where(b > math.pi + 2 * g, fall, torch.ones_like(rise)))
    return w.clamp(0.0, 1.0).to(dtype=dtype, device=device)


@dataclass(frozen=True)
class FBPParams:
    """The parameters of ``fbp``."""

    filter: Literal["ramp", "shepp-logan", "cosine", "hann"] = field(
        default="ramp", metadata={"doc": "window of the ramp filter: ramp (Ram-Lak), shepp-logan, cosine or hann"})
    frequency_scaling: float = field(default=1.0, metadata={
        "gt": 0, "le": 1, "doc": "relative cutoff in (0, 1]: the window is stretched to end there and frequencies "
                                 "above it are removed (1: up to the Nyquist frequency)"})


@RECONSTRUCTORS.register("fbp")
class FBP(Reconstructor):
    """Filtered backprojection (parallel beam, or weighted FBP for a flat-detector fan beam); CT only.

    Parameters: :class:`FBPParams` (``filter``, ``frequency_scaling``).

    Example:
        >>> from genrecon.registry import RECONSTRUCTORS
        >>> recon = RECONSTRUCTORS.build("fbp", {"filter": "hann"})
    """

    modalities = ("ct",)
    who = "fbp"
    Params = FBPParams

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None) -> torch.Tensor:
        if not isinstance(op, CTProjector):
            raise ConfigError(
                f"fbp: needs a CT projector (ct_parallel or ct_fan), got {op.name}; use another reconstructor"
            )
        if y.is_complex() or y.dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"fbp: expected a real float32/float64 sinogram, got {y.dtype}")
        op._check(y, op.range_shape, False, "adjoint")
        self.info = {"filter": self.filter, "frequency_scaling": self.frequency_scaling}
        with torch.no_grad():
            if isinstance(op, FanBeam):
                x = self._fan(y, op)
            elif isinstance(op, ParallelBeam):
                x = self._parallel(y, op)
            else:
                raise ConfigError(f"fbp: no FBP formula for the CT geometry {op.geometry!r}")
        if callback is not None:
            callback(0, x)
        return x

    def _parallel(self, y: torch.Tensor, op: ParallelBeam) -> torch.Tensor:
        du = op.detector_spacing
        q = filter_rows(y, du, self.filter, self.frequency_scaling)
        w = angular_weights(op.angles_tensor(dtype=y.dtype, device=y.device), math.pi)
        return op.adjoint(q * w.view(1, 1, -1, 1)) * (du / op.scale**2)

    def _fan(self, y: torch.Tensor, op: FanBeam) -> torch.Tensor:
        dtype, device = y.dtype, y.device
        d_so, d_sd = op.source_distance, op.source_distance + op.detector_distance
        to_iso = d_so / d_sd
        u_iso = op.detector_positions(dtype=dtype, device=device) * to_iso
        spacing_iso = op.detector_spacing * to_iso
        weights = redundancy_weights(op, dtype=dtype, device=device) * (d_so / torch.sqrt(d_so**2 + u_iso**2))
        q = filter_rows(y[:, 0] / op.scale * weights, spacing_iso, self.filter, self.frequency_scaling)
        beta = op.angles_tensor(dtype=dtype, device=device)
        dbeta = angular_weights(beta, 2 * math.pi)
        n, n_det = op.image_size, op.n_detectors
        xs, ys = pixel_coordinates(n, dtype=dtype, device=device)
        xs, ys = xs.reshape(1, -1), ys.reshape(1, -1)
        batch = y.shape[0]
        out = torch.zeros(batch, n * n, dtype=dtype, device=device)
        chunk = max(1, 4_000_000 // (n * n * batch))
        for v0 in range(0, beta.numel(), chunk):
            b = beta[v0 : v0 + chunk].view(-1, 1)
            c, s = torch.cos(b), torch.sin(b)
            dist = d_so + (-xs * s + ys * c)  # (v, P)
            t = d_so * (xs * c + ys * s) / dist / spacing_iso + (n_det - 1) / 2
            i0 = torch.floor(t)
            frac = t - i0
            i0 = i0.long()
            qv = q[:, v0 : v0 + chunk]  # (B, v, D)
            idx0 = i0.clamp(0, n_det - 1).unsqueeze(0).expand(batch, -1, -1)
            idx1 = (i0 + 1).clamp(0, n_det - 1).unsqueeze(0).expand(batch, -1, -1)
            inside0 = ((i0 >= 0) & (i0 < n_det)).to(dtype)
            inside1 = ((i0 + 1 >= 0) & (i0 + 1 < n_det)).to(dtype)
            value = torch.gather(qv, 2, idx0) * ((1 - frac) * inside0) + torch.gather(qv, 2, idx1) * (frac * inside1)
            weight = dbeta[v0 : v0 + chunk].view(-1, 1) * (d_so / dist) ** 2
            out += (value * weight).sum(1)
        return out.view(batch, 1, n, n)
