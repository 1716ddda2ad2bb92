"""Writers for every output genrecon makes; each writes atomically (see :mod:`genrecon.io.atomic`).

Images may be numpy arrays or tensors on any device. NIfTI layout: an image ``(H, W)`` or a stack
``(N, H, W)`` is stored as ``data[row, column, n]`` (shape ``(H, W, N)``), the layout the nifti loader
displays as is when the affine says so. Pass a loaded case's ``meta["slice_affine"]`` and the result
overlays the source volume in any viewer; without an affine, :data:`DISPLAY_AFFINE` (1 mm, rows towards
posterior, columns towards the patient's left, slices superior) makes the file read back unchanged.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from genrecon.io.writers import write_json, write_png
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_png(folder / "x.png", np.eye(4), vmin=0.0, vmax=1.0).name
    'x.png'
    >>> write_json(folder / "m.json", {"psnr": np.float32(31.5)}).read_text()
    '{\\n  "psnr": 31.5\\n}\\n'
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..errors import ShapeError
from .atomic import atomic_write


def _numpy(array: Any) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def _stack(image: Any, what: str) -> np.ndarray:
    """``(H, W)``, ``(1, H, W)`` or ``(N, H, W)`` -> ``(N, H, W)``."""
    arr = _numpy(image)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ShapeError(f"{what}: expected an image (H, W) or a stack (N, H, W), got shape {tuple(arr.shape)}")
    return arr


#: default NIfTI affine of ``data[row, column, n]``: axial display layout (axis codes "PLS"), 1 mm voxels
DISPLAY_AFFINE = np.array(
    [[0.0, -1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)


def write_nifti(path: str | os.PathLike, image: Any, affine: Any = None) -> Path:
    """Write an image ``(H, W)`` or a stack ``(N, H, W)`` as NIfTI-1 ``data[row, column, n]``.

    Args:
        path: output file; a name ending in ``.gz`` is gzip-compressed.
        image: ``(H, W)``, ``(1, H, W)`` or ``(N, H, W)``, real (stored float32) or complex (complex64).
        affine: 4x4 map of ``(row, column, n)`` to world mm (a case's ``meta["slice_affine"]``, whose
            ``n`` steps along the source's slice axis), or None for :data:`DISPLAY_AFFINE`.
    """
    import nibabel as nib

    stack = _stack(image, "write_nifti")
    dtype = np.complex64 if stack.dtype.kind == "c" else np.float32
    data = np.ascontiguousarray(stack.transpose(1, 2, 0), dtype=dtype)
    aff = DISPLAY_AFFINE if affine is None else np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4):
        raise ShapeError(f"write_nifti: expected a 4x4 affine, got shape {aff.shape}")
    img = nib.Nifti1Image(data, aff)
    img.header.set_xyzt_units("mm")
    raw = img.to_bytes()
    if str(path).lower().endswith(".gz"):
        raw = gzip.compress(raw, compresslevel=6, mtime=0)
    with atomic_write(path) as tmp:
        tmp.write_bytes(raw)
    return Path(path)


def write_npy(path: str | os.PathLike, array: Any) -> Path:
    """Write an array (numpy or tensor, any shape and dtype) as ``.npy``."""
    arr = _numpy(array)
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.save would append ".npy" to the temporary name
            np.save(f, arr, allow_pickle=False)
    return Path(path)


def _attr(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, (dict, list, tuple)) and not _is_numeric_sequence(value):
        return json.dumps(value, default=_json_default)
    if value is None:
        return "null"
    if isinstance(value, Path):
        return str(value)
    return value


def _is_numeric_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value
    )


def write_h5(path: str | os.PathLike, datasets: Mapping[str, Any], attrs: Mapping[str, Any] | None = None) -> Path:
    """Write an HDF5 file: ``datasets`` (name -> array, ``a/b`` makes groups) and root ``attrs``.

    Attribute values that HDF5 cannot hold (dicts, mixed lists, None) are stored as JSON strings.
    """
    import h5py

    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, array in datasets.items():
                f.create_dataset(name, data=_numpy(array))
            for key, value in (attrs or {}).items():
                f.attrs[key] = _attr(value)
    return Path(path)


def write_png(
    path: str | os.PathLike, image: Any, vmin: float | None = None, vmax: float | None = None
) -> Path:
    """Write an 8-bit grayscale PNG: ``round(255 * clip((x - vmin) / (vmax - vmin), 0, 1))``.

    Args:
        path: output file.
        image: ``(H, W)`` or ``(1, H, W)``; complex images are shown as magnitude; NaN is drawn black.
        vmin, vmax: display window; None takes the image's min / max. Give the same window to images
            that are compared side by side.
    """
    from PIL import Image

    arr = _numpy(image)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ShapeError(f"write_png: expected an image (H, W) or (1, H, W), got shape {tuple(arr.shape)}")
    arr = np.abs(arr) if arr.dtype.kind == "c" else arr.astype(np.float64)
    finite = np.isfinite(arr)
    lo = float(vmin) if vmin is not None else (float(arr[finite].min()) if finite.any() else 0.0)
    hi = float(vmax) if vmax is not None else (float(arr[finite].max()) if finite.any() else 1.0)
    scaled = np.zeros(arr.shape) if hi <= lo else (np.where(finite, arr, lo) - lo) / (hi - lo)
    pixels = np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)
    with atomic_write(path) as tmp:
        Image.fromarray(pixels, mode="L").save(tmp, format="PNG")
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"write_json: cannot store a {type(obj).__name__} in JSON")


def _plain(obj: Any) -> Any:
    """``obj`` with numpy/tensor values as Python ones and NaN/Inf as None (strict JSON has no NaN)."""
    if isinstance(obj, (torch.Tensor, np.ndarray, np.generic)):
        obj = _json_default(obj)
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, strict JSON: numpy/tensor values and paths are converted, and a NaN or
    infinite number becomes ``null`` (the writer of a record says why, e.g. with a ``status``)."""
    text = json.dumps(_plain(obj), indent=2, default=_json_default, allow_nan=False) + "\n"
    return write_text(path, text)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)

