"""CT projectors: 2-D parallel-beam and flat-detector fan-beam ray transforms with exact adjoints.

Both are distance-driven: each pixel's mid-line segment (horizontal when the ray through it is closer to
vertical, else vertical) is projected onto the detector, and its overlap with each detector bin, divided by
the bin width and by the ray's cosine to the stepping axis, is the matrix entry. That is the bin-averaged
line integral of the pixel image (pixel size 1):

    y[v, k] = (1 / du) int_{bin k} int_{ray(v, u)} x(r) dr du

The matrix ``A`` (rays x pixels) and its transpose are built once per geometry, dtype and device, fully
vectorised in torch, and applied as two CSR matrices with int32 indices (``torch.mv`` / ``torch.sparse.mm``);
the adjoint is the transpose of the very same entries, so ``<Ax, y> = <x, A^T y>`` to rounding. Gradients
through ``forward`` are ``A^T`` (a custom autograd function), so autograd agrees with ``adjoint``.

Units and conventions:
    - lengths are in pixels: pixel (i, j) (row i downwards, column j rightwards) has its centre at
      ``(X, Y) = (j - (N - 1) / 2, (N - 1) / 2 - i)``; detector bin k is centred at ``(k - (D - 1) / 2) * du``.
    - view angle ``theta``: rays run along ``d = (-sin theta, cos theta)``, the detector axis is
      ``n = (cos theta, sin theta)``; at ``theta = 0`` rays are vertical and bin ``s`` sums column ``x = s``.
    - fan beam: the source sits at ``-source_distance * d`` and the flat detector, perpendicular to ``d``,
      at ``+detector_distance * d``; a fan beam with a far source tends to the parallel beam of the same angle.
    - ``normalize=True`` divides the matrix by its operator norm (power method at build time, cached per
      geometry), so ``||A|| = 1``; :attr:`scale` is that factor (1 when not normalised), so physical line
      integrals are ``y / scale``.

Memory and size: the matrix has ``K N^2 V`` entries for ``V`` views of an N x N image (``K`` = 2 candidate
bins per pixel and view for a parallel beam with unit bins, 3 for a typical fan beam, misses dropped), 8 bytes
each per direction in float32 (12 in float64). 256 x 256 with 180 parallel views: 23.6M entries, 0.38 GB for
both directions, built in 2-4 s on 2 CPU cores (peak memory ~1 GB), then ~10-20 ms per forward or adjoint;
a 360-view fan beam at 256 x 256 has ~46M entries and builds in ~10-20 s. Practical up to a few times
``N^2 V = 10^8`` (512 x 512 with 360 views: ~3 GB); geometries whose matrices would exceed
:data:`MAX_MATRIX_BYTES` are refused with a message (there is no on-the-fly path). Matrices live in a small
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

import math
import time
import warnings
from collections import OrderedDict
from typing import Sequence

import torch

from ..errors import ConfigError, ShapeError
from ..linalg.power import power_method
from ..registry import OPERATORS
from .base import LinearOperator

#: largest total size (both directions, float32) of the cached matrices of one geometry
MAX_MATRIX_BYTES = 12 * 2**30
#: (pixel, view) pairs handled at once while building a matrix
_BUILD_CHUNK = 1_000_000
#: how many (geometry, dtype, device) matrix pairs the LRU cache keeps
CACHE_SIZE = 4
#: power-method iterations and relative tolerance of the build-time norm (from a constant image: it converges
#: in a few dozen iterations, and the normalisation wants it to the last digits)
NORM_BUILD_ITER = 200
NORM_BUILD_TOL = 1e-9

_MATRICES: "OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]]" = OrderedDict()
_NORMS: dict[tuple, float] = {}
_BUILD_SECONDS: dict[tuple, float] = {}


def clear_cache() -> None:
    """Forget every cached projection matrix (norms are kept: they are small)."""
    _MATRICES.clear()


def pixel_coordinates(n: int, *, dtype=torch.float64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates ``(X, Y)``, each ``(n, n)``, in pixels, origin at the image centre, y up."""
    c = torch.arange(n, dtype=dtype, device=device) - (n - 1) / 2
    return c.view(1, n).expand(n, n), (-c).view(n, 1).expand(n, n)


