"""Planning: which cases a config selects, how each is loaded and prepared, and where its outputs go."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import RunConfig, _resolve_loader
from ..conventions import HU_MAX, HU_MIN, HU_OFFSET, HU_SCALE, hu_to_unit  # noqa: F401 (HU_MIN/MAX re-exported)
from ..errors import ConfigError, DataError
from ..registry import LOADERS
from ..types import Case



@dataclass(frozen=True)
class CaseRef:
    """A case to process, known before any pixel is read."""

    source: str
    index: int
    volume: str  # the volume it belongs to (for volume-level statistics)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_threads(setting: int | str | None) -> tuple[int, str]:
    """The torch CPU thread count for the config's ``threads`` and why: a number is taken as given; ``auto``
    (or null) takes the idle cores, those this process may use minus the 1-minute load average (at least 1),
    so a busy machine is not oversubscribed (a thread per core on a loaded 2-core machine ran the quickstart
    ten times slower). Float results can change with the thread count: same numbers need the same count.

    Example:
        >>> resolve_threads(3)
        (3, 'threads: 3')
    """
    import os

    if isinstance(setting, int):
        return setting, f"threads: {setting}"
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    n = max(1, min(cores, cores - int(load + 0.5)))
    return n, f"threads: auto, {cores} core(s), load {load:.1f}"


def case_key(ref: CaseRef) -> str:
    """The stable key of a case: ``<source stem>/<slice index>`` (seeds and folders derive from it)."""
    return f"{Path(ref.source).name.split('.')[0]}/{ref.index}"


def case_dirname(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key.replace("/", "__"))


# ---------------------------------------------------------------------------------------------------
# planning and loading
# ---------------------------------------------------------------------------------------------------
def make_loader(cfg: RunConfig):
    name = _resolve_loader(cfg.data)
    if name is None:
        raise ConfigError(f"data.source: no loader reads '{cfg.data.source}'")
    return LOADERS.build(name, cfg.data.params)


def sources(cfg: RunConfig, loader) -> list[str]:
    """The files a source names: itself, or the loader's files inside a folder (sorted)."""
    src = cfg.data.source
    p = Path(src)
    if p.is_dir() and getattr(loader, "suffixes", ()) and not getattr(loader, "reads_folders", False):
        files = sorted(str(f) for f in p.iterdir() if f.is_file() and loader.accepts(str(f)))
        if not files:
            raise DataError(f"{src}: no file in this folder is read by loader '{_resolve_loader(cfg.data)}'")
        return files
    return [src]


def plan(cfg: RunConfig, loader=None) -> list[CaseRef]:
    """Every (source, slice) the config selects, in a fixed order."""
    from ..io.transforms import select_slices

    loader = loader or make_loader(cfg)
    refs = []
    for src in sources(cfg, loader):
        n = loader.n_slices(src)
        for index in select_slices(n, cfg.data.slices):
            refs.append(CaseRef(src, int(index), src))
    return refs


def shard(refs: list[CaseRef], index: int, count: int) -> list[CaseRef]:
    """Shard ``index`` of ``count`` (0-based): a deterministic, disjoint, covering split."""
    return refs[index::count]


def load_case(cfg: RunConfig, loader, ref: CaseRef, volume_scale: dict[str, float], *,
              image_only: bool = False) -> Case:
    """Load one slice and apply the configured size and normalisation (``image_only``: the reference image
    alone, through the loader's ``load_image`` where it has one, e.g. without a fastMRI file's k-space)."""
    from ..io.transforms import fit_size, fit_size_affine, normalize

    read = getattr(loader, "load_image", loader.load) if image_only else loader.load
    case = read(ref.source, ref.index)
    if cfg.data.units == "hu":
        _declare_hu(cfg, loader, ref, case, volume_scale)
    image = case.image
    measured = _measured(cfg, case)
    if measured and _size_steps(cfg):
        raise ConfigError(f"data.crop / data.size change the image grid, but {ref.source} is reconstructed from its "
                          "measured k-space on the acquired grid: remove them (evaluate.crop crops for metrics), "
                          "or set simulate.measurement: simulated")
    for size, mode in _size_steps(cfg):
        if case.meta.get("slice_affine") is not None:
            case.meta["slice_affine"] = fit_size_affine(case.meta["slice_affine"], image.shape, size, mode)
        image = fit_size(image, size, mode)
    mode = cfg.data.normalize
    if mode == "volume_max":
        if ref.volume not in volume_scale:
            volume_scale[ref.volume] = _volume_max(cfg, loader, ref.volume)
        scale = volume_scale[ref.volume]
        image = image / scale if scale > 0 else image
        info = {"mode": "volume_max", "scale": scale}
    elif mode == "hu_unit":
        if case.meta.get("units") != "HU":
            raise ConfigError(f"data.normalize: hu_unit needs CT images in HU; {ref.source} holds "
                              f"'{case.meta.get('units')}' values (if they are HU, declare data.units: hu)")
        image = hu_to_unit(image)
        case.meta["units"] = "normalised"
        info = {"mode": "hu_unit", "hu_offset": HU_OFFSET, "hu_scale": HU_SCALE}
    else:
        image, info = normalize(image, mode)
    if not torch.isfinite(image.abs() if image.is_complex() else image).all():
        raise DataError(f"{ref.source}: slice {ref.index} holds NaN or infinite values")
    if measured:  # the reference and the k-space keep one scale: y / s = A (x / s)
        scale = info.get("scale")
        if scale is not None and scale > 0 and scale != 1.0:
            case.kspace = case.kspace / scale
    case.image = image
    case.meta["normalisation"] = info
    return case


