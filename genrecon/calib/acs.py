"""The auto-calibration region (ACS) of Cartesian k-space, and low-resolution coil maps computed from it.

The ACS is the fully sampled block of k-space around its centre ``(H // 2, W // 2)``: for line masks
(columns = phase-encoding lines, the last axis) all rows of the contiguous run of sampled columns around
the centre column; for 2-D masks the largest centred box found by growing a rectangle from the centre,
one row or column per side at a time, while the new edge is fully sampled (as BART's ``calib_geom``).

The low-resolution maps are the "cheap option" (as fastMRI's VarNet initialises its sensitivities):

    S_c = I_c rss / (rss^2 + (floor * max rss)^2),   I_c = F^H (w . y_c|ACS),   rss = sqrt(sum_c |I_c|^2)

so ``S_c ~ I_c / rss`` (``sum_c |S_c|^2 ~ 1``) where the low-resolution image is bright and ``S_c -> 0``
where it is dark.

Example:
    >>> import torch
    >>> mask = torch.zeros(16, 32, dtype=torch.bool); mask[:, 12:20] = True; mask[:, ::4] = True
    >>> acs_region(mask)
    (slice(0, 16, None), slice(12, 21, None))
"""

from __future__ import annotations

import torch

from ..errors import ConfigError, DataError, ShapeError, did_you_mean
from ..operators.fft import ifft2c

MIN_ACS_SIZE = 4
"""A fully sampled central block narrower (or lower) than this is not an auto-calibration region."""

WINDOWS = ("hann", "none")
"""Windows applied to the ACS block by :func:`lowres_maps`."""

Acs = tuple[slice, slice]


def check_kspace(kspace: torch.Tensor, who: str) -> torch.Tensor:
    """Validate multi-coil k-space ``(C, H, W)`` complex with finite values and return it."""
    if not isinstance(kspace, torch.Tensor):
        raise ShapeError(f"{who}: k-space must be a torch.Tensor (coils, H, W), got {type(kspace).__name__}")
    if kspace.dim() != 3 or not kspace.is_complex():
        raise ShapeError(f"{who}: k-space must be complex (coils, H, W), got {kspace.dtype} "
                         f"{tuple(kspace.shape)} (single-coil data: add a coil axis, kspace[None])")
    if kspace.numel() == 0:
        raise ShapeError(f"{who}: k-space is empty, shape {tuple(kspace.shape)}")
    if not bool(torch.isfinite(kspace).all()):
        raise DataError(f"{who}: k-space holds NaN or infinite values")
    return kspace


def _sampled(kspace_or_mask: torch.Tensor) -> torch.Tensor:
    """Bool ``(H, W)`` (or ``(1, W)`` for a 1-D column mask) of sampled k-space locations."""
    t = kspace_or_mask
    if not isinstance(t, torch.Tensor):
        raise ShapeError(f"acs_region: expected k-space (coils, H, W) or a mask (H, W) / (W,), "
                         f"got {type(t).__name__}")
    if t.is_complex():
        if t.dim() == 2:
            t = t[None]
        if t.dim() != 3:
            raise ShapeError(f"acs_region: complex k-space must be (coils, H, W) or (H, W), got {tuple(t.shape)}")
        return (t != 0).any(dim=0)
    if t.dim() not in (1, 2):
        raise ShapeError(f"acs_region: a mask must be (H, W) or (W,) (columns), got {tuple(t.shape)}")
    return (t != 0).reshape(-1, t.shape[-1])


def acs_region(kspace_or_mask: torch.Tensor) -> Acs:
    """Find the fully sampled central block of k-space (the auto-calibration region).

    Args:
        kspace_or_mask: complex k-space ``(C, H, W)`` or ``(H, W)`` (sampled = nonzero in some coil), or a
            sampling mask, bool or 0/1 real, ``(H, W)`` or ``(W,)`` (columns, every row sampled).

    Returns:
        ``(rows, cols)`` slices with step 1 such that ``kspace[..., rows, cols]`` is the block; for a 1-D
        mask ``rows`` is ``slice(None)`` (all rows).

    Raises:
        DataError: the centre is not sampled or the block is smaller than ``MIN_ACS_SIZE`` (one line).

    Example:
        >>> import torch
        >>> cols = torch.zeros(64, dtype=torch.bool); cols[28:36] = True
        >>> acs_region(cols)
        (slice(None, None, None), slice(28, 36, None))
    """
    sampled = _sampled(kspace_or_mask).cpu()  # many small look-ups: no device round trips
    h, w = sampled.shape
    r0, r1, c0, c1 = h // 2, h // 2 + 1, w // 2, w // 2 + 1
    if not bool(sampled[r0, c0]):
        raise DataError(f"no auto-calibration region: the k-space centre (row {r0}, column {c0}) is not sampled; "
                        f"use a mask with a fully sampled centre (center_fraction > 0) or give coil maps")
    grow = [True, True, True, True]  # top, bottom, left, right
    while any(grow):
        if grow[0]:
            grow[0] = r0 > 0 and bool(sampled[r0 - 1, c0:c1].all())
            r0 -= grow[0]
        if grow[1]:
            grow[1] = r1 < h and bool(sampled[r1, c0:c1].all())
            r1 += grow[1]
        if grow[2]:
            grow[2] = c0 > 0 and bool(sampled[r0:r1, c0 - 1].all())
            c0 -= grow[2]
        if grow[3]:
            grow[3] = c1 < w and bool(sampled[r0:r1, c1].all())
            c1 += grow[3]
    columns_only = not kspace_or_mask.is_complex() and kspace_or_mask.dim() == 1
    if min(c1 - c0, c1 - c0 if columns_only else r1 - r0) < MIN_ACS_SIZE:
        found = f"{c1 - c0} columns" if columns_only else f"{r1 - r0} x {c1 - c0} (rows x columns)"
        raise DataError(f"no auto-calibration region: the fully sampled centre is only {found}, at least "
                        f"{MIN_ACS_SIZE} x {MIN_ACS_SIZE} is needed; use a mask with a wider fully sampled centre "
                        f"or give coil maps")
    return (slice(None) if columns_only else slice(r0, r1)), slice(c0, c1)