def _as_angles(angles, where: str) -> tuple[float, ...]:
    if isinstance(angles, torch.Tensor):
        if angles.is_complex():
            raise ConfigError(f"{where}: angles must be real radians, got a {angles.dtype} tensor")
        values = angles.detach().to("cpu", torch.float64).reshape(-1).tolist()
    else:
        try:
            values = [float(a) for a in angles]
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: angles must be a sequence of numbers (radians), got {angles!r}") from None
    if len(values) == 0:
        raise ConfigError(f"{where}: the angle list is empty; give at least one view angle (radians)")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ConfigError(f"{where}: angles must be finite, got {len(bad)} non-finite value(s) such as {bad[0]}")
    return tuple(values)


def _positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {name} must be an integer >= 1, got {value!r}")
    return int(value)


def _positive_float(value, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _image_size(image_size, where: str) -> int:
    if isinstance(image_size, (tuple, list)):
        if len(image_size) != 2 or image_size[0] != image_size[1]:
            raise ShapeError(
                f"{where}: CT projectors take square images, got image_size {tuple(image_size)}; "
                "resample to N x N (data.size)"
            )
        image_size = image_size[0]
    return _positive_int(image_size, "image_size", where)


class _SparseApply(torch.autograd.Function):
    """``X -> M X`` for a CSR matrix ``M`` whose transpose ``MT`` gives the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, m: torch.Tensor, mt: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.mats = (m, mt)
        return _spmm(m, x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        m, mt = ctx.mats
        return _SparseApply.apply(grad, mt, m), None, None


def _spmm(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``m @ x`` for CSR ``m`` and dense ``x`` of shape ``(cols, B)``."""
    if x.shape[1] == 1 and x.device.type == "cpu":
        return torch.mv(m, x[:, 0].contiguous()).unsqueeze(1)  # the fastest CPU path for one column
    return torch.sparse.mm(m, x.contiguous())


class CTProjector(LinearOperator):
    """Base of the CT projectors: geometry checks, matrix build and cache, forward and adjoint.

    Subclasses give :meth:`_footprints`. Domain ``(1, N, N)`` real, range ``(1, n_views, n_detectors)`` real;
    float32 or float64 on any device (the matrices follow the input).
    """

    geometry: str = ""

    def __init__(
        self,
        *,
        image_size: int,
        angles: Sequence[float] | torch.Tensor,
        n_detectors: int | None,
        detector_spacing: float,
        normalize: bool,
    ):
        where = type(self).__name__
        n = _image_size(image_size, where)
        self.angles = _as_angles(angles, where)
        self.image_size = n
        self.detector_spacing = _positive_float(detector_spacing, "detector_spacing", where)
        self.n_detectors = _positive_int(n_detectors, "n_detectors", where)
        if not isinstance(normalize, bool):
            raise ConfigError(f"{where}: normalize must be true or false, got {normalize!r}")
        self.normalize = normalize
        super().__init__((1, n, n), (1, len(self.angles), self.n_detectors))
        nnz = 2.5 * n * n * len(self.angles) * max(1.0, 1.0 / self.detector_spacing)
        if nnz * 16 > MAX_MATRIX_BYTES:
            raise ConfigError(
                f"{where}: a {n}x{n} image with {len(self.angles)} views needs ~{nnz * 16 / 2**30:.1f} GB of "
                f"projection matrices (limit {MAX_MATRIX_BYTES / 2**30:.0f} GB); use fewer views or a smaller image"
            )

    # -- geometry ---------------------------------------------------------------------------------
    @property
    def n_views(self) -> int:
        return len(self.angles)

    def detector_positions(self, *, dtype=torch.float64, device=None) -> torch.Tensor:
        """Centres of the detector bins ``(n_detectors,)``, in pixels on the detector."""
        k = torch.arange(self.n_detectors, dtype=dtype, device=device)
        return (k - (self.n_detectors - 1) / 2) * self.detector_spacing

    def angles_tensor(self, *, dtype=torch.float64, device=None) -> torch.Tensor:
        return torch.tensor(self.angles, dtype=dtype, device=device)

    def _key(self) -> tuple:
        raise NotImplementedError

    def _footprints(self, x: torch.Tensor, y: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """Detector intervals of the pixels' mid-line segments: ``(lo, hi, 1 / |cos(ray, axis)|)``.

        Args:
            x, y: pixel centres ``(P, 1)``, float64.
            cos, sin: of the view angles ``(1, V)``, float64.

        Returns:
            three tensors broadcastable to ``(P, V)``.
        """
        raise NotImplementedError

    # -- matrices ---------------------------------------------------------------------------------
    def _max_footprint(self) -> float:
        """An upper bound of the footprint width on the detector (pixels), over all pixels and views."""
        raise NotImplementedError

    def _build(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The transpose ``A^T`` as CSR arrays on the CPU: ``(crow int64, col int32, val float64, counts)``.

        Every (pixel, view) pair gets the same number ``K`` of candidate bins, written in place into
        preallocated arrays (pixel-major, then view, then bin: sorted CSR rows); candidates that miss are
        explicit zeros, dropped at the end only when they are more than 10% (``counts`` is then the
        number of entries per pixel, else None).
        """
        n, n_det, du = self.image_size, self.n_detectors, self.detector_spacing
        theta = self.angles_tensor()
        cos, sin = torch.cos(theta).view(1, -1), torch.sin(theta).view(1, -1)
        n_views = theta.numel()
        n_cand = int(math.ceil(self._max_footprint() / du - 1e-9)) + 1
        edge0 = -n_det * du / 2  # left edge of bin 0
        xs, ys = pixel_coordinates(n)
        n_pix = n * n
        cols = torch.empty((n_pix, n_views, n_cand), dtype=torch.int32)
        vals = torch.empty((n_pix, n_views, n_cand), dtype=torch.float64)
        view_offset = (torch.arange(n_views, dtype=torch.int32) * n_det).view(1, n_views)
        rows_per_chunk = max(1, int(_BUILD_CHUNK // max(1, n * n_views)))
        for r0 in range(0, n, rows_per_chunk):
            x = xs[r0 : r0 + rows_per_chunk].reshape(-1, 1)
            y = ys[r0 : r0 + rows_per_chunk].reshape(-1, 1)
            lo, hi, factor = self._footprints(x, y, cos, sin)
            start = (lo - edge0) / du  # footprint in bin units
            k0 = torch.floor(start)
            lo_rel = start.sub_(k0)  # in [0, 1): where the footprint starts within bin k0
            hi_rel = (hi - lo).div_(du).add_(lo_rel)
            k0 = k0.to(torch.int32)
            p0, p1 = r0 * n, r0 * n + x.shape[0]
            clipped = int(k0.min()) < 0 or int(k0.max()) + n_cand > n_det  # some candidates miss the detector
            for j in range(n_cand):
                overlap = torch.clamp(hi_rel, max=j + 1.0).sub_(lo_rel if j == 0 else j).clamp_(min=0.0)
                if clipped:
                    k = k0 + j
                    overlap.mul_((k >= 0) & (k < n_det))
                    torch.add(k.clamp_(0, n_det - 1), view_offset, out=cols[p0:p1, :, j])
                else:
                    torch.add(k0, view_offset + j, out=cols[p0:p1, :, j])
                torch.mul(overlap, factor, out=vals[p0:p1, :, j])
        crow = torch.arange(0, n_pix * n_views * n_cand + 1, n_views * n_cand, dtype=torch.int64)
        cols, vals = cols.view(-1), vals.view(-1)
        keep = vals != 0
        n_keep = int(keep.sum())
        if n_keep >= 0.9 * vals.numel():
            return crow, cols, vals, None
        count = keep.view(n_pix, -1).sum(1)
        torch.cumsum(count, 0, out=crow[1:])
        return crow[: n_pix + 1], cols[keep], vals[keep], count

    def _transpose(self, crow_t, col_t, val_t, count_t):
        """CSR arrays of ``A`` from those of ``A^T`` (a stable sort by column keeps rows sorted)."""
        n_rows = self.n_views * self.n_detectors
        order = torch.sort(col_t, stable=True).indices
        if count_t is None:  # a fixed number of entries per pixel
            rows = torch.div(order, int(crow_t[1]), rounding_mode="floor").to(torch.int32)
        else:
            pixel = torch.repeat_interleave(torch.arange(count_t.numel(), dtype=torch.int32), count_t)
            rows = pixel[order]
        crow = torch.zeros(n_rows + 1, dtype=torch.int64)
        torch.cumsum(torch.bincount(col_t, minlength=n_rows), 0, out=crow[1:])
        return crow, rows, val_t[order]

    def matrices(self, dtype: torch.dtype = torch.float32, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, A^T)`` as sparse CSR tensors of ``dtype`` on ``device`` (built once, then cached).

        ``A`` is ``(n_views * n_detectors, N * N)``; rows are view-major, columns row-major pixels. The
        normalisation (:attr:`scale`) is included.
        """
        if dtype not in (torch.float32, torch.float64):
            raise ShapeError(f"{self.name}: expected float32 or float64 data, got {dtype}")
        device = torch.device(device)
        key = (self._key(), dtype, str(device))
        if key in _MATRICES:
            _MATRICES.move_to_end(key)
            return _MATRICES[key]
        start = time.perf_counter()
        crow_t, col_t, val_t, count_t = self._build()
        crow, col, val = self._transpose(crow_t, col_t, val_t, count_t)
        n_rows, n_pix = self.n_views * self.n_detectors, self.image_size**2
        index = torch.int32 if max(val.numel(), n_rows, n_pix) < 2**31 - 1 else torch.int64
        crow, col, crow_t, col_t = (t.to(index) for t in (crow, col, crow_t, col_t))
        if self._key() not in _NORMS:  # always from the float64 matrices: the same for every dtype
            _NORMS[self._key()] = _power_norm(
                _csr(crow, col, val, (n_rows, n_pix), "cpu"), _csr(crow_t, col_t, val_t, (n_pix, n_rows), "cpu")
            )
        scale = 1.0 / _NORMS[self._key()] if self.normalize else 1.0
        val, val_t = (v.to(dtype).mul_(scale) if scale != 1.0 else v.to(dtype) for v in (val, val_t))
        mats = (
            _csr(crow, col, val, (n_rows, n_pix), device),
            _csr(crow_t, col_t, val_t, (n_pix, n_rows), device),
        )
        _BUILD_SECONDS[self._key()] = time.perf_counter() - start
        _MATRICES[key] = mats
        while len(_MATRICES) > CACHE_SIZE:
            _MATRICES.popitem(last=False)
        return mats

    @property
    def build_seconds(self) -> float | None:
        """Seconds the last matrix build of this geometry took (None before the first build)."""
        return _BUILD_SECONDS.get(self._key())

    @property
    def scale(self) -> float:
        """Factor between this operator and the raw line integrals: ``A = scale * A_raw``."""
        if not self.normalize:
            return 1.0
        if self._key() not in _NORMS:
            self.matrices(torch.float32, "cpu")
        return 1.0 / _NORMS[self._key()]

    def norm_squared(self, *, dtype: torch.dtype | None = None, device=None) -> float:
        """``||A||^2``: 1 when normalised, else the power-method estimate made at build time (once per geometry,
        from the float64 matrices; ``dtype`` and ``device`` are not needed)."""
        if self.normalize:
            return 1.0
        if self._key() not in _NORMS:
            self.matrices(torch.float32, "cpu")
        return _NORMS[self._key()] ** 2

    # -- application ------------------------------------------------------------------------------
    def _dtype_of(self, t: torch.Tensor, what: str) -> torch.dtype:
        if t.dtype not in (torch.float32, torch.float64):
            raise ShapeError(f"{self.name}.{what}: expected a float32 or float64 tensor, got {t.dtype}")
        return t.dtype

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        a, at = self.matrices(self._dtype_of(x, "forward"), x.device)
        b = x.shape[0]
        cols = x.reshape(b, -1).t()
        out = _SparseApply.apply(cols, a, at)
        return out.t().reshape(b, *self.range_shape)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        a, at = self.matrices(self._dtype_of(y, "adjoint"), y.device)
        b = y.shape[0]
        cols = y.reshape(b, -1).t()
        out = _SparseApply.apply(cols, at, a)
        return out.t().reshape(b, *self.domain_shape)

    def extra_repr(self) -> str:
        return (
            f"image_size={self.image_size}, n_views={self.n_views}, n_detectors={self.n_detectors}, "
            f"detector_spacing={self.detector_spacing:g}, normalize={self.normalize}"
        )


def _csr(crow, col, val, size, device) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, val, size=size, device=device, check_invariants=False)


def _power_norm(a: torch.Tensor, at: torch.Tensor) -> float:
    """``||A||`` by the power method on ``A^T A`` (CSR matrices) from a constant image, close to the top
    eigenvector (1 for an all-zero matrix, so that normalising leaves it alone)."""
    x0 = torch.ones(a.shape[1], dtype=a.dtype)
    estimate = power_method(lambda v: torch.mv(at, torch.mv(a, v)), x0, n_iter=NORM_BUILD_ITER, tol=NORM_BUILD_TOL)
    return math.sqrt(estimate) if estimate > 0.0 else 1.0


def default_n_detectors(image_size: int, spacing: float = 1.0) -> int:
    """Bins covering the image's circumscribed circle in a parallel beam: ``ceil(sqrt(2) N / spacing)``."""
    return int(math.ceil(math.sqrt(2.0) * image_size / spacing - 1e-9))


@OPERATORS.register("ct_parallel")
class ParallelBeam(CTProjector):
    """2-D parallel-beam ray transform (distance-driven), ``y[v, s] = int x(s n_v + t d_v) dt``.

    Args:
        image_size: side ``N`` of the square image (pixels).
        angles: view angles in radians (a sequence or a tensor), any order, any range.
        n_detectors: detector bins; default ``ceil(sqrt(2) N / detector_spacing)`` (363 for N = 256 with
            spacing 1), which covers the whole image at every angle.
        detector_spacing: bin width in pixels (default 1).
        normalize: divide by the operator norm so ``||A|| = 1`` (see :attr:`scale`).

    Example:
        >>> import torch
        >>> A = ParallelBeam(image_size=16, angles=[0.0])
        >>> y = A(torch.ones(1, 1, 16, 16))
        >>> y.shape, round(float(y.max()), 4)   # a vertical ray through 16 unit pixels
        (torch.Size([1, 1, 1, 23]), 16.0)
    """

    geometry = "parallel"

    def __init__(
        self,
        *,
        image_size: int,
        angles: Sequence[float] | torch.Tensor,
        n_detectors: int | None = None,
        detector_spacing: float = 1.0,
        normalize: bool = False,
    ):
        spacing = _positive_float(detector_spacing, "detector_spacing", "ParallelBeam")
        if n_detectors is None:
            n_detectors = default_n_detectors(_image_size(image_size, "ParallelBeam"), spacing)
        super().__init__(
            image_size=image_size,
            angles=angles,
            n_detectors=n_detectors,
            detector_spacing=spacing,
            normalize=normalize,
        )

    @classmethod
    def example(cls, size: int = 32) -> "ParallelBeam":
        """A small instance (``size`` x ``size``, 23 views over 180 degrees) for generic operator tests."""
        return cls(image_size=size, angles=torch.arange(23, dtype=torch.float64) * (math.pi / 23))

    def _key(self) -> tuple:
        return ("parallel", self.image_size, self.angles, self.n_detectors, self.detector_spacing, self.normalize)

    def _max_footprint(self) -> float:
        return 1.0

    def _footprints(self, x, y, cos, sin):
        centre = x * cos + y * sin
        width = torch.maximum(cos.abs(), sin.abs())
        return centre - width / 2, centre + width / 2, 1.0 / width


@OPERATORS.register("ct_fan")
class FanBeam(CTProjector):
    """2-D fan-beam ray transform with a flat detector (distance-driven), rays from a point source.

    Distances are in pixels (multiply millimetres by 1 / pixel size): the source is ``source_distance``
    from the isocentre (the image centre), the detector ``detector_distance`` beyond it; a ray from the
    source at view ``beta`` to detector position ``u`` meets a point ``p`` where
    ``u = (source_distance + detector_distance) (p . n) / (source_distance + p . d)``.

    Args:
        image_size: side ``N`` of the square image (pixels).
        angles: source angles in radians; a full scan is 360 degrees (FBP also handles short scans).
        source_distance: source to isocentre, > N / sqrt(2) (outside the image's circumscribed circle).
        detector_distance: isocentre to detector, >= 0.
        n_detectors: bins; default the fewest that cover the field of view.
        detector_spacing: bin width on the detector in pixels; default the magnification
            ``(source_distance + detector_distance) / source_distance`` (1 pixel at the isocentre).
        normalize: divide by the operator norm so ``||A|| = 1``.

    Example:
        >>> import math, torch
        >>> A = FanBeam(image_size=32, angles=torch.linspace(0, 2 * math.pi, 61)[:-1],
        ...             source_distance=64.0, detector_distance=32.0)
        >>> A.range_shape
        (1, 60, 49)
    """

    geometry = "fan"

    def __init__(
        self,
        *,
        image_size: int,
        angles: Sequence[float] | torch.Tensor,
        source_distance: float,
        detector_distance: float,
        n_detectors: int | None = None,
        detector_spacing: float | None = None,
        normalize: bool = False,
    ):
        where = "FanBeam"
        n = _image_size(image_size, where)
        d_so = _positive_float(source_distance, "source_distance", where)
        if (
            isinstance(detector_distance, bool)
            or not isinstance(detector_distance, (int, float))
            or not math.isfinite(detector_distance)
            or detector_distance < 0
        ):
            raise ConfigError(f"{where}: detector_distance must be a finite number >= 0, got {detector_distance!r}")
        d_od = float(detector_distance)
        radius = n / math.sqrt(2.0)
        if d_so <= radius:
            raise ConfigError(
                f"{where}: source_distance {d_so:g} puts the source inside the image circle (radius "
                f"N/sqrt(2) = {radius:.1f} pixels); use source_distance > {radius:.1f}"
            )
        magnification = (d_so + d_od) / d_so
        spacing = magnification if detector_spacing is None else _positive_float(
            detector_spacing, "detector_spacing", where
        )
        u_max = (d_so + d_od) * radius / math.sqrt(d_so**2 - radius**2)  # the field of view on the detector
        needed = int(math.ceil(2 * u_max / spacing - 1e-9))
        if n_detectors is None:
            n_detectors = needed
        n_detectors = _positive_int(n_detectors, "n_detectors", where)
        if n_detectors * spacing < 2 * u_max - 1e-9:
            raise ConfigError(
                f"{where}: the detector ({n_detectors} bins x {spacing:g} = {n_detectors * spacing:.1f} pixels) does "
                f"not cover the field of view ({2 * u_max:.1f} pixels on the detector); use n_detectors >= {needed}"
            )
        self.source_distance = d_so
        self.detector_distance = d_od
        super().__init__(
            image_size=n, angles=angles, n_detectors=n_detectors, detector_spacing=spacing, normalize=normalize
        )

    @classmethod
    def example(cls, size: int = 32) -> "FanBeam":
        """A small instance (``size`` x ``size``, 29 views over 360 degrees) for generic operator tests."""
        angles = torch.arange(29, dtype=torch.float64) * (2 * math.pi / 29)
        return cls(image_size=size, angles=angles, source_distance=2.0 * size, detector_distance=1.0 * size)

    def _key(self) -> tuple:
        return (
            "fan",
            self.image_size,
            self.angles,
            self.n_detectors,
            self.detector_spacing,
            self.source_distance,
            self.detector_distance,
            self.normalize,
        )

    def _max_footprint(self) -> float:
        # a unit segment at distance r >= d_so - R from the source subtends at most 2 atan(1 / (2 (r - 1/2)));
        # on the flat detector an angle dgamma spans d_sd dgamma / cos^2(gamma)
        d_so, d_sd = self.source_distance, self.source_distance + self.detector_distance
        radius = self.image_size / math.sqrt(2.0)
        half = math.atan(0.5 / max(d_so - radius - 0.5, 1e-6))
        gamma = min(math.asin(min(radius / d_so, 1.0)) + half, math.pi / 2 - 1e-6)
        return d_sd * 2 * half / math.cos(gamma) ** 2

    def _footprints(self, x, y, cos, sin):
        d_so, d_sd = self.source_distance, self.source_distance + self.detector_distance
        pn = (x * cos).add_(y * sin)  # along the detector axis n
        dist = (y * cos).sub_(x * sin).add_(d_so)  # source to the pixel along the central ray d
        # the ray from the source through the pixel centre, p - S with S = -d_so * d
        ax, ay = (x - d_so * sin).abs_(), (y + d_so * cos).abs_()
        rows = ay >= ax  # closer to vertical: a horizontal mid-line segment (x +- 1/2, y), else (x, y +- 1/2)
        hn = torch.where(rows, cos / 2, sin / 2)
        hd = torch.where(rows, -sin / 2, cos / 2)
        u1 = (pn + hn).div_(dist + hd)
        u2 = pn.sub_(hn).div_(dist.sub_(hd))
        lo, hi = torch.minimum(u1, u2).mul_(d_sd), torch.maximum(u1, u2).mul_(d_sd)
        big = torch.maximum(ax, ay)
        factor = torch.minimum(ax, ay).div_(big).square_().add_(1.0).sqrt_()  # |ray| / max(|ray_x|, |ray_y|)
        return lo, hi, factor

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", source_distance={self.source_distance:g}, detector_distance={self.detector_distance:g}"
        )
