"""DICOM: a single file (one image or a multi-frame image) or a folder holding one series.

A folder is searched recursively; files that are not DICOM (no ``DICM`` preamble), hidden files and DICOM
files without pixel data (DICOMDIR, reports) are ignored. Files are grouped by ``SeriesInstanceUID``;
several series -> :class:`~genrecon.errors.DataError` listing them, choose one with ``series_uid``.
Slices are ordered by their position along the slice normal (``ImagePositionPatient`` projected on
``row x column`` of ``ImageOrientationPatient``), else by ``InstanceNumber``, else by file name.
Values are the modality values ``x = slope * stored + intercept`` (``RescaleSlope``/``Intercept``): HU for
CT. The image is the pixel array as stored (DICOM rows and columns), not rotated.

:func:`read_series_volumes` stacks whole series into 3-D volumes with their RAS affine (data preparation).

Example:
    >>> from genrecon.io.dicom import DicomLoader
    >>> DicomLoader.accepts("scan/IM0001.dcm")
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DataError
from ..registry import LOADERS
from ..types import Case
from .base import Loader
from .transforms import as_image, source_stem

_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class _Entry:
    """One image file of a series (header fields only, no pixels)."""

    path: Path
    frames: int
    shape: tuple[int, int]  # (Rows, Columns)
    series_uid: str
    description: str
    instance: int | None
    position: np.ndarray | None  # ImagePositionPatient (LPS, mm)
    orientation: np.ndarray | None  # ImageOrientationPatient, 6 direction cosines
    spacing: tuple[float, float] | None  # PixelSpacing (row spacing, column spacing)
    thickness: float | None  # SpacingBetweenSlices, else SliceThickness
    slice_thickness: float | None  # SliceThickness alone
    modality: str


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _folder_has_dicom(folder: Path, limit: int = 1000) -> bool:
    """Whether a DICOM file (by suffix or ``DICM`` preamble) is among the first ``limit`` files."""
    for i, path in enumerate(p for p in folder.rglob("*") if p.is_file()):
        if i >= limit:
            return False
        if path.suffix.lower() in DicomLoader.suffixes or _is_dicom_file(path):
            return True
    return False


def _float_list(value: Any, n: int) -> np.ndarray | None:
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.isfinite(out).all() else None


def _read_entry(path: Path, source: str, strict: bool, pixels_required: bool = True) -> _Entry | None:
    """Header of ``path``, or None when it is not a DICOM image (``strict`` raises instead).

    With ``pixels_required=False`` a readable file without pixel data gives None even when ``strict``.
    """
    import pydicom

    try:
        ds = pydicom.dcmread(path, defer_size="4 KB")
    except Exception as exc:  # InvalidDicomError, truncated files, bad values
        if strict:
            raise DataError(f"{source}: not a readable DICOM file: {type(exc).__name__}: {exc}") from None
        return None
    if not any(tag in ds for tag in _PIXEL_TAGS) or "Rows" not in ds:
        if strict and pixels_required:
            raise DataError(f"{source}: DICOM file without pixel data (SOP class {ds.get('SOPClassUID', '?')})")
        return None
    spacing = _float_list(ds.get("PixelSpacing"), 2)
    try:
        instance = int(ds.get("InstanceNumber")) if ds.get("InstanceNumber") is not None else None
    except (TypeError, ValueError):
        instance = None
    try:
        thickness = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 0) or None
    except (TypeError, ValueError):
        thickness = None
    try:
        slice_thickness = float(ds.get("SliceThickness") or 0) or None
    except (TypeError, ValueError):
        slice_thickness = None
    return _Entry(
        path=path,
        frames=max(1, int(ds.get("NumberOfFrames") or 1)),
        shape=(int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)),
        series_uid=str(ds.get("SeriesInstanceUID", "unknown")),
        description=str(ds.get("SeriesDescription", "")),
        instance=instance,
        position=_float_list(ds.get("ImagePositionPatient"), 3),
        orientation=_float_list(ds.get("ImageOrientationPatient"), 6),
        spacing=(float(spacing[0]), float(spacing[1])) if spacing is not None else None,
        thickness=thickness,
        slice_thickness=slice_thickness,
        modality=str(ds.get("Modality", "")),
    )


def _normal(orientation: np.ndarray) -> np.ndarray:
    return np.cross(orientation[:3], orientation[3:])


def _sort(entries: list[_Entry]) -> list[_Entry]:
    if all(e.position is not None and e.orientation is not None for e in entries):
        normal = _normal(entries[0].orientation)  # type: ignore[arg-type]
        return sorted(entries, key=lambda e: (float(e.position @ normal), e.instance or 0, str(e.path)))
    if all(e.instance is not None for e in entries):
        return sorted(entries, key=lambda e: (e.instance, str(e.path)))
    return sorted(entries, key=lambda e: str(e.path))


def _image_affine(entry: _Entry, position: np.ndarray, step: np.ndarray) -> np.ndarray | None:
    """RAS affine of ``(row, column, n)``: ``P + r dr Y + c dc X + n step`` in LPS, sign-flipped to RAS.

    ``X`` and ``Y`` are the row and column direction cosines (``ImageOrientationPatient``), ``dr``, ``dc``
    the row and column spacing, ``P`` the position of slice 0's first pixel. It is the affine of the
    array :func:`~genrecon.io.writers.write_nifti` stores.
    """
    if entry.orientation is None or entry.spacing is None:
        return None
    return _affine(entry.orientation, entry.spacing, position, step)


def _affine(
    orientation: np.ndarray, spacing: tuple[float, float], position: np.ndarray, step: np.ndarray
) -> np.ndarray:
    """The RAS affine of :func:`_image_affine` from the geometry itself."""
    row_cos, col_cos = orientation[:3], orientation[3:]
    dr, dc = spacing
    lps = np.eye(4)
    lps[:3, 0] = dr * col_cos
    lps[:3, 1] = dc * row_cos
    lps[:3, 2] = step
    lps[:3, 3] = position
    return _LPS_TO_RAS @ lps


@LOADERS.register("dicom")
class DicomLoader(Loader):
    """DICOM file or series folder (.dcm): slices ordered by position, CT values in HU.

    Args:
        series_uid: the ``SeriesInstanceUID`` to read when the folder holds several series.

    ``meta`` holds ``units`` ("HU" for CT), ``pixel_spacing`` (row, column, mm), ``modality``,
    ``series_uid``, the file of the slice and, when the geometry is known, ``affine`` (RAS affine of the
    whole series stacked as ``data[row, column, slice]``) and ``slice_affine`` (this slice's, for
    ``write_nifti``).
    """

    suffixes = (".dcm", ".dicom", ".ima")
    #: a folder is one series, not a collection of sources (the pipeline reads this flag)
    reads_folders = True

    def __init__(self, series_uid: str | None = None):
        self.series_uid = series_uid
        self._cache: dict[str, list[tuple[_Entry, int]]] = {}

    @classmethod
    def accepts(cls, source: str) -> bool:
        if super().accepts(source):
            return True
        path = Path(source)
        if path.is_dir():
            return _folder_has_dicom(path)
        return path.is_file() and not path.suffix and _is_dicom_file(path)

    # -- index --------------------------------------------------------------------------------------
    def _series(self, source: str) -> list[_Entry]:
        path = Path(source)
        if not path.exists():
            raise DataError(f"{source}: file or folder not found")
        if path.is_file():
            return [_read_entry(path, source, strict=True)]  # type: ignore[list-item]
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        entries = [e for e in (_read_entry(p, source, strict=False) for p in files) if e is not None]
        if not entries:
            raise DataError(
                f"{source}: no DICOM images in this folder ({len(files)} files, none a DICOM file with pixel data)"
            )
        groups: dict[str, list[_Entry]] = {}
        for e in entries:
            groups.setdefault(e.series_uid, []).append(e)
        if self.series_uid is not None:
            if self.series_uid not in groups:
                raise DataError(
                    f"{source}: no series with SeriesInstanceUID {self.series_uid}; the folder holds: "
                    + "; ".join(self._describe(uid, es) for uid, es in groups.items())
                )
            return groups[self.series_uid]
        if len(groups) > 1:
            raise DataError(
                f"{source}: the folder holds {len(groups)} series; choose one with data.params.series_uid: "
                + "; ".join(self._describe(uid, es) for uid, es in groups.items())
            )
        return entries

    @staticmethod
    def _describe(uid: str, entries: list[_Entry]) -> str:
        desc = f" '{entries[0].description}'" if entries[0].description else ""
        return f"{uid}{desc} ({len(entries)} files)"

    def _index(self, source: str) -> list[tuple[_Entry, int]]:
        if source not in self._cache:
            ordered = _sort(self._series(source))
            self._cache[source] = [(e, frame) for e in ordered for frame in range(e.frames)]
        return self._cache[source]

    # -- contract -------------------------------------------------------------------------------------
    def check(self, source: str) -> list[str]:
        return [] if Path(source).exists() else [f"data.source: file or folder not found: {source}"]

    def n_slices(self, source: str) -> int:
        return len(self._index(source))

    def load(self, source: str, index: int) -> Case:
        slices = self._index(source)
        if not 0 <= index < len(slices):
            raise DataError(f"{source}: slice {index} does not exist; the series has slices 0..{len(slices) - 1}")
        entry, frame = slices[index]
        values, ds = _values(entry, frame, np.float64)
        units = "HU" if entry.modality == "CT" else (str(ds.get("RescaleType", "")) or "a.u.")
        meta: dict[str, Any] = {
            "source": str(source),
            "slice": int(index),
            "loader": "dicom",
            "file": str(entry.path),
            "frame": frame if entry.frames > 1 else None,
            "modality": entry.modality,
            "series_uid": entry.series_uid,
            "instance_number": entry.instance,
            "pixel_spacing": list(entry.spacing) if entry.spacing is not None else None,
            "units": units,
            "affine": None,
            "slice_affine": None,
        }
        files = [e for e, f in slices if f == 0]
        if entry.position is not None and entry.orientation is not None:
            step = self._step(files, entry)
            meta["slice_affine"] = _tolist(_image_affine(entry, entry.position, step))
            first = files[0]
            if first.position is not None and all(e.frames == 1 for e in files):
                meta["affine"] = _tolist(_image_affine(first, first.position, step))
        return Case(key=f"{source_stem(source)}/{index}", image=as_image(values, str(entry.path)), meta=meta)

    @staticmethod
    def _step(files: list[_Entry], entry: _Entry) -> np.ndarray:
        """Vector between consecutive slices (LPS, mm): mean spacing of the series, else the thickness."""
        positions = [e.position for e in files if e.position is not None]
        if len(positions) == len(files) and len(files) > 1:
            return (positions[-1] - positions[0]) / (len(files) - 1)
        return _normal(entry.orientation) * (entry.thickness or 1.0)  # type: ignore[arg-type]


def _values(entry: _Entry, frame: int, dtype: Any) -> tuple[np.ndarray, Any]:
    """Modality values ``slope * stored + intercept`` (computed in ``dtype``) of one frame, and the dataset."""
    import pydicom

    ds = None
    try:
        ds = pydicom.dcmread(entry.path)
        pixels = ds.pixel_array
    except Exception as exc:  # missing decoder for compressed data, truncated pixel data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "?")
        raise DataError(
            f"{entry.path}: cannot decode the pixel data (transfer syntax {syntax}): {type(exc).__name__}: "
            f"{exc}; compressed DICOM may need pylibjpeg or gdcm installed"
        ) from None
    samples = int(ds.get("SamplesPerPixel", 1))
    if entry.frames > 1:
        pixels = pixels[frame]
    if samples == 3:  # colour: ITU-R 601 luminance
        pixels = pixels[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    return pixels.astype(dtype) * slope + intercept, ds


def _tolist(affine: np.ndarray | None) -> list | None:
    return None if affine is None else affine.tolist()


@dataclass
class SeriesVolume:
    """One DICOM series stacked into a volume (see :func:`read_series_volumes`)."""

    series_uid: str
    description: str  # SeriesDescription of the series' first file (in the order given)
    modality: str
    first_file: Path  # file of slice 0 (after sorting)
    data: np.ndarray  # (rows, columns, slices) modality values
    affine: np.ndarray  # maps (row, column, slice) to RAS+ world mm


_DEFAULT_ORIENTATION = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])


def read_series_volumes(files: Sequence[str | Path], *, dtype: Any = np.float32) -> list[SeriesVolume]:
    """Group DICOM files by ``SeriesInstanceUID`` and stack each series into a 3-D volume.

    Slices are sorted along the slice normal ``n = row x column`` (``ImageOrientationPatient`` of the
    series' first file; ``np.argsort`` of the positions, so the loader's tie-break by ``InstanceNumber``
    does not apply to volumes); the affine is the loader's ``P + r dr Y + c dc X + s step`` with
    ``step = n * median(diff(positions . n))`` (``SliceThickness`` for one slice), sign-flipped from LPS to
    RAS. Missing tags get defaults: orientation ``[1, 0, 0, 0, 1, 0]``, position ``(0, 0, i)`` for the
    i-th file, pixel spacing 1 mm. Values are ``slope * stored + intercept`` computed in ``dtype``.

    Args:
        files: DICOM files (any order); files without pixel data (DICOMDIR, reports) are skipped.
        dtype: dtype of the values.

    Returns:
        One :class:`SeriesVolume` per series, in the order the series first appear in ``files``.

    Raises:
        DataError: an unreadable file, a multi-frame file, or slices of different shapes in a series.

    Example:
        >>> from genrecon.io.dicom import read_series_volumes
        >>> vols = read_series_volumes(sorted(Path("scan").glob("*.dcm")))  # doctest: +SKIP
    """
    groups: dict[str, list[_Entry]] = {}
    for f in files:
        entry = _read_entry(Path(f), str(f), strict=True, pixels_required=False)
        if entry is not None:
            groups.setdefault(entry.series_uid, []).append(entry)
    out = []
    for uid, entries in groups.items():
        first = entries[0]
        multi = next((e for e in entries if e.frames > 1), None)
        if multi is not None:
            raise DataError(f"{multi.path}: multi-frame DICOM is not supported; convert it with dcm2niix "
                            "to NIfTI first")
        orientation = first.orientation if first.orientation is not None else _DEFAULT_ORIENTATION
        normal = _normal(orientation)
        pos = [e.position if e.position is not None else np.array([0.0, 0.0, float(i)])
               for i, e in enumerate(entries)]
        order = np.argsort([p @ normal for p in pos])  # equal positions: numpy's order, as before
        entries = [entries[i] for i in order]
        pos = [pos[i] for i in order]
        along = [p @ normal for p in pos]
        step = float(np.median(np.diff(along))) if len(pos) > 1 else (first.slice_thickness or 1.0)
        slices = []
        for e in entries:
            values, _ = _values(e, 0, dtype)
            if values.shape != first.shape:
                raise DataError(f"{e.path}: slice shape {values.shape} differs from the series' {first.shape}; "
                                "put each series in its own folder")
            slices.append(values)
        out.append(SeriesVolume(uid, first.description, first.modality, entries[0].path, np.stack(slices, axis=-1),
                                _affine(orientation, first.spacing or (1.0, 1.0), pos[0],
                                        normal * (step if step > 0 else 1.0))))
    return out
