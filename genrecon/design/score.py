"""Scoring candidate measurements by their expected information gain, from posterior samples.

Pure tensor functions: they know nothing of MRI or CT. A *candidate* is a group of measured values (a k-space
column, a CT view's detector row). From ``N`` posterior samples, the predicted values of every candidate are
centred and whitened by the noise, ``Z_c = (v_c - mean_c) / (sqrt(N - 1) sigma)`` (``(D, N)`` per candidate; a
complex value counts as two real ones, each with noise variance ``sigma^2 / 2``), so that ``Z_c Z_c^T`` is the
sample covariance of the candidate's values in units of the noise. Under the Gaussian approximation with that
covariance, measuring candidate ``c`` (values ``v_c + n``, ``n ~ N(0, sigma^2 I)``) gains

    joint:     IG_c = 1/2 log det(I + Z_c K Z_c^T) = 1/2 log det(I_N + L^T G_c L),  G_c = Z_c^T Z_c
    marginal:  IG_c = 1/2 sum_i log(1 + (Z_c K Z_c^T)_ii)          (each value as if alone: the issue's score)

nats, where ``K = L L^T`` (``N x N``) is the covariance of the sample weights: ``I`` before any choice of the
current round, and ``K <- (K^-1 + G_c)^-1`` after choosing ``c`` (the ensemble's Gaussian posterior once ``c``
is measured). Choosing a batch greedily with that update (``diversity: condition``) is the chain rule of
information: the next choice scores what is *left* to learn, so two redundant neighbours are not both taken.
For one-value candidates both scores equal the exact Gaussian gain ``1/2 log(1 + a^T Sigma a / sigma^2)`` as
``N`` grows (tests/test_design.py checks this against the closed form).
The gain of a whole set ``S`` chosen together is ``1/2 log det(I_N + sum_{c in S} G_c)`` (:func:`set_gain`: the
sample-covariance form of ``1/2 log det(I + C_S / sigma^2)``); the greedy conditioned gains of a batch add up to it.

``score: variance`` ranks by what PSNR measures instead: the expected reduction of the posterior's total image
variance (A-optimal design; sum over pixels, image units squared). With ``X`` the centred image samples
``(P, N) / sqrt(N - 1)`` it is ``tr(Q) - tr(Q (I + L^T G_c L)^-1)``, ``Q = L^T X^T X L`` (exact for a Gaussian).
``min_gap`` (the coverage rule) keeps every new choice at least that many grid steps from every measured or
already chosen candidate (circular for CT views), relaxed only when nothing else is left.
Limitation: the ensemble has rank ``N - 1``; with few samples (8) one well-measured candidate pins every weight, so
the conditioned gains of the rest of a batch are small and those choices nearly arbitrary (measured: batches of 2-4
designed worse than one candidate per round; a CT batch took views 95/96/97 degrees). ``min_gap`` fixes that for
CT views (batches of 4 with a 3-degree gap measured as good as one view per round; benchmarks/design.md); the
``variance`` score measured worse than ``marginal`` (MRI 8x and CT 30 views, one candidate per round).

Example:
    >>> import torch
    >>> z = whiten(torch.tensor([[[0.0], [2.0]], [[2.0], [0.0]]]), sigma=1.0)   # 2 samples, 2 candidates
    >>> [round(g, 6) for g in gains(z, score="marginal").tolist()]    # 1/2 log(1 + 2): one value each
    [0.549306, 0.549306]
    >>> select([z], torch.tensor([True, True]), 1)
    [(0, 0.5493061443340549)]
"""

from __future__ import annotations

import math
from typing import Literal

import torch

Score = Literal["marginal", "joint", "variance"]


def whiten(values: torch.Tensor, sigma: float) -> torch.Tensor:
    """Centred, noise-whitened candidate values ``Z``: ``(C, D, N)`` float64 (``2 D`` for complex values).

    Args:
        values: ``(N, C, D)`` predicted values of ``C`` candidates (``D`` values each) under ``N >= 2``
            posterior samples; real or complex.
        sigma: noise std per value (complex: ``E|n|^2 = sigma^2``, so ``sigma^2 / 2`` per real part), > 0.
    """
    n = values.shape[0]
    if n < 2:
        raise ValueError(f"whiten: needs at least 2 posterior samples, got {n}")
    if not sigma > 0:
        raise ValueError(f"whiten: the noise sigma must be > 0, got {sigma}")
    v = values.detach().to("cpu")
    if v.is_complex():
        v = torch.cat([v.real, v.imag], dim=-1).to(torch.float64)
        sigma_real = sigma / math.sqrt(2.0)
    else:
        v = v.to(torch.float64)
        sigma_real = sigma
    v = v - v.mean(dim=0, keepdim=True)
    return v.permute(1, 2, 0).contiguous() / (math.sqrt(n - 1) * sigma_real)


