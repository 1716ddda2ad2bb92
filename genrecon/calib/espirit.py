"""ESPIRiT coil sensitivities (Uecker et al., MRM 71:990, 2014), computed as BART's ``ecalib`` does.

1. Calibration matrix ``A``: one row per ``k x k`` patch of the (at most ``max_calib`` square) central
   ACS block, all coils side by side (a block-Hankel matrix, ``(patches, C k^2)``).
2. SVD ``A = U S V^H``: every patch is a combination of the rows ``v_j`` of ``V^H``; those with
   ``(s_j / s_1)^2 > threshold`` span the signal subspace (BART keeps ``s_j / s_1 > sqrt(t)``), and
   ``P = sum_j v_j v_j^H`` leaves every patch unchanged.
3. Averaging ``P`` over the ``k^2`` patches that hold a k-space sample makes a convolution; in image space it
   is a ``C x C`` matrix per pixel ``r`` (centred coordinates, the :func:`~genrecon.operators.fft.fft2c`
   convention)

       G(r) = k^-2 sum_j v~_j(r) v~_j(r)^H,   v~_j(r)_c = sum_n v_j[c, n] exp(2 pi i <n, r / (H, W)>)

   whose coil images satisfy ``G(r) x(r) = x(r)``: the sensitivities are the eigenvectors of eigenvalue 1.
   ``G`` is a trigonometric polynomial of degree ``k - 1``: its ``(2k - 1)^2`` Fourier coefficients are found
   on a small ``2k x 2k`` grid and summed exactly on the full grid (BART's ``sinc_zeropad``).
4. Per pixel, the eigenvector of the largest eigenvalue (batched ``torch.linalg.eigh``); maps are zeroed
   where that eigenvalue is below ``crop`` (BART's hard crop ``-c``).
5. Phase: each pixel's vector is rotated so that its projection on the first principal component of the
   calibration data (a virtual coil) is real and positive (BART's ``rotphase``, on by default): smooth maps.

Defaults are BART's: ``ecalib -k 6 -r 24 -t 0.001 -c 0.8`` (one set of maps, ``-m 1``).

Example:
    >>> import torch
    >>> k = torch.randn(4, 32, 32, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    >>> maps, eig = espirit_maps(k, acs=(slice(8, 24), slice(8, 24)), crop=0.0)
    >>> maps.shape, eig.shape
    (torch.Size([4, 32, 32]), torch.Size([32, 32]))
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError, DataError
from .acs import check_kspace, resolve_acs

_CHUNK = 1 << 21
"""About this many complex entries of per-pixel Gram matrices are decomposed at a time (memory bound)."""


def _check_params(kernel, threshold, crop, max_calib) -> None:
    problems = []
    if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1:
        problems.append(f"kernel must be an integer >= 1, got {kernel!r}")
    for name, value in (("threshold", threshold), ("crop", crop)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            problems.append(f"{name} must be a number in [0, 1), got {value!r}")
    if max_calib is not None and (isinstance(max_calib, bool) or not isinstance(max_calib, int) or max_calib < 1):
        problems.append(f"max_calib must be an integer >= 1 or None, got {max_calib!r}")
    if problems:
        raise ConfigError([f"espirit_maps: {p}" for p in problems])


def _centre_block(start: int, stop: int, size: int, limit: int | None) -> tuple[int, int]:
    """The ``min(stop - start, limit)`` indices of ``[start, stop)`` closest to the k-space centre ``size // 2``."""
    n = stop - start if limit is None else min(stop - start, limit)
    lo = min(max(size // 2 - n // 2, start), stop - n)
    return lo, lo + n


def calibration_kernels(calib: torch.Tensor, kernel: int, threshold: float) -> torch.Tensor:
    """Signal-subspace kernels of the block-Hankel calibration matrix of ``calib``.

    Args:
        calib: the calibration block ``(C, h, w)`` complex, ``h, w >= kernel``.
        kernel: patch side ``k``.
        threshold: keep the right singular vectors with ``(s_j / s_1)^2 > threshold``.

    Returns:
        ``(J, C, k, k)`` complex128: the kept rows of ``V^H`` (they span the patches), ``J >= 1``.

    Example:
        >>> import torch
        >>> cal = torch.randn(2, 8, 8, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
        >>> calibration_kernels(cal, 3, 0.0).shape  # 36 patches of 2 x 3 x 3 values: rank 18
        torch.Size([18, 2, 3, 3])
    """
    c = calib.shape[0]
    patches = calib.to(torch.complex128).unfold(1, kernel, 1).unfold(2, kernel, 1)  # (C, ph, pw, k, k)
    a = patches.permute(1, 2, 0, 3, 4).reshape(-1, c * kernel * kernel)
    _, s, vh = torch.linalg.svd(a, full_matrices=False)
    if not bool(s[0] > 0):
        raise DataError("espirit_maps: the calibration region holds no signal (all zeros)")
    n = int(((s / s[0]).square() > threshold).sum())
    return vh[:n].reshape(n, c, kernel, kernel)  # patch^T = sum_j (u s)_j vh_j: the rows span the patches


def gram_coefficients(kernels: torch.Tensor) -> torch.Tensor:
    """Fourier coefficients ``Q[d]`` of ``G(r) = sum_d Q[d] exp(2 pi i <d, r / (H, W)>)``.

    ``Q[d]_{c c'} = k^-2 sum_j sum_{n - n' = d} v_j[c, n] conj(v_j[c', n'])``, computed with FFTs on a
    ``2k x 2k`` grid (no aliasing: ``|d| <= k - 1``).

    Args:
        kernels: ``(J, C, k, k)`` complex, from :func:`calibration_kernels`.

    Returns:
        ``(C, C, 2k - 1, 2k - 1)`` complex, ``d`` from ``-(k - 1)`` to ``k - 1`` along the last two axes.

    Example:
        >>> import torch
        >>> q = gram_coefficients(torch.ones(1, 1, 2, 2, dtype=torch.complex128) / 2)
        >>> q[0, 0].real  # autocorrelation of a 2 x 2 box, over k^2 = 4 and |v|^2 = 1
        tensor([[0.0625, 0.1250, 0.0625],
                [0.1250, 0.2500, 0.1250],
                [0.0625, 0.1250, 0.0625]], dtype=torch.float64)
    """
    j, c, k, _ = kernels.shape
    m = 2 * k
    padded = kernels.new_zeros(j, c, m, m)
    padded[..., :k, :k] = kernels
    vt = torch.fft.ifft2(padded, norm="forward")  # sum_n v[n] exp(+2 pi i n rho / m), no scaling
    gram = torch.einsum("jcxy,jdxy->cdxy", vt, vt.conj())  # G on the m x m grid, times k^2
    coef = torch.fft.fft2(gram, norm="forward") / (k * k)
    d = torch.arange(-(k - 1), k) % m
    return coef[:, :, d][:, :, :, d]


def _phases(n: int, k: int, dtype: torch.dtype, device) -> torch.Tensor:
    """``(2k - 1, n)``: ``exp(2 pi i d (i - n // 2) / n)`` for ``d = -(k - 1) .. k - 1``, pixel ``i``."""
    d = torch.arange(-(k - 1), k, dtype=torch.float64)[:, None]
    r = (torch.arange(n, dtype=torch.float64) - n // 2)[None, :]
    return torch.polar(torch.ones_like(d * r), 2 * math.pi * d * r / n).to(device=device, dtype=dtype)


def espirit_maps(
    kspace: torch.Tensor,
    *,
    acs=None,
    kernel: int = 6,
    threshold: float = 0.001,
    crop: float = 0.8,
    max_calib: int | None = 24,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ESPIRiT coil sensitivities: per pixel, the eigenvector of eigenvalue ~1 of ``G(r)`` (module docstring).

    ``G(r) S(r) = lambda(r) S(r)``, ``lambda`` the largest eigenvalue (``<= 1``); ``S = 0`` where ``lambda < crop``.

    Args:
        kspace: multi-coil k-space ``(C, H, W)``, complex64 or complex128, zeros where not sampled; only the
            calibration block is read.
        acs: the ACS block: ``None`` finds it in ``kspace``; a mask finds it there; or ``(rows, cols)``
            slices from :func:`~genrecon.calib.acs.acs_region`.
        kernel: patch side ``k`` (BART ``-k``, default 6).
        threshold: keep kernels with ``(s_j / s_1)^2 > threshold`` (BART ``-t``, default 0.001).
        crop: zero the maps where the eigenvalue is below this (BART ``-c``, default 0.8; 0 keeps all).
        max_calib: at most this many central rows and columns of the ACS are used (BART ``-r``, default 24;
            ``None`` uses the whole block).

    Returns:
        ``(maps, eigenvalues)``: maps ``(C, H, W)`` of the dtype of ``kspace``, unit norm over coils where
        kept; the largest eigenvalue per pixel ``(H, W)``, real of the matching precision.

    Raises:
        DataError: no ACS region, a calibration block smaller than the kernel, or no signal in it.

    Example:
        >>> import torch
        >>> k = torch.randn(2, 24, 24, dtype=torch.complex128, generator=torch.Generator().manual_seed(1))
        >>> maps, eig = espirit_maps(k, acs=(slice(6, 18), slice(6, 18)), kernel=4, crop=0.0)
        >>> bool(torch.allclose(maps.abs().square().sum(0), torch.ones(24, 24, dtype=torch.float64)))
        True
    """
    kspace = check_kspace(kspace, "espirit_maps")
    _check_params(kernel, threshold, crop, max_calib)
    c, h, w = kspace.shape
    r0, r1, c0, c1 = resolve_acs(kspace, acs, "espirit_maps")
    r0, r1 = _centre_block(r0, r1, h, max_calib)
    c0, c1 = _centre_block(c0, c1, w, max_calib)
    if min(r1 - r0, c1 - c0) < kernel:
        raise DataError(f"espirit_maps: the calibration region is {r1 - r0} x {c1 - c0}, smaller than the "
                        f"{kernel} x {kernel} kernel; use a smaller kernel, a wider fully sampled centre or "
                        f"lowres maps")
    calib = kspace[:, r0:r1, c0:c1]
    kernels = calibration_kernels(calib, kernel, float(threshold))
    lower = torch.tril_indices(c, c, device=kspace.device)
    coef = gram_coefficients(kernels)[lower[0], lower[1]].to(kspace.dtype)  # (T, D, D), lower triangle
    phase_w = _phases(w, kernel, kspace.dtype, kspace.device)
    phase_h = _phases(h, kernel, kspace.dtype, kspace.device).T  # (H, D)
    along_w = coef @ phase_w  # (T, D, W)

    # virtual coil of BART's rotphase: the first principal component of the calibration data
    flat = calib.reshape(c, -1).to(torch.complex128)
    virtual = torch.linalg.eigh(flat @ flat.mH)[1][:, -1].to(kspace.dtype)

    maps = kspace.new_empty(h, w, c)
    eig = kspace.real.new_empty(h, w)
    rows = max(1, _CHUNK // (w * c * c))
    for y0 in range(0, h, rows):
        y1 = min(h, y0 + rows)
        values = (phase_h[y0:y1] @ along_w).permute(1, 2, 0).reshape(-1, lower.shape[1])  # (pixels, T)
        gram = kspace.new_zeros(values.shape[0], c, c)
        gram[:, lower[0], lower[1]] = values
        lam, vec = torch.linalg.eigh(gram)  # reads the lower triangle; ascending eigenvalues
        maps[y0:y1] = vec[:, :, -1].reshape(y1 - y0, w, c)
        eig[y0:y1] = lam[:, -1].reshape(y1 - y0, w)
    proj = maps @ virtual.conj()  # (H, W): projection on the virtual coil
    rotate = torch.where(proj.abs() > 0, proj.conj() / proj.abs(), torch.ones_like(proj))
    maps = maps * (rotate * (eig >= crop))[..., None]
    return maps.permute(2, 0, 1).contiguous(), eig
