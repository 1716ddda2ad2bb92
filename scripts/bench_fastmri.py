#!/usr/bin/env python
"""Benchmark: measured multi-coil k-space (fastMRI format) at 4x and 8x: genrecon against BART, checked by fastMRI.

The file is SIMULATED (``python scripts/make_fastmri_sample.py``: 12 coils, the five bundled MNI152 T1
slices, 256 x 256 reference, 512 x 288 acquired grid; no raw k-space is available offline). Per acceleration
(equispaced columns as fastMRI's challenge, 4x with an 8% centre, 8x with 4%):

- genrecon: ``genrecon reconstruct`` on ``configs/fastmri_multicoil_{4,8}x.yaml`` (the code users run), into
  a fresh folder; PSNR / SSIM / NMSE from its report (fastMRI's volume aggregation, data_range the reference
  volume's maximum), seconds per slice from its rows (the method alone), and the ESPIRiT time from
  ``genrecon.calib.espirit_maps`` timed separately on the same undersampled k-space (the run's saved mask);
- BART (``bart`` on PATH, else skipped with a note): the same masked k-space per slice written as .cfl/.hdr
  (axes x = readout, y = phase encoding, z, coils), ``bart ecalib -m 1`` (its defaults are genrecon's ESPIRiT
  defaults) then ``bart pics -S -i <n_iter> -R T:7:0:<lambda>`` (ADMM, isotropic TV), 1 OpenMP thread; the
  magnitude is centre-cropped as genrecon's and scored with genrecon's ``volume_metrics``. ``-S`` makes pics
  return the image in the data's units (without it pics divides the data by its own scale factor and the
  image comes back about 1.6x too large, which PSNR against the reference punishes); nothing is fitted
  against the reference (the least-squares scale against it is reported as a check only);
- at 4x, also BART with ``BART_LONG_ITERS`` iterations, BART's plain SENSE (``pics -l2``, no TV) and pics
  without ``-S`` (to show what the scaling does) (``--quick`` skips them);
- maps: ``1 - |sum_c conj(S_genrecon) S_bart| / (|S_genrecon| |S_bart|)`` per pixel (free of the per-pixel
  phase) where both maps are non-zero, and the pixels that one of them crops and the other keeps;
- fastMRI's own ``fastmri/evaluate.py`` (``fastmri==0.3.0`` installed into a separate folder, see below) on
  genrecon's prediction files ``recon/<method>/file_brain_sim_mc.h5``, next to genrecon's report.

Regularisation weights are chosen on the 4x file by PSNR from small grids (``TV_GRID`` for genrecon's
``tv_weight``, the value the configs hold; ``BART_GRID`` for BART's lambda), the same iteration count for both
(the configs' ``n_iter``); 8x uses the 4x choices. ``--no-tune`` skips the grids (BART uses ``BART_LAMBDA``).

    python scripts/make_fastmri_sample.py
    apt-get install -y bart                      # optional: BART 0.8
    pip install --no-deps --target /tmp/fastmri_pkg fastmri==0.3.0 runstats pandas pytz tzdata tqdm
    OMP_NUM_THREADS=1 python scripts/bench_fastmri.py [--fastmri-pkg /tmp/fastmri_pkg] [--no-tune] [--quick]

writes ``benchmarks/measured.md`` and ``benchmarks/measured.json`` (runs in ``runs/bench-fastmri/``); about 15
minutes on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from genrecon.benchmark.peers import read_cfl, write_cfl  # noqa: F401  (BART's .cfl/.hdr: one implementation)

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "fastmri_sim" / "multicoil"
CONFIGS = {4: ROOT / "configs" / "fastmri_multicoil_4x.yaml", 8: ROOT / "configs" / "fastmri_multicoil_8x.yaml"}
RUNS = ROOT / "runs" / "bench-fastmri"
TV_GRID = [3e-5, 1e-4, 3e-4, 1e-3, 3e-3]
BART_GRID = [1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
BART_LAMBDA = 0.01
"""BART's lambda used with ``--no-tune``: the best of ``BART_GRID`` on the 4x file when this was written."""
BART_LONG_ITERS = 200
"""An extra BART row at 4x with this many iterations (its ADMM converges slower than FISTA here)."""
BART_SENSE_L2 = 1e-4
"""An extra BART row at 4x: plain SENSE, ``pics -l2 -r BART_SENSE_L2`` (CG; a small weight, not tuned)."""
METRICS = ("psnr", "ssim", "nmse")


