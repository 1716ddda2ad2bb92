"""The one reconstruction contract shared by classical and generative methods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..operators.base import LinearOperator


@dataclass(frozen=True)
class ImageDomain:
    """The image domain ``(C, H, W)`` an operator will have, known before it is built (config validation).

    It carries what :meth:`Reconstructor.check` may read of an operator: ``domain_shape``,
    ``complex_domain`` and ``name``.
    """

    domain_shape: tuple[int, ...]
    complex_domain: bool = False
    name: str = "the configured images"


class Reconstructor:
    """Base class of reconstruction plugins: ``x_hat = recon(y, op)``.

    Subclasses take few keyword-only constructor parameters (they are the YAML ``params`` block) and
    implement :meth:`reconstruct`. After each call, :attr:`info` holds what the method reports: e.g.
    ``iterations``, ``nfe`` (network evaluations), ``std`` (a per-pixel standard deviation map) or
    ``samples``. Tensors in ``info`` are saved by the pipeline, scalars go to the report.
    """

    #: modalities the method supports; the config validator refuses others
    modalities: tuple[str, ...] = ("mri", "ct")

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}

    def __call__(
        self,
        y: torch.Tensor,
        op: LinearOperator,
        *,
        x0: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        callback: Callable[[int, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """Reconstruct ``x`` of shape ``(B, *op.domain_shape)`` from ``y`` of shape ``(B, *op.range_shape)``."""
        self.info = {}
        return self.reconstruct(y, op, x0=x0, generator=generator, callback=callback)

    def check(self, op: LinearOperator | ImageDomain) -> None:
        """Raise a one-line :class:`~genrecon.errors.GenreconError` when this method cannot reconstruct
        images of ``op``'s domain (e.g. a prior trained at another size). The default accepts any.

        Config validation calls it with an :class:`ImageDomain` when ``data.size`` fixes the size, and the
        pipeline with each case's operator before any method of that case runs.
        """

    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError
