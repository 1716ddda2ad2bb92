"""Real scans for genrecon: fetch public volumes, write the bundled samples and the training datasets.

Three steps, each idempotent, called by ``scripts/prepare_data.py``:

* :func:`fetch` downloads the packages that hold real scans (PyPI ``nilearn`` wheel, Debian
  ``mricron-data`` and ``invesalius-examples``) into a cache folder and unpacks the few files used.
* :func:`write_samples` writes the two small NIfTI files bundled in ``genrecon/data/samples`` and their
  ``samples.json`` sidecar. Every bundled slice comes from a held-out slab, never from training data.
* :func:`build_brain_mri_dataset` and :func:`build_head_ct_dataset` write the HDF5 training sets;
  :func:`build_dataset_from_folder` does the same for any folder of NIfTI, DICOM, fastMRI HDF5,
  PNG/TIFF or ``.npy`` files.

Conventions (also in ``data/README.md``):

* 3-D volumes are reoriented to RAS+ (axis 0 towards the patient's right, 1 anterior, 2 superior) and
  resampled to isotropic voxels (linear interpolation) before slicing.
* 2-D slices are display-ready in the radiological convention: axial and coronal images show the
  patient's right on the image's left; axial rows run anterior -> posterior, coronal and sagittal rows
  superior -> inferior, sagittal columns anterior -> posterior.
* MRI intensities: divided by the volume's 99.5th percentile (of voxels above 5 % of its maximum) and
  clipped to [0, 1]. CT: ``(clip(HU, -1024, 3071) + 1024) / 4095``, so ``HU = 4095 * x - 1024``.
* Held-out (val) split: whole slabs, never random slices; training slices within ``gap`` of a slab are
  dropped (neighbouring slices are near-duplicates). See :class:`SlabRule`.

Library code here never prints; progress goes through the optional ``log`` callback.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import math
import plistlib
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from . import __version__
from .errors import ConfigError, DataError

Log = Callable[[str], None] | None

#: CT intensity mapping: ``x = (clip(HU, HU_MIN, HU_MAX) - HU_OFFSET_NEG) / HU_SCALE``
HU_MIN, HU_MAX = -1024.0, 3071.0
HU_OFFSET = 1024.0
HU_SCALE = 4095.0
CT_NORMALISATION = "x = (clip(HU, -1024, 3071) + 1024) / 4095; HU = 4095 * x - 1024"
MRI_NORMALISATION = (
    "x = clip(I / p99.5, 0, 1), p99.5 = 99.5th percentile of the volume's voxels above 5% of its max"
)
ORIENTATION_CONVENTION = (
    "radiological display: axial rows anterior->posterior, columns patient right->left; coronal rows "
    "superior->inferior, columns patient right->left; sagittal rows superior->inferior, columns "
    "anterior->posterior"
)
ORIENTATIONS = ("axial", "coronal", "sagittal")
_AXIS = {"sagittal": 0, "coronal": 1, "axial": 2}  # RAS axis each orientation slices along

EMPTY_THRESHOLD = 0.10  # a pixel is "tissue" above 10 % of the normalised maximum (1.0)
EMPTY_MIN_FRACTION = 0.15  # a slice with less tissue than this is near-empty and skipped

# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------

MNI_NOTICE = (
    "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological "
    "Institute, McGill University. Permission to use, copy, modify, and distribute this software and "
    "its documentation for any purpose and without fee is hereby granted, provided that the above "
    "copyright notice appear in all copies. The authors and McGill University make no representations "
    "about the suitability of this software for any purpose. It is provided \"as is\" without express "
    "or implied warranty. The authors are not responsible for any data loss, equipment damage, "
    "property loss, or injury to subjects or patients resulting from the use or misuse of this "
    "software package."
)


@dataclass(frozen=True)
class Package:
    """A package that carries real scans, and how to get it."""

    name: str
    kind: str  # "pypi" or "deb"
    version: str  # pinned for PyPI; for Debian the version found is recorded after download
    licence: str
    copyright_file: str  # path of the licence text inside the unpacked package

    @property
    def cache_subdir(self) -> str:
        return "pypi" if self.kind == "pypi" else "debian"


NILEARN = Package(
    "nilearn", "pypi", "0.14.1", "BSD-3-Clause (nilearn code); MNI ICBM152 notice (template)",
    "nilearn-{version}.dist-info/licenses/LICENSE",
)
MRICRON_DATA = Package(
    "mricron-data", "deb", "", "BSD-3-clause (debian/copyright, Files: *, Copyright 2006-2010 Chris Rorden)",
    "usr/share/doc/mricron-data/copyright",
)
INVESALIUS_EXAMPLES = Package(
    "invesalius-examples", "deb", "",
    "GPL-2 (debian/copyright, Files: *, (c) 2008-2021 Centro de Tecnologia da Informacao Renato Archer)",
    "usr/share/doc/invesalius-examples/copyright",
)
PACKAGES = (NILEARN, MRICRON_DATA, INVESALIUS_EXAMPLES)

MNI_MEMBER = "nilearn/datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
CH2_MEMBER = "usr/share/mricron/templates/ch2.nii.gz"
CH2BETTER_MEMBER = "usr/share/mricron/templates/ch2better.nii.gz"
CRANIUM_MEMBER = "usr/share/doc/invesalius-examples/examples/Cranium.inv3"


@dataclass(frozen=True)
class Source:
    """One real volume used by genrecon, with where it came from and under which licence."""

    name: str
    path: Path
    package: str
    version: str
    member: str
    licence: str
    notice: str
    description: str
    citation: str

    def as_dict(self) -> dict:
        return {
            "name": self.name, "package": self.package, "version": self.version, "file": self.member,
            "licence": self.licence, "notice": self.notice, "description": self.description,
            "citation": self.citation,
        }


@dataclass(frozen=True)
class FetchedSources:
    """Paths of the unpacked real volumes (see :func:`fetch`)."""

    mni152: Source
    ch2: Source
    ch2better: Source
    cranium: Source


# --------------------------------------------------------------------------------------------------
# Held-out slab rule
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlabRule:
    """Which slices are held out (val), kept for training, or dropped.

    Per orientation, a slab ``[lo, hi]`` of slice positions is held out. ``units="mm"`` means world
    coordinates along the RAS axis (x for sagittal, y for coronal, z for axial), the right choice when
    volumes share a standard space (MNI): the same anatomy is held out of every volume, so one subject
    seen twice (Colin27 ``ch2`` and ``ch2better``) cannot leak. ``units="fraction"`` means a fraction of
    the head's extent along that axis (its foreground bounding box; the whole stack for 2-D stacks).
    Training slices closer than ``gap`` (mm; slices for stacks without geometry) to a slab are dropped.
    """

    slabs: dict[str, tuple[float, float]]
    units: str = "fraction"
    gap: float = 4.0

    def __post_init__(self) -> None:
        if self.units not in ("mm", "fraction"):
            raise ConfigError(f"slab units: expected 'mm' or 'fraction', got {self.units!r}")
        for key, (lo, hi) in self.slabs.items():
            if not lo < hi:
                raise ConfigError(f"slab {key}: expected lo < hi, got [{lo}, {hi}]")

    def describe(self) -> str:
        parts = [f"{k} {lo:g}..{hi:g}" for k, (lo, hi) in self.slabs.items()]
        unit = "mm (world, RAS)" if self.units == "mm" else "fraction of the head's extent along the axis"
        return (
            f"val = every slice whose position lies in the held-out slab of its orientation ("
            + "; ".join(parts) + f"; units: {unit}); train = slices farther than {self.gap:g} "
            "mm from the slab (slices in the gap are dropped); never random slices"
        )

    def split(self, orientation: str, position: float, extent: tuple[float, float]) -> str | None:
        """Return ``"val"``, ``"train"`` or ``None`` (in the gap) for a slice.

        Args:
            orientation: key of :attr:`slabs` (``"axial"``, ..., or ``"stored"`` for stacks).
            position: the slice's position (mm, or slice index for stacks).
            extent: ``(first, last)`` position of the head along the axis, for ``units="fraction"``.
        """
        if orientation not in self.slabs:
            raise ConfigError(f"slab rule has no slab for orientation {orientation!r}; "
                              f"it has {sorted(self.slabs)}")
        lo, hi = self.slabs[orientation]
        if self.units == "fraction":
            a, b = extent
            lo, hi = a + lo * (b - a), a + hi * (b - a)
        if lo <= position <= hi:
            return "val"
        if lo - self.gap <= position <= hi + self.gap:
            return None
        return "train"


#: MRI templates live in MNI space: the slabs are world mm. Axial z 12..32 mm is centred on the
#: mid-axial MNI152 slice (z = +22 mm, the upper-middle third of the brain: lateral ventricles); coronal
#: y -36..-16 mm (thalami, atria); sagittal |x| <= 10 mm is centred on the midline because the MNI152
#: 2009a symmetric template is exactly left-right symmetric: any lateral slab would have its mirror
#: image in the training set.
BRAIN_SLABS = SlabRule({"axial": (12.0, 32.0), "coronal": (-36.0, -16.0), "sagittal": (-10.0, 10.0)},
                       units="mm", gap=4.0)
#: The CT has no standard space: slabs are fractions of the head's extent (upper-middle axial slab,
#: an anterior-of-centre coronal slab, sagittal centred on the midline).
CT_SLABS = SlabRule({"axial": (0.55, 0.68), "coronal": (0.56, 0.68), "sagittal": (0.44, 0.56)},
                    units="fraction", gap=4.0)
#: default for user folders
DEFAULT_SLABS = SlabRule({"axial": (0.55, 0.67), "coronal": (0.56, 0.68), "sagittal": (0.44, 0.56),
                          "stored": (0.55, 0.67)}, units="fraction", gap=4.0)


# --------------------------------------------------------------------------------------------------
# Fetch
# --------------------------------------------------------------------------------------------------


def _say(log: Log, message: str) -> None:
    if log is not None:
        log(message)


def _run(cmd: Sequence[str], cwd: Path, what: str, hint: str) -> None:
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DataError(f"{what}: command {cmd[0]!r} not found; {hint}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith(("E:", "ERROR", "error"))] or lines[-1:]
        detail = errors[0] if errors else f"exit status {proc.returncode}"
        raise DataError(f"{what} failed ({detail}); {hint}")


def _pip_download(pkg: Package, dest: Path, log: Log) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    pattern = f"{pkg.name}-{pkg.version}-*.whl"
    found = sorted(dest.glob(pattern))
    if not found:
        _say(log, f"pip download {pkg.name}=={pkg.version} -> {dest}")
        _run([sys.executable, "-m", "pip", "download", f"{pkg.name}=={pkg.version}", "--no-deps",
              "--only-binary=:all:", "-d", str(dest)], dest, f"pip download {pkg.name}=={pkg.version}",
             f"check the network access to PyPI, or put {pattern} into {dest} by hand")
        found = sorted(dest.glob(pattern))
        if not found:
            raise DataError(f"pip download {pkg.name}: no file {pattern} in {dest} afterwards; "
                            "download the wheel by hand into that folder")
    else:
        _say(log, f"have {found[-1].name}")
    return found[-1]


def _deb_version(deb: Path) -> str:
    # file names are <name>_<version>_<arch>.deb, with ':' of an epoch written as %3a
    return deb.name.split("_")[1].replace("%3a", ":")


def _apt_download(pkg: Package, dest: Path, log: Log, apt_update: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"{pkg.name}_*.deb"))
    if found:
        _say(log, f"have {found[-1].name}")
        return found[-1]
    hint = (f"download {pkg.name}_*.deb from https://packages.debian.org/bookworm/all/{pkg.name}/download "
            f"into {dest} and rerun")
    if apt_update:
        _say(log, "apt-get update")
        _run(["apt-get", "update"], dest, "apt-get update", "run it as root, or " + hint)
    _say(log, f"apt-get download {pkg.name} -> {dest}")
    _run(["apt-get", "download", pkg.name], dest, f"apt-get download {pkg.name}",
         ("" if apt_update else "if apt does not know the package, rerun with --apt-update (needs root); ")
         + "or " + hint)
    found = sorted(dest.glob(f"{pkg.name}_*.deb"))
    if not found:
        raise DataError(f"apt-get download {pkg.name}: no {pkg.name}_*.deb in {dest} afterwards; {hint}")
    return found[-1]


def _read_ar(path: Path) -> dict[str, bytes]:
    """Members of a Unix ``ar`` archive (the container of a ``.deb``)."""
    raw = path.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise DataError(f"{path}: not a Debian package (no ar header); delete it and rerun fetch")
    members, pos = {}, 8
    while pos + 60 <= len(raw):
        header = raw[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        members[name] = raw[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
    return members


def _extract_deb(deb: Path, dest: Path, wanted: Iterable[str]) -> None:
    """Extract ``wanted`` paths of a ``.deb``'s data archive into ``dest`` (pure Python, no dpkg)."""
    members = _read_ar(deb)
    data_name = next((n for n in members if n.startswith("data.tar")), None)
    if data_name is None:
        raise DataError(f"{deb}: no data.tar.* member; delete it and rerun fetch")
    blob = members[data_name]
    if data_name.endswith(".xz"):
        blob = lzma.decompress(blob)
    elif data_name.endswith(".gz"):
        blob = gzip.decompress(blob)
    elif not data_name.endswith(".tar"):
        raise DataError(f"{deb}: unsupported compression {data_name}; unpack it with "
                        f"'dpkg-deb -x {deb.name} {dest}' and rerun")
    wanted = set(wanted)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for info in tar.getmembers():
            name = info.name.lstrip("./")
            if name in wanted and info.isfile():
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                wanted.discard(name)
    if wanted:
        raise DataError(f"{deb}: missing {sorted(wanted)}; the package layout changed, "
                        "check the file list with 'dpkg-deb -c'")


def _extract_wheel(whl: Path, dest: Path, wanted: Iterable[str]) -> None:
    with zipfile.ZipFile(whl) as zf:
        names = set(zf.namelist())
        for member in wanted:
            if member not in names:
                raise DataError(f"{whl.name}: no {member}; the wheel's layout changed, list it with "
                                f"'unzip -l {whl}' and update genrecon.prepare")
            target = dest / member
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))


def fetch(cache: Path | str, *, apt_update: bool = False, log: Log = None) -> FetchedSources:
    """Download (if needed) and unpack the packages holding the real scans into ``cache``.

    Layout: ``cache/pypi/*.whl``, ``cache/debian/*.deb`` and ``cache/extracted/<package>/...``.
    Idempotent: files already present are not downloaded or unpacked again.

    Args:
        cache: cache folder (``data/cache`` in the repository; git-ignored).
        apt_update: run ``apt-get update`` before ``apt-get download`` (needs root).
        log: optional callback for one-line progress messages.

    Returns:
        The four volumes with their package, version and licence.

    Raises:
        DataError: a download or unpacking failed (one line, says how to fix).
    """
    cache = Path(cache)
    extracted = cache / "extracted"
    whl = _pip_download(NILEARN, cache / "pypi", log)
    licence_member = NILEARN.copyright_file.format(version=NILEARN.version)
    _extract_wheel(whl, extracted / "nilearn", [MNI_MEMBER, licence_member,
                                                 "nilearn/datasets/description/icbm152_2009.rst"])
    debs = {}
    for pkg, members in ((MRICRON_DATA, [CH2_MEMBER, CH2BETTER_MEMBER]),
                         (INVESALIUS_EXAMPLES, [CRANIUM_MEMBER])):
        deb = _apt_download(pkg, cache / "debian", log, apt_update)
        want = members + [pkg.copyright_file]
        if not all((extracted / pkg.name / m).exists() for m in want):
            _say(log, f"unpack {deb.name}")
            _extract_deb(deb, extracted / pkg.name, want)
        debs[pkg.name] = _deb_version(deb)
    return sources_from_cache(cache, debs)


