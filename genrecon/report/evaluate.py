"""Evaluation of a run folder: every case's saved reference and reconstructions -> metrics -> the report.

``evaluate_run(run_dir)`` reads the resolved ``config.yaml`` and every case's saved ground truth and
reconstructions, computes the configured metrics under the stated ``data_range`` convention (per slice, or
per volume as fastMRI's evaluate does), and writes the reports (:mod:`.files`). It merges the cases of every
shard and counts only results made with the folder's config.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io.transforms import center_crop
from ..metrics import METRICS, coverage, volume_metrics
from .files import write_reports, write_volumes
from .summary import aggregate, convention_text


def load_json(path: Path) -> dict | None:
    """A JSON record, or None when missing or unreadable (a half-done case)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _crop(a, crop: int | None):
    """``evaluate.crop``: the centre ``crop`` x ``crop`` (at most the image), by :func:`~genrecon.io.transforms.center_crop`."""
    return center_crop(a, crop or None)


def data_range_of(rule: str | float, truth: np.ndarray, volume_truths: list[np.ndarray],
                  volume_max: float | None = None) -> float:
    """The metric ``data_range`` under the configured convention (see :mod:`genrecon.metrics`).

    ``volume_max`` is the maximum of the whole reference volume (all its slices, recorded by the pipeline);
    without it, the maximum over the evaluated slices ``volume_truths``.
    """
    if isinstance(rule, (int, float)):
        return float(rule)
    if rule == "max":
        return float(np.abs(truth).max())
    mags = [np.abs(t) for t in volume_truths]
    if rule == "volume_max":
        return float(volume_max) if volume_max is not None else float(max(m.max() for m in mags))
    if rule == "range":
        return float(max(m.max() for m in mags) - min(m.min() for m in mags))
    raise DataError(f"unknown data_range rule {rule!r}")


def _metric_row(metrics: list[str], est: np.ndarray, truth: np.ndarray, drange: float) -> dict[str, Any]:
    """Each metric's value; a metric that is undefined here (a constant reference makes ``data_range`` 0,
    an all-zero one NMSE's denominator) is None, with the reason under ``undefined``."""
    row: dict[str, Any] = {}
    undefined = {}
    for m in metrics:
        if m in ("psnr", "ssim") and not drange > 0:
            row[m], undefined[m] = None, f"data_range is {drange:g} (a constant reference)"
            continue
        if m == "nmse" and not np.any(truth):
            row[m], undefined[m] = None, "the reference is all zero"
            continue
        value = METRICS[m](est, truth, data_range=drange)
        if not math.isfinite(value):
            row[m], undefined[m] = None, f"{m} is {value} (the estimate equals the reference)" if value == math.inf \
                else f"{m} is {value}"
            continue
        row[m] = value
    if undefined:
        row["undefined"] = undefined
    return row


class _Reader:
    """Reads a run folder's records and arrays, collecting the files that exist but cannot be read."""

    def __init__(self) -> None:
        self.unreadable: list[str] = []

    def record(self, path: Path) -> dict | None:
        from ..pipeline.records import read_record

        try:
            return read_record(path)
        except ValueError:
            self.unreadable.append(str(path))
            return None

    def array(self, path: Path, crop: int | None) -> np.ndarray | None:
        try:
            return _crop(np.load(path, allow_pickle=False), crop)
        except Exception:  # truncated or not an .npy file
            self.unreadable.append(str(path))
            return None


