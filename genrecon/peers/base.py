"""The base of the peer reconstructors: a :class:`~genrecon.reconstructors.Reconstructor` that runs another
toolkit and refuses to be configured when that toolkit is missing (the reason and how to install it)."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import torch

from ..errors import ConfigError
from ..reconstructors.base import Reconstructor
from .status import available, missing_reason


class PeerReconstructor(Reconstructor):
    """A method run by a peer toolkit (:data:`~genrecon.peers.status.PEERS` names it in :attr:`peer`).

    Config validation and the constructor both go through :meth:`parse_params`, which adds "<who>: <peer>
    missing (...)" to the problems when the peer is not present, so a config that names a missing peer stops
    before any work with one line saying what to install.
    """

    #: the peer toolkit (a key of :data:`~genrecon.peers.status.PEERS`)
    peer: ClassVar[str] = ""
    supports_batch = True

    @classmethod
    def parse_params(cls, data: Mapping[str, Any], where: str, problems: list[str]) -> Any:
        params = super().parse_params(data, where, problems)
        if not available(cls.peer):
            problems.append(f"{where or cls.who}: needs {cls.peer}, {missing_reason(cls.peer)}")
        return params


def single_coil_mask(op, who: str) -> torch.Tensor:
    """The ``(H, W)`` sampling mask of a single-coil Cartesian MRI operator; :class:`ConfigError` for others."""
    from ..operators.mri import SingleCoilMRI

    if not isinstance(op, SingleCoilMRI):
        raise ConfigError(f"{who}: reconstructs single-coil Cartesian MRI (mri_single), got {op.name}")
    h, w = op.domain_shape[-2:]
    return op.mask.expand(h, w).float()


def parallel_sinogram(op, y: torch.Tensor, who: str):
    """``(line integrals (B, V, D) float32 numpy, angles in radians)`` of a parallel-beam CT measurement with
    bins of 1 pixel (the operator's normalisation undone); :class:`ConfigError` for other geometries."""
    import numpy as np

    if getattr(op, "geometry", None) != "parallel" or float(getattr(op, "detector_spacing", 0.0)) != 1.0:
        raise ConfigError(f"{who}: reconstructs parallel-beam CT with 1-pixel bins, got {op.name}")
    sino = (y.detach().to("cpu", torch.float64) / float(op.scale))[:, 0].numpy().astype(np.float32)
    return sino, np.asarray(op.angles, dtype=np.float64)
