"""Writing a design: the pattern any config can use, its picture, the std maps of a few rounds, the report.

Files (every one written atomically by :mod:`genrecon.io.writers`, which creates the folders):

- MRI: ``mask.npy`` (bool ``(H, W)``: ``simulate.mask: {name: file, path: .../mask.npy}``) and ``mask.png``,
  for columns and 2-D blocks alike (:func:`write_mask`);
- CT: ``angles.yaml`` (``angles: {kind: list, values_deg: [...]}``, paste into ``simulate``), ``angles.npy``
  (float64 degrees) and ``angles.png`` (one spoke per view);
- ``std_round_<r>.png``: the posterior std map when round ``r`` was scored (one window for all rounds);
- ``design.json``: the order of acquisition (start, then each round's choices with their gains in nats).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from ..figures import angle_diagram
from ..io.writers import write_json, write_npy, write_png, write_text


def write_pattern(problem, folder: Path, chosen: list[int], *, stem: str = "") -> list[str]:
    """Write the pattern of ``chosen`` under ``folder`` (names prefixed by ``stem``); return the file names."""
    if problem.modality == "mri":
        return write_mask(folder, problem.pattern(chosen), stem=stem)
    angles = problem.pattern(chosen)
    snippet = yaml.safe_dump({"angles": {"kind": "list", "values_deg": [round(a, 6) for a in angles]}},
                             default_flow_style=None, sort_keys=False, width=100)
    write_text(folder / f"{stem}angles.yaml", snippet)
    write_npy(folder / f"{stem}angles.npy", np.asarray(angles, dtype=np.float64))
    write_png(folder / f"{stem}angles.png", angle_diagram(angles, 256).astype(np.float64), vmin=0.0, vmax=255.0)
    return [f"{stem}angles.yaml", f"{stem}angles.npy", f"{stem}angles.png"]


def write_mask(folder: Path, mask: torch.Tensor, *, stem: str = "") -> list[str]:
    """A bool k-space mask ``(H, W)`` (columns or 2-D points) as ``<stem>mask.npy`` and ``<stem>mask.png``."""
    m = mask.numpy().astype(bool)
    write_npy(folder / f"{stem}mask.npy", m)
    write_png(folder / f"{stem}mask.png", m.astype(np.float64), vmin=0.0, vmax=1.0)
    return [f"{stem}mask.npy", f"{stem}mask.png"]


def write_stage(folder: Path, round_index: int, std: torch.Tensor, vmax: float) -> str:
    """The std map of a round as PNG (window ``[0, vmax]``) and ``.npy``; return the PNG's name."""
    name = f"std_round_{round_index}"
    write_npy(folder / f"{name}.npy", std.numpy())
    write_png(folder / f"{name}.png", std, vmin=0.0, vmax=vmax)
    return f"{name}.png"


def acquisition_order(problem, state: dict) -> list[dict]:
    """One row per measured candidate, in order: ``{order, candidate, label, round, gain}`` (start: round None)."""
    rows = [{"order": i, "candidate": c, "label": problem.label(c), "round": None, "gain": None}
            for i, c in enumerate(state["start"])]
    for rec in state["rounds"]:
        for c, g in zip(rec["chosen"], rec["gains"]):
            rows.append({"order": len(rows), "candidate": c, "label": problem.label(c), "round": rec["round"],
                         "gain": g})
    return rows


def design_record(problem, state: dict, *, key: str, files: list[str], stages: list[str]) -> dict:
    """The ``design.json`` of one design."""
    seconds = sum(r["sampling_seconds"] + r["scoring_seconds"] for r in state["rounds"])
    return {"key": key, "modality": problem.modality, "budget": state["budget"], "n_start": len(state["start"]),
            "rounds": len(state["rounds"]), "seconds": seconds, "files": files, "stages": stages,
            "pattern": problem.pattern(state["chosen"]) if problem.modality == "ct" else sorted(state["chosen"]),
            "order": acquisition_order(problem, state),
            "gains_nats": [g for r in state["rounds"] for g in r["gains"]]}


def write_report(folder: Path, report: dict) -> None:
    """``report.json`` and a short ``report.md`` (the acquisition order of each design)."""
    write_json(folder / "report.json", report)
    lines = [f"# design: {report['mode']}, {report['modality']}, budget {report['budget']}", "",
             f"sampler `{report['sampler']}`, {report['samples']} samples, batch {report['batch']}, score "
             f"{report['score']}, diversity {report['diversity']}, min_gap {report.get('min_gap', 0)}, seed "
             f"{report['seed']}, {report['threads']} thread(s)", ""]
    if report.get("candidate_kind") == "blocks":
        by, bx = report["block"]
        lines += [f"candidates: {report['candidates']} k-space blocks of {by}x{bx} points (2-D; mask.png shows "
                  f"the mask), budget {report['budget']} blocks = {report['budget'] * by * bx} points", ""]
    # score variance: the expected reduction of the total image variance (image units squared), not nats
    unit = "image variance reduction" if report["score"] == "variance" else "gain (nats)"
    for d in report["designs"]:
        lines += [f"## {d['key']}: {d['rounds']} rounds, {d['seconds']:.1f} s", "",
                  f"| order | candidate | round | {unit} |", "|---|---|---|---|"]
        for row in d["order"]:
            gain = "start" if row["gain"] is None else f"{row['gain']:.3f}"
            rnd = "" if row["round"] is None else str(row["round"])
            lines.append(f"| {row['order']} | {row['label']} | {rnd} | {gain} |")
        lines.append("")
    if report.get("baselines"):
        lines += ["## baselines (same budget)", ""] + [f"- {k}: `{v}`" for k, v in report["baselines"].items()]
    write_text(folder / "report.md", "\n".join(lines) + "\n")