# -- BART's file format: genrecon.benchmark.peers.write_cfl / read_cfl --------------------------------------
def to_bart_kspace(kspace: np.ndarray) -> np.ndarray:
    """genrecon/fastMRI k-space ``(C, H, W)`` (rows = readout) -> BART's ``(x = H, y = W, z = 1, coils = C)``."""
    return np.ascontiguousarray(np.asarray(kspace).transpose(1, 2, 0)[:, :, None, :])


def from_bart_maps(sens: np.ndarray) -> np.ndarray:
    """BART's sensitivities ``(H, W, 1, C)`` -> genrecon's ``(C, H, W)``."""
    return np.ascontiguousarray(np.asarray(sens)[:, :, 0, :].transpose(2, 0, 1))


def map_difference(maps_a: np.ndarray, maps_b: np.ndarray) -> dict:
    """How two sets of sensitivities ``(C, H, W)`` differ, free of the per-pixel phase ambiguity.

    ``d(r) = 1 - |sum_c conj(a_c(r)) b_c(r)| / (|a(r)| |b(r)|)`` where both are non-zero (0: the same up to a
    phase), and the number of pixels that exactly one of them zeroes (their crops disagree).
    """
    na, nb = np.linalg.norm(maps_a, axis=0), np.linalg.norm(maps_b, axis=0)
    both = (na > 0) & (nb > 0)
    d = 1 - np.abs(np.sum(np.conj(maps_a) * maps_b, axis=0))[both] / (na * nb)[both]
    d = np.clip(d, 0, None)
    # the same without removing the phase: one global phase fitted (BART and genrecon may rotate differently)
    inner = np.sum(np.conj(maps_a[:, both]) * maps_b[:, both])
    rotated = maps_a[:, both] * np.exp(1j * np.angle(inner))
    return {"pixels_both": int(both.sum()), "crop_disagrees": int(((na > 0) ^ (nb > 0)).sum()),
            "mean": float(d.mean()), "median": float(np.median(d)), "p99": float(np.percentile(d, 99)),
            "max": float(d.max()),
            "relative_l2_after_global_phase": float(np.linalg.norm(rotated - maps_b[:, both])
                                                    / np.linalg.norm(maps_b[:, both]))}


# -- helpers --------------------------------------------------------------------------------------------------
def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def machine_info() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": 1, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "commit": commit,
            "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def uptime() -> str:
    try:
        return sh(["uptime"]).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def genrecon_run(cfg: dict, out: Path, name: str) -> tuple[dict, float]:
    """``genrecon reconstruct`` on ``cfg`` (written to ``<out>.yaml``) into a fresh ``out``; (report, wall s)."""
    import yaml

    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = dict(cfg, output=dict(cfg["output"], dir=str(out)))
    path = out.parent / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.perf_counter()
    sh([sys.executable, "-m", "genrecon.cli.main", "reconstruct", "--config", str(path), "-q"], cwd=ROOT)
    wall = time.perf_counter() - t0
    return json.loads((out / "report.json").read_text()), wall


def _mask_file(case_dir: Path) -> Path:
    """The run's saved mask: ``mask.npy`` (current pipeline) or ``mask_tensor.npy`` (older runs)."""
    return case_dir / "mask.npy" if (case_dir / "mask.npy").exists() else case_dir / "mask_tensor.npy"


def cases_of(run_dir: Path) -> list[dict]:
    """The run's cases in slice order: slice, source file, mask, k-space scale, case folder."""
    out = []
    for case_dir in sorted((run_dir / "cases").iterdir()):
        info = json.loads((case_dir / "case.json").read_text())
        out.append({"dir": case_dir, "key": info["key"], "slice": int(info["slice"]), "source": ROOT / info["source"],
                    "scale": float(info["normalisation"]["scale"]), "mask": np.load(_mask_file(case_dir))})
    return sorted(out, key=lambda c: (str(c["source"]), c["slice"]))


def masked_kspace(case: dict) -> np.ndarray:
    """The undersampled k-space ``(C, H, W)`` complex64 the run reconstructed (file k-space / scale x mask)."""
    import h5py

    with h5py.File(case["source"], "r") as f:
        k = f["kspace"][case["slice"]]
    return (k / case["scale"] * case["mask"]).astype(np.complex64)


def reference_volume(cases: list[dict]) -> tuple[list[np.ndarray], float]:
    """The reference slices of the cases and the whole reference volume's maximum (fastMRI's data_range)."""
    import h5py

    with h5py.File(cases[0]["source"], "r") as f:
        ref = f["reconstruction_rss"][()]
    return [ref[c["slice"]] / c["scale"] for c in cases], float(ref.max() / cases[0]["scale"])


