"""Proximal operator of isotropic total variation by the fast dual method (FGP, Beck & Teboulle 2009).

``prox(b) = argmin_x 1/2 ||x - b||^2 + lam TV(x)`` with ``TV(x) = sum_i |(grad x)_i|_2`` and the optional
constraint ``x >= 0``. Dual: ``x = P_C(b + lam div p)``, ``p <- P_{|p|<=1}(q + 1/(8 lam) grad x)`` with
Nesterov momentum on ``p``. ``div = -grad^T``.

The inner loop is the hot loop of FISTA-TV. On the CPU it runs as one fused kernel (:mod:`.tv_kernel`, numba:
one pass over memory per dual step instead of fourteen; ``TVProx(kernel=False)`` turns it off). Elsewhere (GPUs)
it runs as torch operations on buffers made once per problem shape (no allocation per dual step or per call),
fourteen in-place or ``out=`` tensor operations per step, each one pass over memory-bound planes (plus two
copies of an edge):

- the dual field is stored padded with a zero first row and column, so the backward differences of the
  divergence are subtractions of strided views of the same buffer (no boundary cases), accumulated straight
  into ``x'`` (no intermediate buffer: a smaller working set is a faster one once the planes outgrow the cache);
- ``x`` is kept scaled by ``1 / (8 lam)`` (``x' = b / (8 lam) + div(q) / 8``), so the dual update
  ``g = q + grad x'`` needs no multiplication: ``g = q + x'_next - x'`` with both directions in one strided view
  each, and ``x'`` keeps its last column and row repeated in a padding column and row, so the Neumann boundary
  entries come out exactly 0 without a reset;
- ``p`` and ``q`` share two buffers whose roles swap every step (``q = p`` at the start of a call is read from
  ``p``, not copied); the projection multiplies by ``rsqrt(max(1, |g|^2))``, the momentum step is one ``lerp``
  into the old ``p``;
- complex images are two real planes (real, imaginary); the result is interleaved back with one
  ``torch.complex`` into the caller's buffer (``out=``) or a new tensor.

The arithmetic is the textbook iteration's, reordered: results agree with a direct implementation to float
rounding (about 1e-7 relative in float32; ``tests/test_fast_fista_tv.py`` checks this against one written out
in the test).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ..linalg.finite_difference import grad2d


class _Workspace:
    """Buffers of one problem shape ``(L, K, H, W)``, and every view the loop uses, made once.

    Two dual buffers ``(L, 2, K, H + 1, W + 1)`` hold ``p`` and ``q`` at ``[..., 1:, 1:]`` (their roles swap every
    step); direction 0 is the difference along W (columns), direction 1 along H (rows). Their padding row and
    column stay zero, and so do the entries the Neumann boundary forces to zero (last column of direction 0, last
    row of direction 1): ``x'`` is kept with its last column and row repeated in a padding column and row, so its
    forward differences there are exactly 0 with no reset.
    """

    def __init__(self, L: int, K: int, H: int, W: int, dtype: torch.dtype, device: torch.device):
        self.key = (L, K, H, W, dtype, device)
        zeros = lambda *s: torch.zeros(s, dtype=dtype, device=device)  # noqa: E731
        self.duals = [zeros(L, 2, K, H + 1, W + 1) for _ in range(2)]
        self.interior = [d[..., 1:, 1:] for d in self.duals]
        self.planes = [d.flatten(1, 2).unbind(1) for d in self.interior]  # 2K views (L, H, W)
        self.div_views = [_div_views(d) for d in self.duals]
        self.x = zeros(L, K, H + 1, W + 1)  # x' at [..., :H, :W], its last column and row repeated after them
        self.xi = self.x[..., :H, :W]
        self.pads = [(self.x[..., :H, W], self.x[..., :H, W - 1]), (self.x[..., H, :W], self.x[..., H - 1, :W])]
        sx, off = self.x.stride(), self.x.storage_offset()
        # grad x': direction 0 reads x'[i, j + 1], direction 1 x'[i + 1, j]; both minus x'[i, j]
        self.xa = self.x.as_strided((L, 2, K, H, W), (sx[0], W, sx[1], sx[2], sx[3]), off + 1)
        self.xb = self.x.as_strided((L, 2, K, H, W), (sx[0], 0, sx[1], sx[2], sx[3]), off)
        self.b = zeros(L, K, H, W)  # b / (8 lam)
        self.bound: torch.Tensor | None = None  # a lower bound's planes scaled alike, during a call that has one
        self.n = zeros(L, H, W)  # |g|^2, then the projection factor
        self.n_wide = self.n[:, None, None]

    def scaled_x(self, i: int, constrain: bool, pad: bool = True) -> torch.Tensor:
        """``x' = P_C(b' + div(dual i) / 8)`` into the x buffer; ``pad``: its padding column and row repeat its
        last column and row."""
        (a0, a1), (b0, b1) = self.div_views[i]
        torch.sub(a0, b0, out=self.xi)  # div q, accumulated in place (no intermediate buffer: less to cache)
        self.xi.add_(a1).sub_(b1)
        torch.add(self.b, self.xi, alpha=0.125, out=self.xi)
        if constrain:
            if self.bound is None:
                self.xi.clamp_(min=0)
            else:
                torch.maximum(self.xi, self.bound, out=self.xi)
        if pad:
            for edge, last in self.pads:
                edge.copy_(last)
        return self.xi

    def step(self, i: int, weight: float, constrain: bool, first: bool = False) -> None:
        """One dual step with ``q`` in dual ``i`` and ``p`` in ``1 - i``: dual ``i`` becomes ``p_new = P(q + grad
        x')`` and dual ``1 - i`` the next ``q = p + weight (p_new - p)``, both in place. ``first``: ``q = p``
        (the first step of a call), read from dual ``1 - i``; dual ``i`` is only written."""
        self.scaled_x(1 - i if first else i, constrain)
        g = self.interior[i]
        if first:
            torch.add(self.interior[1 - i], self.xa, out=g)
        else:
            g.add_(self.xa)
        g.sub_(self.xb)  # g = q + grad x' (its entries at the boundary: exactly 0)
        planes = self.planes[i]
        torch.mul(planes[0], planes[0], out=self.n)
        for plane in planes[1:]:
            self.n.addcmul_(plane, plane)
        self.n.clamp_(min=1.0).rsqrt_()
        g.mul_(self.n_wide)  # p_new = g / max(1, |g|)
        p = self.interior[1 - i]
        torch.lerp(p, g, weight, out=p)


def _div_views(d: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """``((a0, a1), (b0, b1))`` with ``a_k - b_k`` the backward difference of direction ``k`` of the padded dual
    ``d`` (direction 0 along W, 1 along H); ``div = (a0 - b0) + (a1 - b1)``."""
    L, _, K, H1, W1 = d.shape
    s = d.stride()
    a = d[..., 1:, 1:]
    b = d.as_strided((L, 2, K, H1 - 1, W1 - 1), (s[0], s[1] - (W1 - 1), s[2], s[3], s[4]), d.storage_offset() + W1)
    return a.unbind(1), b.unbind(1)


class _KernelWorkspace:
    """Buffers of one problem shape for the fused CPU kernel (:mod:`.tv_kernel`): the duals ``p`` (kept between
    calls) and ``q`` ``(L, 2, K, H, W)`` in :class:`_Workspace`'s order, and the kernel's scratch, as tensors
    (their numpy views are what the kernel gets)."""

    def __init__(self, L: int, K: int, H: int, W: int, dtype: torch.dtype):
        self.key = (L, K, H, W, dtype, torch.device("cpu"))
        zeros = lambda *s: torch.zeros(s, dtype=dtype)  # noqa: E731
        self.interior = [zeros(L, 2, K, H, W), zeros(L, 2, K, H, W)]  # p, q
        self.scratch = [zeros(L, K, H, W), zeros(2, K, W), zeros(2, K, W), zeros(W)]  # bs, ring, g, nrow
        self.arrays = [t.numpy() for t in (*self.interior, *self.scratch)]


class TVProx:
    """A warm-started TV prox: keeps its dual variable between calls (as inside FISTA).

    Isotropic TV couples the two gradient directions and, for complex images, the real and imaginary
    parts: ``TV(x) = sum_i sqrt(|d_h x_i|^2 + |d_w x_i|^2)``. No gradients flow through the prox (it runs
    under ``torch.no_grad``).

    Args:
        lam: TV weight (the prox of ``s * lam * TV`` is taken for step ``s``).
        n_iter: dual iterations per call.
        nonneg: constrain real images to ``x >= 0``.
        kernel: on the CPU, run the dual loop as one fused kernel (:mod:`.tv_kernel`) instead of torch operations
            (the same iterates to float rounding; False: the torch loop everywhere, as on GPUs).

    Example:
        >>> import torch
        >>> b = torch.zeros(1, 1, 8, 8); b[..., 4:] = 1.0
        >>> x = TVProx(lam=0.05, n_iter=50)(b, 1.0)   # an edge survives, shrunk a little
        >>> bool(x[..., 6].mean() > 0.8)
        True
    """

    def __init__(self, lam: float, n_iter: int = 10, nonneg: bool = False, kernel: bool = True):
        self.lam = lam
        self.n_iter = n_iter
        self.nonneg = nonneg
        self.kernel = kernel
        self._ws: _Workspace | _KernelWorkspace | None = None
        self._p = 0  # which dual buffer holds p

    @property
    def p(self) -> torch.Tensor | None:
        """A copy of the current dual field ``(L, K, 2, H, W)`` (direction 0 along H, 1 along W), or None."""
        if self._ws is None:
            return None
        return self._ws.interior[self._p].flip(1).transpose(1, 2).clone()

    def __call__(self, b: torch.Tensor, step: float, lower: torch.Tensor | None = None, *,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """The prox at ``b`` for step ``step``; ``lower`` (real images): the constraint ``x >= lower`` instead.

        ``out``: a contiguous tensor shaped and typed like ``b`` to write the result into (returned); default a
        new tensor. Never the workspace: the result is the caller's."""
        lam = self.lam * step
        constrain = (self.nonneg or lower is not None) and not b.is_complex()
        if lam <= 0:
            if constrain:
                x = b.clamp(min=0) if lower is None else torch.maximum(b, lower.to(b.dtype))
            else:
                x = b.clone() if out is None else b
            return x if out is None else out.copy_(x)
        with torch.no_grad():
            if self.kernel and b.device.type == "cpu" and b.dtype in _KERNEL_DTYPES:
                return self._fused(b.detach(), lam, constrain, lower, out)
            return self._prox(b.detach(), lam, constrain, lower, out)

    def _workspace(self, b: torch.Tensor, fused: bool) -> _Workspace | _KernelWorkspace:
        H, W = b.shape[-2:]
        L = math.prod(b.shape[:-2])
        K = 2 if b.is_complex() else 1
        ws = self._ws
        if ws is None or ws.key != (L, K, H, W, b.real.dtype, b.device) or isinstance(ws, _KernelWorkspace) != fused:
            make = _KernelWorkspace(L, K, H, W, b.real.dtype) if fused else _Workspace(L, K, H, W, b.real.dtype,
                                                                                         b.device)
            ws, self._p = make, 0
            self._ws = ws
        return ws

    def _fused(self, b: torch.Tensor, lam: float, constrain: bool, lower: torch.Tensor | None,
               out: torch.Tensor | None) -> torch.Tensor:
        from .tv_kernel import fgp

        ws = self._workspace(b, True)
        if out is None:
            out = torch.empty_like(b, memory_format=torch.contiguous_format)
        # the kernel writes through a numpy view: a strided ``out`` gets the result by a copy
        target = out if out.is_contiguous() else torch.empty_like(out, memory_format=torch.contiguous_format)
        L, K, H, W = ws.scratch[0].shape

        def view(t: torch.Tensor) -> np.ndarray:  # (L, H, W, K) real, sharing t's memory (t contiguous)
            return (torch.view_as_real(t) if t.is_complex() else t.unsqueeze(-1)).reshape(L, H, W, K).numpy()

        p, q, bs, ring, g, nrow = ws.arrays
        scale, f = 1.0 / (8.0 * lam), p.dtype
        mode, bound = (2 if lower is not None else 1) if constrain else 0, ws.arrays[2]  # bound: unread unless 2
        if mode == 2:
            bound = _scaled_planes(lower.to(b.dtype).expand_as(b), scale, torch.empty_like(ws.scratch[0])).numpy()
        fgp(view(b.contiguous()), f.type(scale), bound, mode, p, q, np.array(_momentum(self.n_iter), f), view(target),
            f.type(8.0 * lam), bs, ring, g, nrow)
        return out if target is out else out.copy_(target)

    def _prox(self, b: torch.Tensor, lam: float, constrain: bool, lower: torch.Tensor | None,
              out: torch.Tensor | None) -> torch.Tensor:
        ws = self._workspace(b, False)
        scale = 1.0 / (8.0 * lam)
        _scaled_planes(b, scale, ws.b)
        ws.bound = None
        if constrain and lower is not None:
            ws.bound = _scaled_planes(lower.to(b.dtype).expand_as(b), scale, torch.empty_like(ws.b))
        p = self._p
        for k, weight in enumerate(_momentum(self.n_iter)):  # q = p at the start (warm start: the last call's p)
            ws.step(1 - p, weight, constrain, first=k == 0)  # q = p_new + (t-1)/t_new (p_new - p)
            p = 1 - p
        self._p = p
        x = ws.scaled_x(p, constrain, pad=False).mul_(8.0 * lam)
        if out is None:
            out = torch.empty_like(b, memory_format=torch.contiguous_format)
        flat = out.view(x.shape[0], *x.shape[2:])
        if b.is_complex():  # interleaving is fast (de-interleaving, in _to_planes, is not: once per call)
            torch.complex(x[:, 0], x[:, 1], out=flat)
        else:
            flat.copy_(x[:, 0])
        return out


@functools.lru_cache(maxsize=32)
def _momentum(n_iter: int) -> tuple[float, ...]:
    """The momentum weights ``1 + (t_k - 1) / t_{k+1}`` of the ``n_iter`` dual steps of one call (``t_0 = 1``,
    ``t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2``): ``q = p + weight (p_new - p)``."""
    weights, t = [], 1.0
    for _ in range(n_iter):
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        weights.append(1.0 + (t - 1.0) / t_new)
        t = t_new
    return tuple(weights)


#: what the fused kernel takes (else the torch loop)
_KERNEL_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)


def _scaled_planes(b: torch.Tensor, scale: float, out: torch.Tensor) -> torch.Tensor:
    """``scale * b`` for ``b (..., H, W)`` into the real planes ``out (L, K, H, W)`` (K = 2 for complex: real,
    imaginary; each plane by itself, which is faster than one strided operation on both)."""
    L, _, H, W = out.shape
    b = b.reshape(L, H, W)
    for k, part in enumerate((b.real, b.imag) if b.is_complex() else (b,)):
        torch.mul(part, scale, out=out[:, k])
    return out


def tv_norm(x: torch.Tensor) -> torch.Tensor:
    """Isotropic TV per batch element: ``sum |grad x|_2`` over the last three dims (C, H, W)."""
    g = grad2d(x)
    mag = (g.real.square() + (g.imag.square() if g.is_complex() else 0)).sum(-3).sqrt()
    return mag.flatten(1).sum(1)
