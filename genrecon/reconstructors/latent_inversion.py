"""Inversion of a generator prior (CSGM), its hybrid ``G(z) + u`` extension, and latent posterior sampling.

With ``T`` the :class:`~genrecon.priors.adapters.ImageAdapter` from the prior's ``[0, 1]`` images to the
operator's domain (phase, intensity scale):

    plain (CSGM, Bora et al. 2017):   z* = argmin_z ||A T(G(z)) - y||^2 + lam ||z||^2
    hybrid (Dhar et al. 2018):        (z*, u*) = argmin_{z,u} ||A (T(G(z)) + u) - y||^2 + lam ||z||^2 + w R(u)
                                      R = ||u||_1 (complex: sum |u_i|) or isotropic TV(u)
    anchored:                         x* = argmin_x ||A x - y||^2 + w R(x) + mu ||x - T(G(z))||^2
                                      (mu = anchor_weight ||A||^2), alternated with
                                      z* = argmin_z ||G(z) - T^-1(x*)||^2 + lam ||z||^2 (in the prior's units)
    posterior (samples > 0):          p(z | y) ~ exp(-U(z)),  U(z) = ||A (T(G(z)) + u*) - y||^2 / (nu s^2) + ||z||^2 / 2

``w = 2 tv_weight``: halved, the hybrid objective is ``1/2 ||A x - y||^2 + lam/2 ||z||^2 + tv_weight R(u)``, the
scaling of ``fista_tv`` and ``dps`` (``1/2 ||A x - y||^2 + tv_weight TV(x)``), so one ``tv_weight`` means the same
penalty strength in all three (``info["objective"]`` is the unhalved value).

``s^2`` is the noise variance per measured entry (``E|n|^2``, genrecon's MRI convention; ``noise_sigma``, or the
MAP misfit ``||r*||^2 / m`` over the ``m`` entries ``A`` can reach) and ``nu = 2`` for real data, ``1`` for complex
(the real and imaginary parts each carry ``s^2 / 2``). ``lam = s^2`` makes the MAP the posterior mode.

Optimisation: the ``restarts`` starting points run as one batch, each with its own objective (their mean is
minimised, which leaves each restart's gradient its own); Adam with a cosine learning-rate schedule (or L-BFGS
with a strong-Wolfe line search, plain mode only). Hybrid mode runs in three stages: the first
``hybrid_warmup`` fraction of the iterations is plain (``u = 0``, so ``u`` cannot soak up what ``G(z)`` would
represent once ``z`` has converged); then every iteration takes one Adam step on ``z`` and one proximal-gradient
step on ``u`` from the same point: ``u <- prox_{t w R}(u - t 2 A^H r)`` with ``t = 1 / (2 ||A||^2)`` (the TV
prox by warm-started FGP); finally ``hybrid_polish`` FISTA iterations on ``u`` with ``z`` fixed. With
``hybrid_fallback`` (the default, MAP only) the same objective is also minimised with the generator switched
off (``x = u``, plain FISTA with the penalty) and the lower objective wins (``info["generator_kept"]``).
Adam stops after ``steps`` iterations or when the
relative change of the objective stays below ``tol`` for 10 iterations; L-BFGS uses torch's
``tolerance_change = tol * (initial objective)``. The best restart is the one with the smallest data misfit
(plain) or objective (hybrid: ``u`` can always lower the misfit).

Anchored mode: the penalty sits on the image itself and the generator only pulls ``x`` towards its fit, so a
generator whose images carry a texture error (CT here) still helps where the hybrid's ``R(x - G(z))`` would pay for
that texture and fall back. It starts from the penalty-only image (``x = u`` of the fallback, ``max(hybrid_polish,
100)`` FISTA iterations), takes ``z`` from the encoder on it (``init: encoder``), then ``anchor_rounds`` times: ``steps
/ anchor_rounds`` Adam steps (cosine schedule) fitting ``G(z)`` to the current image, then the same number of FISTA
iterations as the start on the anchored objective from the current image. The best restart has the lowest
anchored objective; ``u_fraction`` is ``||x - T(G(z))|| / ||x||``. MAP only.

Cost: one decoder forward and backward per iteration for the batch of restarts (a 2.1M-parameter ConvVAE at
128x128: about 75 ms per restart per iteration on one CPU core). The Hessian for sampling costs about ``k / 16``
double-backward passes over 16 copies: about a minute on a 2-core CPU for ``k = 128`` at 128x128.

Posterior sampling, around the best restart with ``u`` fixed at ``u*``:

- the Hessian ``H`` of ``U`` at ``z*`` by automatic differentiation (one double-backward pass over ``k``
  copies of ``z*``, in chunks; latents are small, 64-128), eigenvalues raised to at least 1 (the prior's own
  curvature: the data term's Gauss-Newton part is positive semi-definite, so smaller ones come from negative
  curvature of a nonlinear ``G`` and are replaced by the prior's); ``M = H^-1 = L L^T``;
- the mode ``z_m``: up to 5 Newton steps ``z <- z - t M grad U(z)`` with backtracking, from ``z*`` (for a
  linear ``G`` one step lands on the exact posterior mean);
- ``laplace``: ``z = z_m + L e``, ``e ~ N(0, I)``;
- ``langevin``: preconditioned unadjusted Langevin dynamics ``z <- z - h M grad U(z) + sqrt(2 h) L e`` in up to
  16 parallel chains started from Laplace draws; burn-in ``ceil(3 / h)`` steps, then one sample every
  ``ceil(1 / h)`` steps (``h`` = ``langevin_step``). The preconditioner makes the step size dimensionless:
  ``h`` of 0.01-0.1; ULA's bias inflates a Gaussian posterior's covariance by ``1 / (1 - h / 2)``.

Samples ``x_s = T(G(z_s)) + u*`` give the returned mean and the per-pixel ``std = sqrt(sum |x_s - mean|^2 / (N - 1))``.
All random draws come from the ``generator`` argument, in a fixed order (default: a CPU generator seeded 0).

Example:
    >>> import torch
    >>> from genrecon.priors import ConvVAE
    >>> from genrecon.operators import SingleCoilMRI
    >>> vae = ConvVAE.build({"latent_dim": 8, "base_channels": 8, "channel_mults": [1, 2], "groups": 4},
    ...                     image_size=16, generator=torch.Generator().manual_seed(0))
    >>> recon = LatentInversion(prior=vae, restarts=2, steps=5)
    >>> op = SingleCoilMRI(torch.ones(16, 16, dtype=torch.bool))
    >>> y = op(vae.decode(torch.zeros(1, 8)).to(torch.complex64))
    >>> x = recon(y, op, generator=torch.Generator().manual_seed(1))
    >>> x.shape, x.dtype, recon.info["restarts"]
    (torch.Size([1, 1, 16, 16]), torch.complex64, 2)
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, ShapeError
from ..operators.base import LinearOperator
from ..priors.adapters import ImageAdapter, check_adapter_params, image_level, least_squares_estimate
from ..registry import RECONSTRUCTORS
from ..metrics import coverage as _coverage
from ..sampling.latent import (langevin_samples, laplace_samples, latent_hessian, posterior_factor,  # noqa: F401
                               randn_on, refine_mode, sqnorm)
from ..solvers.fista import fista
from ..solvers.prox import soft_threshold
from ..solvers.tv import TVProx, tv_norm
from .base import Reconstructor, renamed_parameter

WHO = "latent_inversion"
#: most Langevin chains run at once
MAX_CHAINS = 16
#: latent codes decoded at once when pushing samples through G
DECODE_CHUNK = 32
#: iterations the relative objective change must stay below tol (Adam is not monotone)
PATIENCE = 10
#: prior samples used to measure the prior's intensity level (intensity_scale: auto)
LEVEL_SAMPLES = 16

def coverage(mean: torch.Tensor, std: torch.Tensor, truth: torch.Tensor, k: float = 2.0) -> float:
    """2-sigma coverage of a posterior (mean, std) against the truth: :func:`genrecon.metrics.coverage`, the
    one definition (magnitude errors ``||mean| - |truth|| <= k std``), in the samplers' argument order."""
    return _coverage(mean, truth, std, k)


