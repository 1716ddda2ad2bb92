"""Run configuration: one YAML file, validated in full before any work starts.

``load_config(path, overrides)`` reads the YAML, applies ``--set a.b=c`` overrides, parses every section
into frozen dataclasses and checks plugin names and parameters against the registries, input files, value
ranges and devices. Every problem is reported at once in one :class:`~genrecon.errors.ConfigError`.

Example:
    >>> cfg = load_config_dict({"data": {"source": "phantom:shepp-logan"},
    ...                         "simulate": {"modality": "mri", "mask": {"name": "random", "acceleration": 4}},
    ...                         "reconstructors": [{"name": "zero_filled"}],
    ...                         "output": {"dir": "runs/x"}})
    >>> cfg.reconstructors[0].label
    'zero_filled'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import ConfigError, GenreconError
from .registry import LOADERS, RECONSTRUCTORS
from .schema import parse
from .yamlio import YamlLoader, apply_override, parse_yaml, read_yaml  # noqa: F401 (their home is yamlio)

SUPPORTED_VERSION = 1


@dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared."""

    source: str = field(metadata={"doc": "file, folder, 'sample:brain-mri', 'sample:head-ct' or 'phantom:shepp-logan'"})
    loader: str | None = field(default=None, metadata={"doc": "loader name; chosen from the source when omitted"})
    params: dict[str, Any] = field(default_factory=dict, metadata={"doc": "loader parameters"})
    slices: str | int | list[int] = field(
        default="all", metadata={"doc": "'all', 'middle', an index, a list or 'start:stop[:step]'"}
    )
    crop: int | None = field(
        default=None, metadata={"ge": 8, "doc": "centre crop/pad to this square size first (before size)"}
    )
    size: int | None = field(default=None, metadata={"ge": 8, "doc": "square size after crop/pad or resize"})
    resize: Literal["crop_pad", "resize"] = field(default="crop_pad", metadata={"doc": "how to reach size"})
    units: Literal["auto", "hu"] = field(
        default="auto",
        metadata={"doc": "what the source's values are: auto (what the loader says: DICOM carries HU, other formats "
                         "'a.u.'), or hu (declare a NIfTI/.npy/image CT volume in Hounsfield units; checked: air "
                         "near -1000)"},
    )
    normalize: Literal["none", "max", "percentile", "volume_max", "hu_unit"] = field(
        default="volume_max",
        metadata={"doc": "intensity normalisation of the ground truth; hu_unit: CT (clip(HU, -1024, 3071) + 1024) "
                         "/ 4095, the convention of the shipped CT priors"},
    )


@dataclass(frozen=True)
class ReconstructorConfig:
    """One method to run; several are compared side by side."""

    name: str = field(metadata={"doc": "registered reconstructor (genrecon list)"})
    label: str | None = field(default=None, metadata={"doc": "name in reports (default: name, made unique)"})
    params: dict[str, Any] = field(default_factory=dict, metadata={"doc": "constructor parameters"})


@dataclass(frozen=True)
class EvaluateConfig:
    """Metrics and their conventions."""

    metrics: list[Literal["psnr", "ssim", "nmse"]] = field(default=("psnr", "ssim", "nmse"))
    data_range: str | float = field(
        default="volume_max",
        metadata={"doc": "'volume_max' (fastMRI), 'max' (per slice), 'range' (DIVal: max-min) or a number"},
    )
    crop: int | None = field(default=None, metadata={"ge": 1, "doc": "centre crop (pixels) before metrics"})
    aggregate: Literal["slice", "volume"] = field(
        default="slice",
        metadata={"doc": "slice: mean ± std over slices; volume: as fastMRI's evaluate, PSNR and NMSE over each "
                         "volume's voxels and SSIM the mean of its slices, then mean ± std over volumes"},
    )

    def problems(self) -> list[str]:
        out = []
        if isinstance(self.data_range, str) and self.data_range not in ("volume_max", "max", "range"):
            out.append(f"data_range: {self.data_range!r} is not 'volume_max', 'max', 'range' or a number")
        if isinstance(self.data_range, float) and self.data_range <= 0:
            out.append(f"data_range: must be > 0, got {self.data_range}")
        if not self.metrics:
            out.append("metrics: list at least one metric")
        return out


@dataclass(frozen=True)
class OutputConfig:
    """Where and what to write."""

    dir: str = field(metadata={"doc": "run folder (created); the resolved config is written there"})
    save: list[Literal["npy", "nifti", "h5", "png"]] = field(
        default=("npy", "png"), metadata={"doc": "formats of reconstructions and figure panels"}
    )
    resume: bool = field(default=True, metadata={"doc": "skip cases already done with the same config"})


