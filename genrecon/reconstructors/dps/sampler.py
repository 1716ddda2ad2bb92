"""The registered ``dps`` reconstructor: the sampling loop shared by the gradient and the projected variant."""

from __future__ import annotations

import torch

from ...errors import CheckpointError, ShapeError
from ...registry import RECONSTRUCTORS
from ...solvers.tv import TVProx
from ..base import Reconstructor
from ..grid import PriorGrid, check_grid, clamp_range
from ..safeguard import finish
from .gradient import gradient_step
from .params import DPSParams
from .projected import projected_step, start_image
from .safeguard import pooled_std


@RECONSTRUCTORS.register("dps")
class DPS(Reconstructor):
    """Diffusion posterior sampling with a diffusion prior; `consistency: project` is the fast CG variant.

    Parameters: :class:`~genrecon.reconstructors.dps.DPSParams` (the YAML ``params``; ``genrecon list
    reconstructors --json`` shows each with its type, default and doc). ``consistency: none`` takes
    :func:`~genrecon.reconstructors.dps.gradient.gradient_step` at each step, ``project``
    :func:`~genrecon.reconstructors.dps.projected.projected_step`; ``init_time < 1`` starts part-way down the
    trajectory from a noised image and ``rounds`` repeat that from the previous mean (the package docstring).

    ``grid: upsample`` samples on the prior's grid through ``A U`` and refines each sample at the image's size
    (:mod:`genrecon.reconstructors.grid`); the callback's estimates are ``U x0_hat``.

    ``info``: ``nfe``, ``phase``, ``n_samples``, ``steps``, ``consistency``, ``tv_weight`` (and its old key ``tv``),
    ``rounds``, ``grid`` (``same`` or ``upsample``); with ``samples > 1`` ``std`` (the samples' per-pixel std, or with
    ``std_calibration: pooled`` the calibrated one and ``std_kappa``) and ``samples`` (if at most 16); with
    ``safeguard: residual`` ``safeguard_rho``, ``safeguard_anchor``, ``safeguard_fired``
    (:mod:`~genrecon.reconstructors.dps.safeguard`).
    """

    #: one measurement per call (the samples of one case are the batch)
    supports_batch = False
    who = "dps"
    Params = DPSParams

    def __init__(self, **params):
        super().__init__(**params)
        prior = self.prior
        self._rotor = None
        if isinstance(prior, torch.nn.Module):
            self.prior, self.prior_meta = prior, {"kind": getattr(prior, "kind", "diffusion")}
            if getattr(prior, "kind", "diffusion") != "diffusion":
                raise CheckpointError(f"dps needs a 'diffusion' prior, got a '{prior.kind}' prior")
        else:
            from ...priors.checkpoint import load_prior

            self.prior, self.prior_meta = load_prior(prior, kind="diffusion", purpose="dps")
        self.prior_name = str(prior) if not isinstance(prior, torch.nn.Module) else type(prior).__name__

    def to(self, device) -> "DPS":
        self.prior = self.prior.to(device)
        return self

    # -- mapping between the prior's model space and the operator's image domain -------------------
    def check(self, op) -> bool:
        """Refuse an operator whose images are not the prior's ``(C, S, S)`` (``grid: upsample``: or larger);
        return whether they are larger."""
        size = self.prior.image_size
        dom = op.domain_shape
        if self.grid == "upsample" and len(dom) == 3 and dom[0] == self.prior.channels:
            return check_grid(op, (self.prior.channels, size, size), self.grid, "dps", f"'{self.prior_name}'")
        if len(dom) != 3 or dom[0] != self.prior.channels or dom[1:] != (size, size):
            raise ShapeError(
                f"dps: prior '{self.prior_name}' makes {self.prior.channels}x{size}x{size} images but the operator's "
                f"images are {'x'.join(map(str, dom))}: set data.size: {size} (or train a prior of that size"
                + (", or set grid: upsample)" if len(dom) == 3 and min(dom[1:]) > size else ")")
            )
        return False

    def to_domain(self, x_model: torch.Tensor, op) -> torch.Tensor:
        """``D``: the prior's model space to the operator's image domain (``[-1, 1] -> [0, 1] * intensity_scale``,
        complex with zero phase, or the low-resolution phase, for MRI)."""
        img = self.prior.to_image(x_model) * self.intensity_scale
        if not op.complex_domain:
            return img
        img = img.to(torch.complex64 if img.dtype == torch.float32 else torch.complex128)
        return img if self._rotor is None else img * self._rotor.to(device=img.device, dtype=img.dtype)

    def from_domain(self, x: torch.Tensor) -> torch.Tensor:
        """``D^-1``: an image of the operator's domain in the prior's model space."""
        if x.is_complex() and self._rotor is not None:
            x = x * self._rotor.to(device=x.device, dtype=x.dtype).conj()
        img = x.real if x.is_complex() else x
        return self.prior.to_model(img / self.intensity_scale)

    # -- sampling -------------------------------------------------------------------------------
    def reconstruct(self, y, op, *, x0=None, generator=None, callback=None):
        upsampled = self.check(op)
        full_op = op
        self._rotor, phi, grid = None, None, None
        if self.phase == "lowres" and op.complex_domain:
            from ...priors.adapters import lowres_phase

            phi = lowres_phase(y, op)
            if not upsampled:
                self._rotor = torch.polar(torch.ones_like(phi), phi)
        if upsampled:  # solve with A U on the prior's grid (U carries the measured phase)
            size = self.prior.image_size
            grid = PriorGrid.build(op, (self.prior.channels, size, size), upsample=self.upsample,
                                   prior_fov=self.prior_fov, phase=phi, like=y)
            op, user_callback = grid.small, callback
            if x0 is not None:
                x0 = grid.to_small(x0)
            if user_callback is not None:
                def callback(step, img):
                    user_callback(step, grid.up(img))
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
        project = self.consistency == "project"
        aty = op.adjoint(yb) if project else None
        # ||A||^2 (cached on the operator), estimated in float32 or float64 whatever the prior's precision
        lip = op.norm_squared(dtype=torch.float32 if dtype == torch.float32 else torch.float64,
                              device=device) if project else None
        tv_prox = TVProx(self.tv_weight, 5, nonneg=self.nonneg) if self.tv_weight > 0 or self.nonneg else None

        def noised(image: torch.Tensor, first: int) -> torch.Tensor:
            """``image`` (domain) in model space with the noise of ``ts[first]`` (CCDF's start)."""
            x_init = self.from_domain(image)
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
                x = noised(start_image(op, aty, gamma=self.gamma * lip, lip=lip, tv_prox=tv_prox), first)
            for i in range(first, self.steps):
                if project:
                    x, x0_hat = projected_step(self, x, ts[i], ts[i + 1], op, aty, lip, tv_prox, (lo, hi), gen)
                else:
                    x, x0_hat = gradient_step(self, x, ts[i], ts[i + 1], yb, op, (lo, hi), gen)
                nfe += 1
                if callback is not None:  # the contract: an image-space estimate
                    callback(nfe, self.to_domain(x0_hat, op))
            # the terminal state is x0 (the last step goes to the clean time)
            final = x.detach()
            if self.clip:
                final = final.clamp(lo, hi)
            images = self.to_domain(final, op)
        if grid is not None:  # each sample refined at the image's size
            images = grid.refine(y.to(device), images, weight=self.gamma, n_iter=self.refine_iter, nonneg=self.nonneg,
                                 tv_weight=self.params.refine_weight)
            if self.clip:  # the prior's range, as the samples at the prior's size
                images = clamp_range(images, self.intensity_scale, keep_phase=phi is not None)
        safeguard = {}
        if self.safeguard == "residual":  # the finish at the image's size, after the grid's refinement
            images, safeguard = finish(self, images, y.to(device), full_op, own_gamma=self.gamma)
            if self.clip:
                images = clamp_range(images, self.intensity_scale, keep_phase=phi is not None)
        mags = images.abs() if phi is not None else images.real if images.is_complex() else images
        self.info.update(nfe=nfe, phase=self.phase, n_samples=n, steps=self.steps, consistency=self.consistency,
                         tv_weight=self.tv_weight, rounds=self.rounds,
                         grid="upsample" if grid is not None else "same")
        self.info["tv"] = self.tv_weight  # the old key of tv_weight, kept while the parameter tv is
        self.info.update(safeguard)
        if n > 1 and self.std_calibration == "pooled":
            self.info["std"], self.info["std_kappa"] = pooled_std(mags, images, y.to(device), full_op,
                                                                  pool=self.std_pool, noise_sigma=self.noise_sigma)
        elif n > 1:
            self.info["std"] = mags.std(dim=0, unbiased=True)
        if 1 < n <= 16:
            self.info["samples"] = mags.detach().cpu()
        est = images.mean(dim=0, keepdim=True) if self.estimate == "mean" else images[:1]
        return est
