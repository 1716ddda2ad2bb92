"""FISTA with isotropic total variation: ``min_x 1/2 ||A x - y||^2 + tv_weight TV(x)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..registry import RECONSTRUCTORS
from ..solvers.fista import fista
from ..solvers.tv import TVProx
from .base import Reconstructor, Renamed


@dataclass(frozen=True)
class FistaTVParams:
    """The parameters of ``fista_tv``."""

    tv_weight: float | None = field(default=None, metadata={
        "doc": "TV weight, absolute, in the image's units (images in about [0, 1] want 1e-3 ... 1e-1). None: 0.01"})
    lam: float | None = field(default=None, metadata={
        "doc": "deprecated: the old name of tv_weight (the same value); it goes in the next version"})
    n_iter: int = field(default=100, metadata={"ge": 1, "doc": "maximum FISTA iterations"})
    inner_iter: int = field(default=5, metadata={"ge": 1, "doc": "dual iterations of the TV prox per FISTA "
                                                                 "iteration (warm-started)"})
    tol: float = field(default=0.0, metadata={"ge": 0, "doc": "relative change of the iterate at which to stop "
                                                              "(0: run all iterations)"})
    nonneg: bool = field(default=False, metadata={"doc": "constrain real images (CT attenuation) to be non-negative"})
    restart: bool = field(default=False, metadata={"doc": "adaptive momentum restart"})

    renamed: ClassVar[tuple[Renamed, ...]] = (Renamed("lam", "tv_weight", default=0.01),)

    def problems(self) -> list[str]:
        """The weight's range, naming the key given (tv_weight or its old name lam)."""
        weight, given = self.renamed[0].given(self)
        return [f"{given} must be >= 0, got {weight}"] if weight is not None and weight < 0 else []


@RECONSTRUCTORS.register("fista_tv")
class FistaTV(Reconstructor):
    """FISTA on 1/2||Ax - y||^2 + tv_weight TV(x), TV prox by a warm-started fast dual method; works for MRI and CT.

    The step is ``1 / (1.01 ||A||^2)`` with :meth:`~genrecon.operators.LinearOperator.norm_squared` (the operator's
    own or a power-method estimate, cached on the operator). ``tv_weight`` is absolute, in the units of the image
    (images normalised to about [0, 1] want 1e-3 ... 1e-1); ``dps`` and ``latent_inversion`` take their TV weight
    under the same name on the same scale.

    Parameters: :class:`FistaTVParams` (the YAML ``params``).

    Example:
        >>> from genrecon.registry import RECONSTRUCTORS
        >>> recon = RECONSTRUCTORS.build("fista_tv", {"tv_weight": 0.01, "n_iter": 50})
    """

    who = "fista_tv"
    Params = FistaTVParams

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        aty = op.adjoint(y)
        # a hair of safety on the power-method estimate (it approaches ||A||^2 from below)
        L = op.norm_squared(dtype=aty.real.dtype, device=aty.device) * 1.01
        step = 1.0 / L
        prox = TVProx(self.tv_weight, self.inner_iter, nonneg=self.nonneg)

        def grad_f(x, out=None):  # A^H A x - A^H y (into out); MRI's normal needs no FFT shifts
            return torch.sub(op.normal(x), aty, out=out)

        start = x0 if x0 is not None else aty
        # buffers made once (no allocation per iteration but the operator's own) when every iterate has start's
        # type; a start of another precision than A^H y promotes the iterates instead, as it always has
        same = start.dtype == aty.dtype and start.shape == aty.shape
        with torch.no_grad():
            res = fista(grad_f, prox, start, step=step, n_iter=self.n_iter, tol=self.tol, callback=callback,
                        restart=self.restart, out=same)
        self.info.update(iterations=res.iterations, converged=res.converged, step=step)
        return res.x