def volume_row(report: dict, method: str) -> dict:
    rows = [v for v in report["volumes"] if v["method"] == method]
    if len(rows) != 1:
        raise SystemExit(f"expected one volume for {method} in the report, found {len(rows)}")
    return rows[0]


def seconds_per_slice(report: dict, method: str) -> float:
    return float(np.mean([r["seconds"] for r in report["rows"] if r["method"] == method and r["status"] == "ok"]))


# -- genrecon ------------------------------------------------------------------------------------------------
def tune_genrecon(base: dict) -> dict:
    """One run on the 4x file with a fista_tv per grid value (labelled ``tv_<value>``): the volume PSNR of each."""
    cfg = dict(base)
    fista = next(r for r in base["reconstructors"] if r["name"] == "fista_tv")
    cfg["reconstructors"] = [{"name": "fista_tv", "label": f"tv_{w:g}", "params": dict(fista["params"], tv_weight=w)}
                             for w in TV_GRID]
    cfg["output"] = dict(base["output"], save=["npy"])
    report, _ = genrecon_run(cfg, RUNS / "tune-genrecon-4x", "tune-genrecon-4x")
    grid = {f"{w:g}": {m: volume_row(report, f"tv_{w:g}")[m] for m in METRICS} for w in TV_GRID}
    best = max(TV_GRID, key=lambda w: grid[f"{w:g}"]["psnr"])
    return {"grid": grid, "best": best, "config": fista["params"]["tv_weight"]}


def espirit_times(cases: list[dict]) -> dict:
    """``espirit_maps`` on each case's undersampled k-space, timed (and the largest difference to the run's saved
    maps); and the operator norm FISTA-TV starts with (``MultiCoilMRI.norm_squared``, power method), timed."""
    import torch

    from genrecon.calib import espirit_maps
    from genrecon.operators.mri import MultiCoilMRI

    torch.set_num_threads(1)
    seconds, norm_seconds, diff = [], [], 0.0
    for c in cases:
        k = torch.from_numpy(masked_kspace(c))
        t0 = time.perf_counter()
        maps, _ = espirit_maps(k)
        seconds.append(time.perf_counter() - t0)
        saved = np.load(c["dir"] / "coil_maps.npy")
        diff = max(diff, float(np.abs(maps.to(torch.complex64).numpy() - saved).max()))
        op = MultiCoilMRI(torch.from_numpy(saved), torch.from_numpy(c["mask"]))
        t0 = time.perf_counter()
        op.norm_squared()
        norm_seconds.append(time.perf_counter() - t0)
    return {"seconds_per_slice": float(np.mean(seconds)), "seconds": seconds, "max_diff_to_saved_maps": diff,
            "norm_seconds_per_slice": float(np.mean(norm_seconds))}


# -- BART ----------------------------------------------------------------------------------------------------
def bart_version() -> str | None:
    if shutil.which("bart") is None:
        return None
    try:
        return sh(["bart", "version"]).stdout.strip()
    except subprocess.CalledProcessError:
        return "unknown"


def bart_ecalib(cases: list[dict], work: Path, env: dict) -> list[dict]:
    """Write each case's masked k-space and run ``bart ecalib -m 1``; per case: paths and seconds."""
    out = []
    for c in cases:
        d = work / f"slice{c['slice']}"
        d.mkdir(parents=True, exist_ok=True)
        write_cfl(d / "ksp", to_bart_kspace(masked_kspace(c)))
        t0 = time.perf_counter()
        sh(["bart", "ecalib", "-m", "1", str(d / "ksp"), str(d / "sens")], env=env)
        out.append({"dir": d, "ecalib_s": time.perf_counter() - t0})
    return out


def bart_pics(calib: list[dict], options: list[str], env: dict, eval_shape: tuple[int, int]) -> dict:
    """``bart pics <options> ksp sens out`` on each case; the cropped magnitudes and the seconds of each process."""
    from genrecon.io.transforms import center_crop

    images, seconds = [], []
    for c in calib:
        d = c["dir"]
        t0 = time.perf_counter()
        sh(["bart", "pics", *options, str(d / "ksp"), str(d / "sens"), str(d / "out")], env=env)
        seconds.append(time.perf_counter() - t0)
        image = read_cfl(d / "out")  # (H, W): one set of maps, one image
        images.append(np.abs(center_crop(image, eval_shape)).astype(np.float32))
    return {"images": images, "pics_s": seconds}


