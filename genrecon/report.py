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
from .metrics import HIGHER_IS_BETTER, METRICS


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


def coverage(estimate: np.ndarray, truth: np.ndarray, std: np.ndarray, k: float = 2.0) -> float:
    """Fraction of pixels whose error ``||est| - |truth||`` lies within ``k`` standard deviations."""
    err = np.abs(np.abs(np.squeeze(estimate)) - np.abs(np.squeeze(truth)))
    return float(np.mean(err <= k * np.squeeze(std)))


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


def evaluate_run(run_dir: str | Path, *, progress=None, write: bool = True) -> dict[str, Any]:
    """Compute metrics for every finished case in ``run_dir`` and write the reports; return the report."""
    from .config import load_config

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.is_file():
        raise DataError(f"{run_dir}: not a genrecon run folder (no config.yaml)")
    cfg = load_config(cfg_path, check_files=False)
    labels = cfg.labels()
    ev = cfg.evaluate
    case_dirs = sorted(p for p in (run_dir / "cases").glob("*") if (p / "case.json").is_file())
    if not case_dirs:
        raise DataError(f"{run_dir}: no finished case to evaluate")
    records = []
    for d in case_dirs:
        rec = load_json(d / "case.json")
        if rec is None:
            continue
        rec["dir"] = d
        records.append(rec)
    truths = {r["key"]: _crop(np.load(r["dir"] / "truth.npy"), ev.crop) for r in records}
    by_volume: dict[str, list[np.ndarray]] = {}
    for r in records:
        by_volume.setdefault(r["volume"], []).append(truths[r["key"]])
    rows = []
    for r in sorted(records, key=lambda r: (r["volume"], r["slice"])):
        truth = truths[r["key"]]
        drange = data_range_of(ev.data_range, truth, by_volume[r["volume"]])
        estimates = {}
        for label in labels:
            est_path = r["dir"] / f"{label}.npy"
            mrec = load_json(r["dir"] / f"{label}.json")
            if mrec is None or not est_path.is_file():
                continue
            est = _crop(np.load(est_path), ev.crop)
            estimates[label] = est
            row = {"case": r["key"], "method": label, "data_range": drange}
            for m in ev.metrics:
                row[m] = METRICS[m](est, truth, data_range=drange)
            std_path = r["dir"] / f"{label}_std.npy"
            if std_path.is_file():
                row["coverage_2sigma"] = coverage(est, truth, _crop(np.load(std_path), ev.crop))
            row["seconds"] = mrec.get("seconds")
            for extra in ("iterations", "nfe", "coverage_2sigma", "peak_memory_mb"):
                if extra in mrec:
                    row[extra] = mrec[extra]
            rows.append(row)
        if write and "png" in cfg.output.save and estimates:
            from .figures import case_panel

            stds = {lab: _crop(np.load(p), ev.crop) for lab in labels
                    if (p := r["dir"] / f"{lab}_std.npy").is_file()}
            case_panel(r["dir"] / "panel.png", truth, estimates, drange, stds=stds, title=r["key"])
    summary = aggregate(rows, labels, list(ev.metrics))
    report = {
        "run": str(run_dir),
        "modality": cfg.modality,
        "cases": len(records),
        "conventions": convention_text(ev),
        "measurement": _measurement_summary(records),
        "summary": summary,
        "rows": rows,
    }
    if write:
        _write_reports(run_dir, report, list(ev.metrics), cfg)
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
        cells = [label]
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
