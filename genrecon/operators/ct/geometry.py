"""Geometry conventions and argument checks shared by the CT projectors.

Lengths are in pixels: pixel (i, j) (row i downwards, column j rightwards) has its centre at
``(X, Y) = (j - (N - 1) / 2, (N - 1) / 2 - i)``; detector bin k is centred at ``(k - (D - 1) / 2) * du``.

Example:
    >>> x, y = pixel_coordinates(2)
    >>> x.tolist(), y.tolist()
    ([[-0.5, 0.5], [-0.5, 0.5]], [[0.5, 0.5], [-0.5, -0.5]])
    >>> default_n_detectors(256), matrix_choice("never", 64.0, "ParallelBeam")
    (363, ('never', 64.0))
"""

from __future__ import annotations

import math

import torch

from ...errors import ConfigError, ShapeError

#: how the projection matrix is used: stored when it fits the budget (``auto``), always, or never (on the fly)
MATRIX_CHOICES = ("auto", "always", "never")
#: default ``memory_budget_mib``: the most memory a projector may use for its matrices (their build's peak).
#: 4 GiB keeps the stored matrix (the fastest path) up to 256 x 256 with 360 fan-beam views and 512 x 512 with
#: ~150 views; beyond, the on-the-fly path (parallel beam: a little faster than ASTRA's CPU kernels for one image,
#: ~5x for a batch of 8; fan beam, :mod:`.fan_kernel` on the CPU: ~3x faster than ASTRA's 'line_fanflat' for one
#: image, more for a batch).
DEFAULT_MEMORY_BUDGET_MIB = 4096.0


def pixel_coordinates(n: int, *, dtype=torch.float64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates ``(X, Y)``, each ``(n, n)``, in pixels, origin at the image centre, y up."""
    c = torch.arange(n, dtype=dtype, device=device) - (n - 1) / 2
    return c.view(1, n).expand(n, n), (-c).view(n, 1).expand(n, n)


def default_n_detectors(image_size: int, spacing: float = 1.0) -> int:
    """Bins covering the image's circumscribed circle in a parallel beam: ``ceil(sqrt(2) N / spacing)``."""
    return int(math.ceil(math.sqrt(2.0) * image_size / spacing - 1e-9))


def as_angles(angles, where: str) -> tuple[float, ...]:
    """View angles (radians) as a tuple of finite floats; a one-line :class:`ConfigError` otherwise."""
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


def positive_int(value, name: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {name} must be an integer >= 1, got {value!r}")
    return int(value)


def positive_float(value, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def image_size_of(image_size, where: str) -> int:
    if isinstance(image_size, (tuple, list)):
        if len(image_size) != 2 or image_size[0] != image_size[1]:
            raise ShapeError(
                f"{where}: CT projectors take square images, got image_size {tuple(image_size)}; "
                "resample to N x N (data.size)"
            )
        image_size = image_size[0]
    return positive_int(image_size, "image_size", where)


def matrix_choice(matrix, memory_budget_mib, where: str) -> tuple[str, float]:
    """Checked ``(matrix, memory_budget_mib)``: one of :data:`MATRIX_CHOICES` and a number of MiB > 0."""
    if not isinstance(matrix, str) or matrix not in MATRIX_CHOICES:
        raise ConfigError(f"{where}: matrix must be one of {', '.join(MATRIX_CHOICES)}, got {matrix!r}")
    return matrix, positive_float(memory_budget_mib, "memory_budget_mib", where)