def tv_options(lam: float, n_iter: int, rescale: bool = True) -> list[str]:
    """``[-S] -i n_iter -R T:7:0:lam``: isotropic TV over x, y (z is 1), ADMM; ``-S``: image in the data's units."""
    return [*(["-S"] if rescale else []), "-i", str(n_iter), "-R", f"T:7:0:{lam:g}"]


def bart_rows(cases, calib, refs, data_range, env, n_iter: int, lam: float, extra: bool) -> tuple[dict, dict]:
    """BART's rows (TV at ``lam``; with ``extra`` also ``BART_LONG_ITERS`` iterations, plain SENSE and no ``-S``)
    and the map comparison."""
    shape = refs[0].shape
    ecalib_s = float(np.mean([c["ecalib_s"] for c in calib]))
    runs = [("bart_pics", tv_options(lam, n_iter), lam, n_iter)]
    if extra:
        runs += [(f"bart_pics_{BART_LONG_ITERS}it", tv_options(lam, BART_LONG_ITERS), lam, BART_LONG_ITERS),
                 ("bart_sense_l2", ["-S", "-i", str(n_iter), "-l2", "-r", f"{BART_SENSE_L2:g}"], BART_SENSE_L2, n_iter),
                 ("bart_pics_without_S", tv_options(lam, n_iter, rescale=False), lam, n_iter)]
    rows = {}
    for label, options, weight, iters in runs:
        print(f"  bart pics {' '.join(options)}", flush=True)
        out = bart_pics(calib, options, env, shape)
        rows[label] = {**score(out["images"], refs, data_range), "seconds_per_slice": float(np.mean(out["pics_s"])),
                       "ecalib_s_per_slice": ecalib_s, "lambda": weight, "iterations": iters,
                       "command": "bart pics " + " ".join(options), "ls_scale_check": ls_scale(out["images"], refs)}
    diffs = [map_difference(np.load(c["dir"] / "coil_maps.npy"), from_bart_maps(read_cfl(b["dir"] / "sens")))
             for c, b in zip(cases, calib)]
    maps = {"per_slice": diffs, "mean": float(np.mean([d["mean"] for d in diffs])),
            "max": float(np.max([d["max"] for d in diffs])),
            "crop_disagrees": int(sum(d["crop_disagrees"] for d in diffs)),
            "pixels_both": int(sum(d["pixels_both"] for d in diffs)),
            "relative_l2_after_global_phase": float(np.mean([d["relative_l2_after_global_phase"] for d in diffs]))}
    return rows, maps


def score(images: list[np.ndarray], refs: list[np.ndarray], data_range: float) -> dict:
    """genrecon's metrics of one volume, aggregated as fastMRI's evaluate (``genrecon.metrics.volume_metrics``)."""
    from genrecon.metrics import volume_metrics

    return volume_metrics(images, refs, data_range, METRICS)


def ls_scale(images: list[np.ndarray], refs: list[np.ndarray]) -> float:
    """The least-squares scale of ``images`` against the references (a check of units; never applied)."""
    a, b = np.stack(images).astype(np.float64), np.stack(refs).astype(np.float64)
    return float(np.sum(a * b) / np.sum(a * a))


# -- fastMRI's evaluate.py -----------------------------------------------------------------------------------
FASTMRI_SNIPPET = r"""
import argparse, json, pathlib, sys
import numpy as np
import fastmri, fastmri.evaluate as ev
out = {"version": fastmri.__version__, "file": ev.__file__, "methods": {}}
for name, pred in json.loads(sys.argv[2]).items():
    args = argparse.Namespace(target_path=pathlib.Path(sys.argv[1]), predictions_path=pathlib.Path(pred),
                              challenge="multicoil", acceleration=None, acquisition=None)
    means = ev.evaluate(args, "reconstruction_rss").means()
    out["methods"][name] = {k: float(np.asarray(v).ravel()[0]) for k, v in means.items()}
print(json.dumps(out))
"""