def sources_from_cache(cache: Path | str, deb_versions: dict[str, str] | None = None) -> FetchedSources:
    """The :class:`FetchedSources` of an already fetched cache (raises DataError if files are missing)."""
    cache = Path(cache)
    extracted = cache / "extracted"
    if deb_versions is None:
        deb_versions = {}
        for pkg in (MRICRON_DATA, INVESALIUS_EXAMPLES):
            found = sorted((cache / "debian").glob(f"{pkg.name}_*.deb"))
            deb_versions[pkg.name] = _deb_version(found[-1]) if found else "unknown"
    paths = {
        "mni152": extracted / "nilearn" / MNI_MEMBER,
        "ch2": extracted / "mricron-data" / CH2_MEMBER,
        "ch2better": extracted / "mricron-data" / CH2BETTER_MEMBER,
        "cranium": extracted / "invesalius-examples" / CRANIUM_MEMBER,
    }
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise DataError(f"missing fetched file(s) {missing}; run 'python scripts/prepare_data.py fetch' first")
    mri_cite = ("Fonov et al., NeuroImage 54(1):313-327, 2011; Fonov et al., NeuroImage 47:S102, 2009 "
                "(OHBM); Collins et al., 1999")
    colin_cite = "Holmes et al., J Comput Assist Tomogr 22(2):324-333, 1998 (Colin27)"
    mricron_notice = ("BSD-3-clause; Copyright 2006-2010, Chris Rorden (MRIcron); Debian packaging (c) 2010 "
                      "Michael Hanke")
    mv = deb_versions.get("mricron-data", "unknown")
    return FetchedSources(
        mni152=Source(
            "mni152_2009a", paths["mni152"], "nilearn (PyPI wheel)", NILEARN.version, MNI_MEMBER,
            "MNI ICBM152 permissive notice (any purpose, without fee, keep the copyright notice); "
            "nilearn's own code is BSD-3-Clause (nilearn's dataset description lists the template licence "
            "as 'unknown')", MNI_NOTICE,
            "MNI ICBM152 2009a nonlinear symmetric T1 template, skull-stripped and rescaled to uint8 by "
            "nilearn; an average of 152 subjects (not a single scan); 197x233x189 at 1 mm",
            mri_cite),
        ch2=Source(
            "colin27_ch2", paths["ch2"], "mricron-data (Debian bookworm)", mv, CH2_MEMBER,
            MRICRON_DATA.licence, mricron_notice,
            "Colin27 (ch2): single subject, 27 averaged T1 scans, whole head, MNI space, 181x217x181 at 1 mm",
            colin_cite),
        ch2better=Source(
            "colin27_ch2better", paths["ch2better"], "mricron-data (Debian bookworm)", mv, CH2BETTER_MEMBER,
            MRICRON_DATA.licence, mricron_notice,
            "Colin27 (ch2better): same subject as ch2, brain-extracted with enhanced contrast, 301x370x316 "
            "at 0.5 mm, MNI space", colin_cite),
        cranium=Source(
            "invesalius_cranium", paths["cranium"], "invesalius-examples (Debian bookworm)",
            deb_versions.get("invesalius-examples", "unknown"), CRANIUM_MEMBER, INVESALIUS_EXAMPLES.licence,
            "GPL-2; (c) 2008-2021 Centro de Tecnologia da Informacao Renato Archer (InVesalius)",
            "InVesalius example project 'ProMED CT 0051': head CT, 108 axial slices of 256x256 int16 HU, "
            "0.957 x 0.957 mm pixels, 1.5 mm slices",
            "Amorim et al., InVesalius: an interactive rendering framework for health care support, "
            "ISVC 2015, LNCS 9474"),
    )


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------


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


def to_canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorient a 3-D array to the closest RAS+ axes (flips and permutations only)."""
    import nibabel.orientations as nio

    ornt = nio.io_orientation(affine)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return data, affine
    out = nio.apply_orientation(data, ornt)
    return np.ascontiguousarray(out), affine @ nio.inv_ornt_aff(ornt, data.shape)


def read_nifti(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """A NIfTI file as ``(float32 array (X, Y, Z), affine)``; 4-D files keep their first volume."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise DataError(f"{path}: not a readable NIfTI file ({exc})") from None
    if data.ndim == 4:
        data = data[..., 0]
    if data.ndim == 2:
        data = data[..., None]
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 2-D, 3-D or 4-D image, got shape {data.shape}")
    return data, np.asarray(img.affine, dtype=np.float64)


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
        return head[128:132] == b"DICM"
    except OSError:
        return False


def read_dicom_series(files: Sequence[Path]) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """Group DICOM files by series and stack each into a 3-D volume.

    Returns:
        ``[(series_name, data (R, C, S) float32 in real units (slope/intercept applied), affine RAS,
        modality)]``. The affine maps (row, column, slice) to RAS mm from ImagePositionPatient,
        ImageOrientationPatient and PixelSpacing.
    """
    import pydicom

    series: dict[str, list] = {}
    for f in files:
        try:
            ds = pydicom.dcmread(str(f))
        except Exception as exc:
            raise DataError(f"{f}: not a readable DICOM file ({exc})") from None
        if "PixelData" not in ds:
            continue
        uid = str(getattr(ds, "SeriesInstanceUID", "unknown"))
        series.setdefault(uid, []).append((f, ds))
    out = []
    for uid, items in series.items():
        ds0 = items[0][1]
        if int(getattr(ds0, "NumberOfFrames", 1) or 1) > 1:
            raise DataError(f"{items[0][0]}: multi-frame DICOM is not supported; convert it with dcm2niix "
                            "to NIfTI first")
        iop = np.array([float(v) for v in getattr(ds0, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0])])
        row_dir, col_dir = iop[:3], iop[3:]  # direction of increasing column / increasing row index
        normal = np.cross(row_dir, col_dir)
        pos = [np.array([float(v) for v in getattr(d, "ImagePositionPatient", [0, 0, i])])
               for i, (_, d) in enumerate(items)]
        order = np.argsort([p @ normal for p in pos])
        items = [items[i] for i in order]
        pos = [pos[i] for i in order]
        dr, dc = (float(v) for v in getattr(ds0, "PixelSpacing", [1.0, 1.0]))
        ds_ = float(np.median(np.diff([p @ normal for p in pos]))) if len(pos) > 1 else float(
            getattr(ds0, "SliceThickness", 1.0) or 1.0)
        slices = []
        shape0 = (int(ds0.Rows), int(ds0.Columns))
        for f, d in items:
            arr = d.pixel_array.astype(np.float32)
            if arr.shape != shape0:
                raise DataError(f"{f}: slice shape {arr.shape} differs from the series' {shape0}; "
                                "put each series in its own folder")
            slope = float(getattr(d, "RescaleSlope", 1) or 1)
            slices.append(arr * slope + float(getattr(d, "RescaleIntercept", 0) or 0))
        data = np.stack(slices, axis=-1)
        lps = np.eye(4)
        lps[:3, 0] = col_dir * dr
        lps[:3, 1] = row_dir * dc
        lps[:3, 2] = normal * (ds_ if ds_ > 0 else 1.0)
        lps[:3, 3] = pos[0]
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # LPS -> RAS
        name = str(getattr(ds0, "SeriesDescription", "") or uid).strip().replace(" ", "_") or uid
        out.append((f"{items[0][0].parent.name}/{name}", data, affine, str(getattr(ds0, "Modality", ""))))
    return out


