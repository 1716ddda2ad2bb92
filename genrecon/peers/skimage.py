"""scikit-image's ``iradon`` (filtered backprojection) as a genrecon reconstructor (``pip install scikit-image``).

It takes the line integrals of a parallel-beam projector with 1-pixel bins (the operator's normalisation
undone) as the sinogram ``iradon`` expects: bins along the first axis, one column per view, angles in degrees,
``circle=False`` (the bins must cover the image's diagonal, as genrecon's default ``ceil(sqrt(2) N)`` does).
genrecon centres the image at pixel ``(N - 1) / 2`` and the bins at ``(D - 1) / 2``; scikit-image at ``N // 2``
and ``D // 2``. Each view is shifted to scikit-image's centres first (:func:`to_skimage_centres`, an exact
Fourier shift), so ``iradon`` sees data in its own convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..errors import ConfigError
from ..registry import RECONSTRUCTORS
from .base import PeerReconstructor, parallel_sinogram


def radon_pair(n: int, theta_deg: np.ndarray):
    """scikit-image's ``radon`` and unfiltered ``iradon`` on flat vectors, and the number of detector bins.

    ``iradon(filter_name=None)`` is a backprojection that is not scaled as ``radon``'s adjoint; callers fit
    the best constant (see the operators suite).
    """
    from skimage.transform import iradon, radon

    theta = np.asarray(theta_deg, dtype=np.float64)

    def fwd(v):
        return radon(np.asarray(v, dtype=np.float32).reshape(n, n), theta=theta, circle=False).astype(np.float32).ravel()

    bins = radon(np.zeros((n, n), np.float32), theta=theta[:1], circle=False).shape[0]

    def adj(v):
        sino = np.asarray(v, dtype=np.float32).reshape(bins, len(theta))
        return iradon(sino, theta=theta, filter_name=None, circle=False, output_size=n).astype(np.float32).ravel()

    return fwd, adj, bins


def to_skimage_centres(sino: np.ndarray, angles: np.ndarray, n: int) -> np.ndarray:
    """Views ``(V, D)`` of genrecon's parallel beam (centres ``(N-1)/2``, ``(D-1)/2``) moved to scikit-image's
    (``N // 2``, ``D // 2``): view ``v`` shifts by ``dn (sin t - cos t) + dd`` bins, ``dn = N // 2 - (N-1)/2``,
    ``dd = D // 2 - (D-1)/2`` (0 or 1/2), by a phase ramp on the zero-padded FFT of each view."""
    d = sino.shape[-1]
    shift = (n // 2 - (n - 1) / 2) * (np.sin(angles) - np.cos(angles)) + (d // 2 - (d - 1) / 2)
    pad = 2 * d
    spectrum = np.fft.rfft(sino.astype(np.float64), n=pad, axis=-1)
    ramp = np.exp(-2j * np.pi * np.fft.rfftfreq(pad)[None] * shift[:, None])
    return np.fft.irfft(spectrum * ramp, n=pad, axis=-1)[:, :d]


@dataclass(frozen=True)
class SkimageIradonParams:
    """The parameters of ``skimage_iradon``."""

    filter: Literal["ramp", "shepp-logan", "cosine", "hamming", "hann"] = field(
        default="ramp", metadata={"doc": "iradon's filter_name"})


@RECONSTRUCTORS.register("skimage_iradon")
class SkimageIradon(PeerReconstructor):
    """scikit-image ``iradon`` (filtered backprojection) of a parallel-beam sinogram; needs scikit-image.

    Parameters: :class:`SkimageIradonParams`.
    """

    who = "skimage_iradon"
    peer = "skimage"
    modalities = ("ct",)
    Params = SkimageIradonParams

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        from skimage.transform import iradon

        sino, angles = parallel_sinogram(op, y, self.who)
        n = op.domain_shape[-1]
        need = int(np.ceil(np.sqrt(2) * n))
        if sino.shape[-1] < need:
            raise ConfigError(f"{self.who}: iradon (circle=False) needs bins over the image's diagonal, at least "
                              f"{need} for {n} pixels; got {sino.shape[-1]}")
        theta = np.degrees(angles)
        out = [torch.from_numpy(iradon(np.ascontiguousarray(to_skimage_centres(s, angles, n).T), theta=theta,
                                       filter_name=self.filter, circle=False, output_size=n).astype(np.float32))
               for s in sino]
        x = torch.stack(out)[:, None].to(device=y.device, dtype=y.dtype)
        self.info["iterations"] = 0
        if callback is not None:
            callback(0, x)
        return x
