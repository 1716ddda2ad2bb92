"""The bundled samples: two small display-ready NIfTI files cut from held-out slabs, and their sidecar.

``brain-mri.nii.gz`` (MNI152 T1, normalised to [0, 1]) and ``head-ct.nii.gz`` (InVesalius Cranium, int16
HU) hold five axial slices each, zero-/air-padded to 256 x 256, with exact affines; ``samples.json``
describes them (source, licence, slice positions, padding). Every slice lies in the held-out axial slab
of the matching training dataset, so the samples are never training data.

Example:
    >>> from genrecon.data_prep import fetch, write_samples
    >>> meta = write_samples(fetch("data/cache"), "genrecon/data/samples")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError
from .datasets import created_by
from .fetching import FetchedSources
from .inv3 import inv3_to_ras, read_inv3
from .progress import Log, say
from .readers import read_nifti
from .slabs import BRAIN_SLABS, CT_SLABS
from .volumes import (HU_MIN, ORIENTATION_CONVENTION, display_stack, foreground_mask, normalise_ct, normalise_mri,
                      resample_isotropic, to_canonical)

SAMPLE_SIZE = 256
N_SAMPLE_SLICES = 5


def _pick_in_slab(positions: np.ndarray, lo: float, hi: float, n: int, must: int | None = None) -> list[int]:
    """``n`` indices with a constant step whose positions lie in ``[lo, hi]``, centred (or on ``must``)."""
    inside = np.flatnonzero((positions >= lo) & (positions <= hi))
    if len(inside) < n:
        raise DataError(f"held-out slab [{lo:g}, {hi:g}] holds {len(inside)} slices, need {n}")
    step = max(1, (len(inside) - 1) // (n - 1))
    first = inside[0] + (len(inside) - 1 - step * (n - 1)) // 2
    if must is not None:
        first = must - step * (n // 2)
        while first < inside[0]:
            first += step
        while first + step * (n - 1) > inside[-1]:
            first -= step
        if first < inside[0] or must not in range(first, first + step * n, step):
            raise DataError(f"cannot place {n} slices with step {step} around {must} inside the slab")
    return [int(first + step * i) for i in range(n)]


def _axial_sample_affine(can_affine: np.ndarray, shape_xyz: Sequence[int], pad_rows: int, pad_cols: int,
                         k0: int, step: int) -> np.ndarray:
    """Affine of display-ready axial slices ``data[r, c, s]`` cut from a RAS volume and padded.

    Pixel ``(r, c)`` of slice ``s`` is canonical voxel ``(X-1-(c-pc), Y-1-(r-pr), k0 + step*s)``.
    """
    X, Y, _ = shape_xyz
    m = np.array([[0.0, -1.0, 0.0, X - 1 + pad_cols],
                  [-1.0, 0.0, 0.0, Y - 1 + pad_rows],
                  [0.0, 0.0, float(step), float(k0)],
                  [0.0, 0.0, 0.0, 1.0]])
    return can_affine @ m


def _pad_to(img: np.ndarray, size: int, fill: float) -> tuple[np.ndarray, int, int]:
    h, w = img.shape
    if h > size or w > size:
        raise DataError(f"slice {img.shape} is larger than the sample size {size}")
    pr, pc = (size - h) // 2, (size - w) // 2
    out = np.full((size, size), fill, dtype=img.dtype)
    out[pr:pr + h, pc:pc + w] = img
    return out, pr, pc


def write_samples(sources: FetchedSources, out_dir: Path | str, *, log: Log = None) -> dict:
    """Write ``brain-mri.nii.gz``, ``head-ct.nii.gz`` and ``samples.json`` into ``out_dir``.

    The slices come from the held-out axial slabs of :data:`BRAIN_SLABS` (MNI152) and :data:`CT_SLABS`
    (Cranium), so they are never in the training datasets. Files are display-ready
    (``data[:, :, s]`` is slice ``s``, radiological convention) with exact affines.

    Returns:
        The ``samples.json`` content.
    """
    import nibabel as nib

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta: dict = {"created_by": created_by("write_samples"), "orientation_convention": ORIENTATION_CONVENTION,
                  "layout": "NIfTI data[:, :, s] is slice s; rows = first axis, columns = second axis; "
                            "the affine maps (row, column, slice) to RAS+ world mm", "samples": {}}

    # brain MRI: MNI152, native 1 mm axial slices, padded to 256 x 256
    src = sources.mni152
    data, affine = read_nifti(src.path)
    data, affine = to_canonical(data, affine)
    vol01, ref = normalise_mri(data)
    z = affine[2, 2] * np.arange(data.shape[2]) + affine[2, 3]
    mid = data.shape[2] // 2
    lo, hi = BRAIN_SLABS.slabs["axial"]
    ks = _pick_in_slab(z, lo, hi, N_SAMPLE_SLICES, must=mid)
    imgs = []
    for k in ks:
        img, pr, pc = _pad_to(np.ascontiguousarray(display_stack(vol01, "axial")[k]), SAMPLE_SIZE, 0.0)
        imgs.append(img)
    arr = np.stack(imgs, axis=-1).astype(np.float32)
    aff = _axial_sample_affine(affine, data.shape, pr, pc, ks[0], ks[1] - ks[0])
    img = nib.Nifti1Image(arr, aff)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b"genrecon sample: MNI152 2009a T1, held-out slab"
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=4)  # 4 = MNI152 space
    brain_path = out_dir / "brain-mri.nii.gz"
    nib.save(img, str(brain_path))
    meta["samples"]["brain-mri"] = {
        "file": brain_path.name, "modality": "mri", "contrast": "T1-weighted",
        "shape": list(arr.shape), "dtype": "float32", "affine": np.round(aff, 6).tolist(),
        "units": "normalised intensity in [0, 1]: x = clip(I / p99.5, 0, 1), I = template value (uint8 "
                 f"0..255), p99.5 = {ref:g} (99.5th percentile of the volume's voxels above 5% of its max)",
        "orientation": "axial", "pixel_spacing_mm": [1.0, 1.0], "slice_step_mm": float(ks[1] - ks[0]),
        "padding": f"native {data.shape[1]}x{data.shape[0]} (rows x columns) axial slice, zero-padded to "
                   f"{SAMPLE_SIZE}x{SAMPLE_SIZE}: {pr} rows above, {pc} columns left",
        "source": src.as_dict(),
        "slices": [{"index_in_file": i, "index_in_source": k, "source_axis": "k (third voxel axis, superior)",
                    "z_mm": float(z[k])} for i, k in enumerate(ks)],
        "mid_axial": {"index_in_file": ks.index(mid), "index_in_source": mid,
                      "note": "the mid-axial MNI152 slice (source shape[2] // 2)"},
        "held_out": "all slices lie in the held-out axial slab z = "
                    f"{lo:g}..{hi:g} mm of brain-mri-128.h5 (val split); none is training data",
    }
    say(log, f"wrote {brain_path} {arr.shape} slices {ks}")

    # head CT: Cranium, native 256 x 256 axial slices, int16 HU
    src = sources.cranium
    matrix, spacing, _ = read_inv3(src.path)
    vol, can_aff = inv3_to_ras(matrix, spacing)
    vol01_iso, aff_iso = resample_isotropic(normalise_ct(vol), can_aff)
    mask = foreground_mask(vol01_iso)
    occ = np.flatnonzero(mask.any(axis=(0, 1)))
    z_iso = aff_iso[2, 2] * np.arange(vol01_iso.shape[2]) + aff_iso[2, 3]
    lo_f, hi_f = CT_SLABS.slabs["axial"]
    a, b = z_iso[occ[0]], z_iso[occ[-1]]
    lo, hi = a + lo_f * (b - a), a + hi_f * (b - a)
    z = can_aff[2, 2] * np.arange(vol.shape[2]) + can_aff[2, 3]
    ks = _pick_in_slab(z, lo, hi, N_SAMPLE_SLICES)
    imgs = []
    for k in ks:
        img, pr, pc = _pad_to(np.ascontiguousarray(display_stack(vol, "axial")[k]).astype(np.int16),
                              SAMPLE_SIZE, HU_MIN)
        imgs.append(img)
    arr = np.stack(imgs, axis=-1).astype(np.int16)
    aff = _axial_sample_affine(can_aff, vol.shape, pr, pc, ks[0], ks[1] - ks[0])
    img = nib.Nifti1Image(arr, aff)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b"genrecon sample: InVesalius Cranium CT (HU), held-out slab"
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    ct_path = out_dir / "head-ct.nii.gz"
    nib.save(img, str(ct_path))
    meta["samples"]["head-ct"] = {
        "file": ct_path.name, "modality": "ct", "shape": list(arr.shape), "dtype": "int16",
        "affine": np.round(aff, 6).tolist(),
        "units": "Hounsfield units (int16, as stored in Cranium.inv3; air -1024)",
        "orientation": "axial", "pixel_spacing_mm": [float(spacing[1]), float(spacing[0])],
        "padding": f"native {vol.shape[1]}x{vol.shape[0]} (rows x columns) axial slice, padded with -1024 HU "
                   f"to {SAMPLE_SIZE}x{SAMPLE_SIZE}: {pr} rows above, {pc} columns left",
        "slice_step_mm": float(spacing[2] * (ks[1] - ks[0])),
        "display_window": {"level": 40, "width": 400, "note": "brain/soft-tissue; bone: level 600, width 2800"},
        "source": src.as_dict(),
        "slices": [{"index_in_file": i, "index_in_source": k,
                    "source_axis": "slice index of the stored matrix (108 slices, increasing superior)",
                    "z_mm": float(z[k])} for i, k in enumerate(ks)],
        "orientation_note": "InVesalius stores rows bottom-up; the rows are flipped so anterior is at the top. "
                            "Left-right follows the stored columns, assumed to run towards the patient's "
                            "left (DICOM); no marker in the data confirms it",
        "held_out": f"all slices lie in the held-out axial slab ({lo_f:g}..{hi_f:g} of the head's z extent = "
                    f"{lo:.1f}..{hi:.1f} mm) of head-ct-128.h5 (val split); none is training data",
    }
    say(log, f"wrote {ct_path} {arr.shape} slices {ks}")
    (out_dir / "samples.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
