"""Zero-filled / adjoint reconstruction: ``x = A^H y`` (optionally rescaled)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..registry import RECONSTRUCTORS
from .base import Reconstructor


@dataclass(frozen=True)
class ZeroFilledParams:
    """The parameters of ``zero_filled``."""

    dcf: bool = field(default=False, metadata={"doc": "divide by the achieved sampling fraction (density compensation "
                                                      "for a uniform mask)"})


@RECONSTRUCTORS.register("zero_filled")
class ZeroFilled(Reconstructor):
    """Adjoint of the measurement: A^H y (zero-filled inverse FFT for MRI; unfiltered backprojection for CT).

    For MRI with an orthonormal FFT this is the classical zero-filled reconstruction. For CT, ``fbp`` is the
    better baseline; ``zero_filled`` there is a plain (blurry) backprojection.

    Parameters: :class:`ZeroFilledParams` (``dcf``).
    """

    who = "zero_filled"
    Params = ZeroFilledParams

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