def resolve_acs(kspace: torch.Tensor, acs, who: str) -> tuple[int, int, int, int]:
    """``(r0, r1, c0, c1)`` of the ACS block: found in ``kspace`` (``acs=None``), in a mask, or given as slices."""
    h, w = kspace.shape[-2:]
    if isinstance(acs, torch.Tensor) and tuple(acs.shape[-2:] if acs.dim() > 1 else (h, *acs.shape)) != (h, w):
        raise ShapeError(f"{who}: the acs mask {tuple(acs.shape)} does not fit the k-space grid {(h, w)}")
    if acs is None or isinstance(acs, torch.Tensor):
        acs = acs_region(kspace if acs is None else acs)
    if (not isinstance(acs, (tuple, list)) or len(acs) != 2 or not all(isinstance(s, slice) for s in acs)):
        raise ConfigError(f"{who}: acs must be None, a mask or (rows, cols) slices from acs_region, got {acs!r}")
    (r0, r1, rs), (c0, c1, cs) = acs[0].indices(h), acs[1].indices(w)
    if rs != 1 or cs != 1 or r1 <= r0 or c1 <= c0:
        raise ConfigError(f"{who}: acs must be non-empty slices with step 1, got {acs!r}")
    return r0, r1, c0, c1


def _window(n: int, kind: str, dtype: torch.dtype) -> torch.Tensor:
    if kind == "none":
        return torch.ones(n, dtype=dtype)
    return torch.hann_window(n + 2, periodic=False, dtype=dtype)[1:-1]  # no zero weights at the ends


def lowres_maps(kspace: torch.Tensor, *, acs=None, window: str = "hann", floor: float = 1e-3) -> torch.Tensor:
    """Coil sensitivities from the windowed ACS block: low-resolution coil images over their RSS.

    ``S_c = I_c rss / (rss^2 + (floor max rss)^2)`` with ``I_c = F^H (w . y_c)`` on the ACS block (zero
    elsewhere); accurate where the object and the maps are smooth on the scale of the ACS resolution.

    Args:
        kspace: multi-coil k-space ``(C, H, W)``, complex64 or complex128, zeros where not sampled.
        acs: the ACS block: ``None`` finds it in ``kspace``; a mask finds it there; or ``(rows, cols)``
            slices from :func:`acs_region`.
        window: ``"hann"`` (separable Hann taper over the block; less ringing) or ``"none"``.
        floor: relative RSS below which maps fade to zero (``floor * max rss``).

    Returns:
        maps ``(C, H, W)`` of the dtype of ``kspace``; ``sum_c |S_c|^2 <= 1``, ``~1`` in the object.

    Example:
        >>> import torch
        >>> k = torch.zeros(2, 16, 16, dtype=torch.complex64); k[:, :, 6:11] = 1.0
        >>> maps = lowres_maps(k)
        >>> maps.shape, bool(maps.abs().pow(2).sum(0).max() <= 1.0)
        (torch.Size([2, 16, 16]), True)
    """
    kspace = check_kspace(kspace, "lowres_maps")
    if window not in WINDOWS:
        raise ConfigError(f"lowres_maps: unknown window '{window}'{did_you_mean(window, WINDOWS)}; "
                          f"choose one of: {', '.join(WINDOWS)}")
    if isinstance(floor, bool) or not isinstance(floor, (int, float)) or not 0 < floor < 1:
        raise ConfigError(f"lowres_maps: floor must be a number in (0, 1), got {floor!r}")
    r0, r1, c0, c1 = resolve_acs(kspace, acs, "lowres_maps")
    real = kspace.real.dtype
    w = _window(r1 - r0, window, real)[:, None] * _window(c1 - c0, window, real)[None, :]
    low = torch.zeros_like(kspace)
    low[:, r0:r1, c0:c1] = kspace[:, r0:r1, c0:c1] * w.to(kspace.device)
    images = ifft2c(low)
    rss = images.abs().square().sum(dim=0).sqrt()
    eps = floor * rss.max()
    if not bool(eps > 0):
        raise DataError("lowres_maps: the ACS block holds no signal (all zeros)")
    return images * (rss / (rss.square() + eps.square()))