# ---------------------------------------------------------------------------------------------------
# the prior
# ---------------------------------------------------------------------------------------------------
def _resolve_prior(prior: Any) -> tuple[nn.Module, dict[str, Any], str]:
    """``(module, meta, label)`` of a prior given as a path, ``pretrained:<name>`` or an ``nn.Module``."""
    if isinstance(prior, (str, Path)):
        from ..priors.checkpoint import load_prior

        model, meta = load_prior(prior, kind="generator", purpose=WHO)
        rng = (meta.get("normalisation") or {}).get("range")
        if rng is not None and [float(v) for v in rng] != [0.0, 1.0]:
            raise CheckpointError(
                f"prior {prior} was trained on images in {rng}; {WHO} needs a prior on [0, 1] images"
            )
        return model, meta, str(prior)
    if isinstance(prior, nn.Module):
        label = type(prior).__name__
        kind = getattr(prior, "kind", "generator")
        if kind != "generator":
            raise CheckpointError(
                f"prior {label} is a '{kind}' prior; {WHO} needs a 'generator' prior (a decoder G(z))"
            )
        if getattr(prior, "latent_shape", None) is None and getattr(prior, "latent_dim", None) is None:
            raise CheckpointError(f"prior {label} has neither latent_shape nor latent_dim: {WHO} needs a decoder G(z)")
        return prior, {"normalisation": {"range": [0, 1], "source": "given module"}}, label
    raise ConfigError(
        f"{WHO}: prior must be a path, pretrained:<name> or an nn.Module, got {type(prior).__name__}"
    )