def read_fastmri(path: Path | str) -> np.ndarray:
    """Magnitude images ``(N, H, W)`` float32 of a fastMRI HDF5 file (``reconstruction_rss`` or ``_esc``)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            for key in ("reconstruction_rss", "reconstruction_esc"):
                if key in f:
                    data = np.asarray(f[key], dtype=np.float32)
                    break
            else:
                raise DataError(f"{path}: no 'reconstruction_rss' or 'reconstruction_esc' dataset (keys: "
                                f"{sorted(f.keys())}); test/challenge files hold only k-space, use the "
                                "train/val files")
    except OSError as exc:
        raise DataError(f"{path}: not a readable HDF5 file ({exc})") from None
    if data.ndim != 3:
        raise DataError(f"{path}: expected reconstructions of shape (N, H, W), got {data.shape}")
    return data


def read_image(path: Path | str) -> np.ndarray:
    """A PNG/TIFF image as a float32 ``(H, W)`` array (colour images are averaged over channels)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except Exception as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None
    arr = arr.astype(np.float32)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=-1)
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a 2-D image, got shape {arr.shape}")
    return arr


# --------------------------------------------------------------------------------------------------
# Geometry and intensities
# --------------------------------------------------------------------------------------------------


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
    return ((np.clip(np.asarray(hu, dtype=np.float32), HU_MIN, HU_MAX) + HU_OFFSET) / HU_SCALE).astype(np.float32)


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


# --------------------------------------------------------------------------------------------------
# Slicing into records
# --------------------------------------------------------------------------------------------------


@dataclass
class SliceSet:
    """Slices collected for one split."""

    images: list[np.ndarray] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    orientation: list[str] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    position: list[float] = field(default_factory=list)

    def add(self, img: np.ndarray, source: str, orientation: str, index: int, position: float) -> None:
        self.images.append(img)
        self.source.append(source)
        self.orientation.append(orientation)
        self.index.append(index)
        self.position.append(position)

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class Collected:
    """Train and val slices plus bookkeeping (skipped and gap counts per volume)."""

    train: SliceSet = field(default_factory=SliceSet)
    val: SliceSet = field(default_factory=SliceSet)
    stats: dict = field(default_factory=dict)


def slice_volume(vol01: np.ndarray, affine: np.ndarray, name: str, out: Collected, *, size: int,
                 rule: SlabRule, orientations: Sequence[str] = ORIENTATIONS, step_mm: float = 1.0,
                 margin: float = 0.04, log: Log = None) -> None:
    """Cut a normalised, canonical, isotropic volume into square slices and file them by split.

    Args:
        vol01: ``(X, Y, Z)`` float32 in [0, 1], RAS+, isotropic voxels.
        affine: its voxel-to-world affine (axis-aligned).
        name: volume name stored in ``*/source``.
        out: collection that receives the slices.
        size: output side in pixels.
        rule: held-out slab rule.
        orientations: which orientations to cut.
        step_mm: distance between kept slices (every ``round(step_mm / voxel)``-th slice).
        margin: margin around the head's bounding box, relative to its larger side.
        log: progress callback.
    """
    mask = foreground_mask(vol01)
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    counts = {"train": 0, "val": 0, "gap": 0, "empty": 0}
    for orient in orientations:
        ax = _AXIS[orient]
        stack = display_stack(vol01, orient)
        mstack = display_stack(mask, orient)
        row0, col0, side = square_crop_box(mstack.any(axis=0), margin)
        occupied = np.flatnonzero(mstack.any(axis=(1, 2)))
        pos_of = lambda s: float(affine[ax, ax] * s + affine[ax, 3])  # noqa: E731 (axis-aligned)
        extent = tuple(sorted((pos_of(occupied[0]), pos_of(occupied[-1]))))
        step = max(1, int(round(step_mm / zooms[ax])))
        for s in range(0, stack.shape[0], step):
            position = pos_of(s)
            split = rule.split(orient, position, extent)
            if split is None:
                counts["gap"] += 1
                continue
            img = np.clip(resize(crop_pad(stack[s], row0, col0, side), size), 0.0, 1.0)
            if is_near_empty(img):
                counts["empty"] += 1
                continue
            getattr(out, split).add(img, name, orient, s, position)
            counts[split] += 1
    out.stats[name] = counts
    _say(log, f"{name}: {counts['train']} train, {counts['val']} val, {counts['gap']} in gaps, "
              f"{counts['empty']} near-empty skipped")