def fastmri_evaluate(pkg: Path | None, target: Path, predictions: dict[str, Path]) -> dict:
    """fastMRI's ``evaluate.evaluate`` (and its command line) run from ``pkg`` on genrecon's prediction files."""
    if pkg is None or not (pkg / "fastmri" / "evaluate.py").exists():
        return {"missing": f"fastmri not found in {pkg}: pip install --no-deps --target /tmp/fastmri_pkg "
                           "fastmri==0.3.0 runstats pandas pytz tzdata tqdm"}
    env = dict(os.environ, PYTHONPATH=str(pkg), OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", FASTMRI_SNIPPET, str(target),
                          json.dumps({k: str(v) for k, v in predictions.items()})],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    if res.returncode != 0:
        return {"missing": "fastmri.evaluate failed: " + (res.stderr.strip().splitlines() or ["?"])[-1]}
    out = json.loads(res.stdout.strip().splitlines()[-1])
    # its command line, as the README of fastMRI gives it (one method)
    name, pred = next(iter(predictions.items()))
    cli = subprocess.run([sys.executable, "-m", "fastmri.evaluate", "--target-path", str(target), "--predictions-path",
                          str(pred), "--challenge", "multicoil"], capture_output=True, text=True, env=env, cwd=ROOT)
    out["cli"] = {"returncode": cli.returncode, "stdout": cli.stdout.strip(),
                  "error": (cli.stderr.strip().splitlines() or [""])[-1] if cli.returncode else None}
    return out


# -- the page ------------------------------------------------------------------------------------------------
LABELS = {"zero_filled": "zero-filled (genrecon)", "fista_tv": "**genrecon `fista_tv`**"}


