"""The registered ``latent_inversion`` reconstructor: the prior's plumbing, one measurement at a time, and the
choice of algorithm (:mod:`.csgm` plain and hybrid, :mod:`.anchored`, :mod:`.posterior`)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from ...errors import ConfigError, ShapeError
from ...operators.base import LinearOperator
from ...priors.adapters import ImageAdapter, image_level
from ...registry import RECONSTRUCTORS
from ...sampling.latent import sqnorm
from ..base import Reconstructor
from ..grid import PriorGrid, check_grid
from ..safeguard import finish
from . import anchored, csgm, hybrid, posterior
from .params import LatentParams
from .prior import WHO, resolve_prior

#: prior samples used to measure the prior's intensity level (intensity_scale: auto)
LEVEL_SAMPLES = 16


@RECONSTRUCTORS.register("latent_inversion")
class LatentInversion(Reconstructor):
    """Generator-prior inversion (CSGM): min_z ||A G(z) - y||^2 + lam ||z||^2, optionally G(z) + sparse u, with samples.

    Parameters: :class:`~genrecon.reconstructors.latent.LatentParams` (the YAML ``params``; ``genrecon list
    reconstructors --json`` shows each with its type, default and doc). The package docstring gives the objectives,
    the optimiser and the samplers.

    ``info`` (one measurement; with a batch, lists and stacked tensors): ``data_misfit`` (``||A x - y|| / ||y||``),
    ``latent_norm``, ``restarts``, ``best_restart``, ``iterations``, ``objective``, ``intensity_scale``, ``nfe``
    (decoder calls); hybrid: ``u_fraction`` (``||u|| / ||x||``), ``u`` (``(1, H, W)``) and ``generator_kept``;
    anchored: ``anchor_rounds``; ``safeguard: residual``: ``safeguard_rho``, ``safeguard_anchor``, ``safeguard_fired``
    (:mod:`~genrecon.reconstructors.safeguard`); with samples: ``std`` (``(1, H, W)``, real), ``map`` (the MAP
    image), ``samples`` (``(N, 1, H, W)``, only if ``N <= 16``), ``samples_drawn``, ``sampler``, ``noise_sigma``,
    ``laplace_clamped``, ``posterior_std_mean``; Langevin: ``chains``, ``burn_in``, ``thin``, ``langevin_step``.

    ``callback(step, x)`` gets the current best restart's image ``(1, *domain)`` after each Adam iteration
    (before its update) or each L-BFGS function evaluation. ``x0`` is used by ``init: encoder`` only (the image to
    encode; the anchored mode encodes its penalty-only image when ``x0`` is None); the random start ignores it.

    Example:
        >>> from genrecon.registry import RECONSTRUCTORS
        >>> recon = RECONSTRUCTORS.build("latent_inversion",
        ...                              {"prior": "runs/train/g/prior.pt"})  # doctest: +SKIP
    """

    modalities = ("mri", "ct")
    who = WHO
    Params = LatentParams

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.model, self.meta, self.label = resolve_prior(self.prior)
        if self.init == "encoder" and not callable(getattr(self.model, "encode", None)):
            raise ConfigError(f"{WHO}: init 'encoder' needs a prior with an encoder; {self.label} has none: "
                              "use init 'random'")
        self.model.eval()
        shape = getattr(self.model, "latent_shape", None)
        self.latent_shape = tuple(int(s) for s in shape) if shape is not None else (int(self.model.latent_dim),)
        #: ``w`` of the package docstring's objectives (no 1/2 on the data term)
        self._w = 2.0 * self.tv_weight
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

    def check(self, op) -> bool:
        """Refuse an operator whose images are not the prior's ``(C, S, S)`` (``grid: upsample``: or larger);
        return whether they are larger."""
        p = next(itertools.chain(self.model.parameters(), self.model.buffers()), None)
        device = p.device if p is not None else torch.device("cpu")
        dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
        return check_grid(op, self.prior_image_shape(device, dtype), self.grid, WHO, self.label)

    def prior_level(self, device, dtype) -> float:
        """Median 99.5th-percentile intensity of ``LEVEL_SAMPLES`` prior images (fixed seed 0, cached)."""
        key = ("level", str(device), dtype)
        if key not in self._cache:
            g = torch.Generator().manual_seed(0)
            z = torch.randn((LEVEL_SAMPLES, self.latent_size), generator=g, dtype=dtype).to(device)
            with torch.no_grad():
                self._cache[key] = float(image_level(self.decode(z)).median())
        return self._cache[key]

    def measured(self, op: LinearOperator, like: torch.Tensor) -> int:
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

    def _polish(self, base, u, y, op, n_iter: int, anchor: float = 0.0, centre=None) -> torch.Tensor:
        """:func:`.hybrid.polish` (FISTA on ``u`` with ``z`` fixed)."""
        return hybrid.polish(self, base, u, y, op, n_iter, anchor, centre)

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
        upsampled = check_grid(op, self.prior_image_shape(device, rdtype), self.grid, WHO, self.label)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        self._nfe = 0
        outs, infos = [], []
        for b in range(y.shape[0]):
            start = x0[b : b + 1].detach() if x0 is not None else None
            solve = self._solve_upsampled if upsampled else self._solve
            x, info = solve(y[b : b + 1], op, start, gen, callback)
            if self.safeguard == "residual":  # at the image's size, after the grid's refinement
                x, extra = finish(self, x, y[b : b + 1], op, own_gamma=self.anchor_weight)
                info.update(extra)
            outs.append(x)
            infos.append(info)
        self.info = _merge(infos)
        self.info["nfe"] = self._nfe
        return torch.cat(outs, 0)

    def _solve(self, y, op, x0, gen, callback, phase: str | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """One measurement ``(1, ...)``: the MAP of the mode (plain / hybrid / anchored), then the samples
        (``phase``: the adapter's, default the parameter's)."""
        device, rdtype = y.device, y.real.dtype
        ref = self.prior_level(device, rdtype) if self.intensity_scale == "auto" else 1.0
        adapter = ImageAdapter.fit(y, op, phase=phase or self.phase, intensity_scale=self.intensity_scale,
                                   reference_level=ref)
        if self.mode == "anchored":
            return anchored.solve_anchored(self, y, op, x0, gen, adapter)
        z = csgm.initial_latents(self, y, op, adapter, x0, gen, device, rdtype).requires_grad_(True)
        is_hybrid = self.mode == "hybrid"
        u = None
        if is_hybrid:
            cdtype = torch.complex128 if rdtype == torch.float64 else torch.complex64
            u = op.domain_zeros(self.restarts, dtype=cdtype if op.complex_domain else rdtype, device=device)
        iterations, u = csgm.optimise(self, z, u, y, op, adapter, callback)
        z = z.detach()

        with torch.no_grad():
            x_all = self.image(z, adapter, u)
            data = sqnorm(op(x_all) - y)
            objective = data + self.lam * z.square().sum(1) + (hybrid.penalty(self, u) if is_hybrid else 0.0)
        best = int(torch.argmin(objective if is_hybrid else data))
        y_norm = csgm.data_norm(y)
        x_map = x_all[best : best + 1]
        info = self.map_info(z, best, data, objective, y_norm, iterations, adapter)
        if is_hybrid and self.hybrid_fallback and self.samples == 0:
            # the same objective with the generator switched off (x = u): keep whichever is lower
            u0, data0, objective0 = hybrid.penalty_only(self, u[best : best + 1], y, op)
            info["generator_kept"] = objective0 >= info["objective"]
            if not info["generator_kept"]:
                x_map, u = u0, u0.expand_as(u)
                info.update(objective=objective0, data_misfit=math.sqrt(data0) / y_norm)
        if is_hybrid:
            info["u_fraction"] = float(u[best].abs().norm() / x_map.abs().norm().clamp(min=1e-30))
            info["u"] = u[best]
        if self.samples == 0:
            return x_map, info
        ub = u[best : best + 1] if is_hybrid else None
        mean, extra = posterior.sample(self, z[best], ub, y, op, adapter, float(data[best]), gen)
        extra["map"] = x_map[0]
        info.update(extra)
        return mean, info

    def _solve_upsampled(self, y, op, x0, gen, callback) -> tuple[torch.Tensor, dict[str, Any]]:
        """One measurement of images larger than the prior's (``grid: upsample``): :meth:`_solve` with ``A U`` on the
        prior's grid (``U`` carrying the measured phase), then the refinement at the image's size. ``info``'s
        ``map`` is ``U`` of the prior-grid MAP, ``std`` the prior-grid std linearly interpolated, ``u`` on the
        prior's grid."""
        from ...operators.resample import Upsample
        from ...priors.adapters import lowres_phase

        phi = lowres_phase(y, op) if self.phase == "lowres" and op.complex_domain else None
        shape = self.prior_image_shape(y.device, y.real.dtype)
        grid = PriorGrid.build(op, shape, upsample=self.upsample, prior_fov=self.prior_fov, phase=phi, like=y)
        small_cb = None if callback is None else (lambda step, img: callback(step, grid.up(img)))
        x, info = self._solve(y, grid.small, None if x0 is None else grid.to_small(x0), gen, small_cb, phase="zero")
        x = grid.refine(y, x, weight=self.anchor_weight, n_iter=self.refine_iter, nonneg=self.nonneg,
                        tv_weight=self.params.refine_weight)
        with torch.no_grad():
            if "map" in info:
                info["map"] = grid.up(info["map"][None])[0]
            if "std" in info:
                interp = Upsample(shape, tuple(op.domain_shape), kind="linear", fov=self.prior_fov).to(y.device)
                info["std"] = interp(info["std"][None].to(y.real.dtype))[0]
        info["grid"] = "upsample"
        return x, info

    def map_info(self, z, best: int, data, objective, y_norm: float, iterations: int, adapter) -> dict[str, Any]:
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


def _merge(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """One measurement: its info. Several: scalars as lists, tensors stacked along a new batch dim."""
    if len(infos) == 1:
        return infos[0]
    out: dict[str, Any] = {}
    for key in infos[0]:
        values = [i[key] for i in infos]
        out[key] = torch.stack(values, 0) if isinstance(values[0], torch.Tensor) else values
    return out
