"""Linear operators with matched adjoints: Fourier, MRI, CT and finite differences.

Importing this package registers the built-in operators in :data:`genrecon.registry.OPERATORS`.
"""

from __future__ import annotations


from .base import AdjointOperator, Composition, Identity, LinearOperator, adjoint_error, inner
from .fft import FFT2, fft2c, ifft2c
from .finite_difference import FiniteDifference, div2d, grad2d
from .mri import MultiCoilMRI, SingleCoilMRI

from . import ct  # noqa: F401  (registers ct_parallel, ct_fan)

__all__ = [
    "LinearOperator",
    "AdjointOperator",
    "Composition",
    "Identity",
    "adjoint_error",
    "inner",
    "FFT2",
    "fft2c",
    "ifft2c",
    "SingleCoilMRI",
    "MultiCoilMRI",
    "FiniteDifference",
    "grad2d",
    "div2d",
]