def _table(e: dict) -> list[str]:
    lines = ["| method | PSNR (dB) | SSIM | NMSE | s / slice | maps s / slice |", "|---|---|---|---|---|---|"]
    for method, v in e["methods"].items():
        if method == "bart_pics_without_S":
            continue
        if method in LABELS:
            label = f"{LABELS[method]}{', tv_weight ' + format(e['tv_weight'], 'g') if method == 'fista_tv' else ''}"
            maps = f"{e['espirit']['seconds_per_slice']:.2f} (`espirit_maps`)"
        else:
            label = f"BART `{v['command']}`"
            maps = f"{v['ecalib_s_per_slice']:.2f} (`bart ecalib`)"
        lines.append(f"| {label} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['nmse']:.3e} | "
                     f"{v['seconds_per_slice']:.2f} | {maps} |")
    return lines


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# Measured k-space (fastMRI format, SIMULATED): genrecon against BART, checked by fastMRI's evaluate",
        "",
        "Written by `scripts/bench_fastmri.py`; every number is in `benchmarks/measured.json`.",
        "",
        "**The data are simulated.** `data/fastmri_sim/multicoil/file_brain_sim_mc.h5` is written by "
        "`scripts/make_fastmri_sample.py` from the five bundled MNI152 2009a T1 slices (`sample:brain-mri`, "
        "256 x 256): "
        "smooth phase, 2x readout oversampling and 12.5% phase padding (acquired grid 512 x 288), 12 smooth complex "
        "coil maps, complex Gaussian noise at 0.2% of the k-space RMS; `reconstruction_rss` from the noisy, fully "
        "sampled k-space as fastMRI's (`genrecon.testing.fastmri`). No raw k-space is available offline. The images "
        "have a clean zero background and the coil maps are exactly smooth, so every method scores far higher than on "
        "real scans; compare methods with each other, not with published fastMRI numbers. Held-out status: these "
        "slices are from the template the shipped brain prior was trained on (not held out); that is irrelevant to "
        "FISTA-TV and BART, which use no training data, and no generative method is run here.",
        "",
        f"Protocol: equispaced columns as fastMRI's challenge (4x: 8% centre, 8x: 4%), the mask drawn by genrecon "
        f"on the acquired grid and applied to the file's k-space; every method sees the same masked k-space. "
        f"Sensitivities: genrecon's `espirit_maps` and BART's `ecalib -m 1`, both with BART's defaults (`-k 6 -r 24 "
        f"-t 0.001 -c 0.8`), from the undersampled data. {r['n_iter']} iterations for FISTA-TV and for BART (ADMM with "
        f"its default inner CG). Reconstructions are centre-cropped to the 256 x 256 reference; metrics on magnitudes "
        f"as fastMRI's evaluate.py: data_range the reference volume's maximum, PSNR and NMSE over the whole volume "
        f"(5 slices), SSIM (scikit-image, 7x7 uniform window) the mean over slices. Seconds per slice: genrecon's from "
        f"its report rows (the method alone; maps are estimated once per slice before the methods run and timed "
        f"separately), BART's the wall time of the `bart pics` process (file I/O included); maps: `espirit_maps` "
        f"timed on the same k-space, `bart ecalib` the process's wall time. One torch thread, `OMP_NUM_THREADS=1`.",
        "",
    ]
    for acc, e in r["accelerations"].items():
        lines += [f"## {acc} (achieved {e['achieved_acceleration']:.2f}x)", "",
                  *_table(e)]
        lines += ["", f"genrecon run: `{e['run']}` ({e['genrecon_wall_s']:.0f} s for the whole `genrecon reconstruct` "
                  f"command, start-up, maps, PNG and h5 files included); its ESPIRiT maps recomputed here differ "
                  f"from the saved `coil_maps.npy` by at most {e['espirit']['max_diff_to_saved_maps']:.1e}. "
                  f"`fista_tv`'s seconds include the operator norm it starts with (`norm_squared`, a power method): "
                  f"{e['espirit']['norm_seconds_per_slice']:.2f} s per slice timed alone."]
        bart = [v for k, v in e["methods"].items() if k.startswith("bart")]
        if not bart:
            lines.append(f"BART not run: {r['bart']}.")
        else:
            text = (f"BART's image scale: with `-S` the least-squares scale of its images against the reference is "
                    f"{bart[0]['ls_scale_check']:.4f} (a check of units, not applied).")
            w = e["methods"].get("bart_pics_without_S")
            if w:
                text += (f" Without `-S` (`{w['command']}`), pics returns the image in its internally scaled units (it "
                         f"divides the data by its own estimate of the image scale): the least-squares scale is then "
                         f"{w['ls_scale_check']:.3f} and PSNR {w['psnr']:.2f} dB.")
            lines.append(text)
            long, l2 = e["methods"].get(f"bart_pics_{BART_LONG_ITERS}it"), e["methods"].get("bart_sense_l2")
            if long and l2:
                lines.append(f"BART's TV reconstruction improves with iterations ({bart[0]['psnr']:.2f} dB at "
                             f"{bart[0]['iterations']}, {long['psnr']:.2f} dB at {long['iterations']}) and its plain "
                             f"SENSE (`{l2['command']}`, no TV) reaches {l2['psnr']:.2f} dB (genrecon's FISTA-TV "
                             f"{e['methods']['fista_tv']['psnr']:.2f} dB): at this acceleration with 12 coils and "
                             f"little noise the problem is nearly determined, TV has little to add, and BART's ADMM "
                             f"has not converged within these budgets. The maps are not the cause (they agree, "
                             f"below).")
        lines.append("")
        if "maps" in e:
            mp = e["maps"]
            lines += [f"Maps, genrecon `espirit_maps` against BART `ecalib -m 1` (5 slices, where both are non-zero: "
                      f"{mp['pixels_both']} pixels): `1 - |sum_c conj(S_g) S_b| / (|S_g| |S_b|)` mean "
                      f"{mp['mean']:.1e}, "
                      f"max {mp['max']:.1e}; the crops (eigenvalue < 0.8) disagree on {mp['crop_disagrees']} pixels; "
                      f"after one global phase the relative L2 difference is "
                      f"{mp['relative_l2_after_global_phase']:.1e} "
                      f"(a per-pixel phase convention may differ, which SENSE does not see).", ""]
    if r["accelerations"]:
        lines += ["## fastMRI's evaluate on genrecon's prediction files", ""]
        first = next(iter(r["accelerations"].values()))["fastmri_evaluate"]
        if "methods" not in first:
            lines += [f"Not run: {first['missing']}", ""]
        else:
            lines += [f"`fastmri` {first['version']} (`fastmri/evaluate.py`, its `evaluate()` with `--challenge "
                      f"multicoil`) on `recon/<method>/file_brain_sim_mc.h5` against the file's "
                      f"`reconstruction_rss`:", "",
                      "| setting | method | genrecon PSNR / SSIM / NMSE | fastMRI PSNR / SSIM / NMSE | difference |",
                      "|---|---|---|---|---|"]
            for acc, e in r["accelerations"].items():
                for method, v in e["fastmri_evaluate"].get("methods", {}).items():
                    g = e["methods"][method]
                    lines.append(f"| {acc} | {method} | {g['psnr']:.4f} / {g['ssim']:.6f} / {g['nmse']:.4e} | "
                                 f"{v['PSNR']:.4f} / {v['SSIM']:.6f} / {v['NMSE']:.4e} | {v['diff']['psnr']:+.1e} dB, "
                                 f"SSIM {v['diff']['ssim']:+.1e}, NMSE {v['diff']['nmse_rel']:+.1e} (rel.) |")
            worst = max(abs(v["diff"]["psnr"]) for e in r["accelerations"].values()
                        for v in e["fastmri_evaluate"].get("methods", {}).values())
            verdict = "agree" if worst < 0.01 else "DO NOT agree"
            lines += ["", f"They {verdict} to 0.01 dB (largest PSNR difference {worst:.1e} dB). The small differences: "
                      f"fastMRI reads the float32 prediction files and scikit-image computes its SSIM in float32, "
                      f"genrecon scores the saved complex64 reconstructions in float64."]
            cli = first.get("cli", {})
            if cli.get("returncode"):
                lines.append(f"fastMRI's command line `python -m fastmri.evaluate ...` computes the same numbers and "
                             f"then fails to print them with this numpy ({cli['error']}): its SSIM is a 1-element "
                             f"array that numpy 2 does not format with `:.4g`; the script therefore calls `evaluate()` "
                             f"and "
                             f"reads `Metrics.means()`.")
            lines.append("")
    tg, tb = r.get("tune_genrecon"), r.get("tune_bart")
    lines += ["## Regularisation weights (chosen on the 4x file, PSNR)", ""]
    if tg:
        cells = ", ".join(f"{w}: {v['psnr']:.2f}" for w, v in tg["grid"].items())
        note = "" if abs(tg["best"] - tg["config"]) <= 1e-12 else (
            f" **The configs hold {tg['config']:g}, not the grid's best: update them.**")
        lines.append(f"- genrecon `fista_tv` `tv_weight` grid {r['tv_grid']} (dB: {cells}): best {tg['best']:g}, "
                     f"the value in `configs/fastmri_multicoil_{{4,8}}x.yaml`.{note}")
    else:
        lines.append(f"- genrecon `tv_weight`: the configs' value (grid {r['tv_grid']} not rerun: `--no-tune`).")
    if tb:
        cells = ", ".join(f"{w}: {v['psnr']:.2f}" for w, v in tb["grid"].items())
        lines.append(f"- BART `pics -R T:7:0:lambda` grid {r['bart_grid']} (dB: {cells}): best {tb['best']:g}.")
    else:
        lines.append(f"- BART lambda {r['bart_lambda']:g} (grid {r['bart_grid']} not rerun).")
    lines += ["- The two weights are not comparable numbers: BART scales the data by its own estimate before "
              "solving, genrecon solves `1/2 ||Ax - y||^2 + tv_weight TV(x)` on the data as given. 8x uses the 4x "
              "choices; nothing else was tuned.", ""]
    lines += ["## Machine and commands", "",
              f"{m['cpu']}, {m['cores']} cores shared with other jobs, 1 torch thread, `OMP_NUM_THREADS=1`, Python "
              f"{m['python']}, torch {m['torch']} (CPU), {r['bart']}, commit {m['commit']}, {m['date']}. Load "
              f"(`uptime`) before: `{r['uptime_before']}`; after: `{r['uptime_after']}`. Seconds depend on that load.",
              "", "```bash",
              "python scripts/make_fastmri_sample.py            # the SIMULATED files, a few seconds",
              "apt-get install -y bart                          # BART 0.8 (Debian); skipped with a note if absent",
              "pip install --no-deps --target /tmp/fastmri_pkg fastmri==0.3.0 runstats pandas pytz tzdata tqdm",
              "OMP_NUM_THREADS=1 python scripts/bench_fastmri.py --fastmri-pkg /tmp/fastmri_pkg",
              "# the genrecon runs alone, as users run them:",
              "genrecon reconstruct --config configs/fastmri_multicoil_4x.yaml",
              "genrecon reconstruct --config configs/fastmri_multicoil_8x.yaml",
              "PYTHONPATH=/tmp/fastmri_pkg python -c \"import argparse, pathlib, fastmri.evaluate as ev; "
              "print(ev.evaluate(argparse.Namespace(target_path=pathlib.Path('data/fastmri_sim/multicoil'), "
              "predictions_path=pathlib.Path('runs/fastmri-multicoil-4x/recon/fista_tv'), acceleration=None, "
              "acquisition=None), "
              "'reconstruction_rss').means())\"",
              "```", "",
              "fastMRI's package is installed into its own folder (`--no-deps --target`) so that the environment's "
              "torch is untouched; `pandas`, `tqdm`, `pytz` and `tzdata` are there only because `fastmri.data` imports "
              "them.",
              ""]
    return "\n".join(lines)


