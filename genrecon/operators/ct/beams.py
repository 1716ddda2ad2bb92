"""The 2-D CT geometries: parallel beam and flat-detector fan beam (distance-driven footprints).

Example:
    >>> import torch
    >>> A = ParallelBeam(image_size=16, angles=[0.0, 0.5], matrix="never")
    >>> A.uses_matrix, A(torch.ones(1, 1, 16, 16)).shape
    (False, torch.Size([1, 1, 2, 23]))
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ...errors import ConfigError
from ...registry import OPERATORS
from .geometry import DEFAULT_MEMORY_BUDGET_MIB, default_n_detectors, image_size_of, positive_float, positive_int
from . import batched
from .fan import fan_adjoint, fan_forward
from .onthefly import parallel_adjoint, parallel_forward
from .projector import CTProjector


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
        matrix: ``auto`` (store the projection matrix when its build fits ``memory_budget_mib``), ``always``
            or ``never`` (weights computed on the fly per block of views: no stored matrix, same numbers).
        memory_budget_mib: memory the projector may use: for the matrix build under ``auto`` (the matrices kept
            are ~1/2.5 of it), and for the on-the-fly blocks.

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
        matrix: str = "auto",
        memory_budget_mib: float = DEFAULT_MEMORY_BUDGET_MIB,
    ):
        spacing = positive_float(detector_spacing, "detector_spacing", "ParallelBeam")
        if n_detectors is None:
            n_detectors = default_n_detectors(image_size_of(image_size, "ParallelBeam"), spacing)
        super().__init__(
            image_size=image_size,
            angles=angles,
            n_detectors=n_detectors,
            detector_spacing=spacing,
            normalize=normalize,
            matrix=matrix,
            memory_budget_mib=memory_budget_mib,
        )

    @classmethod
    def example(cls, size: int = 32) -> "ParallelBeam":
        """A small instance (``size`` x ``size``, 23 views over 180 degrees) for generic operator tests."""
        return cls(image_size=size, angles=torch.arange(23, dtype=torch.float64) * (math.pi / 23))

    def key(self) -> tuple:
        return ("parallel", self.image_size, self.angles, self.n_detectors, self.detector_spacing, self.normalize)

    def _max_footprint(self) -> float:
        return 1.0

    def _raw_forward(self, x: torch.Tensor) -> torch.Tensor:
        # one image: per-image gathers (fastest); a batch: the weights once, applied to all (:mod:`.batched`)
        return parallel_forward(self, x) if x.shape[0] == 1 else batched.forward(self, x)

    def _raw_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return parallel_adjoint(self, y) if y.shape[0] == 1 else batched.adjoint(self, y)

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
        matrix: ``auto`` (store the projection matrix when its build fits ``memory_budget_mib``), ``always``
            or ``never`` (on the fly, :mod:`.fan`: cumulative sums along image lines per tile, no stored
            matrix, same numbers).
        memory_budget_mib: memory the projector may use: for the matrix build under ``auto`` (the matrices kept
            are ~1/2.5 of it); the on-the-fly tiles use a few MiB whatever it says.

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
        matrix: str = "auto",
        memory_budget_mib: float = DEFAULT_MEMORY_BUDGET_MIB,
    ):
        where = "FanBeam"
        n = image_size_of(image_size, where)
        d_so = positive_float(source_distance, "source_distance", where)
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
        spacing = magnification if detector_spacing is None else positive_float(
            detector_spacing, "detector_spacing", where
        )
        u_max = (d_so + d_od) * radius / math.sqrt(d_so**2 - radius**2)  # the field of view on the detector
        needed = int(math.ceil(2 * u_max / spacing - 1e-9))
        if n_detectors is None:
            n_detectors = needed
        n_detectors = positive_int(n_detectors, "n_detectors", where)
        if n_detectors * spacing < 2 * u_max - 1e-9:
            raise ConfigError(
                f"{where}: the detector ({n_detectors} bins x {spacing:g} = {n_detectors * spacing:.1f} pixels) does "
                f"not cover the field of view ({2 * u_max:.1f} pixels on the detector); use n_detectors >= {needed}"
            )
        self.source_distance = d_so
        self.detector_distance = d_od
        super().__init__(
            image_size=n, angles=angles, n_detectors=n_detectors, detector_spacing=spacing, normalize=normalize,
            matrix=matrix, memory_budget_mib=memory_budget_mib,
        )

    @classmethod
    def example(cls, size: int = 32) -> "FanBeam":
        """A small instance (``size`` x ``size``, 29 views over 360 degrees) for generic operator tests."""
        angles = torch.arange(29, dtype=torch.float64) * (2 * math.pi / 29)
        return cls(image_size=size, angles=angles, source_distance=2.0 * size, detector_distance=1.0 * size)

    def key(self) -> tuple:
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

    def _raw_forward(self, x: torch.Tensor) -> torch.Tensor:
        # cumulative sums along image rows / columns per tile (:mod:`.fan`), one image or a batch
        return fan_forward(self, x)

    def _raw_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return fan_adjoint(self, y)

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
