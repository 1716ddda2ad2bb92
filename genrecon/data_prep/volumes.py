"""Volumes to display-ready slices: reorientation, resampling, intensity normalisation, cropping.

Conventions (also in ``data/README.md``):

* 3-D volumes are reoriented to RAS+ (axis 0 towards the patient's right, 1 anterior, 2 superior) and
  resampled to isotropic voxels (linear interpolation) before slicing.
* 2-D slices are display-ready in the radiological convention: axial and coronal images show the
  patient's right on the image's left; axial rows run anterior -> posterior, coronal and sagittal rows
  superior -> inferior, sagittal columns anterior -> posterior.
* MRI intensities: divided by the volume's 99.5th percentile (of voxels above 5 % of its maximum) and
  clipped to [0, 1]. CT: ``(clip(HU, -1024, 3071) + 1024) / 4095``, so ``HU = 4095 * x - 1024``.

Example:
    >>> import numpy as np
    >>> from genrecon.data_prep.volumes import display_stack, normalise_ct
    >>> vol = normalise_ct(np.full((4, 5, 6), 40.0))
    >>> display_stack(vol, "axial").shape  # (slices, rows, columns)
    (6, 5, 4)
"""

from __future__ import annotations

import math

import numpy as np

from ..conventions import HU_MAX, HU_MIN, HU_OFFSET, HU_SCALE, HU_UNIT_TEXT, hu_to_unit  # noqa: F401 (re-exported)
from ..errors import ConfigError, DataError

#: CT intensity mapping (one definition: :mod:`genrecon.conventions`)
CT_NORMALISATION = HU_UNIT_TEXT
MRI_NORMALISATION = (
    "x = clip(I / p99.5, 0, 1), p99.5 = 99.5th percentile of the volume's voxels above 5% of its max"
)
ORIENTATION_CONVENTION = (
    "radiological display: axial rows anterior->posterior, columns patient right->left; coronal rows "
    "superior->inferior, columns patient right->left; sagittal rows superior->inferior, columns "
    "anterior->posterior"
)
ORIENTATIONS = ("axial", "coronal", "sagittal")
SLICE_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}  # RAS axis each orientation slices along

EMPTY_THRESHOLD = 0.10  # a pixel is "tissue" above 10 % of the normalised maximum (1.0)
EMPTY_MIN_FRACTION = 0.15  # a slice with less tissue than this is near-empty and skipped


def to_canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a 3-D array to the closest RAS+ axes (flips and permutations only)."""
    import nibabel.orientations as nio

    ornt = nio.io_orientation(affine)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return data, affine
    out = nio.apply_orientation(data, ornt)
    return np.ascontiguousarray(out), affine @ nio.inv_ornt_aff(ornt, data.shape)


def _interp_axis(a: np.ndarray, axis: int, coords: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``a`` along ``axis`` at fractional indices ``coords`` (in range)."""
    lo = np.clip(np.floor(coords).astype(int), 0, a.shape[axis] - 1)
    hi = np.clip(lo + 1, 0, a.shape[axis] - 1)
    w = (coords - lo).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis] = -1
    w = w.reshape(shape)
    return np.take(a, lo, axis=axis) * (1 - w) + np.take(a, hi, axis=axis) * w


