"""Sampling algorithms over callables (latent Laplace and Langevin samplers); below the priors, above the solvers."""

from .latent import langevin_samples, laplace_samples, latent_hessian, posterior_factor, refine_mode

__all__ = ["langevin_samples", "laplace_samples", "latent_hessian", "posterior_factor", "refine_mode"]