def slice_stack(stack01: np.ndarray, name: str, out: Collected, *, size: int, rule: SlabRule,
                margin: float = 0.04, log: Log = None) -> None:
    """Like :func:`slice_volume` for a 2-D stack ``(N, H, W)`` without geometry (orientation ``stored``).

    Positions are slice indices; the slab is ``rule.slabs['stored']`` as a fraction of the stack, and
    ``rule.gap`` counts slices.
    """
    counts = {"train": 0, "val": 0, "gap": 0, "empty": 0}
    mask = stack01 > EMPTY_THRESHOLD
    if not mask.any():
        raise DataError(f"{name}: no pixel above 10% of the normalised maximum; nothing to slice")
    row0, col0, side = square_crop_box(mask.any(axis=0), margin)
    extent = (0.0, float(stack01.shape[0] - 1))
    for s in range(stack01.shape[0]):
        split = rule.split("stored", float(s), extent)
        if split is None:
            counts["gap"] += 1
            continue
        img = np.clip(resize(crop_pad(stack01[s], row0, col0, side), size), 0.0, 1.0)
        if is_near_empty(img):
            counts["empty"] += 1
            continue
        getattr(out, split).add(img, name, "stored", s, float(s))
        counts[split] += 1
    out.stats[name] = counts
    _say(log, f"{name}: {counts['train']} train, {counts['val']} val, {counts['gap']} in gaps, "
              f"{counts['empty']} near-empty skipped")


# --------------------------------------------------------------------------------------------------
# HDF5 writer
# --------------------------------------------------------------------------------------------------


def write_dataset_h5(path: Path | str, data: Collected, attrs: dict) -> dict[str, int]:
    """Write ``train/*`` and ``val/*`` groups and root ``attrs``; returns ``{"train": n, "val": n}``.

    Each group holds ``images`` ``(N, S, S)`` float32, ``source`` and ``orientation`` (strings),
    ``index`` int32 (slice index in the canonical isotropic volume, or in the stack) and
    ``position_mm`` float32 (world position along the slicing axis; the index for stacks).
    Written to a temporary name, then renamed, so a crash never leaves a half-written file.
    """
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    counts = {}
    with h5py.File(tmp, "w") as f:
        for split in ("train", "val"):
            s: SliceSet = getattr(data, split)
            g = f.create_group(split)
            size = int(attrs["size"])
            imgs = np.stack(s.images).astype(np.float32) if len(s) else np.zeros((0, size, size), np.float32)
            g.create_dataset("images", data=imgs, chunks=(1, size, size) if len(s) else None,
                             compression="gzip" if len(s) else None, compression_opts=4 if len(s) else None,
                             shuffle=bool(len(s)))
            str_dt = h5py.string_dtype()
            g.create_dataset("source", data=np.array(s.source, dtype=object), dtype=str_dt)
            g.create_dataset("orientation", data=np.array(s.orientation, dtype=object), dtype=str_dt)
            g.create_dataset("index", data=np.array(s.index, dtype=np.int32))
            g.create_dataset("position_mm", data=np.array(s.position, dtype=np.float32))
            counts[split] = len(s)
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["n_train"] = counts["train"]
        f.attrs["n_val"] = counts["val"]
    tmp.replace(path)
    return counts


def _created_by(func: str) -> str:
    return f"genrecon {__version__}, scripts/prepare_data.py -> genrecon.prepare.{func}"


def _common_attrs(modality: str, size: int, normalisation: str, sources: list[dict], licence: str,
                  rule: SlabRule, func: str, stats: dict) -> dict:
    return {
        "modality": modality,
        "size": int(size),
        "normalisation": normalisation,
        "sources": json.dumps(sources),
        "licence": licence,
        "created_by": _created_by(func),
        "split_rule": rule.describe(),
        "slice_rule": (f"slices with less than {EMPTY_MIN_FRACTION:.0%} of pixels above "
                       f"{EMPTY_THRESHOLD:.0%} of the normalised maximum are skipped"),
        "orientation_convention": ORIENTATION_CONVENTION,
        "stats": json.dumps(stats),
    }


# --------------------------------------------------------------------------------------------------
# The two training datasets
# --------------------------------------------------------------------------------------------------


def _mri_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data, affine = read_nifti(path)
    data, affine = to_canonical(data, affine)
    data, affine = resample_isotropic(data, affine)
    vol01, _ = normalise_mri(data)
    return vol01, affine


