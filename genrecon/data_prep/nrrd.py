"""NRRD volumes (``.nrrd``, attached header): the array and its voxel-to-RAS affine, in pure NumPy.

Only what data preparation needs: 3-D scalar volumes with ``raw`` or ``gzip`` encoding, ``space``
``left-posterior-superior`` (LPS, as DICOM and 3D Slicer write it) or ``right-anterior-superior``,
``space directions`` and ``space origin``. The first axis of the NRRD ``sizes`` varies fastest, so the
array is returned as ``(I, J, K)`` with the affine's columns in that order. LPS is turned into RAS by
negating the first two world coordinates.

Example:
    >>> from genrecon.data_prep.nrrd import read_nrrd
    >>> data, affine = read_nrrd("brain1_image.nrrd")  # doctest: +SKIP
    >>> data.shape  # doctest: +SKIP
    (256, 256, 25)
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np

from ..errors import DataError

_TYPES = {
    "short": "i2", "signed short": "i2", "short int": "i2", "int16": "i2", "int16_t": "i2",
    "ushort": "u2", "unsigned short": "u2", "uint16": "u2", "uint16_t": "u2",
    "int": "i4", "signed int": "i4", "int32": "i4", "int32_t": "i4",
    "uint": "u4", "unsigned int": "u4", "uint32": "u4", "uint32_t": "u4",
    "uchar": "u1", "unsigned char": "u1", "uint8": "u1", "uint8_t": "u1",
    "signed char": "i1", "int8": "i1", "int8_t": "i1",
    "float": "f4", "double": "f8",
}
_WORLD_FLIP = {"left-posterior-superior": np.array([-1.0, -1.0, 1.0]), "lps": np.array([-1.0, -1.0, 1.0]),
               "right-anterior-superior": np.array([1.0, 1.0, 1.0]), "ras": np.array([1.0, 1.0, 1.0])}


def _vectors(text: str) -> list[np.ndarray]:
    return [np.array([float(v) for v in m.split(",")]) for m in re.findall(r"\(([^)]*)\)", text)]


def read_nrrd_header(raw: bytes, path: Path | str) -> tuple[dict[str, str], int]:
    """The header fields (lower-case keys) and the offset of the data in ``raw``."""
    if not raw.startswith(b"NRRD"):
        raise DataError(f"{path}: not an NRRD file (no 'NRRD' magic)")
    end = raw.find(b"\n\n")
    if end < 0:
        raise DataError(f"{path}: NRRD header without the blank line that ends it")
    fields = {}
    for line in raw[:end].decode("latin-1").splitlines()[1:]:
        if line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        fields[key.strip().lower()] = value.lstrip("=").strip()
    return fields, end + 2


def read_nrrd(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """A 3-D NRRD volume as ``(float32 array (I, J, K), 4x4 affine to RAS mm)``.

    Raises:
        DataError: not NRRD, detached data, an unsupported type, encoding or space, or a size mismatch.
    """
    raw = Path(path).read_bytes()
    h, offset = read_nrrd_header(raw, path)
    if "data file" in h or "datafile" in h:
        raise DataError(f"{path}: detached NRRD data ('data file') is not supported; save it as one .nrrd")
    dtype = _TYPES.get(h.get("type", "").lower())
    if dtype is None:
        raise DataError(f"{path}: NRRD type {h.get('type')!r} is not supported")
    sizes = [int(s) for s in h.get("sizes", "").split()]
    if int(h.get("dimension", 0)) != 3 or len(sizes) != 3:
        raise DataError(f"{path}: expected a 3-D scalar NRRD volume, got sizes {sizes}")
    space = h.get("space", "").lower()
    if space not in _WORLD_FLIP:
        raise DataError(f"{path}: NRRD space {space!r} is not supported (LPS or RAS)")
    encoding = h.get("encoding", "raw").lower()
    blob = raw[offset:]
    if encoding in ("gzip", "gz"):
        blob = gzip.decompress(blob)
    elif encoding != "raw":
        raise DataError(f"{path}: NRRD encoding {encoding!r} is not supported (raw or gzip)")
    endian = "<" if h.get("endian", "little").lower() == "little" else ">"
    n = int(np.prod(sizes))
    itemsize = np.dtype(dtype).itemsize
    if len(blob) < n * itemsize:
        raise DataError(f"{path}: NRRD data holds {len(blob)} bytes, the header needs {n * itemsize}")
    flat = np.frombuffer(blob[len(blob) - n * itemsize:], dtype=endian + dtype)
    data = flat.reshape(sizes[::-1]).transpose(2, 1, 0).astype(np.float32)
    directions = _vectors(h.get("space directions", ""))
    origin = _vectors("(" + h.get("space origin", "(0,0,0)").strip("()") + ")")
    if len(directions) != 3 or not origin:
        raise DataError(f"{path}: NRRD header lacks 'space directions' or 'space origin'")
    flip = _WORLD_FLIP[space]
    affine = np.eye(4)
    affine[:3, :3] = np.stack(directions, axis=1) * flip[:, None]
    affine[:3, 3] = origin[0] * flip
    return np.ascontiguousarray(data), affine
