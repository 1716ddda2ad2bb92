"""The TV prox's dual loop compiled by ``torch.compile`` (inductor): the opt-in fused path of :class:`TVProx`
(``compile=True``; ``fista_tv``'s ``compile: true``).

One prox call's whole dual loop (``n_iter`` steps, unrolled, the momentum weights baked in as constants) is one
graph, and inductor makes **one loop over the image per dual step** (the eager loop makes fourteen passes) plus
one for the result. The iteration is the eager one's, in the same order of operations:

``x' = P_C(b' + div(q) / 8)``, ``g = q + grad x'``, ``p_new = g / max(1, |g|)``, ``q = p + w (p_new - p)``,
``b' = b / (8 lam)``, ``x = 8 lam x'``

Layout: every real plane (complex images: real and imaginary planes) is stored flat, ``(L, N)`` with
``N = H W + 2 M``: the image row after row at ``[M, M + H W)`` and margins of ``M >= (n_iter + 1) W`` zeros on
both sides. The neighbours ``i - 1``, ``i + 1``, ``i - W``, ``i + W`` are then plain shifted slices (contiguous
vector loads, no boundary cases in the generated code): step ``k`` is computed on ``[k W, N - k W)``, one row
further in from each end than the step before, so no read leaves the buffers. The boundary is two mask planes:
``g`` is multiplied by 0 outside the image and in its last column (direction along W) or last row (along H), so
the dual field is exactly 0 there, as in the eager loop (Neumann boundary), and its margins stay 0.

``lam`` is an input tensor, not a constant (a new weight or step does not recompile); a graph is made per
(shape, dtype, ``n_iter``, constraint) (``dynamic=False``). The first call of each compiles (seconds; inductor's
on-disk cache makes it shorter in a later process); later calls only check dynamo's guards. The compiled code is
the same every run (pointwise loops, no reductions across threads): the same input gives the same output bit
for bit; against the eager loop the results differ by float rounding (about 1e-7 relative in float32).
"""

from __future__ import annotations

import math
import shutil
from typing import Callable

import torch

from ..errors import GenreconError

#: graphs dynamo may keep for the loop's code before it refuses (its default, 8, is few for a sweep of sizes)
RECOMPILE_LIMIT = 256
#: compiled loops by (n_iter, constraint, planes); each holds its graphs per shape (dynamo's cache)
_LOOPS: dict[tuple[int, str, int], Callable] = {}
#: (loop key, shapes) compiled in this process: a failure there is a compiler's failure
_SEEN: set[tuple] = set()


def momentum_weights(n_iter: int) -> tuple[float, ...]:
    """The weights ``1 + (t_k - 1) / t_{k+1}`` of one call's dual steps (``t_0 = 1``), as the eager loop's."""
    out, t = [], 1.0
    for _ in range(n_iter):
        t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        out.append(1.0 + (t - 1.0) / t_new)
        t = t_new
    return tuple(out)


def _make_loop(n_iter: int, constraint: str, K: int) -> Callable:
    """The dual loop of one call for ``K`` planes; ``constraint``: ``none``, ``nonneg`` or ``bound``."""
    weights = momentum_weights(n_iter)

    def loop(bs, p0, p1, m0, m1, lam8, bound, xs):
        """``bs``, ``p0``, ``p1``, ``bound``: lists of ``K`` flat planes ``(L, N)`` (``b'``, the dual field along W
        and along H, the scaled lower bound); ``m0``, ``m1`` ``(N,)``: the masks; ``lam8``: ``8 lam`` (0-d);
        ``xs``: ``K`` planes ``(L, H, W)`` that get the prox. ``p0``, ``p1`` are updated in place."""
        H, W = xs[0].shape[-2:]
        N = bs[0].shape[-1]
        M = (N - H * W) // 2

        def scaled_x(k, q0, q1, lo, s, r):  # x' at [s, s + r) from q0, q1 that start at index lo
            a, d = s - lo, s - lo - W
            x = bs[k][:, s:s + r] + (((q0[:, a:a + r] - q0[:, a - 1:a - 1 + r]) + q1[:, a:a + r]) - q1[:, d:d + r]) \
                * 0.125
            if constraint == "nonneg":
                x = x.clamp(min=0)
            elif constraint == "bound":
                x = torch.maximum(x, bound[k][:, s:s + r])
            return x

        q0, q1, a0, a1, lo = list(p0), list(p1), list(p0), list(p1), 0  # q = p at the start (warm start)
        for w in weights:
            s = lo + W  # this step's range [s, s + r): reads q on [s - W, s + r + W)
            r = N - 2 * s
            g0, g1 = [], []
            for k in range(K):
                x = scaled_x(k, q0[k], q1[k], lo, s, r)
                c = s - lo
                g0.append(((q0[k][:, c:c + r] + scaled_x(k, q0[k], q1[k], lo, s + 1, r)) - x) * m0[s:s + r])
                g1.append(((q1[k][:, c:c + r] + scaled_x(k, q0[k], q1[k], lo, s + W, r)) - x) * m1[s:s + r])
            n = g0[0] * g0[0]
            for g in g0[1:] + g1:
                n = n + g * g
            n = n.clamp(min=1.0).rsqrt()
            new0, new1 = [g * n for g in g0], [g * n for g in g1]
            c = s - lo
            q0 = [torch.lerp(a0[k][:, c:c + r], new0[k], w) for k in range(K)]
            q1 = [torch.lerp(a1[k][:, c:c + r], new1[k], w) for k in range(K)]
            a0, a1, lo = new0, new1, s
        for k in range(K):
            xs[k].view(-1, H * W).copy_(scaled_x(k, a0[k], a1[k], lo, M, H * W) * lam8)
            p0[k][:, lo:N - lo].copy_(a0[k])
            p1[k][:, lo:N - lo].copy_(a1[k])

    return loop


