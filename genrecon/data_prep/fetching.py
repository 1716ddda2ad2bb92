"""Download the packages that carry genrecon's real scans, unpack the few files used, and describe them.

The packages (PyPI ``nilearn`` wheel, Debian ``mricron-data`` and ``invesalius-examples``) are fetched with
their ordinary clients (``pip download``, ``apt-get download``) and unpacked in pure Python (zip, ``ar`` +
tar), so no root access is needed unless ``apt-get update`` is. :class:`Source` records where each volume
came from and under which licence; the datasets and samples store them.

Example:
    >>> from genrecon.data_prep.fetching import fetch
    >>> sources = fetch("data/cache")  # doctest: +SKIP
    >>> sources.mni152.path.name  # doctest: +SKIP
    'mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz'
"""

from __future__ import annotations

import gzip
import io
import lzma
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import DataError
from .progress import Log, say

#: the licence notice of the MNI ICBM152 templates, stored with every volume taken from them
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
    """Paths of the unpacked real volumes (see :func:`fetch`); ``extra``: the added volumes by name
    (:func:`~genrecon.data_prep.more_sources.fetch_more`), empty unless fetched."""

    mni152: Source
    ch2: Source
    ch2better: Source
    cranium: Source
    extra: dict = field(default_factory=dict)


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


def _pip_download(pkg: Package, dest: Path, log: Log, *, sdist: bool = False) -> Path:
    """``pkg``'s wheel (or, ``sdist``, its source distribution) in ``dest``: downloaded by ``pip download`` unless
    it is there already."""
    dest.mkdir(parents=True, exist_ok=True)
    pattern = f"{pkg.name}-{pkg.version}" + (".tar.gz" if sdist else "-*.whl")
    found = sorted(dest.glob(pattern))
    if not found:
        kind = "source distribution" if sdist else "wheel"
        say(log, f"pip download {pkg.name}=={pkg.version} ({kind}) -> {dest}")
        only = ["--no-binary", ":all:", "--no-build-isolation"] if sdist else ["--only-binary=:all:"]
        _run([sys.executable, "-m", "pip", "download", f"{pkg.name}=={pkg.version}", "--no-deps", *only,
              "-d", str(dest)], dest, f"pip download {pkg.name}=={pkg.version}",
             f"check the network access to PyPI{' and that numpy is installed' if sdist else ''}, or put "
             f"{pattern} into {dest} by hand")
        found = sorted(dest.glob(pattern))
        if not found:
            raise DataError(f"pip download {pkg.name}: no file {pattern} in {dest} afterwards; "
                            f"download the {kind} by hand into that folder")
    else:
        say(log, f"have {found[-1].name}")
    return found[-1]


def _deb_version(deb: Path) -> str:
    # file names are <name>_<version>_<arch>.deb, with ':' of an epoch written as %3a
    return deb.name.split("_")[1].replace("%3a", ":")


def _apt_download(pkg: Package, dest: Path, log: Log, apt_update: bool) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    found = sorted(dest.glob(f"{pkg.name}_*.deb"))
    if found:
        say(log, f"have {found[-1].name}")
        return found[-1]
    hint = (f"download {pkg.name}_*.deb from https://packages.debian.org/bookworm/all/{pkg.name}/download "
            f"into {dest} and rerun")
    if apt_update:
        say(log, "apt-get update")
        _run(["apt-get", "update"], dest, "apt-get update", "run it as root, or " + hint)
    say(log, f"apt-get download {pkg.name} -> {dest}")
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


def _copy_tar_members(tar: tarfile.TarFile, dest: Path, wanted: set[str], *, strip: str = "") -> None:
    """Copy the regular files of ``tar`` named in ``wanted`` (names with leading ``strip`` characters removed) to
    ``dest``/name; each one copied is discarded from ``wanted``, so what is left was not found."""
    for info in tar:
        name = info.name.lstrip(strip) if strip else info.name
        if name in wanted and info.isfile():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            wanted.discard(name)


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
        _copy_tar_members(tar, dest, wanted, strip="./")
    if wanted:
        raise DataError(f"{deb}: missing {sorted(wanted)}; the package layout changed, "
                        "check the file list with 'dpkg-deb -c'")


def _extract_wheel(whl: Path, dest: Path, wanted: Iterable[str]) -> None:
    with zipfile.ZipFile(whl) as zf:
        names = set(zf.namelist())
        for member in wanted:
            if member not in names:
                raise DataError(f"{whl.name}: no {member}; the wheel's layout changed, list it with "
                                f"'unzip -l {whl}' and update genrecon.data_prep.fetching")
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
            say(log, f"unpack {deb.name}")
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