def build_brain_mri_dataset(sources: Sequence[Source], out: Path | str, *, size: int = 128,
                            rule: SlabRule = BRAIN_SLABS, log: Log = None) -> dict[str, int]:
    """Write ``brain-mri-<size>.h5`` from T1 NIfTI volumes in MNI space (see module docstring).

    Returns:
        ``{"train": n_train, "val": n_val}``.
    """
    col = Collected()
    for src in sources:
        _say(log, f"slicing {src.name} ({src.path.name})")
        vol01, affine = _mri_volume(src.path)
        slice_volume(vol01, affine, src.name, col, size=size, rule=rule, log=log)
    attrs = _common_attrs(
        "mri", size, MRI_NORMALISATION, [s.as_dict() for s in sources],
        "; ".join(sorted({f"{s.name}: {s.licence}" for s in sources})), rule, "build_brain_mri_dataset",
        col.stats)
    attrs["content"] = ("T1-weighted magnitude slices, axial/coronal/sagittal, from templates in MNI space: "
                        "MNI152 is a 152-subject average; ch2 and ch2better are the same single subject "
                        "(Colin27), so the slabs are in world mm and hold out the same anatomy in both")
    return write_dataset_h5(out, col, attrs)


def _ct_volume(path: Path) -> tuple[np.ndarray, np.ndarray]:
    matrix, spacing, _ = read_inv3(path)
    vol, affine = inv3_to_ras(matrix.astype(np.float32), spacing)
    vol, affine = resample_isotropic(vol, affine)
    return normalise_ct(vol), affine


def build_head_ct_dataset(sources: Sequence[Source], out: Path | str, *, size: int = 128,
                          rule: SlabRule = CT_SLABS, log: Log = None) -> dict[str, int]:
    """Write ``head-ct-<size>.h5`` from InVesalius ``.inv3`` head CTs (axial + reformats).

    Returns:
        ``{"train": n_train, "val": n_val}``.
    """
    col = Collected()
    for src in sources:
        _say(log, f"slicing {src.name} ({src.path.name})")
        vol01, affine = _ct_volume(src.path)
        slice_volume(vol01, affine, src.name, col, size=size, rule=rule, log=log)
    attrs = _common_attrs(
        "ct", size, CT_NORMALISATION, [s.as_dict() for s in sources],
        "; ".join(sorted({f"{s.name}: {s.licence}" for s in sources})), rule, "build_head_ct_dataset",
        col.stats)
    attrs.update({"hu_offset": HU_OFFSET, "hu_scale": HU_SCALE, "hu_min": HU_MIN, "hu_max": HU_MAX,
                  "content": "head CT: axial slices plus coronal and sagittal reformats of the volume "
                             "resampled to isotropic voxels (linear interpolation along z)"})
    return write_dataset_h5(out, col, attrs)