def compact(z: torch.Tensor) -> torch.Tensor:
    """``Z V`` with ``V`` an orthonormal basis of the row space of all candidates' ``Z`` stacked: the same gains and
    updates in ``min(N, C D)`` weights instead of ``N`` (exact; used when there are more samples than values)."""
    c, d, n = z.shape
    if n <= c * d:
        return z
    vh = torch.linalg.svd(z.reshape(c * d, n), full_matrices=False)[2]  # (C D, N)
    return z @ vh.T


def compact_pair(z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`compact` for the variance score: ``Z V`` and ``X V`` with ``V`` a basis of both row spaces (exact)."""
    c, d, n = z.shape
    if n <= c * d + x.shape[0]:
        return z, x
    vh = torch.linalg.svd(torch.cat([z.reshape(c * d, n), x]), full_matrices=False)[2]
    return z @ vh.T, x @ vh.T


def gram(z: torch.Tensor) -> torch.Tensor:
    """``G_c = Z_c^T Z_c``: ``(C, N, N)``."""
    return z.transpose(1, 2) @ z


def gains(z: torch.Tensor, factor: torch.Tensor | None = None, *, score: Score = "marginal",
          g: torch.Tensor | None = None) -> torch.Tensor:
    """Expected information gain (nats) of each candidate: ``(C,)`` float64 (module docstring).

    Args:
        z: ``(C, D, N)`` from :func:`whiten`.
        factor: ``L`` with ``K = L L^T`` (``(N, N)``), the weights' covariance after this round's earlier
            choices; None for ``I``.
        score: ``marginal`` (sum over values of ``1/2 log(1 + var / sigma^2)``) or ``joint`` (log-determinant).
        g: the Gram matrices ``gram(z)``, if already computed (joint only).
    """
    if score == "joint":
        g = gram(z) if g is None else g
        if factor is not None:
            g = factor.T @ g @ factor
        eye = torch.eye(g.shape[-1], dtype=g.dtype)
        return 0.5 * torch.linalg.slogdet(eye + g)[1]
    zl = z if factor is None else z @ factor
    return 0.5 * torch.log1p(zl.pow(2).sum(dim=-1)).sum(dim=-1)


def spread(images: torch.Tensor) -> torch.Tensor:
    """Centred image samples ``X`` ``(P, N)`` float64 over ``sqrt(N - 1)`` (complex: real and imaginary parts)."""
    v = images.detach().to("cpu").reshape(images.shape[0], -1)
    v = torch.cat([v.real, v.imag], dim=-1) if v.is_complex() else v
    v = v.to(torch.float64)
    return (v - v.mean(dim=0, keepdim=True)).T / math.sqrt(images.shape[0] - 1)


def variance_reductions(g: torch.Tensor, x: torch.Tensor, factor: torch.Tensor | None = None) -> torch.Tensor:
    """Expected reduction of the total posterior image variance by measuring each candidate: ``(C,)``.

    Args:
        g: ``gram(z)`` ``(C, N, N)``.
        x: :func:`spread` of the same samples ``(P, N)``.
        factor: ``L`` as in :func:`gains`.
    """
    xl = x if factor is None else x @ factor
    q = xl.T @ xl
    m = g if factor is None else factor.T @ g @ factor
    eye = torch.eye(m.shape[-1], dtype=m.dtype)
    # tr(Q) - tr(Q (I + M)^-1) = tr(Q (I + M)^-1 M)
    return torch.einsum("ij,cji->c", q, torch.linalg.solve(eye + m, m))


def set_gain(z: torch.Tensor, chosen: list[int]) -> float:
    """Information gain (nats) of measuring the candidates ``chosen`` together: ``1/2 log det(I + sum G_c)``."""
    if not chosen:
        return 0.0
    a = z[list(chosen)].reshape(-1, z.shape[-1])  # (|S| D, N)
    g = a @ a.T if a.shape[0] < a.shape[1] else a.T @ a  # the same determinant (Sylvester), the smaller side
    return 0.5 * float(torch.linalg.slogdet(torch.eye(g.shape[-1], dtype=g.dtype) + g)[1])


def circular_distance(n: int) -> torch.Tensor:
    """``(n, n)`` grid steps between candidates on a circle of ``n`` (CT view angles)."""
    i = torch.arange(n)
    d = (i[:, None] - i[None, :]).abs()
    return torch.minimum(d, n - d)


def line_distance(n: int) -> torch.Tensor:
    """``(n, n)`` grid steps between candidates on a line (k-space columns)."""
    i = torch.arange(n)
    return (i[:, None] - i[None, :]).abs()


def condition(factor: torch.Tensor | None, g_c: torch.Tensor) -> torch.Tensor:
    """``L'`` with ``L' L'^T = (K^-1 + G_c)^-1``: the weights' covariance once candidate ``c`` is measured."""
    n = g_c.shape[-1]
    eye = torch.eye(n, dtype=torch.float64)
    factor = eye if factor is None else factor
    inner = eye + factor.T @ g_c @ factor  # SPD
    chol = torch.linalg.cholesky((inner + inner.T) / 2)
    # (I + L^T G L)^-1 = C^-T C^-1 with C = chol: L' = L C^-T
    return torch.linalg.solve_triangular(chol, factor.T, upper=False).T


def select(zs: list[torch.Tensor], available: torch.Tensor, k: int, *, score: Score = "marginal",
           diversity: Literal["condition", "none"] = "condition", xs: list[torch.Tensor] | None = None,
           distance: torch.Tensor | None = None, min_gap: int = 0) -> list[tuple[int, float]]:
    """Choose ``k`` candidates greedily by the mean score over one or more ensembles (images).

    Args:
        zs: one ``Z`` ``(C, D, N_s)`` per image (one for adaptive design, many for a population design).
        available: bool ``(C,)``: candidates that may be chosen (not yet measured; the others count as measured
            for ``min_gap``).
        k: how many to choose (at most the number available).
        score: see :func:`gains`; ``variance`` needs ``xs``.
        diversity: ``condition`` (each choice updates the ensembles' Gaussian posterior: later choices score
            what is left) or ``none`` (the ``k`` best by the round's first scores).
        xs: :func:`spread` of each image's samples (``score: variance``).
        distance: ``(C, C)`` grid steps between candidates (``min_gap``).
        min_gap: a choice keeps at least this distance to every measured and chosen candidate while any
            available candidate does (0: off).

    Returns:
        ``[(candidate index, mean score when chosen), ...]`` in order of choice; ties go to the lowest index.
    """
    avail = available.clone().to(torch.bool)
    if k > int(avail.sum()):
        raise ValueError(f"select: {k} candidates asked, {int(avail.sum())} available")
    if score == "variance" and (xs is None or len(xs) != len(zs)):
        raise ValueError("select: score 'variance' needs the image samples (xs) of every ensemble")
    if min_gap > 0 and distance is None:
        raise ValueError("select: min_gap needs the candidates' distances")
    if score == "variance":  # the weights' basis changes: X follows it
        zs, xs = map(list, zip(*(compact_pair(z, x) for z, x in zip(zs, xs)))) if zs else (zs, xs)
    else:
        zs = [compact(z) for z in zs]
    grams = [gram(z) for z in zs]
    factors: list[torch.Tensor | None] = [None] * len(zs)
    taken = ~avail
    out: list[tuple[int, float]] = []
    first = None
    for _ in range(k):
        if diversity == "none" and first is not None:
            mean = first
        elif score == "variance":
            mean = torch.stack([variance_reductions(g, x, f) for g, x, f in zip(grams, xs, factors)]).mean(0)
        else:
            mean = torch.stack([gains(z, f, score=score, g=g) for z, f, g in zip(zs, factors, grams)]).mean(0)
        first = mean if first is None else first
        allowed = avail
        if min_gap > 0:
            far = (distance[:, taken] >= min_gap).all(dim=1) if bool(taken.any()) else avail
            allowed = avail & far if bool((avail & far).any()) else avail
        masked = torch.where(allowed, mean, torch.full_like(mean, -math.inf))
        best = int(torch.argmax(masked))  # the first maximum: the lowest index on ties
        out.append((best, float(mean[best])))
        avail[best] = False
        taken[best] = True
        if diversity == "condition":
            factors = [condition(f, g[best]) for f, g in zip(factors, grams)]
    return out