def evaluate_run(run_dir: str | Path, *, progress=None, write: bool = True) -> dict[str, Any]:
    """Compute metrics for every finished case in ``run_dir`` and write the reports; return the report.

    Only results whose stored hash matches the folder's ``config.yaml`` count; the others are listed under
    ``stale``. A method that produced NaN/Inf is a row with ``status: failed``. When a record or array that
    exists cannot be read, a :class:`DataError` names the files and the previous reports are left as they were.
    """
    from ..config import load_config
    from ..pipeline.records import case_hash, method_hash

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise DataError(f"{run_dir}: not a genrecon run folder (no config.yaml)")
    cfg = load_config(cfg_path, check_files=False, build=False)
    labels = cfg.labels()
    ev = cfg.evaluate
    want_case = case_hash(cfg)
    want_method = {label: method_hash(cfg, i) for i, label in enumerate(labels)}
    reader = _Reader()
    records, stale = [], []
    for d in sorted(p for p in (run_dir / "cases").glob("*") if (p / "case.json").is_file()):
        rec = reader.record(d / "case.json")
        if rec is None:
            continue
        if rec.get("hash") != want_case:
            stale.append({"case": rec.get("key", d.name), "method": None})
            continue
        rec["dir"] = d
        rec["methods"] = {}
        for label in labels:
            mrec = reader.record(d / f"{label}.json")
            if mrec is None:
                continue
            if mrec.get("hash") != want_method[label]:
                stale.append({"case": rec["key"], "method": label})
                continue
            rec["methods"][label] = mrec
        records.append(rec)
    if not records and not reader.unreadable:
        raise DataError(f"{run_dir}: no finished case of its config.yaml to evaluate"
                        + (f" ({len(stale)} stale result(s) of other settings)" if stale else ""))
    truths = {r["key"]: reader.array(r["dir"] / "truth.npy", ev.crop) for r in records if r.get("reference", True)}
    estimates = {(r["key"], label): reader.array(r["dir"] / f"{label}.npy", ev.crop)
                 for r in records for label, m in r["methods"].items() if m.get("status", "ok") == "ok"}
    stds = {(r["key"], label): reader.array(p, ev.crop) for r in records for label in r["methods"]
            if (p := r["dir"] / f"{label}_std.npy").is_file() and (r["key"], label) in estimates}
    if reader.unreadable:
        shown = ", ".join(reader.unreadable[:5]) + (f" and {len(reader.unreadable) - 5} more"
                                                     if len(reader.unreadable) > 5 else "")
        raise DataError(f"{run_dir}: {len(reader.unreadable)} file(s) cannot be read: {shown}; the previous report "
                        "is kept (delete them and rerun the same reconstruct command to redo those results)")
    by_volume: dict[str, list[np.ndarray]] = {}
    stored: dict[str, list[float | None]] = {}  # the whole volume's maximum, recorded by the pipeline
    for r in records:
        if r["key"] not in truths:
            continue
        by_volume.setdefault(r["volume"], []).append(truths[r["key"]])
        same_crop = r.get("volume_max_crop", "unset") == ev.crop
        stored.setdefault(r["volume"], []).append(r.get("volume_max") if same_crop else None)
    whole_max = {v: max(x) if all(i is not None for i in x) else None for v, x in stored.items()}
    rows = []
    metrics = list(ev.metrics)
    for r in sorted(records, key=lambda r: (r["volume"], r["slice"])):
        truth = truths.get(r["key"])  # None: no reference (an already undersampled file): outputs, no metrics
        drange = None if truth is None else data_range_of(ev.data_range, truth, by_volume[r["volume"]],
                                                          whole_max.get(r["volume"]))
        shown_estimates = {}
        first_row = len(rows)  # this case's rows are appended from here
        for label in labels:
            mrec = r["methods"].get(label)
            if mrec is None:
                continue
            row: dict[str, Any] = {"case": r["key"], "method": label, "status": mrec.get("status", "ok"),
                                   "data_range": drange}
            if row["status"] != "ok":
                row.update({m: None for m in metrics})
                row["reason"] = mrec.get("reason", "failed")
            elif truth is None:
                shown_estimates[label] = estimates[(r["key"], label)]
                row.update({m: None for m in metrics}, reference=False)
            else:
                est = estimates[(r["key"], label)]
                shown_estimates[label] = est
                row.update(_metric_row(metrics, est, truth, drange))
                if (r["key"], label) in stds:
                    row["coverage_2sigma"] = coverage(est, truth, stds[(r["key"], label)])
            row["seconds"] = mrec.get("seconds")
            for extra in ("iterations", "nfe", "coverage_2sigma", "peak_memory_mb"):
                if extra in mrec:
                    row[extra] = mrec[extra]
            rows.append(row)
        if write and "png" in cfg.output.save and shown_estimates and truth is not None:
            from ..figures import case_panel

            panel_stds = {lab: stds[(r["key"], lab)] for lab in shown_estimates if (r["key"], lab) in stds}
            shown = {row["method"]: row for row in rows[first_row:]}
            scores = {lab: " ".join(f"{m.upper()} {shown[lab][m]:.{2 if m == 'psnr' else 3}f}" for m in ("psnr", "ssim")
                                    if isinstance(shown.get(lab, {}).get(m), float)) for lab in shown_estimates}
            case_panel(r["dir"] / "panel.png", truth, shown_estimates, drange, stds=panel_stds, title=r["key"],
                       scores=scores, sampling=_sampling_tile(r, cfg))
    volume_rows = []
    if ev.aggregate == "volume":
        volume_rows = _volume_rows(records, truths, estimates, labels, metrics, ev, whole_max)
        summary = aggregate(volume_rows, labels, metrics)
        for label, entry in summary.items():  # seconds and coverage stay per slice; cases counts slices
            per_slice = aggregate(rows, [label], metrics).get(label, {})
            entry.update({k: v for k, v in per_slice.items() if k.startswith(("seconds", "coverage", "failed"))},
                         volumes=entry.pop("cases"), cases=per_slice.get("cases", 0))
    else:
        summary = aggregate(rows, labels, metrics)
    report = {
        "run": str(run_dir),
        "modality": cfg.modality,
        "cases": len(records),
        "conventions": convention_text(ev),
        "measurement": _measurement_summary(records),
        "summary": summary,
        "rows": rows,
        "volumes": volume_rows,
        "failed": [{"case": r["case"], "method": r["method"], "reason": r["reason"]}
                   for r in rows if r["status"] != "ok"],
        "undefined": [{"case": r["case"], "method": r["method"], **r["undefined"]} for r in rows if "undefined" in r],
        "stale": stale,
    }
    if write:
        write_reports(run_dir, report, metrics, cfg)
        if {"nifti", "h5"} & set(cfg.output.save):
            write_volumes(run_dir, records, labels, cfg)
    return report


