"""The DPS step (``consistency: none``, Chung et al., ICLR 2023): the gradient of the residual norm through the
denoiser.

``x_{t-1} = step(x_t, x0_hat(x_t)) - zeta * grad_{x_t} ||y - A D(x0_hat(x_t))||``: the gradient of the
(unsquared) norm, i.e. the paper's ``zeta_i = zeta' / ||y - A x0_hat||`` applied to the squared norm. ``D`` maps
the prior's model space to the operator's image domain, so k-space and sinograms work alike.
"""

from __future__ import annotations

import torch


def batch_norm(r: torch.Tensor) -> torch.Tensor:
    """Per-sample Euclidean norm over all but the first dimension (real or complex)."""
    return torch.linalg.vector_norm(r.reshape(r.shape[0], -1), dim=1)


def gradient_step(dps, x, t, t_next, yb, op, bounds, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """One DPS step of the sampler ``dps`` (a :class:`~genrecon.reconstructors.dps.DPS`) from ``t`` to ``t_next``:
    ``(x_{t_next}, x0_hat)``. ``bounds``: the prior's range in model space (``clip``)."""
    sched, (lo, hi) = dps.prior.schedule, bounds
    with torch.enable_grad():
        xt = x.detach().requires_grad_(True)
        x0_hat, eps = dps.prior.predict(xt, t)
        if dps.clip:
            x0_hat = x0_hat.clamp(lo, hi)
        residual = yb - op(dps.to_domain(x0_hat, op))
        norms = batch_norm(residual)
        (grad,) = torch.autograd.grad(norms.sum(), xt)
    x0_hat, eps = x0_hat.detach(), eps.detach()
    if dps.clip:
        eps = sched.eps_from_x0(x, x0_hat, sched.as_batch(t, x))
    return sched.step(x, x0_hat, eps, t, t_next, eta=dps.eta, generator=gen) - dps.zeta * grad, x0_hat