def whole_volume_max(cfg: RunConfig, loader, ref: CaseRef, volume_scale: dict[str, float]) -> float | None:
    """The maximum of ``|reference|`` over every slice of the case's volume, prepared as the pipeline prepares
    the evaluated ones (size, normalisation, ``evaluate.crop``): fastMRI's ``data_range`` when only some slices
    are reconstructed. None when the selection is the whole volume (the evaluated slices give it) or when
    ``data_range`` is not ``volume_max``."""
    from ..io.transforms import center_crop, select_slices

    n = loader.n_slices(ref.volume)
    if cfg.evaluate.data_range != "volume_max" or len(select_slices(n, cfg.data.slices)) == n:
        return None
    best = 0.0
    for index in range(n):
        case = load_case(cfg, loader, CaseRef(ref.source, index, ref.volume), volume_scale, image_only=True)
        image = case.image
        if cfg.modality == "ct":  # the reference is the attenuation the simulation makes of the image (HU -> mu)
            from ..simulate.ct import attenuation

            image = attenuation(case, cfg.simulate.hu_to_mu)
        best = max(best, float(center_crop(image.abs(), cfg.evaluate.crop).max()))
    return best


#: an HU volume holds air (about -1000 HU); a minimum above this says the values are not HU
HU_AIR_CHECK = -500.0


def _declare_hu(cfg: RunConfig, loader, ref: CaseRef, case: Case, cache: dict) -> None:
    """``data.units: hu``: mark the case as Hounsfield units after checking its volume holds air."""
    units = str(case.meta.get("units") or "").lower()
    if units not in ("a.u.", "", "hu"):
        raise ConfigError(f"data.units: hu, but {ref.source} says its values are '{case.meta.get('units')}'")
    key = ("hu_min", ref.volume)
    if key not in cache:
        cache[key] = min(float(loader.load(ref.source, i).image.real.min()) for i in range(loader.n_slices(ref.volume)))
    if cache[key] > HU_AIR_CHECK:
        raise DataError(f"{ref.source}: data.units is hu, but the volume's minimum is {cache[key]:.4g}; air is about "
                        "-1000 HU: are these Hounsfield units? (remove data.units, or convert the volume)")
    case.meta["units"] = "HU"


def _measured(cfg: RunConfig, case: Case) -> bool:
    """Whether the case's measured k-space is the measurement (MRI; see ``simulate.measurement``)."""
    if cfg.modality != "mri" or case.kspace is None:
        return False
    from ..simulate.mri import is_measured

    return is_measured(case, cfg.simulate)


def _size_steps(cfg: RunConfig) -> list[tuple[int, str]]:
    """The configured geometry steps: an optional centre crop/pad, then crop/pad or resize to ``size``."""
    steps = []
    if cfg.data.crop is not None:
        steps.append((cfg.data.crop, "crop_pad"))
    if cfg.data.size is not None:
        steps.append((cfg.data.size, cfg.data.resize))
    return steps


def _volume_max(cfg: RunConfig, loader, source: str) -> float:
    from ..io.transforms import fit_size, select_slices, volume_stat

    def transform(img):
        for size, mode in _size_steps(cfg):
            img = fit_size(img, size, mode)
        return img

    indices = select_slices(loader.n_slices(source), cfg.data.slices)
    return volume_stat(loader, source, indices, "max", transform=transform)
