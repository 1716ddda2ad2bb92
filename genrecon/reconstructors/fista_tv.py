"""FISTA with isotropic total variation: ``min_x 1/2 ||A x - y||^2 + tv_weight TV(x)``."""

from __future__ import annotations


import torch

from ..registry import RECONSTRUCTORS
from ..solvers.fista import fista
from ..solvers.tv import TVProx
from .base import Reconstructor, renamed_parameter


@RECONSTRUCTORS.register("fista_tv")
class FistaTV(Reconstructor):
    """FISTA on 1/2||Ax - y||^2 + tv_weight TV(x), TV prox by a warm-started fast dual method; works for MRI and CT.

    The step is ``1 / (1.01 ||A||^2)`` with :meth:`~genrecon.operators.LinearOperator.norm_squared` (the operator's
    own or a power-method estimate, cached on the operator). ``tv_weight`` is absolute, in the units of the image
    (images normalised to about [0, 1] want 1e-3 ... 1e-1); ``dps`` and ``latent_inversion`` take their TV weight
    under the same name on the same scale.

    Args:
        tv_weight: TV weight. None: 0.01.
        lam: deprecated: the old name of ``tv_weight`` (same value, with a ``DeprecationWarning``); it goes in the
            next version.
        n_iter: maximum FISTA iterations.
        inner_iter: dual iterations of the TV prox per FISTA iteration (warm-started).
        tol: relative change of the iterate at which to stop (0: run all iterations).
        nonneg: constrain real images (CT attenuation) to be non-negative.
        restart: adaptive momentum restart.

    Example:
        >>> from genrecon.registry import RECONSTRUCTORS
        >>> recon = RECONSTRUCTORS.build("fista_tv", {"tv_weight": 0.01, "n_iter": 50})
    """

    def __init__(
        self,
        *,
        tv_weight: float | None = None,
        lam: float | None = None,
        n_iter: int = 100,
        inner_iter: int = 5,
        tol: float = 0.0,
        nonneg: bool = False,
        restart: bool = False,
    ):
        super().__init__()
        from ..errors import ConfigError

        problems = []
        tv_weight, given = renamed_parameter("fista_tv", "tv_weight", tv_weight, "lam", lam, 0.01, problems)
        if tv_weight < 0:
            problems.append(f"fista_tv: {given} must be >= 0, got {tv_weight}")
        if n_iter < 1:
            problems.append(f"fista_tv: n_iter must be >= 1, got {n_iter}")
        if inner_iter < 1:
            problems.append(f"fista_tv: inner_iter must be >= 1, got {inner_iter}")
        if tol < 0:
            problems.append(f"fista_tv: tol must be >= 0, got {tol}")
        if problems:
            raise ConfigError(problems)
        self.tv_weight, self.n_iter, self.inner_iter = tv_weight, n_iter, inner_iter
        self.tol, self.nonneg, self.restart = tol, nonneg, restart

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        aty = op.adjoint(y)
        # a hair of safety on the power-method estimate (it approaches ||A||^2 from below)
        L = op.norm_squared(dtype=aty.real.dtype, device=aty.device) * 1.01
        step = 1.0 / L
        prox = TVProx(self.tv_weight, self.inner_iter, nonneg=self.nonneg)

        def grad_f(x):  # A^H A x - A^H y; MRI's normal needs no FFT shifts
            return op.normal(x) - aty

        start = x0 if x0 is not None else aty
        with torch.no_grad():
            res = fista(grad_f, prox, start, step=step, n_iter=self.n_iter, tol=self.tol,
                        callback=callback, restart=self.restart)
        self.info.update(iterations=res.iterations, converged=res.converged, step=step)
        return res.x
