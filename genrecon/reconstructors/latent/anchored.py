"""``mode: anchored``: the penalty on the image, the generator only pulling it towards its fit.

    x* = argmin_x ||A x - y||^2 + w R(x) + mu ||x - T(G(z))||^2      (mu = anchor_weight ||A||^2), alternated with
    z* = argmin_z ||G(z) - T^-1(x*)||^2 + lam ||z||^2                  (in the prior's units)

A generator whose images carry a texture error (CT here) still helps where the hybrid's ``R(x - G(z))`` would pay
for that texture and fall back. It starts from the penalty-only image (``x = u`` of the hybrid's fallback,
``max(hybrid_polish, 100)`` FISTA iterations), takes ``z`` from the encoder on it (``init: encoder``), then
``anchor_rounds`` times: ``steps / anchor_rounds`` Adam steps (cosine schedule) fitting ``G(z)`` to the current
image, then the same number of FISTA iterations as the start on the anchored objective from the current image.
The best restart has the lowest anchored objective; ``u_fraction`` is ``||x - T(G(z))|| / ||x||``. MAP only.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ...sampling.latent import sqnorm
from . import csgm, hybrid


def solve_anchored(recon, y, op, x0, gen, adapter) -> tuple[torch.Tensor, dict[str, Any]]:
    """The anchored estimate of one measurement ``y`` ``(1, ...)`` and its report (``recon``: the
    :class:`~genrecon.reconstructors.latent.LatentInversion` with its parameters and prior)."""
    device, rdtype = y.device, y.real.dtype
    cdtype = torch.complex128 if rdtype == torch.float64 else torch.complex64
    dtype = cdtype if op.complex_domain else rdtype
    n_iter = max(recon.hybrid_polish, 100)
    anchor = recon.anchor_weight * op.norm_squared(dtype=y.real.dtype, device=y.device)
    with torch.no_grad():  # the penalty alone: what `hybrid_fallback` computes
        x = hybrid.polish(recon, None, op.domain_zeros(1, dtype=dtype, device=device), y, op, n_iter)
    z = csgm.initial_latents(recon, y, op, adapter, x if x0 is None else x0, gen, device, rdtype)
    x = x.expand(recon.restarts, *x.shape[1:]).clone()
    per_round = max(1, recon.steps // recon.anchor_rounds)
    for _ in range(recon.anchor_rounds):
        # (a) the generator fitted to the current images, in the prior's units
        target = adapter.from_domain(x).clamp(0.0, 1.0).to(rdtype)
        z = z.detach().requires_grad_(True)
        opt = torch.optim.Adam([z], lr=recon.lr)
        for it in range(per_round):
            for group in opt.param_groups:
                group["lr"] = recon.lr * 0.5 * (1.0 + math.cos(math.pi * it / per_round))
            opt.zero_grad(set_to_none=True)
            fit = (recon.decode(z) - target).square().flatten(1).sum(1) + recon.lam * z.square().sum(1)
            fit.sum().backward()
            opt.step()
        # (b) the images anchored to T(G(z))
        with torch.no_grad():
            x = hybrid.polish(recon, None, x, y, op, n_iter, anchor=anchor, centre=recon.image(z.detach(), adapter))
    with torch.no_grad():
        z = z.detach()
        base = recon.image(z, adapter)
        data = sqnorm(op(x) - y)
        objective = data + hybrid.penalty(recon, x) + anchor * sqnorm(x - base)
    best = int(torch.argmin(objective))
    u = (x - base)[best]
    info = recon.map_info(z, best, data, objective, csgm.data_norm(y), per_round * recon.anchor_rounds, adapter)
    info.update(anchor_rounds=recon.anchor_rounds, u=u,
                u_fraction=float(u.abs().norm() / x[best].abs().norm().clamp(min=1e-30)))
    return x[best : best + 1], info
