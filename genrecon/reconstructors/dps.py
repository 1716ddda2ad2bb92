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
With ``tv_weight > 0`` (and ``nonneg``) the subproblem gains a total-variation term, ``1/2 ||A x - y||^2 +
gamma/2 ||x - x0_hat||^2 + tv_weight TV(x)`` (``x >= 0``; ``tv_weight`` on the scale of ``fista_tv``'s and
``latent_inversion``'s): ``cg_iter`` FISTA iterations with a warm-started TV prox refine the CG solution, in the
spirit of DiffusionMBIR (Chung et al., CVPR 2023), which puts a TV-regularised ADMM in the same place: the prior
supplies texture and what the measurements miss, TV removes the noise and streaks that a pure least-squares step
lets in (sparse-view CT).

``init_time < 1`` (Come-Closer-Diffuse-Faster, Chung et al., CVPR 2022; ``project`` only) starts part-way down
the trajectory: the start image (``x0`` if given, else the TV-regularised least-squares solution of the same
subproblem, ``INIT_ITER`` iterations from zero) is noised to the time ``init_time`` of the ``steps`` grid and only
the remaining ``round(init_time x steps)`` steps run. ``rounds: R`` repeats the late start ``R - 1`` times more,
each from the previous round's sample mean noised to ``refine_time``: an annealed refinement in which the prior
removes what the TV step and the measurements let through, averaged over the samples, round after round. When
the start is good (sparse-view CT, where TV is already within a few dB) this is both faster and better than
sampling from noise; when it is not (MRI, the missing wedge of limited-angle CT) start from noise
(``init_time: 1``), and use rounds only where they were measured to help (CT; benchmarks/dps.md).

``samples: N`` draws N posterior samples in one batch; the estimate is their mean (``estimate: mean``) or
the first sample, and ``info["std"]`` holds the per-pixel standard deviation.
"""

from __future__ import annotations

from typing import Literal

import torch

from ..errors import CheckpointError, ConfigError, ShapeError
from ..registry import RECONSTRUCTORS
from ..solvers.cg import conjugate_gradient
from ..solvers.fista import fista
from ..solvers.tv import TVProx
from .base import Reconstructor, renamed_parameter


#: CG (and TV-FISTA) iterations of the data-consistent start image of ``init_time < 1``: on CT 30 views (training
#: slices) 50 -> 100 iterations raised the DPS result by 0.15 dB; a FISTA-TV start was 0.1 dB better still
INIT_ITER = 100


def _batch_norm(r: torch.Tensor) -> torch.Tensor:
    """Per-sample Euclidean norm over all but the first dimension (real or complex)."""
    return torch.linalg.vector_norm(r.reshape(r.shape[0], -1), dim=1)


def data_consistency(op, aty: torch.Tensor, start: torch.Tensor, *, gamma: float, n_iter: int,
                     tv_prox: TVProx | None = None, lip: float | None = None) -> torch.Tensor:
    """The ``project`` step: ``argmin_x 1/2 ||A x - y||^2 + gamma/2 ||x - start||^2 (+ TV(x) by ``tv_prox``)``.

    ``n_iter`` CG iterations on the normal equations ``(A^H A + gamma) x = A^H y + gamma start`` from ``start``;
    with a TV prox, ``n_iter`` FISTA iterations more from the CG solution (step ``1 / (||A||^2 + gamma)``, ``lip``
    = ``||A||^2``). CG alone is far faster on the ill-conditioned least-squares part than proximal gradient, so
    the TV term only refines its result (FISTA from ``start`` lost 1-2 dB on CT in 10 iterations).
    """
    rhs = aty + gamma * start
    sol = conjugate_gradient(lambda v: op.normal(v) + gamma * v, rhs, start, n_iter=n_iter)
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
        cg_iter: CG iterations per step for ``project`` (FISTA iterations when ``tv_weight > 0``).
        gamma: weight of ``||x - x0_hat||^2`` in the ``project`` subproblem (relative to ``||A||^2``).
        tv_weight: weight of a total-variation term in the ``project`` subproblem, in the operator's image units
            (the scale of ``fista_tv``'s and ``latent_inversion``'s ``tv_weight``); 0 turns it off (plain CG
            projection). None: 0.
        tv: deprecated: the old name of ``tv_weight`` (same value, with a ``DeprecationWarning``); it goes in the
            next version.
        nonneg: constrain real images to ``x >= 0`` in the ``project`` subproblem (CT attenuation; with
            ``tv_weight: 0`` the FISTA refinement is then a projected gradient method).
        intensity_scale: image units per unit of the prior's ``[0, 1]`` range (1.0 for images normalised
            to ``[0, 1]``, the pipeline default).
        phase: the phase of complex (MRI) images, which the magnitude prior does not model: ``zero`` (real images,
            simulated data) or ``lowres``: ``x = |x| exp(i phi)`` with ``phi`` the phase of the adjoint of the
            Hann-windowed central k-space, estimated once per call (measured data; costs one adjoint).
        clip: clamp ``x0_hat`` to the prior's range at each step.
        init_time: where sampling starts, as a fraction of the ``steps`` grid (1: from pure noise; e.g. 0.05: the
            last 5 % of a 400-step grid, 20 network evaluations, from a noised start image; ``project`` only).
        rounds: sampling rounds; rounds after the first restart from the previous round's mean (``project`` only).
        refine_time: the start time of the rounds after the first (fraction of the ``steps`` grid).
    """

    #: one measurement per call (the samples of one case are the batch)
    supports_batch = False

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
        tv_weight: float | None = None,
        tv: float | None = None,
        nonneg: bool = False,
        intensity_scale: float = 1.0,
        phase: Literal["zero", "lowres"] = "zero",
        clip: bool = True,
        init_time: float = 1.0,
        rounds: int = 1,
        refine_time: float = 0.05,
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
        if not 0 < init_time <= 1:
            problems.append(f"dps: init_time must be in (0, 1], got {init_time}")
        elif init_time < 1 and consistency != "project":
            problems.append("dps: init_time < 1 starts from a data-consistent image: set consistency: project")
        if not isinstance(rounds, int) or rounds < 1:
            problems.append(f"dps: rounds must be an integer >= 1, got {rounds!r}")
        elif rounds > 1 and consistency != "project":
            problems.append("dps: rounds > 1 restart from data-consistent means: set consistency: project")
        if not 0 < refine_time < 1:
            problems.append(f"dps: refine_time must be in (0, 1), got {refine_time}")
        tv_weight, given = renamed_parameter("dps", "tv_weight", tv_weight, "tv", tv, 0.0, problems)
        if tv_weight < 0:
            problems.append(f"dps: {given} must be >= 0, got {tv_weight}")
        elif (tv_weight > 0 or nonneg) and consistency != "project":
            problems.append(f"dps: {given} and nonneg act on the data-consistency step: set consistency: project")
        if problems:
            raise ConfigError(problems)
        self.steps, self.zeta, self.eta, self.samples = steps, zeta, eta, samples
        self.estimate, self.consistency, self.cg_iter, self.gamma = estimate, consistency, cg_iter, gamma
        self.intensity_scale, self.clip, self.tv_weight = intensity_scale, clip, float(tv_weight)
        if phase not in ("zero", "lowres"):
            raise ConfigError(f"dps: phase must be 'zero' or 'lowres', got {phase!r}")
        self.phase, self._rotor = phase, None
        self.nonneg = bool(nonneg)
        self.init_time, self.rounds, self.refine_time = float(init_time), rounds, float(refine_time)
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
    def check(self, op) -> None:
        """Refuse an operator whose images are not the prior's ``(C, S, S)``."""
        self._check(op)

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
        if not op.complex_domain:
            return img
        img = img.to(torch.complex64 if img.dtype == torch.float32 else torch.complex128)
        return img if self._rotor is None else img * self._rotor.to(device=img.device, dtype=img.dtype)

    def _from_domain(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_complex() and self._rotor is not None:
            x = x * self._rotor.to(device=x.device, dtype=x.dtype).conj()
        img = x.real if x.is_complex() else x
        return self.prior.to_model(img / self.intensity_scale)

    def _step(self, x, t, t_next, yb, op, aty, lip, tv_prox, bounds, gen):
        """One sampling step from ``t`` to ``t_next``: ``(x_{t_next}, x0_hat)``."""
        sched, (lo, hi) = self.prior.schedule, bounds
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
            return sched.step(x, x0_hat, eps, t, t_next, eta=self.eta, generator=gen) - self.zeta * grad, x0_hat
        with torch.no_grad():
            x0_hat, _ = self.prior.predict(x, t)
            if self.clip:
                x0_hat = x0_hat.clamp(lo, hi)
            sol = data_consistency(op, aty, self._to_domain(x0_hat, op), gamma=self.gamma * lip, n_iter=self.cg_iter,
                                   tv_prox=tv_prox, lip=lip)
            x0_hat = self._from_domain(sol)
            if self.clip:
                x0_hat = x0_hat.clamp(lo, hi)
            eps = sched.eps_from_x0(x, x0_hat, sched.as_batch(t, x))
            return sched.step(x, x0_hat, eps, t, t_next, eta=self.eta, generator=gen), x0_hat

    # -- sampling -------------------------------------------------------------------------------
    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        self._check(op)
        self._rotor = None
        if self.phase == "lowres" and op.complex_domain:
            from ..priors.adapters import lowres_phase

            phi = lowres_phase(y, op)
            self._rotor = torch.polar(torch.ones_like(phi), phi)
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
        ts = sched.timesteps(self.steps)
        lo, hi = self.prior.to_model(torch.tensor(0.0)).item(), self.prior.to_model(torch.tensor(1.0)).item()
        aty = op.adjoint(yb) if self.consistency == "project" else None
        # ||A||^2 (cached on the operator), estimated in float32 or float64 whatever the prior's precision
        lip = (op.norm_squared(dtype=torch.float32 if dtype == torch.float32 else torch.float64, device=device)
               if self.consistency == "project" else None)
        tv_prox = TVProx(self.tv_weight, 5, nonneg=self.nonneg) if self.tv_weight > 0 or self.nonneg else None

        def noised(image: torch.Tensor, first: int) -> torch.Tensor:
            """``image`` (domain) in model space with the noise of ``ts[first]`` (CCDF's start)."""
            x_init = self._from_domain(image)
            if self.clip:
                x_init = x_init.clamp(lo, hi)
            noise = torch.randn(shape, generator=gen, device=device, dtype=dtype)
            return sched.add_noise(x_init.to(dtype), noise, ts[first])

        nfe, images = 0, None
        for r in range(self.rounds):
            # the first step index of this round; at least one step runs
            start_time = self.init_time if r == 0 else self.refine_time
            first = min(int(round((1.0 - start_time) * self.steps)), self.steps - 1)
            if r > 0:  # the previous round's mean, noised again
                x = noised(images.mean(dim=0, keepdim=True).expand_as(images), first)
            elif first == 0:
                x = sched.init_noise(shape, gen, device=device, dtype=dtype)
            elif x0 is not None:  # start part-way down the trajectory from a noised image (CCDF)
                x = noised(x0.to(device).expand(n, *x0.shape[1:]), first)
            else:  # ... from the data-consistent (TV-regularised least-squares) image
                x = noised(data_consistency(op, aty, torch.zeros_like(aty), gamma=self.gamma * lip,
                                            n_iter=INIT_ITER, tv_prox=tv_prox, lip=lip), first)
            for i in range(first, self.steps):
                x, x0_hat = self._step(x, ts[i], ts[i + 1], yb, op, aty, lip, tv_prox, (lo, hi), gen)
                nfe += 1
                if callback is not None:  # the contract: an image-space estimate
                    callback(nfe, self._to_domain(x0_hat, op))
            # the terminal state is x0 (the last step goes to the clean time)
            final = x.detach()
            if self.clip:
                final = final.clamp(lo, hi)
            images = self._to_domain(final, op)
        mags = images.abs() if self._rotor is not None else images.real if images.is_complex() else images
        self.info.update(nfe=nfe, phase=self.phase, n_samples=n, steps=self.steps, consistency=self.consistency,
                         tv_weight=self.tv_weight, rounds=self.rounds)
        self.info["tv"] = self.tv_weight  # the old key of tv_weight, kept while the parameter tv is
        if n > 1:
            self.info["std"] = mags.std(dim=0, unbiased=True)
            if n <= 16:
                self.info["samples"] = mags.detach().cpu()
        est = images.mean(dim=0, keepdim=True) if self.estimate == "mean" else images[:1]
        return est
