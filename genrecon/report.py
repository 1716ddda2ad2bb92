"""Metrics and reports from a run folder.

``evaluate_run(run_dir)`` reads the resolved ``config.yaml`` and every case's saved ground truth and
reconstructions, computes the configured metrics under the stated ``data_range`` convention, and writes
``report.json``, ``report.csv`` (one row per case and method), ``report.md`` (aggregate mean ± std) and,
when ``png`` is in ``output.save``, a figure panel per case. It merges the cases of every shard.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError
from .metrics import HIGHER_IS_BETTER, METRICS, coverage


def load_json(path: Path) -> dict | None:
    """A JSON record, or None when missing or unreadable (a half-done case)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _crop(a: np.ndarray, crop: int | None) -> np.ndarray:
    if not crop:
        return a
    h, w = a.shape[-2:]
    ch, cw = min(crop, h), min(crop, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return a[..., top : top + ch, left : left + cw]


def data_range_of(rule: str | float, truth: np.ndarray, volume_truths: list[np.ndarray]) -> float:
    """The metric ``data_range`` under the configured convention (see :mod:`genrecon.metrics`)."""
    if isinstance(rule, (int, float)):
        return float(rule)
    if rule == "max":
        return float(np.abs(truth).max())
    mags = [np.abs(t) for t in volume_truths]
    if rule == "volume_max":
        return float(max(m.max() for m in mags))
    if rule == "range":
        return float(max(m.max() for m in mags) - min(m.min() for m in mags))
    raise DataError(f"unknown data_range rule {rule!r}")


def convention_text(ev) -> str:
    rule = ev.data_range
    names = {
        "volume_max": "max of |ground truth| over each volume (fastMRI)",
        "max": "max of |ground truth| per slice",
        "range": "max - min of |ground truth| over each volume (DIVal)",
    }
    rng = names.get(rule, f"fixed value {rule}") if isinstance(rule, str) else f"fixed value {rule}"
    crop = f"; centre crop {ev.crop}x{ev.crop}" if ev.crop else ""
    return f"metrics on magnitude images; data_range = {rng}; SSIM: scikit-image, 7x7 uniform window{crop}"


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
        from .pipeline.records import read_record

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
    from .config import load_config
    from .pipeline.records import case_hash, method_hash

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
    truths = {r["key"]: reader.array(r["dir"] / "truth.npy", ev.crop) for r in records}
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
    for r in records:
        by_volume.setdefault(r["volume"], []).append(truths[r["key"]])
    rows = []
    metrics = list(ev.metrics)
    for r in sorted(records, key=lambda r: (r["volume"], r["slice"])):
        truth = truths[r["key"]]
        drange = data_range_of(ev.data_range, truth, by_volume[r["volume"]])
        shown_estimates = {}
        for label in labels:
            mrec = r["methods"].get(label)
            if mrec is None:
                continue
            row: dict[str, Any] = {"case": r["key"], "method": label, "status": mrec.get("status", "ok"),
                                   "data_range": drange}
            if row["status"] != "ok":
                row.update({m: None for m in metrics})
                row["reason"] = mrec.get("reason", "failed")
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
        if write and "png" in cfg.output.save and shown_estimates:
            from .figures import case_panel

            panel_stds = {lab: stds[(r["key"], lab)] for lab in shown_estimates if (r["key"], lab) in stds}
            case_panel(r["dir"] / "panel.png", truth, shown_estimates, drange, stds=panel_stds, title=r["key"])
    summary = aggregate(rows, labels, metrics)
    report = {
        "run": str(run_dir),
        "modality": cfg.modality,
        "cases": len(records),
        "conventions": convention_text(ev),
        "measurement": _measurement_summary(records),
        "summary": summary,
        "rows": rows,
        "failed": [{"case": r["case"], "method": r["method"], "reason": r["reason"]}
                   for r in rows if r["status"] != "ok"],
        "undefined": [{"case": r["case"], "method": r["method"], **r["undefined"]} for r in rows if "undefined" in r],
        "stale": stale,
    }
    if write:
        _write_reports(run_dir, report, metrics, cfg)
        if {"nifti", "h5"} & set(cfg.output.save):
            _write_volumes(run_dir, records, labels, cfg)
    return report


def _stack_affine(recs: list[dict]) -> list[list[float]] | None:
    """The first slice's affine with its slice axis scaled by the (uniform) step between the slices."""
    affine = recs[0].get("affine")
    if affine is None:
        return None
    a = np.array(affine, dtype=np.float64)
    steps = {b["slice"] - a_["slice"] for a_, b in zip(recs, recs[1:])}
    if len(steps) == 1:
        a[:3, 2] *= steps.pop()
    return a.tolist()


def _write_volumes(run_dir: Path, records: list[dict], labels: list[str], cfg) -> None:
    """Stack each volume's slices per method into ``recon/<volume>_<label>.nii.gz`` / ``.h5``."""
    from .io.writers import write_h5, write_nifti

    by_volume: dict[str, list[dict]] = {}
    for r in records:
        by_volume.setdefault(r["volume"], []).append(r)
    for volume, recs in by_volume.items():
        recs.sort(key=lambda r: r["slice"])
        stem = Path(volume).name.split(".")[0].replace(":", "_")
        affine = _stack_affine(recs)
        for label in ["truth", *labels]:
            if label != "truth" and not all(r["methods"].get(label, {}).get("status") in ("ok", None)
                                            and label in r["methods"] for r in recs):
                continue  # missing, failed or stale on some slice
            paths = [r["dir"] / f"{label}.npy" for r in recs]
            if not all(p.is_file() for p in paths):
                continue
            stack = np.stack([np.load(p) for p in paths])
            if "nifti" in cfg.output.save:
                write_nifti(run_dir / "recon" / f"{stem}_{label}.nii.gz", np.abs(stack), affine)
            if "h5" in cfg.output.save:
                write_h5(run_dir / "recon" / f"{stem}_{label}.h5", {"reconstruction": stack},
                         {"slices": [r["slice"] for r in recs], "method": label, "source": volume})


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


def aggregate(rows: list[dict], labels: list[str], metrics: list[str]) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation over cases of each metric, per method."""
    out = {}
    for label in labels:
        mine = [r for r in rows if r["method"] == label]
        if not mine:
            continue
        entry: dict[str, Any] = {"cases": len(mine)}
        failed = sum(r.get("status", "ok") != "ok" for r in mine)
        if failed:
            entry["failed"] = failed
        for key in [*metrics, "seconds", "coverage_2sigma"]:
            vals = [r[key] for r in mine if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
            if vals:
                entry[key] = float(np.mean(vals))
                entry[f"{key}_std"] = float(np.std(vals))
        out[label] = entry
    return out


def _fmt(metric: str, value: float) -> str:
    if metric == "psnr":
        return f"{value:.2f}"
    if metric == "ssim":
        return f"{value:.4f}"
    if metric == "nmse":
        return f"{value:.3e}"
    return f"{value:.2f}"


def summary_table(report: dict, metrics: list[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (mean ± std) of the aggregate table, for Markdown and the CLI."""
    extra = ["coverage_2sigma"] if any("coverage_2sigma" in e for e in report["summary"].values()) else []
    names = {"psnr": "PSNR (dB)", "ssim": "SSIM", "nmse": "NMSE"}
    header = ["method", *[names[m] for m in metrics], "s/case", *["2σ coverage"] * len(extra), "cases"]
    body = []
    for label, e in report["summary"].items():
        cells = [label if not e.get("failed") else f"{label} (failed on {e['failed']} of {e['cases']})"]
        for m in [*metrics, "seconds", *extra]:
            if m in e and m in ("nmse", "coverage_2sigma"):
                cells.append(_fmt(m, e[m]))
            elif m in e:
                cells.append(f"{_fmt(m, e[m])} ± {_fmt(m, e[m + '_std'])}")
            else:
                cells.append("-")
        cells.append(str(e["cases"]))
        body.append(cells)
    return header, body


def best_methods(report: dict, metric: str) -> list[str]:
    s = report["summary"]
    vals = {k: v[metric] for k, v in s.items() if metric in v}
    if not vals:
        return []
    best = (max if HIGHER_IS_BETTER[metric] else min)(vals.values())
    return [k for k, v in vals.items() if v == best]


def _write_reports(run_dir: Path, report: dict, metrics: list[str], cfg) -> None:
    from .io.writers import write_json, write_text

    write_json(run_dir / "report.json", report)
    buf = io.StringIO()
    fields = ["case", "method", *metrics, "seconds", "data_range", "iterations", "nfe", "coverage_2sigma",
              "peak_memory_mb"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in report["rows"]:
        writer.writerow(row)
    write_text(run_dir / "report.csv", buf.getvalue())
    header, body = summary_table(report, metrics)
    lines = [
        f"# genrecon report: {run_dir.name}",
        "",
        f"- modality: {report['modality']}, cases: {report['cases']}",
        "- measurement: " + ", ".join(f"{k} = {_short(v)}" for k, v in report["measurement"].items()),
        f"- conventions: {report['conventions']}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(row) + " |" for row in body],
        "",
    ]
    write_text(run_dir / "report.md", "\n".join(lines))


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
