"""InVesalius 3 projects (``.inv3``): the head CT of the ``invesalius-examples`` package.

Only data preparation reads this format (the bundled ``Cranium.inv3``), so its reader lives here rather
than among the loaders of :mod:`genrecon.io`. An ``.inv3`` file is a gzip tar holding ``main.plist``
(shape, dtype, spacing) and the raw CT matrix in HU.

Example:
    >>> from genrecon.data_prep.inv3 import inv3_to_ras, read_inv3
    >>> matrix, spacing, meta = read_inv3("Cranium.inv3")  # doctest: +SKIP
    >>> volume, affine = inv3_to_ras(matrix, spacing)  # doctest: +SKIP
"""

from __future__ import annotations

import plistlib
import tarfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DataError


def read_inv3(path: Path | str) -> tuple[np.ndarray, tuple[float, float, float], dict]:
    """Read the CT matrix of an InVesalius ``.inv3`` project (a gzip tar with plists and raw arrays).

    Returns:
        ``(matrix, spacing, meta)``: ``matrix`` int16 of shape ``(Z, R, C)`` as stored (slice index
        increases superior; InVesalius stores rows bottom-up, so row index increases anterior), spacing
        ``(col, row, slice)`` in mm, and the ``main.plist`` dictionary.
    """
    path = Path(path)
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            if "main.plist" not in members:
                raise DataError(f"{path}: no main.plist inside; expected an InVesalius 3 project (.inv3)")
            meta = plistlib.loads(tar.extractfile(members["main.plist"]).read())
            mat = meta.get("matrix", {})
            fname, shape, dtype = mat.get("filename"), mat.get("shape"), mat.get("dtype", "int16")
            if fname not in members or not shape or len(shape) != 3:
                raise DataError(f"{path}: main.plist has no usable 'matrix' entry (got {mat!r})")
            raw = tar.extractfile(members[fname]).read()
    except (tarfile.TarError, OSError, plistlib.InvalidFileException) as exc:
        raise DataError(f"{path}: not a readable .inv3 archive ({exc})") from None
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if len(raw) < n * dt.itemsize:
        raise DataError(f"{path}: {fname} holds {len(raw)} bytes, expected {n * dt.itemsize} for {shape} {dtype}")
    matrix = np.frombuffer(raw[: n * dt.itemsize], dtype=dt).reshape(shape).copy()
    spacing = tuple(float(s) for s in meta.get("spacing", (1.0, 1.0, 1.0)))
    return matrix, spacing, meta


def inv3_to_ras(matrix: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Turn an ``.inv3`` matrix ``(Z, R, C)`` into a RAS+ volume ``(X, Y, Z)`` with its affine.

    Columns are assumed to run towards the patient's left (DICOM), rows anterior (InVesalius flips the
    DICOM rows), slices superior. The origin is put at the volume's centre.
    """
    vol = np.ascontiguousarray(matrix.transpose(2, 1, 0)[::-1])
    sx, sy, sz = float(spacing[0]), float(spacing[1]), float(spacing[2])
    affine = np.diag([sx, sy, sz, 1.0])
    affine[:3, 3] = -0.5 * (np.array(vol.shape) - 1) * np.array([sx, sy, sz])
    return vol, affine
