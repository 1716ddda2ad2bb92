"""Suite ``scaling``: FISTA-TV time and memory against image size and batch size, CPU and CUDA.

For MRI (single coil, random columns 4x) and CT (parallel beam, 60 views over 180 degrees, normalised
operator) at each image size and batch size: seconds per FISTA-TV iteration and per slice (``n_iter``
iterations divided by the batch), peak memory, and for MRI the ratio of one FISTA-TV iteration to two FFTs of
the same batch (``fft2c`` + ``ifft2c``): the data term of an MRI iteration needs exactly two FFTs, so the
ratio says how far the iteration (data term, TV prox with its inner dual steps, momentum) is from that bound.
Images are the Shepp-Logan phantom (content does not change the cost: fixed iteration counts, no tolerance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .common import Log, Options, PeakMemory, fmt, median_seconds, new_document, table, timed

NAME = "scaling"
TITLE = "Scaling: FISTA-TV seconds and memory against image size and batch size"


@dataclass
class Plan:
    sizes: tuple[int, ...] = (128, 256, 512)
    batches: tuple[int, ...] = (1, 4, 8)
    n_iter: int = 50
    lam: float = 1e-3
    ct_views: int = 60
    modalities: tuple[str, ...] = ("mri", "ct")
    devices: tuple[str, ...] | None = None  # None: from the options


def default_plan(opts: Options) -> Plan:
    return Plan(sizes=(64, 128), batches=(1, 4), n_iter=5) if opts.quick else Plan()


def devices(opts: Options, plan: Plan) -> list[str]:
    if plan.devices is not None:
        return list(plan.devices)
    if opts.all_devices:
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [opts.device]


def _problem(modality: str, n: int, batch: int, plan: Plan, device: str):
    """``(y, op)`` for a batch of phantoms."""
    from ..operators.ct import ParallelBeam
    from ..operators.mri import SingleCoilMRI
    from ..phantoms import shepp_logan
    from ..registry import MASKS

    x = shepp_logan(n).to(device)[None, None].expand(batch, 1, n, n).contiguous()
    if modality == "mri":
        mask = MASKS.build("random", {"acceleration": 4, "center_fraction": 0.08})((n, n),
                                                                                  torch.Generator().manual_seed(n))
        op = SingleCoilMRI(mask).to(device)
        with torch.no_grad():
            return op(x.to(torch.complex64)), op
    op = ParallelBeam(image_size=n, angles=(np.arange(plan.ct_views) * math.pi / plan.ct_views).tolist(),
                      normalize=True).to(device)
    with torch.no_grad():
        return op(x), op


def measure(modality: str, n: int, batch: int, plan: Plan, opts: Options, device: str) -> dict[str, Any]:
    from ..operators.fft import fft2c, ifft2c
    from ..registry import RECONSTRUCTORS

    y, op = _problem(modality, n, batch, plan, device)
    recon = RECONSTRUCTORS.build("fista_tv", {"tv_weight": plan.lam, "n_iter": plan.n_iter,
                                              "nonneg": modality == "ct"})
    warm = RECONSTRUCTORS.build("fista_tv", {"tv_weight": plan.lam, "n_iter": 2, "nonneg": modality == "ct"})
    with torch.no_grad():
        warm(y, op)  # builds CT matrices and the step size, warms caches
        with PeakMemory(device) as mem:
            _, first = timed(lambda: recon(y, op), device)
        runs = [first] + [timed(lambda: recon(y, op), device)[1] for _ in range(min(opts.repeats, 3) - 1)]
    seconds = float(np.median(runs))
    row = {"modality": modality, "size": n, "batch": batch, "device": device, "n_iter": plan.n_iter,
           "seconds": seconds, "s_per_iter": seconds / plan.n_iter, "s_per_slice": seconds / batch,
           "peak_mib": mem.mib, "memory_method": mem.method}
    if modality == "mri":
        x = op.adjoint(y)
        two_fft = median_seconds(lambda: ifft2c(fft2c(x)), max(3, opts.repeats), device)
        row["two_fft_ms"] = 1e3 * two_fft
        row["ratio_to_two_ffts"] = row["s_per_iter"] / two_fft
    return row


def run(opts: Options, log: Log, plan: Plan | None = None) -> dict[str, Any]:
    from ..operators.ct import clear_cache

    plan = plan or default_plan(opts)
    devs = devices(opts, plan)
    doc = new_document(NAME, TITLE, opts, {"sizes": list(plan.sizes), "batches": list(plan.batches),
                                           "n_iter": plan.n_iter, "lam": plan.lam, "ct_views": plan.ct_views,
                                           "modalities": list(plan.modalities), "devices": devs})
    if not torch.cuda.is_available():
        doc["missing"].append("cuda: no CUDA device on this machine (CPU only)")
    for device in devs:
        for modality in plan.modalities:
            for n in plan.sizes:
                for batch in plan.batches:
                    row = measure(modality, n, batch, plan, opts, device)
                    doc["records"].append(row)
                    log(f"scaling: {device} {modality} {n}x{n} batch {batch}: {row['s_per_iter'] * 1e3:.1f} ms/it, "
                        f"{fmt(row['peak_mib'], '.0f')} MiB")
                if modality == "ct":
                    clear_cache()
    doc["tables"] = make_tables(doc)
    return doc


def make_tables(doc: dict[str, Any]) -> list[dict[str, Any]]:
    s = doc["settings"]
    method = next((r["memory_method"] for r in doc["records"]), "")
    conv = (f"FISTA-TV ({s['n_iter']} iterations, lam {s['lam']:g}, 5 inner TV-prox iterations, float32 / "
            f"complex64) after a 2-iteration warm-up run (CT matrices built, step size known); median of "
            f"min(repeats, 3) timed runs per point; s / slice = run time / batch; peak memory of the first timed run: {method}; the MRI ratio = one "
            f"iteration / (fft2c + ifft2c of the same batch, median of >= 3 runs); no image-quality metrics here")
    tables = []
    for modality, title in (("mri", "MRI single coil, random columns 4x"),
                            ("ct", f"CT parallel beam, {s['ct_views']} views / 180 deg")):
        rows = []
        for r in doc["records"]:
            if r["modality"] != modality:
                continue
            rows.append([r["device"], str(r["size"]), str(r["batch"]), fmt(r["s_per_iter"] * 1e3, ".2f"),
                         fmt(r["s_per_slice"], ".3f"), fmt(r["peak_mib"], ".0f"),
                         fmt(r.get("two_fft_ms"), ".3f"), fmt(r.get("ratio_to_two_ffts"), ".1f")])
        if rows:
            tables.append(table(f"FISTA-TV scaling: {title}",
                                ["device", "size", "batch", "ms / iteration", "s / slice", "peak MiB",
                                 "2 FFTs ms", "iteration / 2 FFTs"], rows, conventions=conv,
                                notes=doc.get("missing", [])))
    return tables


def plot(doc: dict[str, Any], out_dir, prefix: str = NAME) -> list[dict[str, Any]]:
    """Write ``<prefix>_time.png``: seconds per slice against image size (log-log), one line per device/batch."""
    from pathlib import Path

    from .plots import line_plot

    panels = []
    for modality in ("mri", "ct"):
        recs = [r for r in doc["records"] if r["modality"] == modality]
        if not recs:
            continue
        series = []
        for dev, batch in dict.fromkeys((r["device"], r["batch"]) for r in recs):
            pts = sorted((r["size"], r["s_per_slice"]) for r in recs if r["device"] == dev and r["batch"] == batch)
            series.append({"label": f"{dev}, batch {batch}", "x": [p[0] for p in pts], "y": [p[1] for p in pts]})
        panels.append({"title": f"{modality.upper()} FISTA-TV ({doc['settings']['n_iter']} it)",
                       "x_label": "image size (pixels per side)", "y_label": "seconds per slice", "log_x": True,
                       "log_y": True, "series": series})
    path = Path(out_dir) / f"{prefix}_time.png"
    line_plot(path, panels, title="scaling: FISTA-TV seconds per slice against image size")
    return [{"file": path.name, "caption": "FISTA-TV seconds per slice against image size (log-log), per device and "
                                          "batch size"}]
