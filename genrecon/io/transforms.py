"""Image preparation applied after loading: slice selection, size, intensity normalisation.

The pipeline applies these explicit config settings in order: ``select_slices`` (``data.slices``), then
for each loaded case ``fit_size`` (``data.size``, ``data.resize``; :func:`fit_size_affine` moves the
case's ``slice_affine`` along) and ``normalize`` (``data.normalize``).
Loaders share two helpers from here: :func:`as_image` (array -> ``(1, H, W)`` tensor with checks) and
:func:`source_stem` (the first half of a case key).

Example:
    >>> import torch
    >>> from genrecon.io.transforms import fit_size, normalize, select_slices
    >>> select_slices(10, "2:8:3")
    [2, 5]
    >>> x = fit_size(torch.ones(1, 5, 7), 6, "crop_pad")
    >>> tuple(x.shape), float(x.sum())
    ((1, 6, 6), 30.0)
    >>> y, info = normalize(2 * x, "max")
    >>> float(y.max()), info["scale"]
    (1.0, 2.0)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError, DataError

FitMode = Literal["crop_pad", "resize"]
NormMode = Literal["none", "max", "percentile", "volume_max"]

_NIFTI_SUFFIXES = (".nii.gz", ".nii")


# -- helpers shared by the loaders ------------------------------------------------------------------
def source_stem(source: str) -> str:
    """Name of a source used in case keys: file name without suffixes (``brain.nii.gz`` -> ``brain``).

    Pseudo-sources keep the part after the colon (``phantom:shepp-logan`` -> ``shepp-logan``), folders
    their name.
    """
    if ":" in source and not Path(source).exists() and not re.match(r"^[A-Za-z]:[\\/]", source):
        return source.split(":", 1)[1]
    name = Path(source.rstrip("/\\")).name
    for suffix in _NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem if Path(name).suffix else name


def as_image(array: Any, source: str, what: str = "image") -> torch.Tensor:
    """Convert a 2-D array to a case image ``(1, H, W)``, float32 or complex64 (a copy, never a view).

    Args:
        array: ``(H, W)`` or ``(1, H, W)`` numpy array or tensor, real (any numeric dtype) or complex.
        source: the file it came from, named in errors.
        what: what the array is ("slice 3"), named in errors.

    Raises:
        DataError: the array is not 2-D or holds NaN or infinite values.
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    arr = np.asarray(array)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise DataError(f"{source}: {what} should be a 2-D image, got shape {tuple(arr.shape)}")
    if arr.dtype.kind == "c":
        out = np.array(arr, dtype=np.complex64, copy=True)
    elif arr.dtype.kind in "biuf":
        out = np.array(arr, dtype=np.float32, copy=True)
    else:
        raise DataError(f"{source}: {what} has non-numeric dtype {arr.dtype}; expected real or complex numbers")
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).sum())
        raise DataError(f"{source}: {what} holds {bad} NaN or infinite values; clean the data first")
    return torch.from_numpy(out)[None]


# -- size ---------------------------------------------------------------------------------------------
def _target_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, bool):
        raise ConfigError(f"data.size: expected an integer or (height, width), got {size!r}")
    if isinstance(size, int):
        h = w = size
    else:
        try:
            h, w = (int(s) for s in size)
        except (TypeError, ValueError):
            raise ConfigError(f"data.size: expected an integer or (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise ConfigError(f"data.size: sizes must be positive, got {(h, w)}")
    return h, w


def center_crop(x, shape: int | Sequence[int] | None):
    """The centre ``(h, w)`` of the last two axes of a tensor or array, each at most the image's size
    (fastMRI's ``center_crop``: rows ``[(H - h) // 2, (H - h) // 2 + h)``); ``None`` returns ``x``.

    The one centre crop of genrecon: reconstructions from the acquisition grid to the reference grid
    (measured k-space) and ``evaluate.crop`` before metrics.

    Example:
        >>> import numpy as np
        >>> center_crop(np.arange(30).reshape(5, 6), 2)
        array([[ 8,  9],
               [14, 15]])
    """
    if shape is None:
        return x
    h, w = _target_size(shape)
    H, W = x.shape[-2:]
    h, w = min(h, H), min(w, W)
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top : top + h, left : left + w]


