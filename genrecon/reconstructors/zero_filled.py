"""Zero-filled / adjoint reconstruction: ``x = A^H y`` (optionally rescaled)."""

from __future__ import annotations

import torch

from ..registry import RECONSTRUCTORS
from .base import Reconstructor


@RECONSTRUCTORS.register("zero_filled")
class ZeroFilled(Reconstructor):
    """Adjoint of the measurement: A^H y (zero-filled inverse FFT for MRI; unfiltered backprojection for CT).

    For MRI with an orthonormal FFT this is the classical zero-filled reconstruction. For CT, ``fbp`` is the
    better baseline; ``zero_filled`` there is a plain (blurry) backprojection.

    Args:
        dcf: divide by the achieved sampling fraction (density compensation for a uniform mask); off by default.
    """

    def __init__(self, *, dcf: bool = False):
        super().__init__()
        self.dcf = dcf

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        x = op.adjoint(y)
        if self.dcf:
            mask = getattr(op, "mask", None)
            if mask is not None:
                x = x / mask.float().mean().clamp(min=1e-12)
        self.info["iterations"] = 0
        if callback is not None:
            callback(0, x)
        return x
