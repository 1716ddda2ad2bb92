"""The peer toolkits as the benchmark suites use them: availability (:mod:`genrecon.peers.status`), their methods
(:mod:`genrecon.peers`: reconstructors run through the pipeline), ASTRA's projector as an operator
(:mod:`genrecon.operators.astra`), and adjoint tests of numpy callables (the operators suite's peer rows).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..operators.astra import AstraProjector  # noqa: F401  (the operators and fullsize suites' ASTRA rows)
from ..peers.bart import read_cfl, write_cfl  # noqa: F401  (scripts/bench_fastmri.py)
from ..peers.sigpy_tv import sense as sigpy_sense  # noqa: F401  (the operators suite)
from ..peers.skimage import radon_pair as skimage_radon  # noqa: F401  (the operators suite)
from ..peers.status import PEERS, available, label, missing_reason, peer_status  # noqa: F401


# -- adjoint tests on numpy callables ------------------------------------------------------------------
def _randn(rng: np.random.Generator, shape, is_complex: bool) -> np.ndarray:
    if is_complex:
        return ((rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)).astype(np.complex64)
    return rng.standard_normal(shape).astype(np.float32)


def numpy_adjoint_errors(fwd: Callable, adj: Callable, shape_x, shape_y, *, is_complex: bool = False,
                         scale: float = 1.0, seed: int = 0, power_iter: int = 20) -> tuple[float, float]:
    """Adjoint errors of numpy callables (``adj`` multiplied by ``scale``) with zero-mean Gaussian ``x``, ``y``.

    Returns ``(scale_free, relative)``: ``|<Ax,y> - <x,A'y>| / (||A|| ||x|| ||y||)`` (genrecon's measure,
    ``||A||`` by ``power_iter`` power-method steps) and ``|<Ax,y> - <x,A'y>| / |<Ax,y>|``.
    """
    rng = np.random.default_rng(seed)
    v = _randn(rng, shape_x, is_complex)
    for _ in range(power_iter):
        v = scale * adj(fwd(v))
        v = v / np.linalg.norm(v)
    norm = math.sqrt(abs(float(np.vdot(v, scale * adj(fwd(v))).real)))
    x = _randn(rng, shape_x, is_complex)
    y = _randn(rng, shape_y, is_complex)
    lhs = np.vdot(np.asarray(fwd(x), dtype=np.complex128), y.astype(np.complex128)).real
    rhs = np.vdot(x.astype(np.complex128), scale * np.asarray(adj(y), dtype=np.complex128)).real
    diff = abs(float(lhs - rhs))
    return diff / (norm * float(np.linalg.norm(x)) * float(np.linalg.norm(y))), diff / max(abs(float(lhs)), 1e-300)
