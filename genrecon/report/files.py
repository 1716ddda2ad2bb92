"""The files of a report: ``report.json``, ``report.csv``, ``report.md`` and the stacked volumes in ``recon/``
(NIfTI with the source affine; fastMRI prediction files ``recon/<method>/<input name>.h5``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .summary import summary_table


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


def _spacing(rec: dict) -> list[float] | str:
    """The case's in-plane pixel spacing (mm) as its loader read it, or "none"."""
    spacing = (rec.get("meta") or {}).get("pixel_spacing")
    if isinstance(spacing, (int, float)):
        return [float(spacing), float(spacing)]
    if isinstance(spacing, (list, tuple)) and spacing and all(isinstance(v, (int, float)) for v in spacing):
        return [float(v) for v in spacing]
    return "none"


def write_volumes(run_dir: Path, records: list[dict], labels: list[str], cfg) -> None:
    """Stack each volume's slices per method into ``recon/<volume>_<label>.nii.gz`` / ``.h5``."""
    from ..io.writers import write_h5, write_nifti

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
            if "h5" in cfg.output.save:  # fastMRI's prediction format: float32 magnitudes, named as the input
                name = Path(volume).name if Path(volume).suffix in (".h5", ".hdf5") else f"{stem}.h5"
                write_h5(run_dir / "recon" / label / name, {"reconstruction": np.abs(stack).astype(np.float32)},
                         {"slices": [r["slice"] for r in recs], "method": label, "source": volume,
                          "affine": affine if affine is not None else "none",
                          "pixel_spacing": _spacing(recs[0]),
                          "normalisation": json.dumps(recs[0].get("normalisation"))})


def write_reports(run_dir: Path, report: dict, metrics: list[str], cfg) -> None:
    from ..io.writers import write_json, write_text

    write_json(run_dir / "report.json", report)
    buf = io.StringIO()
    fields = ["case", "method", *metrics, "seconds", "data_range", "iterations", "nfe", "coverage_2sigma",
              "peak_memory_mb", "conventions"]
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for row in report["rows"]:  # each row carries the conventions it was scored under (rows of reports mix)
        writer.writerow({**row, "conventions": report["conventions"]})
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
