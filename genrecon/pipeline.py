"""The reconstruction pipeline: config -> loader -> simulator -> reconstructors -> saved cases -> report.

``run(cfg)`` processes every selected case (file, slice), each method on it, and writes per-case outputs
atomically under ``<output.dir>/cases/<case>/``; a method's ``<label>.json`` record (with the hash of the
config parts it depends on) is written last, so a rerun skips what is done and redoes what is half done.
Metrics are computed afterwards from the saved files by :func:`genrecon.report.evaluate_run` — the same
code ``genrecon evaluate`` runs — so volume-level conventions (``data_range: volume_max``) see every slice.

Per-case seeds derive from (run seed, case key), per-method seeds from (run seed, case key, label), so
sharded runs and reruns give the same numbers.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .config import RunConfig, _resolve_loader, config_hash, dump_yaml
from .errors import ConfigError, DataError
from .registry import LOADERS, RECONSTRUCTORS
from .seeding import derive_seed
from .simulate import simulate
from .types import Case

Progress = Callable[..., None]

#: the HU window of ``data.normalize: hu_unit`` (as the shipped CT priors' training data)
HU_MIN, HU_MAX = -1024.0, 3071.0


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
    from .io.transforms import select_slices

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


def load_case(cfg: RunConfig, loader, ref: CaseRef, volume_scale: dict[str, float]) -> Case:
    """Load one slice and apply the configured size and normalisation."""
    from .io.transforms import fit_size, fit_size_affine, normalize

    case = loader.load(ref.source, ref.index)
    image = case.image
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
                              f"'{case.meta.get('units')}' values")
        image = (image.clamp(HU_MIN, HU_MAX) - HU_MIN) / (HU_MAX - HU_MIN)
        case.meta["units"] = "normalised"
        info = {"mode": "hu_unit", "hu_offset": -HU_MIN, "hu_scale": HU_MAX - HU_MIN}
    else:
        image, info = normalize(image, mode)
    if not torch.isfinite(image.abs() if image.is_complex() else image).all():
        raise DataError(f"{ref.source}: slice {ref.index} holds NaN or infinite values")
    case.image = image
    case.meta["normalisation"] = info
    return case


def _size_steps(cfg: RunConfig) -> list[tuple[int, str]]:
    """The configured geometry steps: an optional centre crop/pad, then crop/pad or resize to ``size``."""
    steps = []
    if cfg.data.crop is not None:
        steps.append((cfg.data.crop, "crop_pad"))
    if cfg.data.size is not None:
        steps.append((cfg.data.size, cfg.data.resize))
    return steps


def _volume_max(cfg: RunConfig, loader, source: str) -> float:
    from .io.transforms import fit_size, select_slices, volume_stat

    def transform(img):
        for size, mode in _size_steps(cfg):
            img = fit_size(img, size, mode)
        return img

    indices = select_slices(loader.n_slices(source), cfg.data.slices)
    return volume_stat(loader, source, indices, "max", transform=transform)


# ---------------------------------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------------------------------
def case_hash(cfg: RunConfig) -> str:
    """Hash of what a case's simulated measurement depends on."""
    return config_hash({"data": cfg.data, "simulate": cfg.simulate, "seed": cfg.seed, "version": cfg.version})


def method_hash(cfg: RunConfig, index: int) -> str:
    return config_hash({"case": case_hash(cfg), "method": cfg.reconstructors[index]})


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().squeeze().numpy()


def _scalars(info: dict) -> dict:
    out = {}
    for k, v in info.items():
        if isinstance(v, torch.Tensor):
            if v.numel() == 1:
                out[k] = v.item()
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(i, (int, float, str)) for i in v):
            out[k] = list(v)
    return out


def write_run_config(cfg: RunConfig, out: Path) -> None:
    from .io.writers import write_text

    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", dump_yaml(cfg))


def run(
    cfg: RunConfig,
    *,
    progress: Progress | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    evaluate: bool = True,
):
    """Run the configured reconstruction; return the report (or None when ``evaluate`` is False)."""
    from .io.writers import write_json, write_npy
    from .report import evaluate_run, load_json

    progress = progress or (lambda event, **kw: None)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    out = Path(cfg.output.dir)
    loader = make_loader(cfg)
    refs = shard(plan(cfg, loader), shard_index, shard_count)
    if not refs:
        raise DataError(f"{cfg.data.source}: the selected slices ({cfg.data.slices!r}) give no case to process")
    methods = [RECONSTRUCTORS.build(r.name, r.params) for r in cfg.reconstructors]
    for m in methods:
        if hasattr(m, "to"):
            m.to(device)
    write_run_config(cfg, out)
    c_hash = case_hash(cfg)
    m_hashes = [method_hash(cfg, i) for i in range(len(methods))]
    progress("plan", cases=len(refs), methods=cfg.labels(), out=str(out), device=str(device))
    volume_scale: dict[str, float] = {}
    for ref in refs:
        key = case_key(ref)
        cdir = out / "cases" / case_dirname(key)
        records = [load_json(cdir / f"{label}.json") for label in cfg.labels()]
        done = [
            cfg.output.resume and rec is not None and rec.get("hash") == h and (cdir / f"{label}.npy").exists()
            for rec, h, label in zip(records, m_hashes, cfg.labels())
        ]
        case_rec = load_json(cdir / "case.json")
        if all(done) and case_rec is not None and case_rec.get("hash") == c_hash:
            progress("case_skip", key=key)
            continue
        progress("case_start", key=key)
        case = load_case(cfg, loader, ref, volume_scale)
        case.key = key
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, key))
        meas = simulate(case, cfg.simulate, generator=gen, device=device)
        cdir.mkdir(parents=True, exist_ok=True)
        write_npy(cdir / "truth.npy", _to_numpy(meas.x_true))
        write_npy(cdir / "adjoint.npy", _to_numpy(meas.op.adjoint(meas.y)))
        for key_info, value in meas.info.items():
            if isinstance(value, torch.Tensor) and value.numel() > 1:
                write_npy(cdir / f"{key_info}.npy", _to_numpy(value))
        case_record = {
            "key": key,
            "source": ref.source,
            "slice": ref.index,
            "volume": ref.volume,
            "hash": c_hash,
            "modality": cfg.modality,
            "measurement": _scalars(meas.info),
            "meta": _scalars({k: v for k, v in case.meta.items() if k != "normalisation"}),
            "normalisation": case.meta.get("normalisation"),
            "affine": case.meta.get("slice_affine") or case.meta.get("affine"),
        }
        for label, method, h, is_done in zip(cfg.labels(), methods, m_hashes, done):
            if is_done:
                continue
            progress("method_start", key=key, label=label)
            g = torch.Generator(device=device).manual_seed(derive_seed(cfg.seed, key, label))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            x = method(meas.y, meas.op, generator=g,
                       callback=lambda step, est, _l=label: progress("step", key=key, label=_l, step=step))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - t0
            write_npy(cdir / f"{label}.npy", _to_numpy(x))
            for name, value in method.info.items():
                if isinstance(value, torch.Tensor) and value.numel() > 1:
                    write_npy(cdir / f"{label}_{name}.npy", _to_numpy(value))
            rec = {"label": label, "name": cfg.reconstructors[cfg.labels().index(label)].name, "hash": h,
                   "seconds": seconds, **_scalars(method.info)}
            if device.type == "cuda":
                rec["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            write_json(cdir / f"{label}.json", rec)
            progress("method_done", key=key, label=label, seconds=seconds)
        write_json(cdir / "case.json", case_record)
        progress("case_done", key=key)
    if not evaluate:
        return None
    return evaluate_run(out, progress=progress)
