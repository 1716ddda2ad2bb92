"""SigPy's ``TotalVariationRecon`` (primal-dual hybrid gradient) as a genrecon reconstructor.

Single-coil Cartesian MRI: sensitivities of ones, the sampling mask as SigPy's ``weights``; SigPy's FFT is
centred and orthonormal, genrecon's convention. ``lam`` is SigPy's TV weight (``1/2 ||Ax - y||^2 + lam
||G x||_1``). SigPy picks its step sizes with a power method started from numpy's global RNG: the call seeds it
from the run's generator and puts numpy's state back afterwards, so the result is reproducible and nothing
else's draws change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..registry import RECONSTRUCTORS
from .base import PeerReconstructor, single_coil_mask


def sense(maps: np.ndarray, mask: np.ndarray):
    """SigPy's SENSE operator ``sigpy.mri.linop.Sense`` (centred orthonormal FFT, mask as weights)."""
    import sigpy.mri.linop as linop

    return linop.Sense(np.asarray(maps, dtype=np.complex64), weights=np.asarray(mask, dtype=np.float32))


@dataclass(frozen=True)
class SigpyTVParams:
    """The parameters of ``sigpy_tv``."""

    lam: float = field(default=0.01, metadata={"ge": 0, "doc": "SigPy's TV weight (its TotalVariationRecon lamda)"})
    n_iter: int = field(default=100, metadata={"ge": 1, "doc": "primal-dual iterations (max_iter)"})


@RECONSTRUCTORS.register("sigpy_tv")
class SigpyTV(PeerReconstructor):
    """SigPy ``TotalVariationRecon`` on single-coil Cartesian MRI; needs ``pip install sigpy``.

    Parameters: :class:`SigpyTVParams`.
    """

    who = "sigpy_tv"
    peer = "sigpy"
    modalities = ("mri",)
    Params = SigpyTVParams

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        import sigpy.mri.app as app

        weights = single_coil_mask(op, self.who).numpy().astype(np.float32)
        seed = 0 if generator is None else int(torch.randint(2**31 - 1, (1,), generator=generator,
                                                                 device=generator.device))
        out = []
        state = np.random.get_state()
        try:
            for b in range(y.shape[0]):
                np.random.seed(seed + b)
                ksp = y[b].detach().cpu().numpy().astype(np.complex64)  # (1, H, W): one coil
                img = app.TotalVariationRecon(ksp, np.ones_like(ksp), self.lam, weights=weights,
                                              max_iter=self.n_iter, show_pbar=False).run()
                out.append(torch.from_numpy(np.asarray(img, dtype=np.complex64)))
        finally:
            np.random.set_state(state)
        x = torch.stack(out)[:, None].to(y.device)
        self.info["iterations"] = self.n_iter
        if callback is not None:
            callback(self.n_iter, x)
        return x
