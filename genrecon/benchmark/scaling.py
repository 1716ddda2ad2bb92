"""Suite ``scaling``: FISTA-TV time and memory against image size and batch size, CPU and CUDA.

For MRI and CT (parallel beam, 60 views over 180 degrees, normalised operator) at each image size and batch
size: seconds per FISTA-TV iteration and per slice (``n_iter`` iterations divided by the batch) and peak memory.
MRI comes as single coil with random columns 4x (``mri``: the normal operator needs 1-D FFTs along W only),
single coil with a 2-D random point mask 4x (``mri_2d``: 2-D FFTs) and multi-coil SENSE with ``coils``
simulated maps and random columns (``mri_multi``, batch 1). For MRI the suite reports **iteration time / FFT-pair
time**: an FFT pair is one ``torch.fft.fft2`` plus one ``torch.fft.ifft2`` (orthonormal, no shifts) of the
batch's images at that size, same dtype, same threads (multi-coil: of the batch's ``coils`` coil images, so the
figure is per coil). The data term of an iteration needs at most one FFT pair per coil; the rest is the TV prox
(5 dual steps) and the momentum. Iteration and FFT pair are timed alternately (each repeat: one timed run of
``n_iter`` iterations, then the median of 5 FFT pairs), and the ratio is the median of the per-repeat ratios, so
load from other processes affects both sides alike; on the CPU with one torch thread both sides are CPU time of
the calling thread (``time.thread_time``: the time other processes held the core is left out), else wall time. Images are the Shepp-Logan phantom (content does not
change the cost: fixed iteration counts, no tolerance).

The suite ends with the generative rows of :mod:`.scaling_dps`: ``dps`` seconds and peak memory per slice at full
size (``Plan.dps_sizes``, 256 and 320: the shipped 128 x 128 prior through ``grid: upsample``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import scaling_dps
from .common import Log, Options, PeakMemory, clocked, fmt, new_document, table, thread_clock

NAME = "scaling"
TITLE = "Scaling: FISTA-TV seconds and memory against image size and batch size"


@dataclass
class Plan:
    sizes: tuple[int, ...] = (128, 256, 512)
    batches: tuple[int, ...] = (1, 4, 8)
    n_iter: int = 50
    lam: float = 1e-3
    ct_views: int = 60
    modalities: tuple[str, ...] = ("mri", "mri_2d", "mri_multi", "ct")
    coils: int = 8  # mri_multi
    dps_sizes: tuple[int, ...] = (256, 320)  # dps (grid: upsample) seconds and memory per slice (scaling_dps)
    devices: tuple[str, ...] | None = None  # None: from the options

#: what each modality is, for the tables
TITLES = {"mri": "MRI single coil, random columns 4x (1-D FFTs in the normal operator)",
          "mri_2d": "MRI single coil, 2-D random points 4x (2-D FFTs)",
          "mri_multi": "MRI multi-coil SENSE, random columns 4x (ratio per coil)"}


def default_plan(opts: Options) -> Plan:
    return Plan(sizes=(64, 128), batches=(1, 4), n_iter=5, dps_sizes=(160,)) if opts.quick else Plan()


def devices(opts: Options, plan: Plan) -> list[str]:
    if plan.devices is not None:
        return list(plan.devices)
    if opts.all_devices:
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [opts.device]


def _mri_mask(modality: str, n: int) -> torch.Tensor:
    from ..registry import MASKS

    g = torch.Generator().manual_seed(n)
    if modality != "mri_2d":
        return MASKS.build("random", {"acceleration": 4, "center_fraction": 0.08})((n, n), g)
    mask = torch.rand(n, n, generator=g) < 0.23  # scattered points, plus a fully sampled centre square
    c = max(1, n // 32)
    mask[n // 2 - c: n // 2 + c, n // 2 - c: n // 2 + c] = True
    return mask


def _problem(modality: str, n: int, batch: int, plan: Plan, device: str):
    """``(y, op)`` for a batch of phantoms."""
    from ..operators.mri import MultiCoilMRI, SingleCoilMRI
    from ..phantoms import shepp_logan
    from ..simulate.coils import simulate_coil_maps

    x = shepp_logan(n).to(device)[None, None].expand(batch, 1, n, n).contiguous()
    if modality.startswith("mri"):
        mask = _mri_mask(modality, n)
        if modality == "mri_multi":
            maps = simulate_coil_maps(plan.coils, (n, n), generator=torch.Generator().manual_seed(n))  # as users get
            op = MultiCoilMRI(maps, mask).to(device)
        else:
            op = SingleCoilMRI(mask).to(device)
        with torch.no_grad():
            return op(x.to(torch.complex64)), op
    from ..operators.ct import ParallelBeam

    op = ParallelBeam(image_size=n, angles=(np.arange(plan.ct_views) * math.pi / plan.ct_views).tolist(),
                      normalize=True).to(device)
    with torch.no_grad():
        return op(x), op


def measure(modality: str, n: int, batch: int, plan: Plan, opts: Options, device: str) -> dict[str, Any]:
    from ..registry import RECONSTRUCTORS

    y, op = _problem(modality, n, batch, plan, device)
    recon = RECONSTRUCTORS.build("fista_tv", {"tv_weight": plan.lam, "n_iter": plan.n_iter,
                                              "nonneg": modality == "ct"})
    warm = RECONSTRUCTORS.build("fista_tv", {"tv_weight": plan.lam, "n_iter": 2, "nonneg": modality == "ct"})
    mri = modality.startswith("mri")
    coils = plan.coils if modality == "mri_multi" else 1
    # one torch thread on the CPU: all the work runs on this thread, whose CPU time leaves out the time other
    # processes held the core (the machine is often shared); else wall time
    cpu_clock = thread_clock(device)
    if mri:  # the FFT pair: the batch's images (multi-coil: its coil images), as in the data term
        k = torch.randn(batch, coils, n, n, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
        k = k.to(device)

        def pair():
            return torch.fft.ifft2(torch.fft.fft2(k, norm="ortho"), norm="ortho")

        def pair_seconds() -> float:  # the median of 5 after one untimed
            pair()
            return float(np.median([clocked(pair, device)[1 if cpu_clock else 0] for _ in range(5)]))
    repeats = min(opts.repeats, 3) if not mri else max(3, min(opts.repeats, 7))
    with torch.no_grad():
        warm(y, op)  # builds CT matrices and the step size, warms caches
        with PeakMemory(device) as mem:
            first = clocked(lambda: recon(y, op), device)
        runs, pairs = [first], []
        if mri:
            pairs.append(pair_seconds())
        for _ in range(repeats - 1):
            runs.append(clocked(lambda: recon(y, op), device))
            if mri:
                pairs.append(pair_seconds())
    seconds = float(np.median([wall for wall, _ in runs]))
    row = {"modality": modality, "size": n, "batch": batch, "device": device, "n_iter": plan.n_iter,
           "seconds": seconds, "s_per_iter": seconds / plan.n_iter, "s_per_slice": seconds / batch,
           "peak_mib": mem.mib, "memory_method": mem.method}
    if mri:
        its = [(cpu if cpu_clock else wall) / plan.n_iter for wall, cpu in runs]
        ratios = [it / p for it, p in zip(its, pairs)]
        # the pair transforms all ``coils`` coil images: the ratio is already per coil
        row.update(coils=coils, fft_pair_ms=1e3 * float(np.median(pairs)),
                   iter_per_fft_pair=float(np.median(ratios)), iter_per_fft_pair_min=min(its) / min(pairs),
                   ratio_clock="thread CPU time" if cpu_clock else "wall time")
    return row


def run(opts: Options, log: Log, plan: Plan | None = None) -> dict[str, Any]:
    from ..operators.ct import clear_cache

    plan = plan or default_plan(opts)
    devs = devices(opts, plan)
    doc = new_document(NAME, TITLE, opts, {"sizes": list(plan.sizes), "batches": list(plan.batches),
                                           "n_iter": plan.n_iter, "lam": plan.lam, "ct_views": plan.ct_views,
                                           "coils": plan.coils, "dps_sizes": list(plan.dps_sizes),
                                           "modalities": list(plan.modalities), "devices": devs})
    if not torch.cuda.is_available():
        doc["missing"].append("cuda: no CUDA device on this machine (CPU only)")
    for device in devs:
        for modality in plan.modalities:
            for n in plan.sizes:
                for batch in (plan.batches if modality != "mri_multi" else plan.batches[:1]):
                    row = measure(modality, n, batch, plan, opts, device)
                    doc["records"].append(row)
                    ratio = f", {row['iter_per_fft_pair']:.1f} FFT pairs" if "iter_per_fft_pair" in row else ""
                    log(f"scaling: {device} {modality} {n}x{n} batch {batch}: {row['s_per_iter'] * 1e3:.1f} ms/it"
                        f"{ratio}, {fmt(row['peak_mib'], '.0f')} MiB")
                if modality == "ct":
                    clear_cache()
    if plan.dps_sizes:
        scaling_dps.run_rows(doc, plan.dps_sizes, devs, opts, log)
    doc["tables"] = make_tables(doc)
    return doc


def make_tables(doc: dict[str, Any]) -> list[dict[str, Any]]:
    s = doc["settings"]
    method = next((r["memory_method"] for r in doc["records"]), "")
    clock = next((r.get("ratio_clock", "wall time") for r in doc["records"] if "iter_per_fft_pair" in r), "wall time")
    clock += " of the calling thread (1 torch thread)" if clock == "thread CPU time" else ""
    conv = (f"FISTA-TV ({s['n_iter']} iterations, lam {s['lam']:g}, 5 inner TV-prox iterations, float32 / "
            f"complex64) after a 2-iteration warm-up run (CT matrices built, step size known); median of the timed "
            f"runs (CT: min(repeats, 3); MRI: 3-7) per point; s / slice = run time / batch; peak memory of the first "
            f"timed run: {method}; MRI: FFT pair = torch.fft.fft2 + ifft2 (orthonormal, complex64) of the batch's "
            f"images (multi-coil: its {s.get('coils', 8)} coil images), median of 5 after each timed run; "
            f"iteration / FFT pair = median over the runs of (iteration time / FFT-pair time) (multi-coil: per coil; "
            f"'min' column: fastest iteration / fastest pair), both {clock} (FFT pair ms too); no image-quality "
            f"metrics here")
    tables = []
    titles = {**TITLES, "ct": f"CT parallel beam, {s['ct_views']} views / 180 deg"}
    for modality, title in titles.items():
        recs = [r for r in doc["records"] if r["modality"] == modality]
        if not recs:
            continue
        mri = modality.startswith("mri")
        rows = []
        for r in recs:
            row = [r["device"], str(r["size"]), str(r["batch"]), fmt(r["s_per_iter"] * 1e3, ".2f"),
                   fmt(r["s_per_slice"], ".3f"), fmt(r["peak_mib"], ".0f")]
            if mri:
                row += [fmt(r.get("fft_pair_ms"), ".3f"), fmt(r.get("iter_per_fft_pair"), ".1f"),
                        fmt(r.get("iter_per_fft_pair_min"), ".1f")]
            rows.append(row)
        cols = ["device", "size", "batch", "ms / iteration", "s / slice", "peak MiB"]
        if mri:
            cols += ["FFT pair ms", "iteration / FFT pair", "min / min"]
        tables.append(table(f"FISTA-TV scaling: {title}", cols, rows, conventions=conv,
                            notes=doc.get("missing", [])))
    return tables + scaling_dps.make_table(doc)


def plot(doc: dict[str, Any], out_dir, prefix: str = NAME) -> list[dict[str, Any]]:
    """Write ``<prefix>_time.png``: seconds per slice against image size (log-log), one line per device/batch."""
    from pathlib import Path

    from .plots import line_plot

    panels = []
    for modality in ("mri", "mri_2d", "mri_multi", "ct"):
        recs = [r for r in doc["records"] if r["modality"] == modality]
        if not recs:
            continue
        series = []
        for dev, batch in dict.fromkeys((r["device"], r["batch"]) for r in recs):
            pts = sorted((r["size"], r["s_per_slice"]) for r in recs if r["device"] == dev and r["batch"] == batch)
            series.append({"label": f"{dev}, batch {batch}", "x": [p[0] for p in pts], "y": [p[1] for p in pts]})
        panels.append({"title": f"{modality.upper().replace('_', ' ')} FISTA-TV ({doc['settings']['n_iter']} it)",
                       "x_label": "image size (pixels per side)", "y_label": "seconds per slice", "log_x": True,
                       "log_y": True, "series": series})
    path = Path(out_dir) / f"{prefix}_time.png"
    line_plot(path, panels, title="scaling: FISTA-TV seconds per slice against image size")
    return [{"file": path.name, "caption": "FISTA-TV seconds per slice against image size (log-log), per device and "
                                          "batch size"}]
