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

Modules, one per algorithm: ``params`` (:class:`LatentParams`, the YAML ``params``), ``prior`` (the generator
checkpoint or module), ``csgm`` (the latent optimisation: Adam / L-BFGS over a batch of restarts, also the joint
stage of the hybrid), ``hybrid`` (the penalty on ``u``, its proximal steps, the FISTA polish and the penalty-only
fallback), ``anchored`` (``mode: anchored``), ``posterior`` (Laplace / Langevin sampling around the MAP) and
``reconstructor`` (the registered :class:`LatentInversion`, which picks among them). Each module's docstring gives
its algorithm.

Cost: one decoder forward and backward per iteration for the batch of restarts (a 2.1M-parameter ConvVAE at
128x128: about 75 ms per restart per iteration on one CPU core). The Hessian for sampling costs about ``k / 16``
double-backward passes over 16 copies: about a minute on a 2-core CPU for ``k = 128`` at 128x128.
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

from ...sampling.latent import (langevin_samples, laplace_samples, latent_hessian, posterior_factor,  # noqa: F401
                                randn_on, refine_mode, sqnorm)
from ...solvers.prox import soft_threshold  # noqa: F401  (the old import path)
from .csgm import PATIENCE
from .params import LatentParams
from .posterior import DECODE_CHUNK, MAX_CHAINS, coverage
from .prior import WHO, resolve_prior
from .reconstructor import LEVEL_SAMPLES, LatentInversion

__all__ = ["DECODE_CHUNK", "LEVEL_SAMPLES", "LatentInversion", "LatentParams", "MAX_CHAINS", "PATIENCE", "WHO",
           "coverage", "resolve_prior"]
