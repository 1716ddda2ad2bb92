"""Aggregates and tables of a report: mean ± std per method, the conventions line, the best methods."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..metrics import HIGHER_IS_BETTER


def convention_text(ev) -> str:
    rule = ev.data_range
    names = {
        "volume_max": "max of |ground truth| over each whole volume (fastMRI)",
        "max": "max of |ground truth| per slice",
        "range": "max - min of |ground truth| over each volume (DIVal)",
    }
    rng = names.get(rule, f"fixed value {rule}") if isinstance(rule, str) else f"fixed value {rule}"
    crop = f"; centre crop {ev.crop}x{ev.crop}" if ev.crop else ""
    agg = ("; per volume as fastMRI's evaluate (PSNR, NMSE over the volume's voxels, SSIM the mean of its slices), "
           "mean ± std over volumes" if getattr(ev, "aggregate", "slice") == "volume" else
           "; mean ± std over slices")
    return f"metrics on magnitudes of complex images, real images as they are; data_range = {rng}; SSIM: scikit-image, 7x7 uniform window{crop}{agg}"


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
