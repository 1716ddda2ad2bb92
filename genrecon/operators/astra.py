"""ASTRA's projectors as a genrecon operator (optional: ``pip install astra-toolbox``).

``simulate: {modality: ct, projector: astra_linear}`` measures and reconstructs with ASTRA's CPU kernel instead
of genrecon's distance-driven one (the classical benchmark compares the two, each on data it simulated
itself). The operator has the attributes the CT simulation and reconstructors read of a parallel-beam
projector: ``angles`` (radians), ``image_size``, ``n_views``, ``n_detectors``, ``detector_spacing`` (1 pixel),
``geometry`` and ``scale`` (``A = scale * A_raw``; ``1 / ||A_raw||`` when normalised, by the project's power method).
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import torch

from ..linalg.power import NORM_ITER, NORM_TOL
from .base import LinearOperator

#: ASTRA CPU kernels for a 2-D parallel beam, by the names ``simulate.projector`` takes
KINDS = {"astra_line": "line", "astra_linear": "linear", "astra_strip": "strip"}
INSTALL = "pip install astra-toolbox (or conda install -c astra-toolbox astra-toolbox)"


def astra_problem() -> str | None:
    """Why ASTRA cannot be used here (not importable), or None."""
    if importlib.util.find_spec("astra") is None:
        return f"ASTRA is not installed; install: {INSTALL}"
    return None


class AstraProjector(LinearOperator):
    """An ASTRA projector: ``(B, 1, N, N)`` float32 -> ``(B, 1, V, D)`` (through ``astra.OpTomo``).

    Args:
        image_size: ``N``.
        angles: radians.
        n_detectors: ``D`` (bins of width 1 pixel for parallel beams).
        kind: ASTRA projector type: ``line``, ``linear``, ``strip`` (parallel, CPU), ``line_fanflat``,
            ``strip_fanflat`` (fan, CPU) or ``cuda`` (GPU, either geometry).
        fan: ``(source_distance, detector_distance, detector_spacing)`` in pixels for a flat fan beam.
        normalize: divide by the operator norm (power method), like genrecon's ``normalize=True``.

    Data go through numpy on the CPU (ASTRA copies to the GPU itself for ``cuda``). Call :meth:`release` to
    free ASTRA's projector object early (it is freed with the operator otherwise).
    """

    def __init__(self, *, image_size: int, angles, n_detectors: int, kind: str = "linear",
                 fan: tuple[float, float, float] | None = None, normalize: bool = False):
        import astra

        angles = np.asarray(angles, dtype=np.float64)
        super().__init__((1, image_size, image_size), (1, len(angles), n_detectors))
        vol = astra.create_vol_geom(image_size, image_size)
        if fan is None:
            proj = astra.create_proj_geom("parallel", 1.0, n_detectors, angles)
        else:
            d_so, d_od, spacing = fan
            proj = astra.create_proj_geom("fanflat", spacing, n_detectors, angles, d_so, d_od)
        self.kind = kind
        self.geometry = "parallel" if fan is None else "fan"
        self.angles = [float(a) for a in angles]
        self.image_size = image_size
        self.n_detectors = n_detectors
        self.detector_spacing = 1.0 if fan is None else float(fan[2])
        self.normalize = normalize
        self._pid = astra.create_projector(kind, proj, vol)
        self._W = astra.OpTomo(self._pid)
        self.scale = 1.0
        if normalize:  # the project's one power method, on A_raw (scale 1 while it runs)
            self.scale = 1.0 / math.sqrt(self._estimate_norm_squared(NORM_ITER, NORM_TOL, None, torch.float32, None))

    @property
    def name(self) -> str:
        return f"ASTRA[{self.kind}]"

    @property
    def n_views(self) -> int:
        return len(self.angles)

    def norm_squared(self, *, dtype: torch.dtype | None = None, device=None) -> float:
        """1 when normalised (the scale's own estimate, as genrecon's CT projectors), else the power method."""
        return 1.0 if self.normalize else super().norm_squared(dtype=dtype, device=device)

    def _run(self, t: torch.Tensor, transpose: bool) -> torch.Tensor:
        src = t.detach().to("cpu", torch.float32).numpy()
        out_shape = self.domain_shape if transpose else self.range_shape
        out = np.empty((src.shape[0], *out_shape), dtype=np.float32)
        W = self._W.T if transpose else self._W
        for b in range(src.shape[0]):
            out[b, 0] = (W @ src[b, 0].ravel()).reshape(out_shape[1:]) * self.scale
        return torch.from_numpy(out).to(device=t.device, dtype=t.dtype)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, transpose=False)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._run(y, transpose=True)

    def release(self) -> None:
        """Free ASTRA's projector object (the operator is unusable afterwards)."""
        import astra

        if getattr(self, "_pid", None) is not None:
            astra.projector.delete(self._pid)
            self._pid = None

    def __del__(self):
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown: astra may be gone already
            pass
