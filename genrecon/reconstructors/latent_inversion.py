"""``latent_inversion``: the old import path of :mod:`genrecon.reconstructors.latent` (the package, one module per
algorithm), kept with the same public names."""

from __future__ import annotations

from .latent import (DECODE_CHUNK, LEVEL_SAMPLES, MAX_CHAINS, PATIENCE, WHO, LatentInversion,  # noqa: F401
                     LatentParams, coverage, langevin_samples, laplace_samples, latent_hessian, posterior_factor,
                     randn_on, refine_mode, soft_threshold, sqnorm)

__all__ = ["DECODE_CHUNK", "LEVEL_SAMPLES", "LatentInversion", "LatentParams", "MAX_CHAINS", "PATIENCE", "WHO",
           "coverage", "langevin_samples", "laplace_samples", "latent_hessian", "posterior_factor", "refine_mode",
           "soft_threshold"]
