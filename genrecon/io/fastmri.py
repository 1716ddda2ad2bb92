"""fastMRI HDF5 files (``.h5``): single-coil and multi-coil k-space with their reference images.

A fastMRI file holds ``kspace`` (``(slices, H, W)`` single-coil or ``(slices, coils, H, W)`` multi-coil,
complex64, centred), the reference images ``reconstruction_esc`` (single-coil) / ``reconstruction_rss``
(multi-coil), ``(slices, 320, 320)`` float32 (centre crops, as fastMRI stores them), the root attributes
``acquisition``, ``max``, ``norm``, ``patient_id`` and the ``ismrmrd_header`` XML. Slices are read one at
a time (the file is opened per call; ``n_slices`` reads only shapes).

Image from k-space (``target="kspace"``): ``x_c = fftshift(ifft2(ifftshift(k_c), norm="ortho"))``;
single-coil: ``x = x_0`` (complex), multi-coil: ``x = sqrt(sum_c |x_c|^2)`` (RSS, real), at the full
k-space size (not cropped to 320x320).

:func:`read_reconstructions` reads the reference images of all slices at once (data preparation).

Example:
    >>> from genrecon.io.fastmri import FastMRILoader
    >>> FastMRILoader.accepts("file1000001.h5")
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..registry import LOADERS
from ..types import Case
from .base import Loader
from .transforms import as_image, source_stem

TARGETS = ("auto", "reconstruction_esc", "reconstruction_rss", "kspace")
_ATTRS = ("acquisition", "max", "norm", "patient_id")


def centered_ifft2(kspace: np.ndarray) -> np.ndarray:
    """``fftshift(ifft2(ifftshift(k), norm="ortho"))`` over the last two axes (complex64 in, complex out)."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=axes), axes=axes, norm="ortho"), axes=axes)


def recon_size(header: str | None) -> tuple[int, int] | None:
    """``(rows, columns)`` of the ``reconSpace`` matrix in an ISMRMRD header (fastMRI: 320 x 320), or None.

    Example:
        >>> recon_size("<reconSpace><matrixSize><x>320</x><y>320</y><z>1</z></matrixSize></reconSpace>")
        (320, 320)
    """
    if not header:
        return None
    import re

    m = re.search(r"<reconSpace>.*?<matrixSize>\s*<x>(\d+)</x>\s*<y>(\d+)</y>", header, re.S)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _meta_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _open_h5(source: str | Path):
    import h5py

    path = Path(source)
    if not path.exists():
        raise DataError(f"{source}: file not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{source}: not a readable HDF5 file (truncated or corrupt?): {exc}") from None


