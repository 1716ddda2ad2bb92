"""Bundled sample volumes: ``sample:brain-mri`` and ``sample:head-ct``.

The samples are NIfTI files in ``genrecon/data/samples/`` (``<name>.nii.gz``, described by
``samples.json``), found with :mod:`importlib.resources` and read by the nifti loader; case keys are
``<name>/<slice>`` and ``meta["source"]`` is the pseudo-source, ``meta["file"]`` the file.

Example:
    >>> from genrecon.io.samples import SampleLoader
    >>> SampleLoader.accepts("sample:head-ct")
    True
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import DataError, RegistryError
from ..registry import LOADERS, did_you_mean
from ..types import Case
from .base import Loader
from .nifti import NiftiLoader

PREFIX = "sample:"
_SUFFIX = ".nii.gz"
#: ``meta["units"]`` of each sample (samples.json describes them in words, kept as ``units_note``)
_UNITS = {"brain-mri": "normalised", "head-ct": "HU"}


def _folder() -> Any:
    return resources.files("genrecon") / "data" / "samples"


def sample_info() -> dict[str, dict[str, Any]]:
    """Name -> description of each bundled sample (from ``samples.json``, else from the files found)."""
    folder = _folder()
    names = {}
    if folder.is_dir():
        for item in folder.iterdir():
            if item.name.endswith(_SUFFIX):
                names[item.name[: -len(_SUFFIX)]] = {}
    desc = folder / "samples.json"
    if desc.is_file():
        try:
            data = json.loads(desc.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        entries = data.get("samples", data) if isinstance(data, dict) else {}
        if isinstance(entries, list):  # [{"name": ..., ...}, ...]
            entries = {str(e.get("name")): e for e in entries if isinstance(e, dict) and "name" in e}
        for name, entry in entries.items():
            if name in names and isinstance(entry, dict):
                names[name] = entry
    return names


def sample_names() -> list[str]:
    """Names of the bundled samples, or the documented ones when the files are not installed."""
    return sorted(sample_info()) or sorted(_UNITS)


@LOADERS.register("sample")
class SampleLoader(Loader):
    """Bundled sample volumes (sample:brain-mri, sample:head-ct), read as NIfTI."""

    prefixes = (PREFIX,)

    def __init__(self) -> None:
        self._nifti = NiftiLoader()
        self._files = ExitStack()  # keeps extracted files alive when the package is zipped

    def _resolve(self, source: str) -> tuple[str, str]:
        """(sample name, file path) of a ``sample:<name>`` source."""
        name = source[len(PREFIX):] if source.startswith(PREFIX) else source
        info = sample_info()
        if name not in info:
            known = sample_names()
            if name in known:  # a documented sample whose file is missing
                raise DataError(
                    f"{source}: the sample file {name}{_SUFFIX} is not installed in genrecon/data/samples; "
                    "reinstall genrecon"
                )
            raise RegistryError(
                f"unknown sample '{name}'{did_you_mean(name, known)}; choose one of: "
                f"{', '.join(PREFIX + n for n in known)}"
            )
        resource = _folder() / f"{name}{_SUFFIX}"
        path = resource if isinstance(resource, Path) else self._files.enter_context(resources.as_file(resource))
        return name, str(path)

    def check(self, source: str) -> list[str]:
        try:
            self._resolve(source)
        except (RegistryError, DataError) as exc:
            return [f"data.source: {exc}"]
        return []

    def n_slices(self, source: str) -> int:
        return self._nifti.n_slices(self._resolve(source)[1])

    def load(self, source: str, index: int) -> Case:
        name, path = self._resolve(source)
        case = self._nifti.load(path, index)
        entry = sample_info().get(name, {})
        case.meta.update(
            source=source,
            file=path,
            loader="sample",
            sample=name,
            modality=entry.get("modality"),
            units=_UNITS.get(name, "a.u."),
            units_note=entry.get("units"),
        )
        case.key = f"{name}/{index}"
        return case