class CompiledWorkspace:
    """The flat planes, masks and result planes of one problem shape ``(L, K, H, W)`` (made once)."""

    def __init__(self, L: int, K: int, H: int, W: int, n_iter: int, dtype: torch.dtype, device: torch.device):
        self.key = (L, K, H, W, n_iter, dtype, device)
        self.shape = (L, K, H, W)
        self.M = (n_iter + 1) * W + 16
        self.M += -self.M % 16  # the image starts on a 64-byte boundary
        N = H * W + 2 * self.M
        zeros = lambda: [torch.zeros(L, N, dtype=dtype, device=device) for _ in range(K)]  # noqa: E731
        self.b, self.p0, self.p1 = zeros(), zeros(), zeros()
        self.bound: list[torch.Tensor] | None = None
        i = torch.arange(N, device=device) - self.M
        inside = (i >= 0) & (i < H * W)
        self.m0 = (inside & (i % W != W - 1)).to(dtype)
        self.m1 = (inside & (i < H * W - W)).to(dtype)
        self.xs = [torch.empty(L, H, W, dtype=dtype, device=device) for _ in range(K)]

    def image(self, planes: list[torch.Tensor]) -> list[torch.Tensor]:
        """The image part ``(L, H, W)`` of flat planes (views)."""
        L, _, H, W = self.shape
        return [p[:, self.M:self.M + H * W].view(L, H, W) for p in planes]

    def bound_planes(self) -> list[torch.Tensor]:
        if self.bound is None:
            self.bound = [torch.zeros_like(p) for p in self.b]
        return self.bound


def compiler_problem() -> str | None:
    """Why ``torch.compile`` cannot build CPU code here (no C++ compiler found), or None."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        from torch._inductor import config
        from torch._inductor.cpp_builder import get_cpp_compiler

        cxx = config.cpp.cxx[-1] if config.cpp.cxx and config.cpp.cxx[-1] else get_cpp_compiler()
    except Exception as e:  # noqa: BLE001 - any failure of the probe is the answer
        return f"inductor's C++ compiler lookup failed ({type(e).__name__}: {e})"
    if not shutil.which(str(cxx)):
        return f"inductor's C++ compiler {cxx!r} was not found"
    return None


def compile_error(reason: str) -> GenreconError:
    """The one-line error of a compiled prox that cannot be built."""
    return GenreconError(f"TV prox compile: true needs torch.compile (inductor) with a working C++ compiler: "
                         f"{reason}; install one (g++) or set compile: false")


def run(ws: CompiledWorkspace, n_iter: int, constraint: str, lam8: float) -> None:
    """One prox call's dual loop on ``ws`` (``ws.b`` and, for ``bound``, ``ws.bound`` filled): ``ws.xs`` gets the
    prox, ``ws.p0``, ``ws.p1`` the new dual field."""
    K = ws.shape[1]
    key = (n_iter, constraint, K)
    first = (key, ws.key) not in _SEEN
    if first and ws.b[0].device.type == "cpu" and (reason := compiler_problem()) is not None:
        raise compile_error(reason)
    fn = _LOOPS.get(key)
    if fn is None:
        fn = _LOOPS[key] = torch.compile(_make_loop(n_iter, constraint, K), dynamic=False, fullgraph=True)
    lam = torch.tensor(lam8, dtype=ws.b[0].dtype, device=ws.b[0].device)
    args = (ws.b, ws.p0, ws.p1, ws.m0, ws.m1, lam, ws.bound if constraint == "bound" else ws.b, ws.xs)
    if not first:
        fn(*args)
        return
    import torch._dynamo.config as dynamo_config

    try:  # never silently eager: past the limit dynamo raises instead of running the Python code
        with dynamo_config.patch(recompile_limit=RECOMPILE_LIMIT, fail_on_recompile_limit_hit=True):
            fn(*args)
    except Exception as e:  # a compiler that is found but fails: one line (the cause stays chained)
        first_line = (str(e).strip().splitlines() or [""])[0][:300]
        raise compile_error(f"{type(e).__name__}: {first_line}") from e
    _SEEN.add((key, ws.key))
