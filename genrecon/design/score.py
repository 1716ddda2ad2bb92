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
Limitation: the ensemble has rank ``N - 1``; with few samples (8) one well-measured candidate pins every weight, so
the conditioned gains of the rest of a batch are small and those choices nearly arbitrary (measured: one candidate
per round designs better than batches of 2-4; benchmarks/design.md).

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

Score = Literal["marginal", "joint"]


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
           diversity: Literal["condition", "none"] = "condition") -> list[tuple[int, float]]:
    """Choose ``k`` candidates greedily by the mean gain over one or more ensembles (images).

    Args:
        zs: one ``Z`` ``(C, D, N_s)`` per image (one for adaptive design, many for a population design).
        available: bool ``(C,)``: candidates that may be chosen (not yet measured).
        k: how many to choose (at most the number available).
        score: see :func:`gains`.
        diversity: ``condition`` (each choice updates the ensembles' Gaussian posterior: later choices score
            what is left) or ``none`` (the ``k`` best by the round's first scores).

    Returns:
        ``[(candidate index, mean gain when chosen), ...]`` in order of choice; ties go to the lowest index.
    """
    avail = available.clone().to(torch.bool)
    if k > int(avail.sum()):
        raise ValueError(f"select: {k} candidates asked, {int(avail.sum())} available")
    zs = [compact(z) for z in zs]
    grams = [gram(z) for z in zs]
    factors: list[torch.Tensor | None] = [None] * len(zs)
    out: list[tuple[int, float]] = []
    first = None
    for _ in range(k):
        if diversity == "none" and first is not None:
            mean = first
        else:
            mean = torch.stack([gains(z, f, score=score, g=g) for z, f, g in zip(zs, factors, grams)]).mean(0)
            first = mean
        masked = torch.where(avail, mean, torch.full_like(mean, -math.inf))
        best = int(torch.argmax(masked))  # the first maximum: the lowest index on ties
        out.append((best, float(mean[best])))
        avail[best] = False
        if diversity == "condition":
            factors = [condition(f, g[best]) for f, g in zip(factors, grams)]
    return out
