"""Diffusion posterior sampling (Chung et al., ICLR 2023) and a data-consistent variant.

``dps`` (``consistency: none``): ancestral/DDIM sampling where, after each denoising step, the state is
pushed down the gradient of the residual norm taken through the denoiser:
``x_{t-1} = step(x_t, x0_hat(x_t)) - zeta * grad_{x_t} ||y - A D(x0_hat(x_t))||`` — the gradient of the
(unsquared) norm, i.e. the paper's ``zeta_i = zeta' / ||y - A x0_hat||`` applied to the squared norm.
``D`` maps the prior's model space to the operator's image domain (``[-1, 1] -> [0, 1] * intensity_scale``,
complex with zero phase for MRI), so k-space and sinograms work alike: the state always has the image's
shape, never the measurement's.

``consistency: project`` (in the spirit of Song et al. 2022 / DDS, Chung et al. 2024): no gradient through
the network; after each denoising step ``x0_hat`` is replaced by a few conjugate-gradient steps on
``||A x - y||^2 + gamma ||x - x0_hat||^2`` started at ``x0_hat``, then a DDIM step continues from it.
It needs far fewer steps and no backpropagation (cheaper per step, much less memory).
With ``tv > 0`` (and ``nonneg``) the subproblem gains a total-variation term, ``1/2 ||A x - y||^2 +
gamma/2 ||x - x0_hat||^2 + tv TV(x)`` (``x >= 0``): ``cg_iter`` FISTA iterations with a warm-started TV prox
refine the CG solution, in the spirit of DiffusionMBIR (Chung et al., CVPR 2023), which puts a TV-regularised ADMM in the same place:
the prior supplies texture and what the measurements miss, TV removes the noise and streaks that a pure
least-squares step lets in (sparse-view CT).

``samples: N`` draws N posterior samples in one batch; the estimate is their mean (``estimate: mean``) or
the first sample, and ``info["std"]`` holds the per-pixel standard deviation.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..errors import CheckpointError, ConfigError, ShapeError
from ..registry import RECONSTRUCTORS
from ..solvers.fista import fista
from ..solvers.tv import TVProx
from .base import Reconstructor


def _batch_norm(r: torch.Tensor) -> torch.Tensor:
    """Per-sample Euclidean norm over all but the first dimension (real or complex)."""
    return torch.linalg.vector_norm(r.reshape(r.shape[0], -1), dim=1)


def conjugate_gradient(apply, b: torch.Tensor, x0: torch.Tensor, n_iter: int, tol: float = 1e-8) -> torch.Tensor:
    """Solve ``M x = b`` for a Hermitian positive definite ``M`` (per batch element), from ``x0``.

    ``r = b - M x``, ``p = r``; ``alpha = <r, r> / <p, M p>``, ``x += alpha p``, ``r -= alpha M p``,
    ``p = r + (<r', r'> / <r, r>) p``. Batch elements are independent (per-element step sizes).
    """
    dims = tuple(range(1, b.dim()))

    def dot(u, v):
        return torch.sum((u.conj() * v).real if u.is_complex() else u * v, dim=dims, keepdim=True)

    x = x0.clone()
    r = b - apply(x)
    p = r.clone()
    rs = dot(r, r)
    for _ in range(n_iter):
        mp = apply(p)
        alpha = rs / dot(p, mp).clamp(min=1e-30)
        x = x + alpha * p
        r = r - alpha * mp
        rs_new = dot(r, r)
        if torch.all(rs_new.sqrt() <= tol * dot(b, b).sqrt().clamp(min=1e-30)):
            break
        p = r + (rs_new / rs.clamp(min=1e-30)) * p
        rs = rs_new
    return x


def data_consistency(op, aty: torch.Tensor, start: torch.Tensor, *, gamma: float, n_iter: int,
                     tv_prox: TVProx | None = None, lip: float | None = None) -> torch.Tensor:
    """The ``project`` step: ``argmin_x 1/2 ||A x - y||^2 + gamma/2 ||x - start||^2 (+ TV(x) by ``tv_prox``)``.

    ``n_iter`` CG iterations on the normal equations ``(A^H A + gamma) x = A^H y + gamma start`` from ``start``;
    with a TV prox, ``n_iter`` FISTA iterations more from the CG solution (step ``1 / (||A||^2 + gamma)``, ``lip``
    = ``||A||^2``). CG alone is far faster on the ill-conditioned least-squares part than proximal gradient, so
    the TV term only refines its result (FISTA from ``start`` lost 1-2 dB on CT in 10 iterations).
    """
    rhs = aty + gamma * start
    sol = conjugate_gradient(lambda v: op.normal(v) + gamma * v, rhs, start, n_iter)
    if tv_prox is None:
        return sol
    if lip is None:
        raise ValueError("data_consistency: a TV prox needs lip = ||A||^2")
    return fista(lambda v: op.normal(v) + gamma * v - rhs, tv_prox, sol, step=1.0 / (1.01 * lip + gamma),
                 n_iter=n_iter).x


@RECONSTRUCTORS.register("dps")
class DPS(Reconstructor):
    """Diffusion posterior sampling with a diffusion prior; `consistency: project` is the fast CG variant.

    Args:
        prior: ``pretrained:<name>`` or the path of a ``diffusion`` prior from ``genrecon train-prior``
            (an already-built prior module is accepted from Python).
        steps: sampling steps (network evaluations per sample).
        zeta: DPS step size on the gradient of ``||y - A x0_hat||`` (``consistency: none``). Defaults are
            tuned on training slices (benchmarks/dps.md): 10 for MRI images in [0, 1]; its useful value grows
            about as 1 / intensity_scale (CT in attenuation units with intensity_scale 0.15: 30).
        eta: stochasticity of each step: 1 = ancestral (DDPM), 0 = DDIM (deterministic).
        samples: posterior samples drawn in one batch.
        estimate: report the samples' ``mean`` or the first ``sample``.
        consistency: ``none`` (DPS) or ``project`` (CG data consistency on x0_hat, no backpropagation).
        cg_iter: CG iterations per step for ``project`` (FISTA iterations when ``tv > 0``).
        gamma: weight of ``||x - x0_hat||^2`` in the ``project`` subproblem (relative to ``||A||^2``).
        tv: weight of a total-variation term in the ``project`` subproblem, in the operator's image units (the
            scale of ``fista_tv``'s ``lam``); 0 turns it off (plain CG projection).
        nonneg: constrain real images to ``x >= 0`` in the ``project`` subproblem (CT attenuation; with ``tv: 0``
            the FISTA refinement is then a projected gradient method).
        intensity_scale: image units per unit of the prior's ``[0, 1]`` range (1.0 for images normalised
            to ``[0, 1]``, the pipeline default).
        clip: clamp ``x0_hat`` to the prior's range at each step.
    """

    def __init__(
        self,
        *,
        prior,
        steps: int = 100,
        zeta: float = 10.0,
        eta: float = 1.0,
        samples: int = 1,
        estimate: Literal["mean", "sample"] = "mean",
        consistency: Literal["none", "project"] = "none",
        cg_iter: int = 10,
        gamma: float = 0.002,
        tv: float = 0.0,
        nonneg: bool = False,
        intensity_scale: float = 1.0,
        clip: bool = True,
    ):
        super().__init__()
        problems = []
        if not isinstance(steps, int) or steps < 1:
            problems.append(f"dps: steps must be an integer >= 1, got {steps!r}")
        if not isinstance(samples, int) or samples < 1:
            problems.append(f"dps: samples must be an integer >= 1, got {samples!r}")
        if zeta < 0:
            problems.append(f"dps: zeta must be >= 0, got {zeta}")
        if not 0 <= eta <= 1:
            problems.append(f"dps: eta must be in [0, 1], got {eta}")
        if estimate not in ("mean", "sample"):
            problems.append(f"dps: estimate must be 'mean' or 'sample', got {estimate!r}")
        if consistency not in ("none", "project"):
            problems.append(f"dps: consistency must be 'none' or 'project', got {consistency!r}")
        if cg_iter < 1 or gamma < 0 or intensity_scale <= 0:
            problems.append("dps: cg_iter must be >= 1, gamma >= 0 and intensity_scale > 0")
        if tv < 0:
            problems.append(f"dps: tv must be >= 0, got {tv}")
        elif (tv > 0 or nonneg) and consistency != "project":
            problems.append("dps: tv and nonneg act on the data-consistency step: set consistency: project")
        if problems:
            raise ConfigError(problems)
        self.steps, self.zeta, self.eta, self.samples = steps, zeta, eta, samples
        self.estimate, self.consistency, self.cg_iter, self.gamma = estimate, consistency, cg_iter, gamma
        self.intensity_scale, self.clip, self.tv, self.nonneg = intensity_scale, clip, float(tv), bool(nonneg)
        if isinstance(prior, torch.nn.Module):
            self.prior, self.prior_meta = prior, {"kind": getattr(prior, "kind", "diffusion")}
            if getattr(prior, "kind", "diffusion") != "diffusion":
                raise CheckpointError(f"dps needs a 'diffusion' prior, got a '{prior.kind}' prior")
        else:
            from ..priors.checkpoint import load_prior

            self.prior, self.prior_meta = load_prior(prior, kind="diffusion", purpose="dps")
        self.prior_name = str(prior) if not isinstance(prior, torch.nn.Module) else type(prior).__name__

    def to(self, device) -> "DPS":
        self.prior = self.prior.to(device)
        return self

    # -- mapping between the prior's model space and the operator's image domain -------------------
    def _check(self, op) -> None:
        size = self.prior.image_size
        dom = op.domain_shape
        if len(dom) != 3 or dom[0] != self.prior.channels or dom[1:] != (size, size):
            raise ShapeError(
                f"dps: prior '{self.prior_name}' makes {self.prior.channels}x{size}x{size} images but the operator's "
                f"images are {'x'.join(map(str, dom))}: set data.size: {size} (or train a prior of that size)"
            )

    def _to_domain(self, x_model: torch.Tensor, op) -> torch.Tensor:
        img = self.prior.to_image(x_model) * self.intensity_scale
        return img.to(torch.complex64 if img.dtype == torch.float32 else torch.complex128) if op.complex_domain else img

    def _from_domain(self, x: torch.Tensor) -> torch.Tensor:
        img = x.real if x.is_complex() else x
        return self.prior.to_model(img / self.intensity_scale)

    # -- sampling -------------------------------------------------------------------------------
    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        self._check(op)
        if y.shape[0] != 1:
            raise ShapeError(f"dps: reconstructs one case at a time, got a batch of {y.shape[0]} measurements")
        param = next(self.prior.parameters(), None)
        buf = next(self.prior.buffers(), None)
        ref = param if param is not None else buf
        device = ref.device if ref is not None else y.device
        dtype = torch.float32 if ref is None or not ref.is_floating_point() else ref.dtype
        sched = self.prior.schedule
        n = self.samples
        yb = y.to(device).expand(n, *y.shape[1:])
        shape = (n, self.prior.channels, self.prior.image_size, self.prior.image_size)
        gen = generator
        if gen is not None and gen.device != torch.device(device) and torch.device(device).type != gen.device.type:
            gen = torch.Generator(device=device).manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        x = sched.init_noise(shape, gen, device=device, dtype=dtype)
        ts = sched.timesteps(self.steps)
        lo, hi = self.prior.to_model(torch.tensor(0.0)).item(), self.prior.to_model(torch.tensor(1.0)).item()
        aty = op.adjoint(yb) if self.consistency == "project" else None
        lip = None
        tv_prox = TVProx(self.tv, 5, nonneg=self.nonneg) if self.tv > 0 or self.nonneg else None
        for i in range(self.steps):
            t, t_next = ts[i], ts[i + 1]
            if self.consistency == "none":
                with torch.enable_grad():
                    xt = x.detach().requires_grad_(True)
                    x0_hat, eps = self.prior.predict(xt, t)
                    if self.clip:
                        x0_hat = x0_hat.clamp(lo, hi)
                    residual = yb - op(self._to_domain(x0_hat, op))
                    norms = _batch_norm(residual)
                    (grad,) = torch.autograd.grad(norms.sum(), xt)
                x0_hat, eps = x0_hat.detach(), eps.detach()
                if self.clip:
                    eps = sched.eps_from_x0(x, x0_hat, sched.as_batch(t, x))
                x = sched.step(x, x0_hat, eps, t, t_next, eta=self.eta, generator=gen) - self.zeta * grad
            else:
                with torch.no_grad():
                    x0_hat, _ = self.prior.predict(x, t)
                    if self.clip:
                        x0_hat = x0_hat.clamp(lo, hi)
                    if lip is None:  # ||A||^2: from the operator when it knows it (CT), else by the power method
                        known = getattr(op, "norm_squared", None)
                        lip = float(known) if known is not None else op.norm(
                            n_iter=20, generator=torch.Generator().manual_seed(0),
                            dtype=torch.float32 if dtype == torch.float32 else torch.float64, device=device) ** 2
                    g = self.gamma * lip
                    start = self._to_domain(x0_hat, op)
                    sol = data_consistency(op, aty, start, gamma=g, n_iter=self.cg_iter, tv_prox=tv_prox, lip=lip)
                    x0_hat = self._from_domain(sol)
                    if self.clip:
                        x0_hat = x0_hat.clamp(lo, hi)
                    eps = sched.eps_from_x0(x, x0_hat, sched.as_batch(t, x))
                    x = sched.step(x, x0_hat, eps, t, t_next, eta=self.eta, generator=gen)
            if callback is not None:
                callback(i + 1, x0_hat)
        # the terminal state is x0 (the last step goes to the clean time)
        final = x.detach()
        if self.clip:
            final = final.clamp(lo, hi)
        images = self._to_domain(final, op)
        mags = images.real if images.is_complex() else images
        self.info.update(nfe=self.steps, n_samples=n, steps=self.steps, consistency=self.consistency, tv=self.tv)
        if n > 1:
            self.info["std"] = mags.std(dim=0, unbiased=True)
            if n <= 16:
                self.info["samples"] = mags.detach().cpu()
        est = images.mean(dim=0, keepdim=True) if self.estimate == "mean" else images[:1]
        return est