# ---------------------------------------------------------------------------------------------------
# the reconstructor
# ---------------------------------------------------------------------------------------------------
@RECONSTRUCTORS.register("latent_inversion")
class LatentInversion(Reconstructor):
    """Generator-prior inversion (CSGM): min_z ||A G(z) - y||^2 + lam ||z||^2, optionally G(z) + sparse u, with samples.

    See the module docstring for the objectives, the optimiser and the samplers.

    Args:
        prior: a generator checkpoint (path or ``pretrained:<name>``, kind ``"generator"``), or an ``nn.Module``
            with ``decode(z)`` (or ``forward``) and ``latent_dim``/``latent_shape`` (for tests and scripts).
        restarts: random starts, optimised together as one batch; the best is kept.
        steps: maximum iterations.
        lr: Adam's initial learning rate (cosine schedule to 0); L-BFGS uses 1 with a line search.
        lam: weight of ``||z||^2`` (``noise_sigma^2`` makes the MAP the posterior mode).
        init: ``"random"`` (``z ~ N(0, I)``) or ``"encoder"`` (the prior's encoder applied to ``x0``, or to a
            least-squares image, mapped to the prior's range; restart 0 at the encoder mean, others drawn
            from the encoder's posterior).
        optimizer: ``"adam"`` or ``"lbfgs"`` (plain mode only).
        tol: stop when the relative objective change stays below ``tol`` (0: run all steps).
        mode: ``"plain"`` (``x = G(z)``), ``"hybrid"`` (``x = G(z) + u``) or ``"anchored"`` (the penalty on ``x``,
            tied to ``G(z)`` by ``anchor_weight``).
        tv_weight: weight of the penalty ``R`` on ``u`` (anchored: on ``x``), in image units, on the scale of
            ``fista_tv``'s and ``dps``'s ``tv_weight`` (``1/2 ||A x - y||^2 + tv_weight R``; the module docstring's
            ``w`` is ``2 tv_weight``); with ``hybrid_penalty: l1`` it weights the L1 norm. None: 0.005.
        hybrid_weight: deprecated: the old name of ``w = 2 tv_weight`` (``hybrid_weight: w`` is read as
            ``tv_weight: w / 2``, the same objective, with a ``DeprecationWarning``); it goes in the next version.
        hybrid_penalty: ``"l1"`` or ``"tv"``.
        hybrid_warmup: fraction of ``steps`` optimised with ``u = 0`` (plain) before ``u`` joins, so that ``u``
            does not absorb what ``G(z)`` can represent before ``z`` has converged (1: plain, then the polish).
        hybrid_polish: FISTA iterations on ``u`` with ``z`` fixed after the joint stage (0: none).
        hybrid_fallback: also solve the hybrid objective with the generator switched off (``x = u``: FISTA with
            the same penalty, ``max(hybrid_polish, 100)`` iterations) and keep the lower objective
            (``info["generator_kept"]``); a generator whose images are far from the data (blurry, out of
            distribution) then cannot make the result worse than the penalty alone. Not with ``samples``.
        anchor_weight: ``mu / ||A||^2`` of the anchored mode (CT 0.001, MRI 0.01 in the benchmark).
        anchor_rounds: generator fits of the anchored mode (each followed by the anchored image step).
        nonneg: hybrid with real images (CT): constrain ``x = T(G(z)) + u >= 0`` (``u >= -T(G(z))`` in the
            proximal steps), as ``fista_tv``'s ``nonneg``.
        samples: number of posterior samples (0: the MAP only).
        sampler: ``"langevin"`` or ``"laplace"``.
        langevin_step: preconditioned Langevin step ``h`` (dimensionless).
        noise_sigma: measurement noise std per entry (``E|n|^2 = sigma^2``) for the sampler; None: from the
            MAP misfit.
        intensity_scale: prior-to-data intensity factor, or ``"auto"`` (see ``genrecon.priors.adapters``).
        phase: ``"zero"`` or ``"lowres"`` phase for complex (MRI) images.

    ``info`` (one measurement; with a batch, lists and stacked tensors): ``data_misfit`` (``||A x - y|| / ||y||``),
    ``latent_norm``, ``restarts``, ``best_restart``, ``iterations``, ``objective``, ``intensity_scale``, ``nfe``
    (decoder calls); hybrid: ``u_fraction`` (``||u|| / ||x||``) and ``u`` (``(1, H, W)``); with samples: ``std``
    (``(1, H, W)``, real), ``map`` (the MAP image), ``samples`` (``(N, 1, H, W)``, only if ``N <= 16``),
    ``samples_drawn``, ``sampler``, ``noise_sigma``, ``laplace_clamped``, ``posterior_std_mean``; Langevin:
    ``chains``, ``burn_in``, ``thin``, ``langevin_step``.

    ``callback(step, x)`` gets the current best restart's image ``(1, *domain)`` after each Adam iteration
    (before its update) or each L-BFGS function evaluation.

    ``x0`` is used by ``init: encoder`` only (the image to encode); the random start ignores it.

    Example:
        >>> from genrecon.registry import RECONSTRUCTORS
        >>> recon = RECONSTRUCTORS.build("latent_inversion",
        ...                              {"prior": "runs/train/g/prior.pt"})  # doctest: +SKIP
    """

    modalities = ("mri", "ct")

    def __init__(
        self,
        *,
        prior: str | nn.Module,
        restarts: int = 4,
        steps: int = 300,
        lr: float = 0.05,
        lam: float = 1e-3,
        init: Literal["random", "encoder"] = "random",
        optimizer: Literal["adam", "lbfgs"] = "adam",
        tol: float = 1e-6,
        mode: Literal["plain", "hybrid", "anchored"] = "plain",
        tv_weight: float | None = None,
        hybrid_weight: float | None = None,
        hybrid_penalty: Literal["l1", "tv"] = "l1",
        hybrid_warmup: float = 0.5,
        hybrid_polish: int = 100,
        hybrid_fallback: bool = True,
        anchor_weight: float = 0.003,
        anchor_rounds: int = 2,
        nonneg: bool = False,
        samples: int = 0,
        sampler: Literal["langevin", "laplace"] = "langevin",
        langevin_step: float = 0.05,
        noise_sigma: float | None = None,
        intensity_scale: float | Literal["auto"] = 1.0,
        phase: Literal["zero", "lowres"] = "zero",
    ):
        super().__init__()
        problems = []

        def integer(name, value, low):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"{WHO}: {name} must be an integer >= {low}, got {value!r}")

        def number(name, value, *, positive=False, allow_none=False):
            if value is None and allow_none:
                return
            ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            if not ok or value < 0 or (positive and value == 0):
                problems.append(f"{WHO}: {name} must be a {'positive' if positive else 'non-negative'} number, "
                                f"got {value!r}")

        def choice(name, value, options):
            if value not in options:
                problems.append(f"{WHO}: {name} must be one of {', '.join(options)}, got {value!r}")

        integer("restarts", restarts, 1)
        integer("steps", steps, 1)
        integer("samples", samples, 0)
        number("lr", lr, positive=True)
        number("lam", lam)
        number("tol", tol)
        # deprecated hybrid_weight = w = 2 tv_weight (no 1/2 on the data term); exact: self._w = 2 tv_weight
        number("hybrid_weight" if hybrid_weight is not None and tv_weight is None else "tv_weight",
               tv_weight if tv_weight is not None else hybrid_weight, allow_none=True)
        tv_weight, _ = renamed_parameter(WHO, "tv_weight", tv_weight, "hybrid_weight", hybrid_weight, 0.005, problems,
                                         scale=0.5, relation="2 x tv_weight")
        number("hybrid_warmup", hybrid_warmup)
        if isinstance(hybrid_warmup, (int, float)) and not isinstance(hybrid_warmup, bool) and hybrid_warmup > 1:
            problems.append(f"{WHO}: hybrid_warmup must be in [0, 1] (a fraction of steps), got {hybrid_warmup}")
        integer("hybrid_polish", hybrid_polish, 0)
        number("anchor_weight", anchor_weight, positive=True)
        integer("anchor_rounds", anchor_rounds, 1)
        number("noise_sigma", noise_sigma, positive=True, allow_none=True)
        number("langevin_step", langevin_step, positive=True)
        if isinstance(langevin_step, (int, float)) and not isinstance(langevin_step, bool) and langevin_step >= 1:
            problems.append(f"{WHO}: langevin_step must be < 1 (it is relative to the posterior's scale), "
                            f"got {langevin_step}")
        choice("init", init, ("random", "encoder"))
        choice("optimizer", optimizer, ("adam", "lbfgs"))
        choice("mode", mode, ("plain", "hybrid", "anchored"))
        choice("hybrid_penalty", hybrid_penalty, ("l1", "tv"))
        choice("sampler", sampler, ("langevin", "laplace"))
        problems += check_adapter_params(phase, intensity_scale, WHO)
        if optimizer == "lbfgs" and mode in ("hybrid", "anchored"):
            problems.append(f"{WHO}: optimizer 'lbfgs' needs a smooth objective; use optimizer 'adam' with "
                            f"mode '{mode}'")
        if mode == "anchored" and isinstance(samples, int) and samples > 0:
            problems.append(f"{WHO}: mode 'anchored' gives a MAP estimate only; set samples: 0 or mode plain/hybrid")
        if problems:
            raise ConfigError(problems)
        self.model, self.meta, self.label = _resolve_prior(prior)
        if init == "encoder" and not callable(getattr(self.model, "encode", None)):
            raise ConfigError(f"{WHO}: init 'encoder' needs a prior with an encoder; {self.label} has none: "
                              "use init 'random'")
        self.model.eval()
        shape = getattr(self.model, "latent_shape", None)
        self.latent_shape = tuple(int(s) for s in shape) if shape is not None else (int(self.model.latent_dim),)
        self.restarts, self.steps, self.lr, self.lam = restarts, steps, float(lr), float(lam)
        self.init, self.optimizer, self.tol, self.mode = init, optimizer, float(tol), mode
        self.tv_weight, self.hybrid_penalty = float(tv_weight), hybrid_penalty
        #: ``w`` of the module docstring's objectives (no 1/2 on the data term)
        self._w = 2.0 * self.tv_weight
        self.hybrid_warmup, self.hybrid_polish = float(hybrid_warmup), hybrid_polish
        self.hybrid_fallback, self.nonneg = bool(hybrid_fallback), bool(nonneg)
        self.anchor_weight, self.anchor_rounds = float(anchor_weight), anchor_rounds
        self.samples, self.sampler, self.langevin_step = samples, sampler, float(langevin_step)
        self.noise_sigma = None if noise_sigma is None else float(noise_sigma)
        self.intensity_scale, self.phase = intensity_scale, phase
        self._image_shape: tuple[int, int, int] | None = None
        self._cache: dict[tuple, float] = {}
        self._nfe = 0

    # -- device and prior plumbing ------------------------------------------------------------------
    def to(self, device: str | torch.device) -> "LatentInversion":
        """Move the prior to ``device``; returns self."""
        self.model.to(device)
        return self

    def _sync(self, device: torch.device, dtype: torch.dtype) -> None:
        """Put the prior on ``device`` in ``dtype`` (the measurement's real dtype)."""
        p = next(itertools.chain(self.model.parameters(), self.model.buffers()), None)
        if p is not None and (p.device != device or (p.is_floating_point() and p.dtype != dtype)):
            self.model.to(device=device, dtype=dtype)

    @property
    def latent_size(self) -> int:
        """``k``: number of latent entries."""
        return math.prod(self.latent_shape)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)`` for flat latents ``(N, k)``: images ``(N, C, S, S)``."""
        self._nfe += 1
        fn = getattr(self.model, "decode", None) or self.model
        return fn(z.reshape(z.shape[0], *self.latent_shape))

    def prior_image_shape(self, device, dtype) -> tuple[int, int, int]:
        """``(C, S, S)`` of the prior's images (from its attributes, else by decoding ``z = 0`` once)."""
        if self._image_shape is None:
            size, channels = getattr(self.model, "image_size", None), getattr(self.model, "channels", None)
            if size is not None and channels is not None:
                self._image_shape = (int(channels), int(size), int(size))
            else:
                with torch.no_grad():
                    out = self.decode(torch.zeros(1, self.latent_size, device=device, dtype=dtype))
                if out.dim() != 4:
                    raise ShapeError(f"{WHO}: prior {self.label} must decode to images (N, C, S, S), "
                                     f"got {tuple(out.shape)}")
                self._image_shape = tuple(int(s) for s in out.shape[1:])
        return self._image_shape

    def check(self, op) -> None:
        """Refuse an operator whose images are not the prior's ``(C, S, S)``."""
        p = next(itertools.chain(self.model.parameters(), self.model.buffers()), None)
        device = p.device if p is not None else torch.device("cpu")
        dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
        ImageAdapter.check(op, self.prior_image_shape(device, dtype), WHO, self.label)

    def prior_level(self, device, dtype) -> float:
        """Median 99.5th-percentile intensity of ``LEVEL_SAMPLES`` prior images (fixed seed 0, cached)."""
        key = ("level", str(device), dtype)
        if key not in self._cache:
            g = torch.Generator().manual_seed(0)
            z = torch.randn((LEVEL_SAMPLES, self.latent_size), generator=g, dtype=dtype).to(device)
            with torch.no_grad():
                self._cache[key] = float(image_level(self.decode(z)).median())
        return self._cache[key]

    def _measured(self, op: LinearOperator, like: torch.Tensor) -> int:
        """Entries ``A`` can make non-zero (sampled k-space x coils; rays that meet the image)."""
        key = ("measured", id(op))
        if key not in self._cache:
            x = op.random_domain(1, torch.Generator().manual_seed(0), dtype=like.real.dtype, device=like.device)
            with torch.no_grad():
                self._cache = {k: v for k, v in self._cache.items() if k[0] != "measured"}
                self._cache[key] = max(int((op(x) != 0).sum()), 1)
        return int(self._cache[key])

    # -- objective ----------------------------------------------------------------------------------
    def image(self, z: torch.Tensor, adapter: ImageAdapter, u: torch.Tensor | None = None) -> torch.Tensor:
        """``x = T(G(z)) (+ u)`` for flat latents ``(N, k)``: ``(N, *domain)``."""
        x = adapter.to_domain(self.decode(z))
        return x if u is None else x + u

    def objective(
        self, z: torch.Tensor, y: torch.Tensor, op: LinearOperator, adapter: ImageAdapter,
        u: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-restart ``||A (T(G(z)) + u) - y||^2 + lam ||z||^2``, shape ``(N,)``; differentiable in ``z``."""
        r = op(self.image(z, adapter, u)) - y
        return sqnorm(r) + self.lam * z.reshape(z.shape[0], -1).square().sum(1)

    def _penalty(self, u: torch.Tensor) -> torch.Tensor:
        if self.hybrid_penalty == "tv":
            return self._w * tv_norm(u)
        return self._w * u.abs().flatten(1).sum(1)

    # -- main ---------------------------------------------------------------------------------------
    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        if not isinstance(y, torch.Tensor):
            raise ShapeError(f"{WHO}: y must be a torch.Tensor, got {type(y).__name__}")
        y = y.detach()
        device, rdtype = y.device, y.real.dtype
        if rdtype not in (torch.float32, torch.float64):
            raise ShapeError(f"{WHO}: y must be float32/float64 or complex64/complex128, got {y.dtype}")
        if tuple(y.shape[1:]) != tuple(op.range_shape) or y.is_complex() != op.complex_range:
            kind = "complex" if op.complex_range else "real"
            raise ShapeError(f"{WHO}: {op.name} expects {kind} measurements (B, {', '.join(map(str, op.range_shape))}),"
                             f" got {tuple(y.shape)} {y.dtype}")
        self._sync(device, rdtype)
        ImageAdapter.check(op, self.prior_image_shape(device, rdtype), WHO, self.label)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self._nfe = 0
        outs, infos = [], []
        for b in range(y.shape[0]):
            start = x0[b : b + 1].detach() if x0 is not None else None
            x, info = self._solve(y[b : b + 1], op, start, gen, callback)
            outs.append(x)
            infos.append(info)
        self.info = _merge(infos)
        self.info["nfe"] = self._nfe
        return torch.cat(outs, 0)

    def _initial_latents(self, y, op, adapter, x0, gen, device, rdtype) -> torch.Tensor:
        r, k = self.restarts, self.latent_size
        if self.init == "random":
            return randn_on((r, k), gen, device, rdtype)
        start = x0 if x0 is not None else least_squares_estimate(y, op)
        g0 = adapter.from_domain(start).clamp(0.0, 1.0).to(rdtype)
        with torch.no_grad():
            mu, logvar = self.model.encode(g0)
        mu, std = mu.reshape(1, k), torch.exp(0.5 * logvar).reshape(1, k)
        z = mu + std * randn_on((r, k), gen, device, rdtype)
        z[0] = mu[0]
        return z

    def _solve(self, y, op, x0, gen, callback) -> tuple[torch.Tensor, dict[str, Any]]:
        device, rdtype = y.device, y.real.dtype
        ref = self.prior_level(device, rdtype) if self.intensity_scale == "auto" else 1.0
        adapter = ImageAdapter.fit(y, op, phase=self.phase, intensity_scale=self.intensity_scale,
                                   reference_level=ref)
        if self.mode == "anchored":
            return self._solve_anchored(y, op, x0, gen, adapter)
        z = self._initial_latents(y, op, adapter, x0, gen, device, rdtype).requires_grad_(True)
        hybrid = self.mode == "hybrid"
        u = None
        if hybrid:
            cdtype = torch.complex128 if rdtype == torch.float64 else torch.complex64
            u = op.domain_zeros(self.restarts, dtype=cdtype if op.complex_domain else rdtype, device=device)
        iterations, u = self._optimise(z, u, y, op, adapter, callback)
        z = z.detach()

        with torch.no_grad():
            x_all = self.image(z, adapter, u)
            data = sqnorm(op(x_all) - y)
            objective = data + self.lam * z.square().sum(1) + (self._penalty(u) if hybrid else 0.0)
        best = int(torch.argmin(objective if hybrid else data))
        y_norm = _norm(y)
        x_map = x_all[best : best + 1]
        info = self._map_info(z, best, data, objective, y_norm, iterations, adapter)
        if hybrid and self.hybrid_fallback and self.samples == 0:
            # the same objective with the generator switched off (x = u): keep whichever is lower
            with torch.no_grad():
                u0 = self._polish(None, torch.zeros_like(u[best : best + 1]), y, op, max(self.hybrid_polish, 100))
                data0 = float(sqnorm(op(u0) - y)[0])
                objective0 = data0 + float(self._penalty(u0)[0])
            info["generator_kept"] = objective0 >= info["objective"]
            if not info["generator_kept"]:
                x_map, u = u0, u0.expand_as(u)
                info.update(objective=objective0, data_misfit=math.sqrt(data0) / y_norm)
        if hybrid:
            info["u_fraction"] = float(u[best].abs().norm() / x_map.abs().norm().clamp(min=1e-30))
            info["u"] = u[best]
        if self.samples == 0:
            return x_map, info
        ub = u[best : best + 1] if hybrid else None
        mean, extra = self._sample(z[best], ub, y, op, adapter, float(data[best]), gen)
        extra["map"] = x_map[0]
        info.update(extra)
        return mean, info

    def _optimise(self, z, u, y, op, adapter, callback) -> tuple[int, torch.Tensor | None]:
        """Optimise ``z`` in place (and ``u``, hybrid); return ``(iterations, u)``."""
        hybrid = u is not None
        if hybrid:
            step_u, tv = self._u_solver(op, y)
        prev, calm = None, 0
        if self.optimizer == "lbfgs":
            with torch.no_grad():
                f0 = float(self.objective(z, y, op, adapter).mean())
            opt = torch.optim.LBFGS([z], lr=1.0, max_iter=self.steps, max_eval=2 * self.steps, history_size=20,
                                    tolerance_grad=0.0, tolerance_change=self.tol * abs(f0),
                                    line_search_fn="strong_wolfe")
            evals = 0

            def closure():
                nonlocal evals
                opt.zero_grad(set_to_none=True)
                f = self.objective(z, y, op, adapter)
                f.mean().backward()
                evals += 1
                if callback is not None:
                    callback(evals, self.image(z.detach()[int(torch.argmin(f.detach()))][None], adapter))
                return f.mean().detach()

            opt.step(closure)
            return int(opt.state[z].get("n_iter", 0)), None

        opt = torch.optim.Adam([z], lr=self.lr)
        warm = int(self.hybrid_warmup * self.steps) if hybrid else 0
        for it in range(1, self.steps + 1):
            for group in opt.param_groups:
                group["lr"] = self.lr * 0.5 * (1.0 + math.cos(math.pi * (it - 1) / self.steps))
            opt.zero_grad(set_to_none=True)
            x = self.image(z, adapter, u)
            r = op(x) - y
            f = sqnorm(r) + self.lam * z.square().sum(1)
            f.mean().backward()
            with torch.no_grad():
                if hybrid and it > warm:
                    f = f.detach() + self._penalty(u)
                    v = u - (2.0 * step_u) * op.adjoint(r.detach())
                    u = self._prox_u(tv, v, step_u, self._lower(x.detach() - u, v))
                value = float(f.mean())
                if callback is not None:
                    best = int(torch.argmin(f))
                    callback(it, x.detach()[best : best + 1])
            opt.step()
            if prev is not None and abs(prev - value) <= self.tol * max(abs(prev), 1e-30):
                calm += 1
                if calm >= PATIENCE:
                    break
            else:
                calm = 0
            prev = value
        if hybrid and self.hybrid_polish > 0:
            with torch.no_grad():
                u = self._polish(self.image(z.detach(), adapter), u, y, op, self.hybrid_polish)
        return it, u

    def _solve_anchored(self, y, op, x0, gen, adapter) -> tuple[torch.Tensor, dict[str, Any]]:
        """``mode: anchored`` (module docstring): the penalty-only image, then rounds of a generator fit and an
        anchored penalised least-squares step; the best restart by the anchored objective."""
        device, rdtype = y.device, y.real.dtype
        cdtype = torch.complex128 if rdtype == torch.float64 else torch.complex64
        dtype = cdtype if op.complex_domain else rdtype
        n_iter = max(self.hybrid_polish, 100)
        anchor = self.anchor_weight * op.norm_squared(dtype=y.real.dtype, device=y.device)
        with torch.no_grad():  # the penalty alone: what `hybrid_fallback` computes
            x = self._polish(None, op.domain_zeros(1, dtype=dtype, device=device), y, op, n_iter)
        z = self._initial_latents(y, op, adapter, x if x0 is None else x0, gen, device, rdtype)
        x = x.expand(self.restarts, *x.shape[1:]).clone()
        per_round = max(1, self.steps // self.anchor_rounds)
        for _ in range(self.anchor_rounds):
            # (a) the generator fitted to the current images, in the prior's units
            target = adapter.from_domain(x).clamp(0.0, 1.0).to(rdtype)
            z = z.detach().requires_grad_(True)
            opt = torch.optim.Adam([z], lr=self.lr)
            for it in range(per_round):
                for group in opt.param_groups:
                    group["lr"] = self.lr * 0.5 * (1.0 + math.cos(math.pi * it / per_round))
                opt.zero_grad(set_to_none=True)
                fit = (self.decode(z) - target).square().flatten(1).sum(1) + self.lam * z.square().sum(1)
                fit.sum().backward()
                opt.step()
            # (b) the images anchored to T(G(z))
            with torch.no_grad():
                x = self._polish(None, x, y, op, n_iter, anchor=anchor, centre=self.image(z.detach(), adapter))
        with torch.no_grad():
            z = z.detach()
            base = self.image(z, adapter)
            data = sqnorm(op(x) - y)
            objective = data + self._penalty(x) + anchor * sqnorm(x - base)
        best = int(torch.argmin(objective))
        u = (x - base)[best]
        info = self._map_info(z, best, data, objective, _norm(y), per_round * self.anchor_rounds, adapter)
        info.update(anchor_rounds=self.anchor_rounds, u=u,
                    u_fraction=float(u.abs().norm() / x[best].abs().norm().clamp(min=1e-30)))
        return x[best : best + 1], info

    def _map_info(self, z, best: int, data, objective, y_norm: float, iterations: int, adapter) -> dict[str, Any]:
        """The report of a MAP estimate: restart ``best``'s misfit ``||A x - y|| / ||y||``, latent norm, objective."""
        return {
            "data_misfit": math.sqrt(float(data[best])) / y_norm,
            "latent_norm": float(z[best].norm()),
            "restarts": self.restarts,
            "best_restart": best,
            "iterations": iterations,
            "objective": float(objective[best]),
            "intensity_scale": adapter.scale_value(),
        }

    def _polish(self, base, u, y, op, n_iter: int, anchor: float = 0.0, centre=None) -> torch.Tensor:
        """FISTA from ``u`` on ``||A (base + u) - y||^2 + w R(u) (+ anchor ||u - centre||^2)`` over ``u`` (``base``:
        ``T(G(z))`` with ``z`` fixed, or None for 0; the anchored mode: ``base`` None, ``centre`` ``T(G(z))``)."""
        step, tv = self._u_solver(op, y, anchor)

        def grad_f(v):
            g = 2.0 * op.adjoint(op(v if base is None else base + v) - y)
            return g + 2.0 * anchor * (v - centre) if anchor else g

        lower = self._lower(torch.zeros_like(u) if base is None else base, u)
        return fista(grad_f, lambda v, s: self._prox_u(tv, v, s, lower), u, step=step, n_iter=n_iter).x

    def _u_solver(self, op, y, anchor: float = 0.0) -> tuple[float, TVProx | None]:
        """The proximal-gradient step on ``u`` (``1 / (2 (||A||^2 + anchor))``, with a hair of safety) and a fresh
        TV prox."""
        step = 1.0 / (2.0 * (op.norm_squared(dtype=y.real.dtype, device=y.device) * 1.01 + anchor))
        return step, (TVProx(self._w, n_iter=5) if self.hybrid_penalty == "tv" else None)

    def _prox_u(self, tv: TVProx | None, v: torch.Tensor, s: float, lower: torch.Tensor | None) -> torch.Tensor:
        """``prox_{s w R}(v)`` with the optional bound ``u >= lower`` (TV: inside the dual method; L1: separable,
        so the soft threshold clipped at the bound)."""
        if tv is not None:
            return tv(v, s, lower)
        out = soft_threshold(v, s * self._w)
        return out if lower is None else torch.maximum(out, lower)

    def _lower(self, base: torch.Tensor, u: torch.Tensor) -> torch.Tensor | None:
        """The bound ``u >= -base`` that keeps ``base + u >= 0`` (``nonneg``, real images), or None."""
        if not self.nonneg or u.is_complex():
            return None
        return -base.real if base.is_complex() else -base

    # -- posterior sampling -------------------------------------------------------------------------
    def _sample(self, z_best, u_best, y, op, adapter, misfit_sq, gen) -> tuple[torch.Tensor, dict[str, Any]]:
        rdtype = y.real.dtype
        m = self._measured(op, y)
        floor = 1e-8 * float(sqnorm(y)) / m  # an 80 dB SNR cap keeps U finite for noiseless data
        sigma2 = self.noise_sigma**2 if self.noise_sigma is not None else misfit_sq / m
        sigma2 = max(sigma2, floor, torch.finfo(rdtype).tiny)
        nu = 1.0 if op.complex_range else 2.0

        def energy(zs: torch.Tensor) -> torch.Tensor:
            r = op(self.image(zs, adapter, u_best)) - y
            return sqnorm(r) / (nu * sigma2) + 0.5 * zs.square().sum(1)

        hessian = latent_hessian(energy, z_best)
        chol, precond, clamped = posterior_factor(hessian)
        z_mode = refine_mode(energy, z_best, precond)
        n = self.samples
        info: dict[str, Any] = {"samples_drawn": n, "sampler": self.sampler, "noise_sigma": math.sqrt(sigma2),
                                "laplace_clamped": clamped}
        if self.sampler == "laplace":
            zs = laplace_samples(z_mode, chol, n, gen)
        else:
            h = self.langevin_step
            chains = min(n, MAX_CHAINS)
            per_chain = math.ceil(n / chains)
            burn_in, thin = math.ceil(3.0 / h), math.ceil(1.0 / h)
            start = laplace_samples(z_mode, chol, chains, gen)
            zs = langevin_samples(energy, start, chol, step=h, burn_in=burn_in, thin=thin, per_chain=per_chain,
                                  generator=gen)[:n]
            info.update(chains=chains, burn_in=burn_in, thin=thin, langevin_step=h)
        with torch.no_grad():
            xs = torch.cat([self.image(c, adapter, u_best) for c in zs.split(DECODE_CHUNK)], 0)
        mean = xs.mean(0, keepdim=True)
        dev = xs - mean
        var = (dev.real.square() + dev.imag.square()) if dev.is_complex() else dev.square()
        std = (var.sum(0) / max(n - 1, 1)).sqrt()
        info["std"] = std
        info["posterior_std_mean"] = float(std.mean())
        if n <= 16:
            info["samples"] = xs
        return mean, info


def _norm(y: torch.Tensor) -> float:
    """``||y||``, kept above the dtype's smallest normal number (it divides)."""
    return float(torch.sqrt(sqnorm(y)).clamp(min=torch.finfo(y.real.dtype).tiny))


def _merge(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """One measurement: its info. Several: scalars as lists, tensors stacked along a new batch dim."""
    if len(infos) == 1:
        return infos[0]
    out: dict[str, Any] = {}
    for key in infos[0]:
        values = [i[key] for i in infos]
        out[key] = torch.stack(values, 0) if isinstance(values[0], torch.Tensor) else values
    return out
