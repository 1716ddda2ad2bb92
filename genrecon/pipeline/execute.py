"""Running: every selected case through the simulator and each method, outputs written as they finish.

``run(cfg)`` processes every selected case (file, slice), each method on it, and writes per-case outputs
atomically under ``<output.dir>/cases/<case>/``; a method's ``<label>.json`` record (with the hash of the
config parts it depends on, see :mod:`.records`) is written last, so a rerun skips what is done and redoes
what is half done. Metrics are computed afterwards from the saved files by
:func:`genrecon.report.evaluate_run` (the same code ``genrecon evaluate`` runs), so volume-level
conventions (``data_range: volume_max``) see every slice.

Per-case seeds derive from (run seed, case key), per-method seeds from (run seed, case key, label), so
sharded runs and reruns give the same numbers. A reconstruction holding NaN or Inf is recorded as failed
(``status: failed`` with the reason), never saved as a result.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..config import RunConfig, built_methods, dump_yaml
from ..errors import DataError
from ..seeding import derive_seed
from ..simulate import simulate
from .locking import RunLock
from .plan import (case_dirname, case_key, load_case, make_loader, plan, resolve_device, resolve_threads, shard,
                   whole_volume_max)
from .records import case_hash, check_output_dir, method_hash, read_record, remove_method_files

Progress = Callable[..., None]


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().squeeze().numpy()


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _scalars(info: dict) -> dict:
    """The JSON-able scalars of an info dict (non-finite numbers become null)."""
    out = {}
    for k, v in info.items():
        if isinstance(v, torch.Tensor):
            if v.numel() == 1:
                v = v.item()
            else:
                continue
        if isinstance(v, float):
            out[k] = _finite(v)
        elif isinstance(v, (int, str, bool)) or v is None:
            out[k] = v
        elif isinstance(v, (list, tuple)) and all(isinstance(i, (int, float, str)) for i in v):
            out[k] = [_finite(i) if isinstance(i, float) else i for i in v]
    return out


def _eval_grid(t: torch.Tensor, meas) -> torch.Tensor:
    """``t`` centre-cropped from the acquisition grid to the evaluation grid (measured fastMRI k-space:
    640 x 368 -> 320 x 320, as fastMRI crops), when the measurement has one; images of other sizes pass."""
    if meas.eval_shape is None or tuple(t.shape[-2:]) != tuple(meas.op.domain_shape[-2:]):
        return t
    from ..io.transforms import center_crop

    return center_crop(t, meas.eval_shape)


def _load_or_none(path: Path) -> dict | None:
    """A record for resuming: None when missing or unreadable (the work is redone)."""
    try:
        return read_record(path)
    except ValueError:
        return None


def write_run_config(cfg: RunConfig, out: Path) -> None:
    from ..io.writers import write_text

    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "config.yaml", dump_yaml(cfg))


def nonfinite_reason(x: torch.Tensor) -> str | None:
    """Why ``x`` is not a usable result (NaN or Inf entries), or None."""
    bad = ~torch.isfinite(torch.view_as_real(x) if x.is_complex() else x)
    if not bad.any():
        return None
    n_bad = int(bad.any(dim=-1).sum()) if x.is_complex() else int(bad.sum())
    return f"the reconstruction holds NaN or Inf in {n_bad} of {x.numel()} pixels"


def run(
    cfg: RunConfig,
    *,
    progress: Progress | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
    evaluate: bool = True,
    overwrite: bool = False,
):
    """Run the configured reconstruction; return the report (or None when ``evaluate`` is False).

    The run folder is locked for the duration (:class:`~.locking.RunLock`); a folder holding results of
    other settings is refused unless ``overwrite`` (:func:`~.records.check_output_dir`). When the run fails
    before any result is written, a folder it created is removed again: nothing is left behind.
    """
    progress = progress or (lambda event, **kw: None)
    threads = resolve_threads(cfg.threads)
    torch.set_num_threads(threads[0])
    out = Path(cfg.output.dir)
    created = not out.exists()
    written: list[bool] = []
    lock = RunLock(out, shard_index, shard_count)
    try:
        with lock:
            removed = check_output_dir(cfg, overwrite=overwrite)
            if removed:
                progress("overwritten", removed=removed)
            _run_cases(cfg, out, progress, shard_index, shard_count, written, threads)
    except BaseException:
        # only the writer that held the lock may clean up (another may have created the folder meanwhile)
        if created and lock.acquired and not written and out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        raise
    if not evaluate:
        return None
    from ..report import evaluate_run

    return evaluate_run(out, progress=progress)


def _run_cases(cfg: RunConfig, out: Path, progress: Progress, shard_index: int, shard_count: int,
               written: list[bool], threads: tuple[int, str]) -> None:
    from ..io.writers import write_json, write_npy

    device = resolve_device(cfg.device)
    loader = make_loader(cfg)
    refs = shard(plan(cfg, loader), shard_index, shard_count)
    if not refs:
        raise DataError(f"{cfg.data.source}: the selected slices ({cfg.data.slices!r}) give no case to process")
    methods = built_methods(cfg)  # the instances validation built (each prior loaded once)
    for m in methods:
        if hasattr(m, "to"):
            m.to(device)
    write_run_config(cfg, out)
    c_hash = case_hash(cfg)
    labels = cfg.labels()
    m_hashes = [method_hash(cfg, i) for i in range(len(methods))]
    progress("plan", cases=len(refs), methods=labels, out=str(out), device=str(device), threads=threads[0],
             threads_why=threads[1])
    volume_scale: dict[str, float] = {}
    whole_max: dict[str, float | None] = {}
    for ref in refs:
        key = case_key(ref)
        cdir = out / "cases" / case_dirname(key)
        records = [_load_or_none(cdir / f"{label}.json") for label in labels]
        done = [
            cfg.output.resume and rec is not None and rec.get("hash") == h and rec.get("status", "ok") == "ok"
            and (cdir / f"{label}.npy").exists()
            for rec, h, label in zip(records, m_hashes, labels)
        ]
        case_rec = _load_or_none(cdir / "case.json")
        if all(done) and case_rec is not None and case_rec.get("hash") == c_hash:
            progress("case_skip", key=key)
            continue
        progress("case_start", key=key)
        case = load_case(cfg, loader, ref, volume_scale)
        case.key = key
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, key))
        meas = simulate(case, cfg.simulate, generator=gen, device=device)
        for method in methods:  # e.g. a prior of another size: refused before any method of the case runs
            if callable(getattr(method, "check", None)):
                method.check(meas.op)
        cdir.mkdir(parents=True, exist_ok=True)
        if meas.x_true is not None:  # None: an already undersampled file, reconstructed without a reference
            write_npy(cdir / "truth.npy", _to_numpy(meas.x_true))
        write_npy(cdir / "adjoint.npy", _to_numpy(_eval_grid(meas.op.adjoint(meas.y), meas)))
        for key_info, value in meas.info.items():
            if isinstance(value, torch.Tensor) and value.numel() > 1:
                write_npy(cdir / f"{key_info.removesuffix('_tensor')}.npy", _to_numpy(value))  # mask_tensor -> mask.npy
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
        case_record["reference"] = meas.x_true is not None
        if meas.x_true is None:
            whole_max[ref.volume] = None
        if ref.volume not in whole_max:  # data_range volume_max: the whole volume's, not the selection's
            whole_max[ref.volume] = whole_volume_max(cfg, loader, ref, volume_scale)
        if whole_max[ref.volume] is not None:
            case_record.update(volume_max=whole_max[ref.volume], volume_max_crop=cfg.evaluate.crop)
        for index, (label, method, h, is_done) in enumerate(zip(labels, methods, m_hashes, done)):
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
            rec = {"label": label, "name": cfg.reconstructors[index].name, "hash": h, "seconds": seconds,
                   "threads": torch.get_num_threads(), "device": str(device),
                   **_scalars(method.info)}
            if records[index] is not None:  # an earlier attempt's files (other settings, or failed)
                remove_method_files(cdir, label)
            reason = nonfinite_reason(x)
            if reason is not None:
                rec.update(status="failed", reason=reason, files=[])
                progress("method_failed", key=key, label=label, reason=reason)
            else:
                files = [f"{label}.npy"]
                write_npy(cdir / files[0], _to_numpy(_eval_grid(x, meas)))
                for name, value in method.info.items():
                    if isinstance(value, torch.Tensor) and value.numel() > 1:
                        files.append(f"{label}_{name}.npy")
                        write_npy(cdir / files[-1], _to_numpy(_eval_grid(value, meas)))
                rec.update(status="ok", files=files)
            if device.type == "cuda":
                rec["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
            write_json(cdir / f"{label}.json", rec)
            written.append(True)
            progress("method_done", key=key, label=label, seconds=seconds)
        write_json(cdir / "case.json", case_record)
        progress("case_done", key=key)
