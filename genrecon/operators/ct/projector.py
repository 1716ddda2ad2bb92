"""The CT projector base: geometry, the choice between a stored matrix and on-the-fly weights, application.

Both paths apply the same distance-driven matrix (see :mod:`genrecon.operators.ct`): the stored one (two CSR
matrices, :mod:`.matrix`) is the fastest per call but costs memory that grows with pixels x views; the
on-the-fly one (:mod:`.onthefly`) recomputes the weights per block of views and keeps nothing. ``matrix:
auto`` stores the matrix when its build's peak memory fits ``memory_budget_mib``.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch

from ...errors import ConfigError, ShapeError
from ..base import LinearOperator
from . import matrix as _matrix
from .geometry import (DEFAULT_MEMORY_BUDGET_MIB, as_angles, image_size_of, matrix_choice, positive_float,
                       positive_int)
from .onthefly import Apply, generic_adjoint, generic_forward
from .weights import n_candidates

#: the norm of an operator without a stored matrix: power iterations (from a constant image) in float64 to a
#: relative change of 1e-6: 6 where 1e-9 took 9, the estimate within ~1e-7 of that one (measured at 128-256
#: pixels, parallel and fan); float32 iterations were no faster at 256 (their rounding needs 7-8 to reach 1e-6)
NORM_FLY_DTYPE = torch.float64
NORM_FLY_TOL = 1e-6


class CTProjector(LinearOperator):
    """Base of the CT projectors: geometry checks, the matrix / on-the-fly choice, forward and adjoint.

    Subclasses give :meth:`_footprints`, :meth:`_max_footprint` and :meth:`key`. Domain ``(1, N, N)`` real,
    range ``(1, n_views, n_detectors)`` real; float32 or float64 on any device.
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
        matrix: str = "auto",
        memory_budget_mib: float = DEFAULT_MEMORY_BUDGET_MIB,
    ):
        where = type(self).__name__
        n = image_size_of(image_size, where)
        self.angles = as_angles(angles, where)
        self.image_size = n
        self.detector_spacing = positive_float(detector_spacing, "detector_spacing", where)
        self.n_detectors = positive_int(n_detectors, "n_detectors", where)
        if not isinstance(normalize, bool):
            raise ConfigError(f"{where}: normalize must be true or false, got {normalize!r}")
        self.normalize = normalize
        self.matrix, self.memory_budget_mib = matrix_choice(matrix, memory_budget_mib, where)
        super().__init__((1, n, n), (1, len(self.angles), self.n_detectors))
        if self.matrix == "always":
            _matrix.check_size(self)

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

    def key(self) -> tuple:
        """What identifies the geometry (and so its matrices and norm)."""
        raise NotImplementedError

    def _footprints(self, x: torch.Tensor, y: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """Detector intervals of the pixels' mid-line segments: ``(lo, hi, secant)``.

        Args:
            x, y: pixel centres ``(P, 1)``, float64.
            cos, sin: of the view angles ``(1, V)``, float64.

        Returns:
            three tensors broadcastable to ``(P, V)``.
        """
        raise NotImplementedError

    def _max_footprint(self) -> float:
        """An upper bound of the footprint width on the detector (pixels), over all pixels and views."""
        raise NotImplementedError

    def n_candidates(self) -> int:
        """Candidate detector bins per (pixel, view) (the widest footprint in bins, plus one)."""
        return n_candidates(self)

    # -- the stored matrix or not -----------------------------------------------------------------
    def matrix_bytes(self) -> float:
        """Estimated size of the float32 matrices ``A`` and ``A^T`` (their build peaks at ~2.5 times this)."""
        return _matrix.estimated_bytes(self)

    @property
    def uses_matrix(self) -> bool:
        """Whether forward and adjoint use the stored matrix (``matrix``, and for ``auto`` the budget)."""
        if self.matrix != "auto":
            return self.matrix == "always"
        return self.matrix_bytes() * _matrix.BUILD_PEAK_FACTOR <= self.memory_budget_mib * 2**20

    def matrices(self, dtype: torch.dtype = torch.float32, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, A^T)`` as sparse CSR tensors of ``dtype`` on ``device`` (built once, then cached), whatever
        :attr:`uses_matrix` says. ``A`` is ``(n_views * n_detectors, N * N)``; rows are view-major, columns
        row-major pixels. The normalisation (:attr:`scale`) is included."""
        if dtype not in (torch.float32, torch.float64):
            raise ShapeError(f"{self.name}: expected float32 or float64 data, got {dtype}")
        return _matrix.matrices(self, dtype, device)

    def prepare(self, dtype: torch.dtype = torch.float32, device="cpu") -> "CTProjector":
        """Build what the operator needs before its first use (the matrices, when it stores them)."""
        if self.uses_matrix:
            self.matrices(dtype, device)
        return self

    @property
    def build_seconds(self) -> float | None:
        """Seconds the last matrix build of this geometry took (None before the first build)."""
        return _matrix.BUILD_SECONDS.get(self.key())

    def _norm(self) -> float:
        """``||A_raw||`` (cached per geometry): from the float64 matrices when they are stored, else the power
        method on the on-the-fly operator (:data:`NORM_FLY_DTYPE`, :data:`NORM_FLY_TOL`)."""
        key = self.key()
        if key not in _matrix.NORMS:
            if self.uses_matrix:
                self.matrices(torch.float32, "cpu")
            else:
                n = self.image_size

                def normal(v: torch.Tensor) -> torch.Tensor:
                    return self._raw_adjoint(self._raw_forward(v.view(1, -1))).view(-1)

                _matrix.NORMS[key] = _matrix.norm_of(normal, n * n, NORM_FLY_DTYPE, "cpu", tol=NORM_FLY_TOL)
        return _matrix.NORMS[key]

    @property
    def scale(self) -> float:
        """Factor between this operator and the raw line integrals: ``A = scale * A_raw``."""
        return 1.0 / self._norm() if self.normalize else 1.0

    def norm_squared(self, *, dtype: torch.dtype | None = None, device=None) -> float:
        """``||A||^2``: 1 when normalised, else the power-method estimate (once per geometry: from the float64
        matrices when stored, else to a relative change of 1e-6; ``dtype`` and ``device`` are not needed)."""
        return 1.0 if self.normalize else self._norm() ** 2

    # -- application ------------------------------------------------------------------------------
    def _raw_forward(self, x: torch.Tensor) -> torch.Tensor:
        """On-the-fly ``A_raw x`` for ``x`` ``(B, N*N)`` -> ``(B, V, D)`` (subclasses may have faster ones)."""
        return generic_forward(self, x)

    def _raw_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """On-the-fly ``A_raw^T y`` for ``y`` ``(B, V, D)`` -> ``(B, N*N)``."""
        return generic_adjoint(self, y)

    def _dtype_of(self, t: torch.Tensor, what: str) -> torch.dtype:
        if t.dtype not in (torch.float32, torch.float64):
            raise ShapeError(f"{self.name}.{what}: expected a float32 or float64 tensor, got {t.dtype}")
        return t.dtype

    def _on_the_fly(self, t: torch.Tensor, adjoint: bool) -> torch.Tensor:
        scale = self.scale
        fwd = lambda v: self._raw_forward(v).mul_(scale).view(v.shape[0], -1)  # noqa: E731
        adj = lambda v: self._raw_adjoint(v.reshape(v.shape[0], self.n_views, -1)).mul_(scale)  # noqa: E731
        flat = t.reshape(t.shape[0], -1).contiguous()
        return Apply.apply(flat, adj, fwd) if adjoint else Apply.apply(flat, fwd, adj)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype, b = self._dtype_of(x, "forward"), x.shape[0]
        if not self.uses_matrix:
            return self._on_the_fly(x, adjoint=False).reshape(b, *self.range_shape)
        a, at = self.matrices(dtype, x.device)
        out = Apply.apply(x.reshape(b, -1).t(), partial(_matrix.spmm, a), partial(_matrix.spmm, at))
        return out.t().reshape(b, *self.range_shape)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        dtype, b = self._dtype_of(y, "adjoint"), y.shape[0]
        if not self.uses_matrix:
            return self._on_the_fly(y, adjoint=True).reshape(b, *self.domain_shape)
        a, at = self.matrices(dtype, y.device)
        out = Apply.apply(y.reshape(b, -1).t(), partial(_matrix.spmm, at), partial(_matrix.spmm, a))
        return out.t().reshape(b, *self.domain_shape)

    def extra_repr(self) -> str:
        return (
            f"image_size={self.image_size}, n_views={self.n_views}, n_detectors={self.n_detectors}, "
            f"detector_spacing={self.detector_spacing:g}, normalize={self.normalize}, matrix={self.matrix}, "
            f"memory_budget_mib={self.memory_budget_mib:g}"
        )