@dataclass(frozen=True)
class RunConfig:
    """A whole reconstruction run."""

    data: DataConfig
    simulate: Any
    reconstructors: list[ReconstructorConfig]
    output: OutputConfig
    version: int = SUPPORTED_VERSION
    seed: int = field(default=0, metadata={"ge": 0})
    device: str = "auto"
    threads: int | Literal["auto"] | None = field(
        default="auto", metadata={"ge": 1, "doc": "CPU threads for torch: a number, or auto (the idle cores: those "
                                                  "available minus the load average, at least 1; null means auto). "
                                                  "The same numbers need the same thread count and device"}
    )
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    @property
    def modality(self) -> str:
        return self.simulate.modality

    def labels(self) -> list[str]:
        return [r.label for r in self.reconstructors]


# ---------------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------------
def load_config(path: str | Path, overrides: list[str] | None = None, *, check_files: bool = True,
                build: bool = True) -> RunConfig:
    """Read, override and validate a run config file (relative data paths resolve from the working dir).

    ``build=False`` reads a stored run's config (``genrecon evaluate``, stale checks): the plugins are not
    instantiated (no prior checkpoint is loaded) and the device is not checked (a GPU run's folder is
    evaluated anywhere).
    """
    data = read_yaml(path)
    for item in overrides or []:
        apply_override(data, item)
    return load_config_dict(data, check_files=check_files, build=build)


def _resolve_loader(data_cfg: DataConfig) -> str | None:
    """The configured loader, else the first that accepts the source, else (a folder) its first file."""
    if data_cfg.loader:
        return data_cfg.loader
    for name in LOADERS.names():
        if LOADERS.get(name).accepts(data_cfg.source):
            return name
    folder = Path(data_cfg.source)
    if folder.is_dir():
        for f in sorted(folder.iterdir()):
            for name in LOADERS.names():
                if f.is_file() and LOADERS.get(name).accepts(str(f)):
                    return name
    return None


def load_config_dict(data: dict, *, check_files: bool = True, build: bool = True) -> RunConfig:
    """Validate a config given as a dict; see :func:`load_config`.

    With ``build``, each method is instantiated once here (constructors check their values, priors load
    their checkpoints); :func:`built_methods` hands those instances to the run, so nothing is built twice.
    """
    from .simulate import MODALITIES, modality_module

    problems: list[str] = []
    raw = dict(data)
    sim_raw = raw.pop("simulate", None)
    rec_raw = raw.get("reconstructors")
    # fill default labels before parsing (a label is what reports and files are named by)
    if isinstance(rec_raw, list):
        raw["reconstructors"] = _with_labels(rec_raw)
    cfg = parse(RunConfig, {**raw, "simulate": None}, "", problems)
    # the simulate section is parsed by its modality's own schema
    sim_cfg = None
    if sim_raw is None:
        problems = [p for p in problems if "simulate" not in p]
        problems.append("missing required section 'simulate'")
    elif not isinstance(sim_raw, dict):
        problems.append(f"simulate: expected a mapping, got {sim_raw!r}")
    elif "modality" not in sim_raw:
        problems.append(f"simulate: missing required key 'modality' ({' or '.join(MODALITIES)})")
    else:
        try:
            module = modality_module(str(sim_raw["modality"]))
            sim_cfg = parse(module.Config, sim_raw, "simulate", problems)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if cfg is None:
        raise ConfigError(problems)
    cfg = dataclasses.replace(cfg, simulate=sim_cfg)
    if cfg.version != SUPPORTED_VERSION:
        problems.append(f"version: this genrecon reads config version {SUPPORTED_VERSION}, got {cfg.version}")
    if build:
        problems.extend(_check_device(cfg.device))
    if cfg.data is not None:
        problems.extend(_check_data(cfg.data, check_files))
    built: dict[str, Any] = {}
    if isinstance(cfg.reconstructors, tuple):  # else its type was reported by the parser
        if len(cfg.reconstructors) == 0:
            problems.append("reconstructors: list at least one method, e.g. - {name: zero_filled}")
        size = _image_size(cfg.data) if isinstance(cfg.data, DataConfig) else None
        for i, rc in enumerate(cfg.reconstructors):
            if not isinstance(rc, ReconstructorConfig):
                continue
            problems.extend(_check_reconstructor(rc, i, sim_cfg, size, built if build else None))
    if problems:
        raise ConfigError(problems)
    object.__setattr__(cfg, "_deprecations", built.pop("_deprecations", []))
    object.__setattr__(cfg, "_built", built)  # not fields: not dumped, hashed or compared
    return cfg