# -- the benchmark -------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks", help="where measured.md/.json go")
    ap.add_argument("--fastmri-pkg", type=Path, default=Path("/tmp/fastmri_pkg"),
                    help="folder fastmri==0.3.0 was pip-installed into with --target")
    ap.add_argument("--no-tune", action="store_true", help="skip the lambda grids (BART uses BART_LAMBDA)")
    ap.add_argument("--quick", action="store_true",
                    help="no extra BART rows at 4x (BART_LONG_ITERS iterations, plain SENSE, without -S)")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    if not any(DATA.glob("*.h5")):
        raise SystemExit(f"no fastMRI file in {DATA}: run python scripts/make_fastmri_sample.py first")

    load_before = uptime()
    print(f"machine load: {load_before}", flush=True)
    result: dict = {"machine": machine_info(), "uptime_before": load_before, "data": str(DATA.relative_to(ROOT)),
                    "simulated": True, "tv_grid": TV_GRID, "bart_grid": BART_GRID, "accelerations": {}}
    version = bart_version()
    result["bart"] = f"BART {version}" if version else "BART missing: bart not on PATH (apt-get install -y bart)"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    from genrecon.yamlio import read_yaml

    bases = {acc: read_yaml(path) for acc, path in CONFIGS.items()}
    n_iter = next(r for r in bases[4]["reconstructors"] if r["name"] == "fista_tv")["params"]["n_iter"]
    result["n_iter"] = n_iter

    if not args.no_tune:
        print("tuning genrecon's tv_weight on the 4x file ...", flush=True)
        result["tune_genrecon"] = tune_genrecon(bases[4])
    work = Path(tempfile.mkdtemp(prefix="bench_fastmri_bart_"))
    bart_lambda = BART_LAMBDA
    try:
        for acc in (4, 8):
            print(f"{acc}x: genrecon reconstruct {CONFIGS[acc].relative_to(ROOT)} ...", flush=True)
            run_dir = RUNS / f"{acc}x"
            report, wall = genrecon_run(bases[acc], run_dir, f"{acc}x")
            cases = cases_of(run_dir)
            refs, data_range = reference_volume(cases)
            achieved = json.loads((cases[0]["dir"] / "case.json").read_text())["measurement"]["acceleration"]
            entry: dict = {"config": str(CONFIGS[acc].relative_to(ROOT)), "run": str(run_dir.relative_to(ROOT)),
                           "achieved_acceleration": achieved, "slices": len(cases), "data_range": data_range,
                           "genrecon_wall_s": wall, "methods": {}}
            for method in ("zero_filled", "fista_tv"):
                row = volume_row(report, method)
                entry["methods"][method] = {**{m: row[m] for m in METRICS},
                                            "seconds_per_slice": seconds_per_slice(report, method)}
            print(f"{acc}x: timing genrecon.calib.espirit_maps ...", flush=True)
            entry["espirit"] = espirit_times(cases)
            entry["tv_weight"] = next(r for r in bases[acc]["reconstructors"]
                                      if r["name"] == "fista_tv")["params"]["tv_weight"]

            if version:
                calib = bart_ecalib(cases, work / f"{acc}x", env)
                if acc == 4 and not args.no_tune:
                    print("tuning BART's lambda on the 4x file ...", flush=True)
                    grid = {f"{lam:g}": score(bart_pics(calib, tv_options(lam, n_iter), env, refs[0].shape)["images"],
                                              refs, data_range) for lam in BART_GRID}
                    bart_lambda = max(BART_GRID, key=lambda lam: grid[f"{lam:g}"]["psnr"])
                    result["tune_bart"] = {"grid": grid, "best": bart_lambda}
                print(f"{acc}x: BART, lambda {bart_lambda:g} ...", flush=True)
                rows, entry["maps"] = bart_rows(cases, calib, refs, data_range, env, n_iter, bart_lambda,
                                                extra=acc == 4 and not args.quick)
                entry["methods"].update(rows)
            print(f"{acc}x: fastMRI's evaluate ...", flush=True)
            predictions = {m: run_dir / "recon" / m for m in ("zero_filled", "fista_tv")}
            fm = fastmri_evaluate(args.fastmri_pkg, DATA, predictions)
            if "methods" in fm:
                for m, vals in fm["methods"].items():
                    g = entry["methods"][m]
                    vals["diff"] = {"psnr": vals["PSNR"] - g["psnr"], "ssim": vals["SSIM"] - g["ssim"],
                                    "nmse_rel": (vals["NMSE"] - g["nmse"]) / g["nmse"]}
            entry["fastmri_evaluate"] = fm
            result["accelerations"][f"{acc}x"] = entry
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["bart_lambda"] = bart_lambda
    result["uptime_after"] = uptime()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "measured.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "measured.md").write_text(markdown(result))
    print(f"wrote {args.out / 'measured.md'} and {args.out / 'measured.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
