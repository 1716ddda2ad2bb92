"""The ``scaling`` suite's generative rows: ``dps`` seconds and peak memory per slice at full size (issue #17).

The shipped 128 x 128 brain prior on larger single-coil MRI slices through ``grid: upsample`` (sampling on the
prior's grid through ``A U``, then the full-size TV refinement; :mod:`genrecon.reconstructors.grid`), with the
parameters of ``configs/mri_brain_dps_256.yaml`` (``consistency: project``, 50 steps, 10 CG iterations, 100
refinement iterations) and one posterior sample. A Shepp-Logan phantom with random columns 4x and noise sigma
0.002 (fixed step counts: the content does not change the cost). One untimed call first (it loads the prior and
builds the operators' caches), then the timed calls: CPU time of this thread with one torch thread on the CPU
(the time other processes held the core is left out), else wall time; the peak memory of the first timed call
(resident set above the level at its start: the prior is already loaded). No image-quality figures here: those
are in ``benchmarks/fullsize.md``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .common import Log, Options, PeakMemory, clocked, fmt, table, thread_clock

#: the dps parameters of configs/mri_brain_dps_256.yaml (one sample); the quick plan shortens the loops
DPS_PARAMS = {"prior": "pretrained:brain-mri-128-diffusion", "consistency": "project", "steps": 50, "gamma": 0.002,
              "cg_iter": 10, "tv_weight": 0.001, "samples": 1, "grid": "upsample", "refine_iter": 100,
              "refine_tv_weight": 0.002}
QUICK_PARAMS = {"steps": 3, "refine_iter": 5, "cg_iter": 3}


def _problem(n: int, device: str):
    from ..operators.mri import SingleCoilMRI
    from ..phantoms import shepp_logan
    from ..registry import MASKS

    mask = MASKS.build("random", {"acceleration": 4, "center_fraction": 0.08})((n, n), torch.Generator().manual_seed(n))
    op = SingleCoilMRI(mask).to(device)
    x = shepp_logan(n).to(device)[None, None].to(torch.complex64)
    g = torch.Generator().manual_seed(n + 1)
    with torch.no_grad():
        y = op(x)
        noise = torch.randn(y.shape, dtype=y.dtype, generator=g).to(device) * 0.002
    return y + noise * op.mask.to(y.dtype), op  # noise where k-space is sampled


def measure(n: int, opts: Options, device: str, repeats: int) -> dict[str, Any]:
    """One row: ``dps`` (grid: upsample) on an ``n`` x ``n`` single-coil slice."""
    from ..registry import RECONSTRUCTORS

    params = {**DPS_PARAMS, **(QUICK_PARAMS if opts.quick else {})}
    y, op = _problem(n, device)
    recon = RECONSTRUCTORS.build("dps", params)
    cpu_clock = thread_clock(device)

    def once() -> tuple[float, float]:
        return clocked(lambda: recon(y, op, generator=torch.Generator(device=device).manual_seed(0)), device)

    once()  # loads the prior, builds caches
    with PeakMemory(device) as mem:
        runs = [once()]
    runs += [once() for _ in range(repeats - 1)]
    seconds = float(np.median([cpu if cpu_clock else wall for wall, cpu in runs]))
    return {"modality": "dps_upsample", "size": n, "batch": 1, "device": device, "seconds": seconds,
            "s_per_slice": seconds, "wall_seconds": float(np.median([wall for wall, _ in runs])),
            "clock": "thread CPU time" if cpu_clock else "wall time", "peak_mib": mem.mib,
            "memory_method": mem.method, "nfe": recon.info.get("nfe"), "params": params}


def make_table(doc: dict[str, Any]) -> list[dict[str, Any]]:
    recs = [r for r in doc["records"] if r["modality"] == "dps_upsample"]
    if not recs:
        return []
    p = recs[0]["params"]
    conv = (f"dps with prior {p['prior']} (128 x 128) through grid: upsample: consistency {p['consistency']}, "
            f"{p['steps']} steps, {p['cg_iter']} CG iterations, {p['samples']} sample, {p['refine_iter']} refinement "
            f"iterations (configs/mri_brain_dps_256.yaml's parameters); single-coil MRI, random columns 4x, Shepp-Logan "
            f"phantom; median of the timed calls after an untimed one (which loads the prior); seconds: "
            f"{recs[0]['clock']}{' of the calling thread (1 torch thread)' if recs[0]['clock'] != 'wall time' else ''}; "
            f"peak memory of the first timed call above its start ({recs[0]['memory_method']}); image quality: "
            f"benchmarks/fullsize.md")
    rows = [[r["device"], f"{r['size']}x{r['size']}", fmt(r["s_per_slice"], ".2f"), fmt(r["wall_seconds"], ".2f"),
             fmt(r["peak_mib"], ".0f"), str(r.get("nfe") if r.get("nfe") is not None else "-")] for r in recs]
    return [table("Generative methods at full size: dps seconds and memory per slice",
                  ["device", "image", "s / slice", "wall s / slice", "peak MiB", "NFE"], rows, conventions=conv)]


def run_rows(doc: dict[str, Any], sizes: tuple[int, ...], devices: list[str], opts: Options, log: Log) -> None:
    """Append the dps rows for ``sizes`` on ``devices`` to the suite's document."""
    repeats = 1 if opts.quick else max(1, min(opts.repeats, 3))
    for device in devices:
        for n in sizes:
            row = measure(n, opts, device, repeats)
            doc["records"].append(row)
            log(f"scaling: {device} dps (grid: upsample) {n}x{n}: {row['s_per_slice']:.1f} s / slice, "
                f"{fmt(row['peak_mib'], '.0f')} MiB")
