"""Linear operators with matched adjoints.

A :class:`LinearOperator` maps batch-first tensors ``(B, *domain_shape)`` to ``(B, *range_shape)``.
Subclasses implement the private ``_forward`` and ``_adjoint`` (not ``_apply``: that name belongs to
``nn.Module``, whose ``.to()``/``.double()`` call it); the public ``forward``/``adjoint`` check
shapes and dtypes first, so an error names the operator and both shapes. Composition (``A @ B``), the
adjoint view (``A.H``), the normal operator and the norm (:meth:`LinearOperator.norm_squared`, computed once
per operator and cached) are written once here.

Example:
    >>> import torch
    >>> from genrecon.operators import Identity
    >>> A = Identity((1, 4, 4))
    >>> x = torch.randn(2, 1, 4, 4)
    >>> torch.equal(A.H(A(x)), x)
    True
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

import torch
from torch import nn

from ..errors import ShapeError
from ..linalg.power import NORM_ITER, NORM_TOL, power_method


def _shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


class LinearOperator(nn.Module):
    """Base class: ``y = A x`` with ``x`` of shape ``(B, *domain_shape)`` and ``y`` ``(B, *range_shape)``.

    Attributes:
        domain_shape: shape of one input without the batch dimension, e.g. ``(1, H, W)``.
        range_shape: shape of one output without the batch dimension.
        complex_domain / complex_range: whether inputs / outputs are complex tensors.
    """

    complex_domain: bool = False
    complex_range: bool = False

    def __init__(self, domain_shape: tuple[int, ...], range_shape: tuple[int, ...]):
        super().__init__()
        self._norm_squared: float | None = None  # norm_squared()'s cache
        self.domain_shape = tuple(int(s) for s in domain_shape)
        self.range_shape = tuple(int(s) for s in range_shape)

    # -- to implement -----------------------------------------------------------------------------
    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- public, validating -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).__name__

    def _check(self, t: torch.Tensor, shape: tuple[int, ...], is_complex: bool, what: str) -> None:
        if not isinstance(t, torch.Tensor):
            raise ShapeError(f"{self.name}.{what}: expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() != len(shape) + 1 or tuple(t.shape[1:]) != shape:
            raise ShapeError(
                f"{self.name}.{what}: expected shape (B, {_shape_str(shape)[1:-1]}), got {_shape_str(t.shape)}"
            )
        if is_complex and not t.is_complex():
            raise ShapeError(f"{self.name}.{what}: expected a complex tensor, got {t.dtype}")
        if not is_complex and t.is_complex():
            raise ShapeError(f"{self.name}.{what}: expected a real tensor, got {t.dtype}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the operator: ``(B, *domain_shape) -> (B, *range_shape)``."""
        self._check(x, self.domain_shape, self.complex_domain, "forward")
        return self._forward(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Apply the adjoint: ``(B, *range_shape) -> (B, *domain_shape)``."""
        self._check(y, self.range_shape, self.complex_range, "adjoint")
        return self._adjoint(y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x``."""
        return self.adjoint(self.forward(x))

    @property
    def H(self) -> "LinearOperator":
        """The adjoint as an operator."""
        return AdjointOperator(self)

    def __matmul__(self, other: "LinearOperator") -> "LinearOperator":
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return Composition(self, other)

    # -- helpers ----------------------------------------------------------------------------------
    def domain_zeros(self, batch: int = 1, *, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
        dtype = dtype or (torch.complex64 if self.complex_domain else torch.float32)
        return torch.zeros((batch, *self.domain_shape), dtype=dtype, device=device)

    def random_domain(self, batch: int, generator: torch.Generator, dtype=torch.float64, device=None):
        """Zero-mean Gaussian test vectors in the domain (complex if the domain is complex)."""
        return _randn((batch, *self.domain_shape), self.complex_domain, generator, dtype, device)

    def random_range(self, batch: int, generator: torch.Generator, dtype=torch.float64, device=None):
        return _randn((batch, *self.range_shape), self.complex_range, generator, dtype, device)

    def norm_squared(self, *, dtype: torch.dtype | None = None, device=None) -> float:
        """``||A||^2``, the largest eigenvalue of ``A^H A``: computed once, then cached on this operator.

        ``||A||^2 = lim_k ||(A^H A) x_k||`` by the power method on :meth:`normal` (at most
        :data:`~genrecon.linalg.power.NORM_ITER` iterations, relative tolerance
        :data:`~genrecon.linalg.power.NORM_TOL`) from a Gaussian start drawn from a generator seeded 0, so an
        operator always gives the same number. The estimate approaches ``||A||^2`` from below: a step ``1 / ||A||^2``
        wants a hair of safety (fista_tv, dps and latent_inversion multiply by 1.01). An operator that knows its
        norm overrides this (the CT projectors: 1 when normalised, else their build-time estimate).

        Args:
            dtype: real precision of the first computation (a complex domain uses the matching complex dtype);
                default: that of the operator's floating buffers, else float32.
            device: where the first computation runs; default: the device of the operator's buffers, else CPU.
                Neither changes the result beyond rounding; once cached, the value is returned whatever they are.

        Returns:
            ``||A||^2`` as a Python float.

        Example:
            >>> from genrecon.operators import Identity
            >>> Identity((1, 4, 4)).norm_squared()
            1.0
        """
        cached = self.__dict__.get("_norm_squared")
        if cached is None:
            cached = self._known_norm_squared()
            if cached is None:
                cached = self._estimate_norm_squared(NORM_ITER, NORM_TOL, None, dtype, device)
            self.__dict__["_norm_squared"] = cached
        return cached

    def _known_norm_squared(self) -> float | None:
        """``||A||^2`` when this operator knows it exactly in its current state (cached by :meth:`norm_squared`),
        else None (the power method runs). The default knows nothing."""
        return None

    def norm(self, n_iter: int | None = None, generator: torch.Generator | None = None, *,
             tol: float | None = None, dtype: torch.dtype | None = None, device=None) -> float:
        """Operator norm ``||A||_2 = sqrt(norm_squared())``.

        Given ``n_iter``, ``generator`` or ``tol``, it is instead a fresh power-method estimate with those settings
        (not cached; unset ones default to 50 iterations and ``tol = 1e-6``, the start drawn from ``generator`` or
        a generator seeded 0): for checks that choose their own precision or random start.

        Args:
            n_iter: maximum power-method iterations of a fresh estimate.
            generator: source of a fresh estimate's start vector.
            tol: relative stopping tolerance of a fresh estimate.
            dtype: real precision of the computation (see :meth:`norm_squared`).
            device: where it runs.
        """
        if n_iter is None and generator is None and tol is None:
            return math.sqrt(self.norm_squared(dtype=dtype, device=device))
        return math.sqrt(self._estimate_norm_squared(50 if n_iter is None else n_iter, 1e-6 if tol is None else tol,
                                                     generator, dtype, device))

    def _estimate_norm_squared(self, n_iter: int, tol: float, generator: torch.Generator | None,
                               dtype: torch.dtype | None, device) -> float:
        """The power method on ``A^H A`` from ``random_domain(1, generator or seed 0)``."""
        home_dtype, home_device = self._home()
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        x0 = self.random_domain(1, g, dtype=dtype or home_dtype, device=device if device is not None else home_device)
        return power_method(self.normal, x0, n_iter=n_iter, tol=tol)

    def _home(self) -> tuple[torch.dtype, torch.device | None]:
        """``(real dtype, device)`` of the operator's first floating (or complex) buffer or parameter, else
        ``(float32, None)``."""
        for t in itertools.chain(self.buffers(), self.parameters()):
            if t.is_floating_point() or t.is_complex():
                return (t.real.dtype if t.is_complex() else t.dtype), t.device
        for t in itertools.chain(self.buffers(), self.parameters()):
            return torch.float32, t.device
        return torch.float32, None

    def extra_repr(self) -> str:
        return f"domain={self.domain_shape}, range={self.range_shape}"


def _randn(shape, is_complex, generator, dtype, device):
    real = torch.randn(shape, generator=generator, dtype=dtype)
    if is_complex:
        imag = torch.randn(shape, generator=generator, dtype=dtype)
        out = torch.complex(real, imag) / math.sqrt(2.0)
    else:
        out = real
    return out.to(device) if device is not None else out


class AdjointOperator(LinearOperator):
    """``A^H`` as an operator; its adjoint is ``A`` again."""

    def __init__(self, op: LinearOperator):
        super().__init__(op.range_shape, op.domain_shape)
        self.op = op
        self.complex_domain = op.complex_range
        self.complex_range = op.complex_domain

    @property
    def name(self) -> str:
        return f"{self.op.name}.H"

    def norm_squared(self, *, dtype: torch.dtype | None = None, device=None) -> float:
        """``||A^H||^2 = ||A||^2``: the wrapped operator's (cached there)."""
        return self.op.norm_squared(dtype=dtype, device=device)

    def _forward(self, x):
        return self.op._adjoint(x)

    def _adjoint(self, y):
        return self.op._forward(y)

    @property
    def H(self) -> LinearOperator:
        return self.op


class Composition(LinearOperator):
    """``(A @ B) x = A (B x)``."""

    def __init__(self, outer: LinearOperator, inner: LinearOperator):
        if outer.domain_shape != inner.range_shape or outer.complex_domain != inner.complex_range:
            raise ShapeError(
                f"cannot compose {outer.name} (domain {_shape_str(outer.domain_shape)}) with "
                f"{inner.name} (range {_shape_str(inner.range_shape)})"
            )
        super().__init__(inner.domain_shape, outer.range_shape)
        self.outer, self.inner = outer, inner
        self.complex_domain = inner.complex_domain
        self.complex_range = outer.complex_range

    @property
    def name(self) -> str:
        return f"{self.outer.name}@{self.inner.name}"

    def _forward(self, x):
        return self.outer._forward(self.inner._forward(x))

    def _adjoint(self, y):
        return self.inner._adjoint(self.outer._adjoint(y))


class Identity(LinearOperator):
    """``I x = x`` (a real or complex identity)."""

    def __init__(self, shape: tuple[int, ...], complex: bool = False):
        super().__init__(shape, shape)
        self.complex_domain = self.complex_range = complex

    def _forward(self, x):
        return x

    def _adjoint(self, y):
        return y


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real part of the Euclidean inner product ``Re <a, b>`` summed over all entries (a scalar)."""
    if a.is_complex():
        return torch.sum(a.conj() * b).real
    return torch.sum(a * b)


def adjoint_error(
    op: LinearOperator,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    batch: int = 2,
    device=None,
    norm: float | None = None,
) -> float:
    """Scale-free adjoint error ``|<Ax, y> - <x, A^H y>| / (||A|| ||x|| ||y||)``.

    Uses zero-mean Gaussian ``x`` and ``y`` (positive test vectors hide mismatches). ``norm`` is the
    operator norm; it is estimated by the power method when not given.
    """
    g = generator or torch.Generator().manual_seed(0)
    x = op.random_domain(batch, g, dtype=dtype, device=device)
    y = op.random_range(batch, g, dtype=dtype, device=device)
    lhs = inner(op(x), y)
    rhs = inner(x, op.adjoint(y))
    if norm is None:
        norm = op.norm(n_iter=30, generator=g, dtype=dtype, device=device)
    scale = norm * torch.linalg.vector_norm(x).item() * torch.linalg.vector_norm(y).item()
    return abs((lhs - rhs).item()) / max(scale, torch.finfo(dtype).tiny)


Callback = Callable[[int, torch.Tensor], None]