# --------------------------------------------------------------------------------------------------
# Bundled samples
# --------------------------------------------------------------------------------------------------

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
    meta: dict = {"created_by": _created_by("write_samples"), "orientation_convention": ORIENTATION_CONVENTION,
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
    _say(log, f"wrote {brain_path} {arr.shape} slices {ks}")

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
    _say(log, f"wrote {ct_path} {arr.shape} slices {ks}")
    (out_dir / "samples.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


# --------------------------------------------------------------------------------------------------
# Any folder
# --------------------------------------------------------------------------------------------------

_IMAGE_SUFFIXES = (".png", ".tif", ".tiff")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def build_dataset_from_folder(folder: Path | str, out: Path | str, *, modality: str, size: int = 128,
                              normalisation: str | None = None, rule: SlabRule = DEFAULT_SLABS,
                              split: str = "slab", val_fraction: float = 0.1,
                              orientations: Sequence[str] = ORIENTATIONS, log: Log = None) -> dict[str, int]:
    """Build a training HDF5 (same layout as the bundled datasets) from a folder of scans.

    Reads, recursively: NIfTI (``.nii``, ``.nii.gz``), DICOM series (``.dcm`` or files with the DICM
    preamble, grouped by SeriesInstanceUID), fastMRI HDF5 (``reconstruction_rss`` / ``_esc``), PNG/TIFF
    (each folder's sorted images form one stack) and ``.npy`` stacks ``(N, H, W)``.

    Args:
        folder: folder to scan.
        out: output ``.h5`` path.
        modality: ``"mri"`` or ``"ct"`` (stored in the attrs).
        size: output side in pixels.
        normalisation: ``"percentile"`` (magnitude images) or ``"hu"`` (CT in Hounsfield units: NIfTI,
            DICOM, ``.npy``). Defaults to ``"hu"`` for CT and ``"percentile"`` for MRI.
        rule: held-out slab rule (used when ``split="slab"``).
        split: ``"slab"`` (a slab of every volume is val) or ``"volume"`` (the last
            ``ceil(val_fraction * n)`` volumes in sorted order are val, whole; better for many volumes).
        val_fraction: fraction of volumes held out when ``split="volume"``.
        orientations: orientations cut from 3-D volumes (2-D stacks are used as stored).
        log: progress callback.

    Returns:
        ``{"train": n_train, "val": n_val}``.

    Raises:
        ConfigError: a bad option. DataError: nothing readable, or a file that cannot be read.
    """
    folder = Path(folder)
    if modality not in ("mri", "ct"):
        raise ConfigError(f"modality: expected 'mri' or 'ct', got {modality!r}")
    normalisation = normalisation or ("hu" if modality == "ct" else "percentile")
    if normalisation not in ("hu", "percentile"):
        raise ConfigError(f"normalisation: expected 'hu' or 'percentile', got {normalisation!r}")
    if split not in ("slab", "volume"):
        raise ConfigError(f"split: expected 'slab' or 'volume', got {split!r}")
    bad = [o for o in orientations if o not in ORIENTATIONS]
    if bad:
        raise ConfigError(f"orientations: expected a subset of {ORIENTATIONS}, got {bad}")
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; pass a folder of NIfTI/DICOM/HDF5/PNG/TIFF/.npy files")

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    volumes: list[tuple[str, Callable[[], tuple]]] = []  # name -> loader of ("vol", data, aff) | ("stack", arr)
    images: dict[Path, list[Path]] = {}
    dicoms: list[Path] = []
    for p in files:
        suf = _suffix(p)
        rel = str(p.relative_to(folder))
        if suf in (".nii", ".nii.gz"):
            volumes.append((rel, lambda p=p: ("vol", *read_nifti(p))))
        elif suf in (".h5", ".hdf5"):
            volumes.append((rel, lambda p=p: ("stack", read_fastmri(p))))
        elif suf == ".npy":
            volumes.append((rel, lambda p=p: ("stack", _read_npy(p))))
        elif suf in _IMAGE_SUFFIXES:
            images.setdefault(p.parent, []).append(p)
        elif _is_dicom(p):
            dicoms.append(p)
    for parent, group in sorted(images.items()):
        rel = str(parent.relative_to(folder)) or "."
        volumes.append((rel + "/*.png|tif", lambda g=group: ("stack", _stack_images(g))))
    if normalisation == "hu" and images:
        raise DataError(f"{folder}: PNG/TIFF images carry no Hounsfield units; use normalisation='percentile'")
    if dicoms:
        for name, data, aff, _mod in read_dicom_series(dicoms):
            volumes.append((name, lambda d=data, a=aff: ("vol", d, a)))
    if not volumes:
        raise DataError(f"{folder}: no NIfTI, DICOM, fastMRI HDF5, PNG/TIFF or .npy file found")
    volumes.sort(key=lambda v: v[0])

    n_val_vol = max(1, math.ceil(val_fraction * len(volumes))) if split == "volume" else 0
    if split == "volume" and len(volumes) < 2:
        raise ConfigError(f"split='volume' needs at least 2 volumes, found {len(volumes)}; use split='slab'")
    everything = SlabRule({k: (-1e9, 1e9) for k in (*ORIENTATIONS, "stored")}, units="mm", gap=0.0)
    nothing = SlabRule({k: (1e9, 2e9) for k in (*ORIENTATIONS, "stored")}, units="mm", gap=0.0)
    col = Collected()
    used = []
    for i, (name, load) in enumerate(volumes):
        vrule = rule if split == "slab" else (everything if i >= len(volumes) - n_val_vol else nothing)
        kind, *payload = load()
        norm = normalise_ct if normalisation == "hu" else (lambda a: normalise_mri(a)[0])
        if kind == "vol":
            data, aff = to_canonical(*payload)
            data, aff = resample_isotropic(data, aff)
            slice_volume(norm(data), aff, name, col, size=size, rule=vrule, orientations=orientations, log=log)
        else:
            slice_stack(norm(payload[0]), name, col, size=size, rule=vrule, log=log)
        used.append({"name": name, "kind": kind})
    rule_text = rule.describe() if split == "slab" else (
        f"whole volumes held out: the last {n_val_vol} of {len(volumes)} volumes in sorted name order")
    used_rule = rule if split == "slab" else everything
    attrs = _common_attrs(modality, size, CT_NORMALISATION if normalisation == "hu" else MRI_NORMALISATION,
                          used, "as licensed by the owner of the input folder", used_rule,
                          "build_dataset_from_folder", col.stats)
    attrs["split_rule"] = rule_text
    attrs["input_folder"] = str(folder)
    if normalisation == "hu":
        attrs.update({"hu_offset": HU_OFFSET, "hu_scale": HU_SCALE, "hu_min": HU_MIN, "hu_max": HU_MAX})
    return write_dataset_h5(out, col, attrs)


def _read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise DataError(f"{path}: expected an (N, H, W) stack, got shape {arr.shape}")
    if np.iscomplexobj(arr):
        arr = np.abs(arr)
    return arr.astype(np.float32)


def _stack_images(paths: Sequence[Path]) -> np.ndarray:
    imgs = [read_image(p) for p in sorted(paths)]
    shapes = {im.shape for im in imgs}
    if len(shapes) > 1:
        raise DataError(f"{paths[0].parent}: images of different shapes {sorted(shapes)}; put each "
                        "size in its own folder")
    return np.stack(imgs)


# --------------------------------------------------------------------------------------------------
# Everything
# --------------------------------------------------------------------------------------------------


def build_datasets(sources: FetchedSources, prepared: Path | str, *, size: int = 128,
                   log: Log = None) -> dict[str, dict[str, int]]:
    """Write ``brain-mri-<size>.h5`` and ``head-ct-<size>.h5`` into ``prepared``."""
    prepared = Path(prepared)
    return {
        f"brain-mri-{size}.h5": build_brain_mri_dataset(
            [sources.mni152, sources.ch2, sources.ch2better], prepared / f"brain-mri-{size}.h5",
            size=size, log=log),
        f"head-ct-{size}.h5": build_head_ct_dataset([sources.cranium], prepared / f"head-ct-{size}.h5",
                                                    size=size, log=log),
    }
