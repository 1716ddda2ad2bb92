"""CT projectors: 2-D parallel-beam and flat-detector fan-beam ray transforms with exact adjoints.

Both are distance-driven: each pixel's mid-line segment (horizontal when the ray through it is closer to
vertical, else vertical) is projected onto the detector, and its overlap with each detector bin, divided by
the bin width and by the ray's cosine to the stepping axis, is the matrix entry. That is the bin-averaged
line integral of the pixel image (pixel size 1):

    y[v, k] = (1 / du) int_{bin k} int_{ray(v, u)} x(r) dr du

Two ways to apply that matrix ``A`` (rays x pixels), chosen per operator by ``matrix`` (``auto`` | ``always`` |
``never``) and ``memory_budget_mib``:

    - stored (:mod:`.matrix`): ``A`` and its transpose built once per geometry, dtype and device, fully vectorised
      in torch, and applied as two CSR matrices with int32 indices; the fastest per call, memory ~ N^2 V.
    - on the fly (:mod:`.onthefly`): the weights recomputed per block of views and never kept (a parallel beam
      by cumulative sums along image rows and detector bins, the fan beam likewise along image lines, :mod:`.fan`:
      on the CPU a compiled numba kernel, :mod:`.fan_kernel`, elsewhere torch tiles; other geometries from the same per-block (pixel, bin, weight) triples as the matrix build);
      memory ~ one block, set-up free. A batch computes each block's weights once for all its images
      (:mod:`.batched`, sparse products with batch-last tables; the fan kernel runs 8 images per boundary visit).

``auto`` (the default) stores the matrix when its build's peak (~2.5x the kept matrices, :meth:`matrix_bytes`)
fits ``memory_budget_mib`` (default 4096). Either way the adjoint is the transpose of the very same entries,
so ``<Ax, y> = <x, A^T y>`` to rounding, and the two paths agree to rounding. Gradients through ``forward``
are ``A^T`` (custom autograd functions), so autograd agrees with ``adjoint``.

Units and conventions:
    - lengths are in pixels: pixel (i, j) (row i downwards, column j rightwards) has its centre at
      ``(X, Y) = (j - (N - 1) / 2, (N - 1) / 2 - i)``; detector bin k is centred at ``(k - (D - 1) / 2) * du``.
    - view angle ``theta``: rays run along ``d = (-sin theta, cos theta)``, the detector axis is
      ``n = (cos theta, sin theta)``; at ``theta = 0`` rays are vertical and bin ``s`` sums column ``x = s``.
    - fan beam: the source sits at ``-source_distance * d`` and the flat detector, perpendicular to ``d``,
      at ``+detector_distance * d``; a fan beam with a far source tends to the parallel beam of the same angle.
    - ``normalize=True`` divides the matrix by its operator norm (power method, once per geometry, cached),
      so ``||A|| = 1``; :attr:`scale` is that factor (1 when not normalised), so physical line integrals
      are ``y / scale``.

Memory and size: the matrix has ``K N^2 V`` entries for ``V`` views of an N x N image (``K`` = 2 candidate
bins per pixel and view for a parallel beam with unit bins, 3 for a typical fan beam, misses dropped), 8 bytes
each per direction in float32 (12 in float64). 256 x 256 with 180 parallel views: 23.6M entries, 0.38 GB for
both directions, built in 2-4 s on 2 CPU cores (peak memory ~1 GB), then ~10-20 ms per forward or adjoint;
a 360-view fan beam at 256 x 256 has ~46M entries and builds in ~10-20 s. Stored matrices are practical up to a
few times ``N^2 V = 10^8`` (512 x 512 with 360 views: ~3 GB; ``matrix: always`` refuses more than
:data:`MAX_MATRIX_BYTES`); beyond the budget the on-the-fly path takes over. Matrices live in a small
module-level LRU cache (:func:`clear_cache` empties it), so operators rebuilt per case reuse them.

Example:
    >>> import math, torch
    >>> from genrecon.operators.ct import ParallelBeam
    >>> A = ParallelBeam(image_size=32, angles=torch.linspace(0, math.pi, 31)[:-1])
    >>> x = torch.rand(2, 1, 32, 32)
    >>> A(x).shape
    torch.Size([2, 1, 30, 46])
    >>> A.adjoint(A(x)).shape
    torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

from .beams import FanBeam, ParallelBeam
from .geometry import DEFAULT_MEMORY_BUDGET_MIB, MATRIX_CHOICES, default_n_detectors, pixel_coordinates
from .matrix import CACHE_SIZE, MAX_MATRIX_BYTES, clear_cache
from .projector import CTProjector

__all__ = [
    "CTProjector",
    "ParallelBeam",
    "FanBeam",
    "clear_cache",
    "default_n_detectors",
    "pixel_coordinates",
    "MAX_MATRIX_BYTES",
    "CACHE_SIZE",
    "MATRIX_CHOICES",
    "DEFAULT_MEMORY_BUDGET_MIB",
]
