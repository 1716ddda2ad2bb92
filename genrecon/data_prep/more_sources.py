"""More real scans (issue 18): two clinical brain MRIs and two chest CTs from pyradiomics, a whole-head T1 average.

* ``pyradiomics`` 3.0.1 source distribution (PyPI; ``pip download pyradiomics==3.0.1 --no-deps --no-binary :all:
  --no-build-isolation``: its ``setup.py`` imports numpy, so it is read with the current environment's numpy
  instead of an isolated build): ``data/brain{1,2}_image.nrrd`` (two patients, contrast-enhanced T1, 256 x 256 x
  23-25 axial slices, 0.78 mm pixels, 6.5 mm apart) and ``data/lung{1,2}_image.nrrd`` (two patients, chest CT in
  HU, 512 x 512 x 48-61, 0.57-0.63 mm pixels, 5 mm apart). BSD-3-Clause (``LICENSE.txt``, Copyright 2017 Harvard
  Medical School); the package does not say where the scans come from.
* ``pydeface`` 2.1.0 wheel (PyPI): ``pydeface/data/mean_reg2mean.nii.gz``, a whole-head T1 average with face
  (176 x 256 x 256, about 1 mm). MIT (the wheel's ``LICENSE.txt``); the number of heads averaged is not stated.

The sdist is unpacked with :mod:`tarfile`, the wheel with :mod:`zipfile`; nothing is installed. Which volume
is held out whole (the unseen-subject split) and which joins training is decided in :mod:`.subjects`.

Example:
    >>> from genrecon.data_prep.more_sources import fetch_more
    >>> extra = fetch_more("data/cache")  # doctest: +SKIP
    >>> sorted(extra)  # doctest: +SKIP
    ['pydeface_mean', 'radiomics_brain1', 'radiomics_brain2', 'radiomics_lung1', 'radiomics_lung2']
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from ..errors import DataError
from .fetching import Package, Source, _copy_tar_members, _extract_wheel, _pip_download
from .progress import Log, say

PYRADIOMICS = Package(
    "pyradiomics", "pypi", "3.0.1", "BSD-3-Clause (pyradiomics LICENSE.txt, Copyright 2017 Harvard Medical School)",
    "pyradiomics-{version}/LICENSE.txt",
)
PYDEFACE = Package(
    "pydeface", "pypi", "2.1.0", "MIT (pydeface LICENSE.txt, Copyright (c) 2015)",
    "pydeface-{version}.dist-info/licenses/LICENSE.txt",
)
RADIOMICS_DIR = "pyradiomics-{version}/data/"
RADIOMICS_FILES = {
    "radiomics_brain1": "brain1_image.nrrd", "radiomics_brain2": "brain2_image.nrrd",
    "radiomics_lung1": "lung1_image.nrrd", "radiomics_lung2": "lung2_image.nrrd",
}
PYDEFACE_MEMBER = "pydeface/data/mean_reg2mean.nii.gz"

_RADIOMICS_NOTICE = ("BSD-3-Clause; Copyright 2017 Harvard Medical School (pyradiomics); the package's test "
                     "cases, origin not stated in the package")
_RADIOMICS_CITE = ("van Griethuysen J.J.M. et al., Computational Radiomics System to Decode the Radiographic "
                   "Phenotype, Cancer Research 77(21):e104-e107, 2017 (pyradiomics)")
_DESCRIPTIONS = {
    "radiomics_brain1": "clinical brain MRI, contrast-enhanced T1 (one patient, a lesion), 256x256x25 axial, "
                        "0.78 mm pixels, 6.5 mm slice spacing (pyradiomics test case brain1)",
    "radiomics_brain2": "clinical brain MRI, contrast-enhanced T1 (another patient), 256x256x23 axial, 0.78 mm "
                        "pixels, 6.5 mm slice spacing (pyradiomics test case brain2)",
    "radiomics_lung1": "chest CT in HU (one patient), 512x512x48 axial, 0.57 mm pixels, 5 mm slice spacing "
                       "(pyradiomics test case lung1)",
    "radiomics_lung2": "chest CT in HU (another patient), 512x512x61 axial, 0.63 mm pixels, 5 mm slice spacing "
                       "(pyradiomics test case lung2)",
}


def _extract_sdist(sdist: Path, dest: Path, wanted: list[str], log: Log) -> None:
    todo = {m for m in wanted if not (dest / m).exists()}
    if not todo:
        return
    say(log, f"unpack {sdist.name}")
    with tarfile.open(sdist, "r:gz") as tar:
        _copy_tar_members(tar, dest, todo)
    if todo:
        raise DataError(f"{sdist.name}: missing {sorted(todo)}; the source distribution's layout changed, list "
                        f"it with 'tar tzf {sdist}'")


def _radiomics_members() -> dict[str, str]:
    root = RADIOMICS_DIR.format(version=PYRADIOMICS.version)
    return {name: root + file for name, file in RADIOMICS_FILES.items()}


def fetch_more(cache: Path | str, *, log: Log = None) -> dict[str, Source]:
    """Download (if needed) the pyradiomics sdist and the pydeface wheel into ``cache/pypi`` and unpack the scans.

    Idempotent, like :func:`~genrecon.data_prep.fetching.fetch`; returns :func:`more_from_cache`.
    """
    cache = Path(cache)
    extracted = cache / "extracted"
    sdist = _pip_download(PYRADIOMICS, cache / "pypi", log, sdist=True)
    members = list(_radiomics_members().values()) + [
        PYRADIOMICS.copyright_file.format(version=PYRADIOMICS.version),
        RADIOMICS_DIR.format(version=PYRADIOMICS.version) + "README.md"]
    _extract_sdist(sdist, extracted / "pyradiomics", members, log)
    whl = _pip_download(PYDEFACE, cache / "pypi", log)
    _extract_wheel(whl, extracted / "pydeface", [PYDEFACE_MEMBER,
                                                 PYDEFACE.copyright_file.format(version=PYDEFACE.version)])
    return more_from_cache(cache)


def more_from_cache(cache: Path | str) -> dict[str, Source]:
    """The five added volumes of an already fetched cache, by name (raises DataError if files are missing)."""
    extracted = Path(cache) / "extracted"
    members = _radiomics_members()
    paths = {name: extracted / "pyradiomics" / member for name, member in members.items()}
    paths["pydeface_mean"] = extracted / "pydeface" / PYDEFACE_MEMBER
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise DataError(f"missing fetched file(s) {missing}; run 'python scripts/prepare_data.py fetch' first")
    out = {
        name: Source(name, paths[name], "pyradiomics (PyPI source distribution)", PYRADIOMICS.version,
                     members[name], PYRADIOMICS.licence, _RADIOMICS_NOTICE, _DESCRIPTIONS[name],
                     _RADIOMICS_CITE)
        for name in RADIOMICS_FILES
    }
    out["pydeface_mean"] = Source(
        "pydeface_mean", paths["pydeface_mean"], "pydeface (PyPI wheel)", PYDEFACE.version, PYDEFACE_MEMBER,
        PYDEFACE.licence, "MIT; Copyright (c) 2015 (pydeface, Poldrack lab)",
        "whole-head T1 average with face and neck (pydeface's registration target; the number of heads averaged "
        "is not stated), 176x256x256 at about 1 mm, slightly oblique",
        "pydeface (Poldrack lab), software, version 2.1.0; no paper to cite")
    return out