def _volume_rows(records, truths, estimates, labels, metrics, ev, whole_max) -> list[dict]:
    """One row per (volume, method) with :func:`genrecon.metrics.volume_metrics` (fastMRI's aggregation);
    a method missing or failed on any slice of the volume is left out of that volume."""
    by_volume: dict[str, list[dict]] = {}
    for r in records:
        if r["key"] in truths:  # slices without a reference have nothing to score against
            by_volume.setdefault(r["volume"], []).append(r)
    out = []
    for volume, recs in sorted(by_volume.items()):
        recs.sort(key=lambda r: r["slice"])
        refs = [truths[r["key"]] for r in recs]
        drange = data_range_of(ev.data_range, refs[0], refs, whole_max.get(volume))
        for label in labels:
            ests = [estimates.get((r["key"], label)) for r in recs]
            if any(e is None for e in ests):
                continue
            row = {"volume": volume, "method": label, "slices": len(recs), "data_range": drange, "status": "ok",
                   **volume_metrics(ests, refs, drange, metrics)}
            undefined = {m: "undefined for this volume" for m in metrics if row[m] is None}
            if undefined:
                row["undefined"] = undefined
            out.append(row)
    return out


def _sampling_tile(rec: dict, cfg) -> tuple[str, np.ndarray] | None:
    """The panel's sampling tile: the case's saved MRI mask, or the configured CT view angles as a diagram."""
    from ..figures import angle_diagram

    meas = rec.get("measurement", {})
    mask_path = rec["dir"] / "mask.npy"
    if mask_path.is_file():
        try:
            mask = np.squeeze(np.load(mask_path, allow_pickle=False)).astype(np.float32)
        except Exception:  # an unreadable mask only costs the tile
            return None
        if mask.ndim == 1:
            mask = np.broadcast_to(mask, (mask.shape[0], mask.shape[0]))
        acc = meas.get("acceleration")
        return (f"mask {acc:.2f}x" if isinstance(acc, float) else "mask"), mask
    angles = getattr(getattr(cfg.simulate, "angles", None), "degrees", None)
    if cfg.modality == "ct" and callable(angles):
        degrees = angles(cfg.simulate.geometry)
        return f"{len(degrees)} views / {meas.get('span_deg', 0):g} deg", angle_diagram(degrees, 256)
    return None


def _measurement_summary(records: list[dict]) -> dict:
    out: dict[str, Any] = {}
    keys = set().union(*(r.get("measurement", {}).keys() for r in records)) if records else set()
    for k in sorted(keys):
        vals = [r["measurement"][k] for r in records if isinstance(r["measurement"].get(k), (int, float))]
        if vals and not isinstance(vals[0], bool):
            out[k] = float(np.mean(vals))
        else:
            first = records[0]["measurement"].get(k)
            if isinstance(first, str):
                out[k] = first
    return out
