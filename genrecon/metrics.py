"""Image quality metrics on magnitudes of complex images and on real images as they are, with an explicit ``data_range``.

Conventions (stated in every report):
- metrics compare magnitudes ``|x|`` of complex images (MRI) and real images as they are (CT: a negative
  undershoot counts as error, it is not folded to ``|x|``);
- ``data_range`` is a required number: the pipeline derives it from the config's rule — ``volume_max``
  (fastMRI: the maximum of the reference over the whole volume), ``max`` (the reference slice's maximum),
  ``range`` (DIVal: reference max - min over the volume) or a fixed value;
- SSIM is scikit-image's ``structural_similarity`` with a 7x7 uniform window, as the fastMRI evaluation uses.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .errors import ShapeError


def _magnitude(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.abs() if x.is_complex() else x
        return x.to(torch.float64).numpy()
    x = np.asarray(x)
    return np.abs(x).astype(np.float64) if np.iscomplexobj(x) else x.astype(np.float64)


def _pair(x, ref):
    a, b = _magnitude(x), _magnitude(ref)
    a, b = np.squeeze(a), np.squeeze(b)
    if a.shape != b.shape:
        raise ShapeError(f"metrics: estimate {a.shape} and reference {b.shape} differ in shape")
    return a, b


def psnr(x, ref, data_range: float) -> float:
    """``10 log10(data_range^2 / MSE(|x|, |ref|))`` in dB."""
    a, b = _pair(x, ref)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def nmse(x, ref, data_range: float | None = None) -> float:
    """``||x| - |ref||^2 / ||ref||^2`` (does not depend on data_range)."""
    a, b = _pair(x, ref)
    return float(np.sum((a - b) ** 2) / max(np.sum(b**2), 1e-30))


def ssim(x, ref, data_range: float) -> float:
    """Structural similarity (scikit-image, 7x7 uniform window) of 2-D images (magnitudes of complex ones)."""
    from skimage.metrics import structural_similarity

    a, b = _pair(x, ref)
    if a.ndim != 2:
        raise ShapeError(f"ssim: expected 2-D images after squeezing, got {a.shape}")
    return float(structural_similarity(b, a, data_range=data_range, win_size=7))


def coverage(estimate, truth, std, k: float = 2.0) -> float:
    """Fraction of pixels whose magnitude error lies within ``k`` posterior standard deviations:
    ``mean(||estimate| - |truth|| <= k std)`` (the one 2-sigma coverage of the reports and benchmarks).

    For a calibrated Gaussian posterior of real images, ``k = 2`` covers 95.4 % of the pixels. ``std`` is the
    per-pixel standard deviation of the samples' magnitudes (what ``dps`` and ``latent_inversion`` store).
    """
    a, b = _pair(estimate, truth)
    s = np.squeeze(_magnitude(std))
    if s.shape != a.shape:
        raise ShapeError(f"coverage: std {s.shape} and reference {b.shape} differ in shape")
    return float(np.mean(np.abs(a - b) <= k * s))


METRICS = {"psnr": psnr, "ssim": ssim, "nmse": nmse}


def volume_metrics(estimates, references, data_range: float, metrics=("psnr", "ssim", "nmse")) -> dict:
    """Metrics of one volume as fastMRI's ``evaluate.py`` computes them: PSNR and NMSE over all the volume's
    voxels (``10 log10(R^2 / MSE_volume)``, ``||x - ref||^2 / ||ref||^2``), SSIM the mean of the slices' SSIM.

    Args:
        estimates: the volume's slices ``[(H, W), ...]`` (magnitudes are compared).
        references: the reference slices, in the same order.
        data_range: ``R`` (fastMRI: the reference volume's maximum).
        metrics: which to compute.

    Returns:
        ``{metric: value}``; a metric that is undefined (``R = 0``, an all-zero reference) is None.
    """
    a = np.stack([_pair(e, r)[0] for e, r in zip(estimates, references)])
    b = np.stack([_pair(e, r)[1] for e, r in zip(estimates, references)])
    out: dict = {}
    for m in metrics:
        if m == "psnr":
            mse = float(np.mean((a - b) ** 2))
            out[m] = None if not data_range > 0 or mse == 0 else 10.0 * math.log10(data_range**2 / mse)
        elif m == "nmse":
            den = float(np.sum(b**2))
            out[m] = None if den == 0 else float(np.sum((a - b) ** 2) / den)
        elif m == "ssim":
            out[m] = None if not data_range > 0 else float(np.mean([ssim(x, r, data_range) for x, r in zip(a, b)]))
    return out
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "nmse": False}