def deprecations(cfg: RunConfig) -> list[str]:
    """Deprecated parameter names the config uses (each with the key to write instead), found by validation."""
    return list(getattr(cfg, "_deprecations", []))


def built_methods(cfg: RunConfig) -> list[Any]:
    """One instance per configured method: those validation built, else built now (e.g. after
    ``dataclasses.replace`` or for a config read with ``build=False``)."""
    built = getattr(cfg, "_built", {})
    return [built.get(rc.label) or RECONSTRUCTORS.build(rc.name, rc.params) for rc in cfg.reconstructors]


def _with_labels(items: list) -> list:
    out, seen = [], {}
    for item in items:
        if isinstance(item, dict) and "name" in item and not item.get("label"):
            base = str(item["name"])
            seen[base] = seen.get(base, 0) + 1
            item = {**item, "label": base if seen[base] == 1 else f"{base}_{seen[base]}"}
        out.append(item)
    labels = [i.get("label") for i in out if isinstance(i, dict)]
    dup = {lab for lab in labels if labels.count(lab) > 1}
    if dup:
        raise ConfigError(f"reconstructors: labels must be unique, repeated: {', '.join(sorted(map(str, dup)))}")
    return out


def _check_device(device: str) -> list[str]:
    import torch

    if device in ("auto", "cpu"):
        return []
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            return [f"device: '{device}' requested but no CUDA GPU is available here; use device: auto or cpu"]
        return []
    return [f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"]


def _check_data(dc: DataConfig, check_files: bool) -> list[str]:
    problems = []
    loader = _resolve_loader(dc)
    if loader is None:
        problems.append(
            f"data.source: no loader reads '{dc.source}'; set data.loader to one of: {', '.join(LOADERS.names())}"
        )
        return problems
    try:
        obj = LOADERS.build(loader, dc.params)
    except GenreconError as exc:
        return [f"data.params: {exc}"]
    if check_files:
        problems.extend(obj.check(dc.source))
    if isinstance(dc.slices, str) and dc.slices not in ("all", "middle") and ":" not in dc.slices:
        problems.append(f"data.slices: expected 'all', 'middle', an index, a list or 'start:stop', got {dc.slices!r}")
    return problems


def _image_size(dc: DataConfig) -> int | None:
    """The square image size the config fixes (``size``, else ``crop``), or None (the data decide)."""
    return dc.size if dc.size is not None else dc.crop


def _check_reconstructor(rc: ReconstructorConfig, i: int, sim_cfg, size: int | None = None,
                         built: dict[str, Any] | None = None) -> list[str]:
    where = f"reconstructors.{i}"
    if rc.name not in RECONSTRUCTORS:
        try:
            RECONSTRUCTORS.get(rc.name)
        except GenreconError as exc:
            return [f"{where}.name: {exc}"]
    problems = RECONSTRUCTORS.check_params(rc.name, rc.params, where=f"{where}.params")
    if problems:
        return problems
    cls = RECONSTRUCTORS.get(rc.name)
    modalities = getattr(cls, "modalities", ("mri", "ct"))
    if sim_cfg is not None and sim_cfg.modality not in modalities:
        problems.append(f"{where}: '{rc.name}' does not support modality '{sim_cfg.modality}' (only {modalities})")
    if built is None:  # a stored run's config: names, parameters and types are enough
        return problems
    try:
        with warnings.catch_warnings(record=True) as caught:  # deprecated names: shown by the CLI
            warnings.simplefilter("always", DeprecationWarning)
            method = cls(**rc.params)  # constructors validate their values (and priors their checkpoints)
        for w in caught:
            if issubclass(w.category, DeprecationWarning):
                built.setdefault("_deprecations", []).append(f"{where}.params: {w.message}")
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    except GenreconError as exc:
        return [*problems, f"{where}.params: {exc}"]
    except (TypeError, ValueError) as exc:
        return [*problems, f"{where}.params: {exc}"]
    if size is not None and sim_cfg is not None and callable(getattr(method, "check", None)):
        from .reconstructors.base import ImageDomain

        try:  # e.g. a prior trained at another size
            method.check(ImageDomain((1, size, size), complex_domain=sim_cfg.modality == "mri"))
        except GenreconError as exc:
            problems.append(f"{where}: {exc}")
    if not problems:
        built[rc.label] = method
    return problems


# ---------------------------------------------------------------------------------------------------
# resolved config, hashes
# ---------------------------------------------------------------------------------------------------
def to_dict(cfg: Any) -> Any:
    """Plain dict/list form of a config dataclass (tuples become lists), for YAML and hashing."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def config_hash(obj: Any) -> str:
    """Short stable hash of a JSON-able object (sorted keys)."""
    text = json.dumps(to_dict(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
