"""ASTRA's CPU filtered backprojection and SIRT as genrecon reconstructors (``pip install astra-toolbox``).

They reconstruct a parallel-beam sinogram with 1-pixel bins from any parallel-beam projector (genrecon's own or
``simulate.projector: astra_*``): the operator's normalisation is undone first (``y / scale``: ASTRA works on
line integrals), and ASTRA builds its own projector of kind ``kind`` on the same geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..registry import RECONSTRUCTORS
from .base import PeerReconstructor, parallel_sinogram


def fbp_sirt(sino: np.ndarray, angles, image_size: int, *, algorithm: str, n_iter: int = 100,
             kind: str = "linear", nonneg: bool = True) -> np.ndarray:
    """ASTRA's CPU ``FBP`` (ram-lak) or ``SIRT`` (``MinConstraint 0`` with ``nonneg``) on a parallel-beam
    sinogram ``(V, D)`` with 1-pixel bins; the image ``(N, N)`` float32."""
    import astra

    n_detectors = sino.shape[-1]
    vol = astra.create_vol_geom(image_size, image_size)
    proj = astra.create_proj_geom("parallel", 1.0, n_detectors, np.asarray(angles, dtype=np.float64))
    pid = astra.create_projector(kind, proj, vol)
    sid = astra.data2d.create("-sino", proj, np.ascontiguousarray(sino, dtype=np.float32))
    rid = astra.data2d.create("-vol", vol, 0.0)
    cfg = astra.astra_dict(algorithm)
    cfg.update(ProjectorId=pid, ProjectionDataId=sid, ReconstructionDataId=rid)
    if algorithm == "SIRT" and nonneg:
        cfg["option"] = {"MinConstraint": 0.0}
    aid = astra.algorithm.create(cfg)
    try:
        astra.algorithm.run(aid, n_iter if algorithm == "SIRT" else 1)
        return astra.data2d.get(rid).astype(np.float32)
    finally:
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
        astra.projector.delete(pid)


class _AstraMethod(PeerReconstructor):
    peer = "astra"
    modalities = ("ct",)
    algorithm = ""

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        sino, angles = parallel_sinogram(op, y, self.who)
        n_iter = getattr(self, "n_iter", 1)
        out = [torch.from_numpy(fbp_sirt(s, angles, op.domain_shape[-1], algorithm=self.algorithm, n_iter=n_iter,
                                         kind=self.kind, nonneg=getattr(self, "nonneg", False))) for s in sino]
        x = torch.stack(out)[:, None].to(device=y.device, dtype=y.dtype)
        self.info["iterations"] = n_iter
        if callback is not None:
            callback(n_iter, x)
        return x


@dataclass(frozen=True)
class AstraFBPParams:
    """The parameters of ``astra_fbp``."""

    kind: Literal["line", "linear", "strip"] = field(default="linear", metadata={"doc": "ASTRA's CPU projector "
                                                                                       "(the backprojection's)"})


@RECONSTRUCTORS.register("astra_fbp")
class AstraFBP(_AstraMethod):
    """ASTRA's CPU filtered backprojection (ram-lak) of a parallel-beam sinogram; needs astra-toolbox.

    Parameters: :class:`AstraFBPParams`.
    """

    who = "astra_fbp"
    Params = AstraFBPParams
    algorithm = "FBP"


@dataclass(frozen=True)
class AstraSIRTParams(AstraFBPParams):
    """The parameters of ``astra_sirt``: ``astra_fbp``'s ``kind`` and the iterations."""

    n_iter: int = field(default=100, metadata={"ge": 1, "doc": "SIRT iterations"})
    nonneg: bool = field(default=True, metadata={"doc": "clip negative values each iteration (MinConstraint 0)"})


@RECONSTRUCTORS.register("astra_sirt")
class AstraSIRT(_AstraMethod):
    """ASTRA's CPU SIRT (non-negative by default) on a parallel-beam sinogram; needs astra-toolbox.

    Parameters: :class:`AstraSIRTParams`.
    """

    who = "astra_sirt"
    Params = AstraSIRTParams
    algorithm = "SIRT"