def resample_isotropic(data: np.ndarray, affine: np.ndarray, spacing: float | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Resample a canonical (axis-aligned) volume to isotropic voxels by linear interpolation.

    ``spacing`` defaults to the smallest voxel size. The first voxel keeps its position.
    """
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    target = float(spacing if spacing is not None else zooms.min())
    out, aff = data.astype(np.float32, copy=False), affine.copy()
    for ax in range(3):
        if abs(zooms[ax] - target) / target < 1e-3:
            continue
        n_new = int(math.floor((data.shape[ax] - 1) * zooms[ax] / target + 1e-6)) + 1
        coords = np.arange(n_new) * (target / zooms[ax])
        out = _interp_axis(out, ax, coords)
        aff[:3, ax] *= target / zooms[ax]
    return out.astype(np.float32, copy=False), aff


def normalise_mri(data: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale a magnitude volume to [0, 1]: ``clip(x / p99.5, 0, 1)``; returns the image and p99.5."""
    data = np.asarray(data, dtype=np.float32)
    vmax = float(data.max())
    if not np.isfinite(vmax) or vmax <= 0:
        raise DataError(f"volume has no positive values (max {vmax}); expected a magnitude image")
    ref = float(np.percentile(data[data > 0.05 * vmax], 99.5))
    return np.clip(data / ref, 0.0, 1.0).astype(np.float32), ref


def normalise_ct(hu: np.ndarray) -> np.ndarray:
    """HU to [0, 1]: ``(clip(HU, -1024, 3071) + 1024) / 4095``."""
    return hu_to_unit(np.asarray(hu, dtype=np.float32)).astype(np.float32)


def display_stack(vol: np.ndarray, orientation: str) -> np.ndarray:
    """View of a RAS volume as a stack of display-ready slices ``(S, rows, cols)`` (radiological).

    Slice ``s`` of the stack is index ``s`` along the RAS axis of the orientation (z for axial, y for
    coronal, x for sagittal).
    """
    if orientation == "axial":
        return vol.transpose(2, 1, 0)[:, ::-1, ::-1]
    if orientation == "coronal":
        return vol.transpose(1, 2, 0)[:, ::-1, ::-1]
    if orientation == "sagittal":
        return vol.transpose(0, 2, 1)[:, ::-1, ::-1]
    raise ConfigError(f"orientation: expected one of {ORIENTATIONS}, got {orientation!r}")


def foreground_mask(vol01: np.ndarray) -> np.ndarray:
    """Largest connected component of ``vol01 > 0.1`` (the head), for a normalised volume."""
    from scipy import ndimage

    mask = vol01 > EMPTY_THRESHOLD
    labels, n = ndimage.label(mask)
    if n == 0:
        raise DataError("volume has no voxel above 10% of its normalised maximum; nothing to slice")
    if n > 1:
        counts = np.bincount(labels.ravel())
        counts[0] = 0
        mask = labels == int(np.argmax(counts))
    return mask


def _bbox(mask2d: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask2d.any(axis=1))
    cols = np.flatnonzero(mask2d.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def square_crop_box(mask2d: np.ndarray, margin: float = 0.04) -> tuple[int, int, int]:
    """Square ``(row0, col0, side)`` around the foreground of a 2-D mask, with a relative margin."""
    r0, r1, c0, c1 = _bbox(mask2d)
    side = int(math.ceil(max(r1 - r0 + 1, c1 - c0 + 1) * (1 + 2 * margin)))
    rc, cc = (r0 + r1 + 1) / 2, (c0 + c1 + 1) / 2
    return int(round(rc - side / 2)), int(round(cc - side / 2)), side


def crop_pad(img: np.ndarray, row0: int, col0: int, side: int, fill: float = 0.0) -> np.ndarray:
    """Square window ``img[row0:row0+side, col0:col0+side]``, padded with ``fill`` outside the image."""
    out = np.full((side, side), fill, dtype=np.float32)
    r_a, c_a = max(row0, 0), max(col0, 0)
    r_b, c_b = min(row0 + side, img.shape[0]), min(col0 + side, img.shape[1])
    if r_b > r_a and c_b > c_a:
        out[r_a - row0:r_b - row0, c_a - col0:c_b - col0] = img[r_a:r_b, c_a:c_b]
    return out


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Anti-aliased linear resize of a square image to ``(size, size)`` float32."""
    from skimage.transform import resize as sk_resize

    if img.shape == (size, size):
        return img.astype(np.float32)
    aa = img.shape[0] > size
    return sk_resize(img, (size, size), order=1, mode="edge", anti_aliasing=aa,
                     preserve_range=True).astype(np.float32)


def is_near_empty(img01: np.ndarray) -> bool:
    """True when less than 15 % of the pixels are above 10 % of the normalised maximum (1.0)."""
    return float((img01 > EMPTY_THRESHOLD).mean()) < EMPTY_MIN_FRACTION
