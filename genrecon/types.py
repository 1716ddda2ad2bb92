"""Records passed between the pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Operator(Protocol):
    """What the records need of a forward operator (:class:`genrecon.operators.base.LinearOperator` is one);
    a Protocol, so this lowest layer does not import the operators."""

    domain_shape: tuple[int, ...]
    range_shape: tuple[int, ...]

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...

    def adjoint(self, y: torch.Tensor) -> torch.Tensor: ...


@dataclass
class Case:
    """One 2-D image to reconstruct (a slice of a volume, a file, a phantom).

    Attributes:
        key: unique, stable name of the case, ``"<source stem>/<slice index>"``; per-case seeds derive from it.
        image: ground truth ``(1, H, W)``; float32 for magnitude images, complex64 for complex MRI images.
        meta: provenance and geometry: ``source`` (path), ``slice`` (index), ``affine`` (4x4 list, NIfTI),
            ``pixel_spacing`` (mm), ``units`` ("normalised", "HU", ...), ``normalisation`` and others.
        kspace: measured multi-coil k-space ``(coils, H, W)`` when the file has it (fastMRI), else None.
        maps: coil sensitivity maps ``(coils, H, W)`` when known, else None.
    """

    key: str
    image: torch.Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    kspace: torch.Tensor | None = None
    maps: torch.Tensor | None = None


@dataclass
class Measurement:
    """Simulated (or measured) data for one case.

    Attributes:
        y: measurements ``(1, *op.range_shape)``.
        op: the forward operator ``A`` with ``y = A x + noise``.
        x_true: ground truth ``(1, *op.domain_shape)`` (same dtype as the operator's domain), or on the
            evaluation grid ``(1, 1, *eval_shape)`` when ``eval_shape`` is set; None if unknown.
        info: what the simulation did: achieved acceleration / number of views, noise sigma, SNR, seed...
        eval_shape: ``(h, w)`` when reconstructions are centre-cropped from the acquisition grid for metrics
            and outputs (measured fastMRI k-space: 640 x 368 acquired, 320 x 320 reference); None: no crop.
    """

    y: torch.Tensor
    op: Operator
    x_true: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)
    eval_shape: tuple[int, int] | None = None