def _crop_pad_axis(x: torch.Tensor, dim: int, n: int) -> torch.Tensor:
    m = x.shape[dim]
    if n < m:  # centre crop: keep [ (m-n)//2, (m-n)//2 + n )
        return x.narrow(dim, (m - n) // 2, n)
    if n > m:  # centre zero-pad: (n-m)//2 zeros before, the rest after
        before = (n - m) // 2
        shape = list(x.shape)
        shape[dim] = n
        out = x.new_zeros(shape)
        out.narrow(dim, before, m).copy_(x)
        return out
    return x


def fit_size(image: torch.Tensor, size: int | Sequence[int] | None, mode: FitMode = "crop_pad") -> torch.Tensor:
    """Bring an image to ``size`` by centre crop / zero-pad or by anti-aliased resizing.

    ``crop_pad`` keeps the pixel grid (the crop starts at ``(H - h) // 2``, the pad puts ``(h - H) // 2``
    zeros before), so k-space and pixel spacing stay meaningful. ``resize`` resamples to exactly
    ``(h, w)`` (the aspect ratio may change) with bilinear interpolation and an anti-aliasing filter
    when shrinking; a complex image is resized as real and imaginary parts.

    Args:
        image: ``(..., H, W)`` tensor, typically ``(1, H, W)``; float or complex; any device.
        size: ``n`` for ``(n, n)``, ``(h, w)``, or None to leave the image as it is.
        mode: ``"crop_pad"`` or ``"resize"``.

    Returns:
        ``(..., h, w)`` tensor of the input's dtype and device.
    """
    if size is None:
        return image
    if mode not in ("crop_pad", "resize"):
        raise ConfigError(f"data.resize: expected 'crop_pad' or 'resize', got {mode!r}")
    if image.dim() < 2:
        raise DataError(f"fit_size: expected an image (..., H, W), got shape {tuple(image.shape)}")
    h, w = _target_size(size)
    if tuple(image.shape[-2:]) == (h, w):
        return image
    if mode == "crop_pad":
        return _crop_pad_axis(_crop_pad_axis(image, -2, h), -1, w)
    if image.is_complex():
        return torch.complex(fit_size(image.real, (h, w), "resize"), fit_size(image.imag, (h, w), "resize"))
    lead = image.shape[:-2]
    x = image.reshape(-1, 1, *image.shape[-2:])
    if not x.is_floating_point():
        x = x.float()
    y = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return y.reshape(*lead, h, w).to(image.dtype if image.is_floating_point() else y.dtype)


def fit_size_affine(
    affine: Any, shape: Sequence[int], size: int | Sequence[int] | None, mode: FitMode = "crop_pad"
) -> list[list[float]] | None:
    """The ``meta["slice_affine"]`` of an image after :func:`fit_size`, so results still overlay the source.

    New pixel ``(r', c')`` sits at old pixel coordinates ``(r' + o_r, c' + o_c)`` for ``crop_pad``
    (``o = (H - h) // 2`` when cropping, ``-((h - H) // 2)`` when padding) and at
    ``((r' + 1/2) H / h - 1/2, (c' + 1/2) W / w - 1/2)`` for ``resize``: ``A' = A @ M``.

    Args:
        affine: 4x4 map of ``(row, column, n)`` to world mm, or None (returned as None).
        shape: ``(..., H, W)`` shape of the image before :func:`fit_size`.
        size, mode: as given to :func:`fit_size`.
    """
    if affine is None:
        return None
    old_h, old_w = int(shape[-2]), int(shape[-1])
    if size is None:
        return np.asarray(affine, dtype=np.float64).tolist()
    h, w = _target_size(size)
    m = np.eye(4)
    for axis, (old, new) in enumerate(((old_h, h), (old_w, w))):
        if mode == "resize":
            m[axis, axis] = old / new
            m[axis, 3] = 0.5 * old / new - 0.5
        else:
            m[axis, 3] = (old - new) // 2 if new <= old else -((new - old) // 2)
    return (np.asarray(affine, dtype=np.float64) @ m).tolist()


# -- intensity ----------------------------------------------------------------------------------------
def _magnitude(image: torch.Tensor) -> torch.Tensor:
    return image.abs()


def _percentile(values: torch.Tensor, q: float) -> float:
    """``q``-th percentile (linear interpolation, as numpy's default) of all values."""
    flat = values.detach().reshape(-1).float().cpu().numpy()
    return float(np.percentile(flat, q)) if flat.size else 0.0


def normalize(
    image: torch.Tensor, mode: NormMode = "max", value: float | None = None, *, percentile: float = 99.5
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Divide an image by an intensity scale; the returned info undoes it: ``image = out * info["scale"]``.

    ``x_out = x / s`` with ``s`` = 1 (``none``), ``max |x|`` of the slice (``max``), the ``percentile``-th
    percentile of ``|x|`` of the slice (``percentile``, default 99.5; values above it exceed 1) or the
    given per-volume statistic ``value`` (``volume_max``, see :func:`volume_stat`). An all-zero slice keeps
    ``s = 1``. A complex image keeps its phase.

    Args:
        image: ``(..., H, W)`` float or complex tensor.
        mode: ``"none"``, ``"max"``, ``"percentile"`` or ``"volume_max"``.
        value: the volume statistic for ``volume_max`` (required there, ignored otherwise).
        percentile: the percentile used by ``percentile`` mode, in (0, 100].

    Returns:
        ``(normalised image, info)`` with ``info = {"mode", "scale"}`` (plus ``"percentile"``).
    """
    if mode == "none":
        return image, {"mode": "none", "scale": 1.0}
    info: dict[str, Any] = {"mode": mode}
    if mode == "max":
        scale = float(_magnitude(image).max()) if image.numel() else 0.0
    elif mode == "percentile":
        if not 0.0 < percentile <= 100.0:
            raise ConfigError(f"normalize: percentile must be in (0, 100], got {percentile}")
        scale = _percentile(_magnitude(image), percentile)
        info["percentile"] = percentile
    elif mode == "volume_max":
        if value is None:
            raise ConfigError("normalize: mode 'volume_max' needs the volume statistic; compute it with volume_stat()")
        scale = float(value)
        if not np.isfinite(scale) or scale < 0:
            raise DataError(f"normalize: the volume statistic must be a finite non-negative number, got {value}")
    else:
        raise ConfigError(
            f"data.normalize: expected 'none', 'max', 'percentile' or 'volume_max', got {mode!r}"
        )
    if scale <= 0.0:
        scale = 1.0
    info["scale"] = scale
    return image / scale, info


def volume_stat(
    loader: Any,
    source: str,
    indices: Sequence[int],
    stat: Literal["max", "percentile"] = "max",
    *,
    percentile: float = 99.5,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> float:
    """A per-volume intensity statistic over the selected slices, read one slice at a time.

    ``max``: ``max_k max |x_k|`` (streamed, constant memory). ``percentile``: the ``percentile``-th
    percentile of ``|x|`` over all selected slices (keeps the magnitudes: ``4 N H W`` bytes).

    Args:
        loader: a :class:`~genrecon.io.base.Loader`.
        source: what the loader reads.
        indices: slice indices (from :func:`select_slices`).
        stat: ``"max"`` or ``"percentile"``.
        percentile: for ``stat="percentile"``.
        transform: applied to each image before the statistic (e.g. the configured ``fit_size``), so the
            statistic describes what the pipeline actually uses.
    """
    if stat not in ("max", "percentile"):
        raise ConfigError(f"volume_stat: expected stat 'max' or 'percentile', got {stat!r}")
    if len(indices) == 0:
        raise ConfigError(f"volume_stat: no slices selected from {source}")
    best = 0.0
    kept: list[torch.Tensor] = []
    for index in indices:
        image = loader.load(source, int(index)).image
        if transform is not None:
            image = transform(image)
        mag = _magnitude(image)
        if stat == "max":
            best = max(best, float(mag.max()) if mag.numel() else 0.0)
        else:
            kept.append(mag.reshape(-1).float().cpu())
    if stat == "max":
        return best
    return _percentile(torch.cat(kept), percentile)


# -- slices -------------------------------------------------------------------------------------------
_SLICE_RE = re.compile(r"^\s*(-?\d*)\s*:\s*(-?\d*)\s*(?::\s*(-?\d*)\s*)?$")


def _valid(n: int) -> str:
    return f"valid indices are 0..{n - 1} (or -{n}..-1)"


def select_slices(n: int, spec: Any, *, where: str = "data.slices", source: str | None = None) -> list[int]:
    """Slice indices of a source with ``n`` slices selected by ``spec``, as non-negative ints in order.

    Args:
        n: number of slices of the source (``loader.n_slices(source)``).
        spec: ``"all"``; ``"middle"`` (``n // 2``); an int (negative counts from the end); a list of
            ints (no repeats); or ``"start:stop[:step]"`` with Python slice semantics (negatives allowed,
            bounds clipped as Python does; a selection must not be empty).
        where: config path named in errors.
        source: source named in errors.

    Raises:
        ConfigError: unknown spec, an index out of range (the message gives the valid range), repeats
            or an empty selection.
    """
    of = f" of {source}" if source else ""
    if n <= 0:
        raise ConfigError(f"{where}: the source{of} has no slices")
    if isinstance(spec, str):
        text = spec.strip()
        if text == "all":
            return list(range(n))
        if text == "middle":
            return [n // 2]
        if re.fullmatch(r"-?\d+", text):
            spec = int(text)
        else:
            m = _SLICE_RE.match(text)
            if not m:
                raise ConfigError(
                    f"{where}: expected 'all', 'middle', an index, a list or 'start:stop[:step]', got {spec!r}"
                )
            start, stop, step = (int(g) if g not in (None, "") else None for g in m.groups())
            if step == 0:
                raise ConfigError(f"{where}: the step of {spec!r} must not be 0")
            chosen = list(range(n)[slice(start, stop, step)])
            if not chosen:
                raise ConfigError(f"{where}: {spec!r} selects no slices{of} with {n} slices; {_valid(n)}")
            return chosen
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return [_check_index(int(spec), n, where, of)]
    if isinstance(spec, (list, tuple)):
        if len(spec) == 0:
            raise ConfigError(f"{where}: the list of slices is empty; {_valid(n)}")
        out = []
        for i, item in enumerate(spec):
            if isinstance(item, bool) or not isinstance(item, (int, np.integer)):
                raise ConfigError(f"{where}.{i}: expected an integer slice index, got {item!r}")
            out.append(_check_index(int(item), n, f"{where}.{i}", of))
        repeated = sorted({i for i in out if out.count(i) > 1})
        if repeated:
            raise ConfigError(f"{where}: slices listed more than once: {repeated}; list each slice once")
        return out
    raise ConfigError(f"{where}: expected 'all', 'middle', an index, a list or 'start:stop[:step]', got {spec!r}")


def _check_index(i: int, n: int, where: str, of: str) -> int:
    if not -n <= i < n:
        raise ConfigError(f"{where}: slice {i} is out of range{of} with {n} slices; {_valid(n)}")
    return i % n