@LOADERS.register("fastmri")
class FastMRILoader(Loader):
    """fastMRI HDF5 (.h5): single- or multi-coil k-space and the reference image of each slice.

    Args:
        target: the ground truth image: ``"auto"`` (``reconstruction_rss`` for multi-coil,
            ``reconstruction_esc`` for single-coil files, else the image from k-space), one of the two
            datasets by name, or ``"kspace"`` (inverse FFT of the k-space, RSS over coils).

    The measured k-space of the slice is kept in ``Case.kspace`` ``(coils, H, W)`` complex64 (one coil for
    single-coil files); ``meta`` holds the file's attributes and the ``ismrmrd_header`` XML as text.
    """

    suffixes = (".h5", ".hdf5")

    def __init__(self, target: Literal["auto", "reconstruction_esc", "reconstruction_rss", "kspace"] = "auto"):
        if target not in TARGETS:
            raise ConfigError(f"fastmri target: expected one of {', '.join(map(repr, TARGETS))}, got {target!r}")
        self.target = target

    # -- file access ------------------------------------------------------------------------------
    def _open(self, source: str):
        return _open_h5(source)

    def _target_name(self, f: Any, source: str) -> str:
        """The dataset the ground truth comes from (``"kspace"`` for the k-space image)."""
        names = set(f.keys())
        if self.target != "auto":
            if self.target not in names:
                raise DataError(
                    f"{source}: no dataset '{self.target}' (the file has: {', '.join(sorted(names)) or 'none'}); "
                    f"choose another data.params.target"
                )
            return self.target
        multicoil = "kspace" in names and f["kspace"].ndim == 4
        for name in (("reconstruction_rss", "reconstruction_esc") if multicoil else
                     ("reconstruction_esc", "reconstruction_rss")):
            if name in names:
                return name
        if "kspace" in names:
            return "kspace"
        raise DataError(
            f"{source}: not a fastMRI file: expected datasets 'kspace' and/or 'reconstruction_esc'/"
            f"'reconstruction_rss', found: {', '.join(sorted(names)) or 'none'}"
        )

    def _check_kspace(self, f: Any, source: str) -> None:
        if "kspace" in f:
            ks = f["kspace"]
            if ks.ndim not in (3, 4):
                raise DataError(
                    f"{source}: kspace should be (slices, H, W) or (slices, coils, H, W), got shape {ks.shape}"
                )

    # -- contract ---------------------------------------------------------------------------------
    def n_slices(self, source: str) -> int:
        with self._open(source) as f:
            try:
                self._check_kspace(f, source)
                name = self._target_name(f, source)
                n = int(f[name].shape[0])
                if "kspace" in f and int(f["kspace"].shape[0]) != n:
                    raise DataError(
                        f"{source}: kspace has {f['kspace'].shape[0]} slices but {name} has {n}; "
                        "the file is inconsistent"
                    )
            except (OSError, KeyError, RuntimeError) as exc:
                raise DataError(f"{source}: corrupt HDF5 file: {exc}") from None
            return n

    def load_image(self, source: str, index: int) -> Case:
        """The slice's reference image alone (the k-space is not read unless it is the target): for
        whole-volume statistics such as fastMRI's ``data_range``."""
        return self.load(source, index, with_kspace=False)

    def load(self, source: str, index: int, *, with_kspace: bool = True) -> Case:
        with self._open(source) as f:
            try:
                self._check_kspace(f, source)
                name = self._target_name(f, source)
                n = int(f[name].shape[0])
                if not 0 <= index < n:
                    raise DataError(f"{source}: slice {index} does not exist; the file has slices 0..{n - 1}")
                target = None if name == "kspace" else np.asarray(f[name][index])
                kspace = np.asarray(f["kspace"][index]) if "kspace" in f and (with_kspace or target is None) else None
                meta = {k: _meta_value(f.attrs[k]) for k in _ATTRS if k in f.attrs}
                if "ismrmrd_header" in f:
                    meta["ismrmrd_header"] = _meta_value(f["ismrmrd_header"][()])
                if "mask" in f:  # a test/challenge file: k-space already undersampled, no reference
                    meta["file_mask"] = np.asarray(f["mask"][()]).astype(bool).reshape(-1).tolist()
            except (OSError, KeyError, RuntimeError, ValueError) as exc:
                raise DataError(f"{source}: corrupt HDF5 file, slice {index} unreadable: {exc}") from None

        kspace_t = None
        if kspace is not None:
            if kspace.dtype.kind != "c":
                raise DataError(f"{source}: kspace should be complex, got dtype {kspace.dtype}")
            coils = kspace[None] if kspace.ndim == 2 else kspace
            if not np.isfinite(coils).all():
                raise DataError(f"{source}: kspace of slice {index} holds NaN or infinite values")
            kspace_t = torch.from_numpy(np.ascontiguousarray(coils, dtype=np.complex64))
        if target is None:
            coil_images = centered_ifft2(kspace_t.numpy())
            if coil_images.shape[0] == 1:
                image = coil_images[0]
            else:
                image = np.sqrt((np.abs(coil_images) ** 2).sum(axis=0))
            recon = recon_size(meta.get("ismrmrd_header"))
            if recon is not None:  # cropped as fastMRI's references are (the header's reconSpace)
                from .transforms import center_crop

                image = center_crop(image, recon)
            target_desc = "kspace"
        else:
            image = target
            target_desc = name
        meta.update(
            reference=target is not None or "file_mask" not in meta,  # an undersampled file's image is no truth
            source=str(source),
            slice=int(index),
            loader="fastmri",
            target=target_desc,
            multicoil=bool(kspace is not None and kspace.ndim == 3),
            pixel_spacing=None,
            units="a.u.",
            affine=None,
        )
        return Case(
            key=f"{source_stem(source)}/{index}",
            image=as_image(image, source, f"{target_desc} of slice {index}"),
            meta=meta,
            kspace=kspace_t,
        )


def read_reconstructions(
    source: str | Path, names: tuple[str, ...] = ("reconstruction_rss", "reconstruction_esc")
) -> np.ndarray:
    """The reference images of every slice of a fastMRI file: ``(N, H, W)`` float32 magnitudes.

    Args:
        source: fastMRI ``.h5`` file.
        names: datasets to try, in order; the first present is read (single-coil files hold both).

    Raises:
        DataError: a missing or unreadable file, none of ``names`` in it (test and challenge files hold
            only k-space), or a dataset that is not ``(N, H, W)``.

    Example:
        >>> from genrecon.io.fastmri import read_reconstructions
        >>> images = read_reconstructions("file1000001.h5")  # doctest: +SKIP
    """
    with _open_h5(source) as f:
        try:
            name = next((n for n in names if n in f), None)
            if name is None:
                raise DataError(
                    f"{source}: no {' or '.join(repr(n) for n in names)} dataset (keys: {sorted(f.keys())}); "
                    "test/challenge files hold only k-space, use the train/val files"
                )
            data = np.asarray(f[name], dtype=np.float32)
        except (OSError, KeyError, RuntimeError) as exc:
            raise DataError(f"{source}: corrupt HDF5 file: {exc}") from None
    if data.ndim != 3:
        raise DataError(f"{source}: expected reconstructions of shape (N, H, W), got {data.shape}")
    return data
