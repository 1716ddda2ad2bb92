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

Modules: ``params`` (:class:`DPSParams`, the YAML ``params``), ``gradient`` (the DPS step), ``projected`` (the
data-consistent step and the start image), ``sampler`` (the registered :class:`DPS`: the loop over steps and
rounds).
"""

from __future__ import annotations

from ...solvers.cg import conjugate_gradient  # noqa: F401  (the old import path)
from .gradient import gradient_step
from .params import DPSParams
from .projected import INIT_ITER, data_consistency, projected_step
from .sampler import DPS

__all__ = ["DPS", "DPSParams", "INIT_ITER", "data_consistency", "gradient_step", "projected_step"]
