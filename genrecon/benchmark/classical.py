"""Suite ``classical``: zero-filled / FBP / FISTA-TV against BART, SigPy, ASTRA and scikit-image.

Every method sees the same images, masks, angles and iteration budget, and each TV method gets the best
weight of its own grid (the best mean PSNR over the images of a setting: an oracle choice, the same for
everyone). Measurements are noiseless.

- **MRI**: the bundled brain T1 slices (MNI152 2009a, ``sample:brain-mri``, the mid-axial slice among them),
  256x256 on their native 1 mm grid, in [0, 1]; single-coil k-space by the centred orthonormal FFT; random
  Cartesian columns with an 8% centre (fastMRI rules) at 4x and 8x, one mask per image and acceleration,
  shared by all methods. Methods: zero-filled, genrecon ``fista_tv``, BART ``pics -R T`` (ADMM), SigPy
  ``TotalVariationRecon`` (primal-dual); DeepInverse when importable.
- **CT**: the bundled head CT slices (``sample:head-ct``, HU mapped to ``(HU + 1024) / 4095``) and the
  modified Shepp-Logan phantom, 256x256, parallel beam, 363 bins of 1 pixel, 60 views over 180 degrees and
  90 views over 90 degrees. Each projector reconstructs data simulated with itself (both sides of every
  comparison are "inverse crimes"; no projector is favoured by a model mismatch). Methods: genrecon ``fbp``
  (ramp) and ``fista_tv`` (non-negative, normalised operator); ASTRA FBP (CPU, ram-lak) and SIRT (CPU,
  non-negative); "ASTRA + TV": genrecon's ``fista_tv`` run on ASTRA's CPU ``linear`` (Joseph) projector,
  normalised the same way; scikit-image ``iradon`` (ramp) on ``radon`` data.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from . import peers
from .common import Log, Options, data_range_note, fmt, mean_std, metric_conventions, new_document, pm, table

NAME = "classical"
TITLE = "Classical reconstruction: genrecon against BART, SigPy, ASTRA and scikit-image"


@dataclass
class Plan:
    size: int = 256
    resize: str = "crop_pad"                    # crop_pad keeps the 1 mm grid at 256; resize for smaller sizes
    mri_slices: tuple[int, ...] | None = None   # None: every bundled brain slice
    ct_slices: tuple[int, ...] | None = None    # None: every bundled head CT slice
    phantom: bool = True
    accelerations: tuple[int, ...] = (4, 8)
    ct_settings: tuple[tuple[str, int, float], ...] = (("60 views", 60, 180.0), ("90 views / 90 deg", 90, 90.0))
    n_iter: int = 100
    mri_lams: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
    ct_lams: tuple[float, ...] = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
    peers: bool = True


def default_plan(opts: Options) -> Plan:
    from .images import mid_axial_index

    if opts.quick:
        return Plan(size=128, resize="resize", mri_slices=(mid_axial_index(),), ct_slices=(2,), n_iter=20,
                    mri_lams=(3e-3, 1e-2), ct_lams=(1e-4, 3e-4))
    if opts.slices is not None:
        n = max(1, min(opts.slices, 5))
        return Plan(mri_slices=tuple(range(n)), ct_slices=tuple(range(n)))
    return Plan()


Method = Callable[[int, float | None], Callable[[], np.ndarray]]


def _evaluate(doc, modality, setting, label, make: Method, lams, truths, *, warm: bool, log: Log,
              note: str = "") -> None:
    """Run ``make(i, lam)()`` on every image ``i`` for every ``lam``; append one record per run."""
    from ..metrics import psnr, ssim

    if warm:  # untimed first call: JIT compilation, matrix builds, caches
        make(0, lams[0])()
    for lam in lams:
        for i, (key, truth) in enumerate(truths):
            fn = make(i, lam)
            t0 = time.perf_counter()
            est = np.asarray(fn())
            sec = time.perf_counter() - t0
            est = np.abs(est) if np.iscomplexobj(est) else est
            doc["records"].append({"modality": modality, "setting": setting, "method": label, "image": key,
                                   "lam": lam, "psnr": psnr(est, truth, 1.0), "ssim": ssim(est, truth, 1.0),
                                   "seconds": sec, "note": note})
    best = _best(doc["records"], modality, setting, label)
    log(f"classical: {modality} {setting} {label}: {fmt(best[0])} dB" + (f" (lam {best[1]:g})" if best[1] else ""))


def _best(records, modality, setting, label) -> tuple[float, float | None]:
    """``(mean PSNR, lam)`` of the best weight of a method in a setting."""
    by_lam: dict = {}
    for r in records:
        if r["modality"] == modality and r["setting"] == setting and r["method"] == label and "psnr" in r:
            by_lam.setdefault(r["lam"], []).append(r["psnr"])
    scored = [(mean_std(v)[0], lam) for lam, v in by_lam.items()]
    return max(scored, key=lambda t: (t[0], -1 if t[1] is None else 0)) if scored else (float("nan"), None)


def _missing(doc, modality, setting, label, reason) -> None:
    doc["records"].append({"modality": modality, "setting": setting, "method": label, "missing": reason})


def _failed(doc, modality, setting, label, exc: BaseException) -> None:
    _missing(doc, modality, setting, label, f"failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")


# -- MRI -------------------------------------------------------------------------------------------------
def run_mri(doc, plan: Plan, opts: Options, log: Log) -> None:
    from ..operators.fft import fft2c
    from ..operators.mri import SingleCoilMRI
    from ..registry import MASKS, RECONSTRUCTORS
    from .images import bundled_slices

    device = opts.device
    cases = bundled_slices("brain-mri", plan.size, mode=plan.resize,
                           indices=list(plan.mri_slices) if plan.mri_slices else None)
    truths = [(k, img[0].numpy().astype(np.float64)) for k, img in cases]
    _describe(doc, "brain T1", truths)
    tmp = Path(tempfile.mkdtemp(prefix="genrecon_bench_bart_"))
    try:
        for acc in plan.accelerations:
            setting = f"brain T1, {acc}x"
            masks, ksp = [], []
            for i, (key, img) in enumerate(cases):
                g = torch.Generator().manual_seed(opts.seed + 1000 * acc + i)
                mask = MASKS.build("random", {"acceleration": acc, "center_fraction": 0.08})((plan.size,) * 2, g)
                masks.append(mask)
                ksp.append(fft2c(img.to(torch.complex64)[None]) * mask)
            log(f"classical: MRI {setting}, {len(cases)} image(s)")
            ops = [SingleCoilMRI(m).to(device) for m in masks]
            ys = [k.to(device) for k in ksp]

            def zero_filled(i, lam):
                return lambda: ops[i].adjoint(ys[i]).abs()[0, 0].cpu().numpy()

            _evaluate(doc, "mri", setting, "zero-filled", zero_filled, [None], truths, warm=False, log=log)

            def fista(i, lam):
                recon = RECONSTRUCTORS.build("fista_tv", {"tv_weight": lam, "n_iter": plan.n_iter})
                return lambda: recon(ys[i], ops[i]).abs()[0, 0].cpu().numpy()

            _evaluate(doc, "mri", setting, "genrecon fista_tv", fista, plan.mri_lams, truths, warm=True, log=log,
                      note="FISTA, isotropic TV (warm-started dual prox, 5 inner iterations)")
            if not plan.peers:
                continue
            if peers.available("bart"):
                def bart(i, lam):
                    return peers.bart_pics_tv(ksp[i][0, 0].numpy(), lam, plan.n_iter, tmp / f"{setting}_{i}")

                try:
                    _evaluate(doc, "mri", setting, f"{peers.label('bart')} pics -R T", bart, plan.mri_lams, truths,
                              warm=False, log=log, note="ADMM; seconds: the whole bart process, file I/O included")
                except Exception as exc:  # noqa: BLE001 - a peer failing is a result
                    _failed(doc, "mri", setting, "BART pics -R T", exc)
            else:
                _missing(doc, "mri", setting, "BART pics -R T", peers.missing_reason("bart"))
            if peers.available("sigpy"):
                def sigpy(i, lam):
                    return peers.sigpy_tv(ksp[i][0, 0].numpy(), masks[i].numpy(), lam, plan.n_iter)

                try:
                    _evaluate(doc, "mri", setting, f"{peers.label('sigpy')} TotalVariationRecon", sigpy,
                              plan.mri_lams, truths, warm=True, log=log, note="primal-dual hybrid gradient")
                except Exception as exc:  # noqa: BLE001
                    _failed(doc, "mri", setting, "SigPy TotalVariationRecon", exc)
            else:
                _missing(doc, "mri", setting, "SigPy TotalVariationRecon", peers.missing_reason("sigpy"))
            if not peers.available("deepinv"):
                _missing(doc, "mri", setting, "DeepInverse FISTA + TV", peers.missing_reason("deepinv"))
            else:
                _missing(doc, "mri", setting, "DeepInverse FISTA + TV", "not wired into this suite yet")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- CT --------------------------------------------------------------------------------------------------
def ct_datasets(plan: Plan) -> list[tuple[str, list[tuple[str, torch.Tensor]]]]:
    """``[(dataset name, [(key, image)])]``: the head CT slices and, with ``plan.phantom``, Shepp-Logan."""
    from .images import bundled_slices, shepp_logan_image

    out = [("head CT", bundled_slices("head-ct", plan.size, mode=plan.resize,
                                      indices=list(plan.ct_slices) if plan.ct_slices else None))]
    if plan.phantom:
        out.append(("Shepp-Logan", [("shepp-logan", shepp_logan_image(plan.size))]))
    return out


def _describe(doc, dataset: str, truths) -> None:
    """Record a dataset's images and the references' max and min (for the data_range conversions)."""
    doc["settings"].setdefault("datasets", {})[dataset] = {
        "images": [k for k, _ in truths], "max": max(float(t.max()) for _, t in truths),
        "min": min(float(t.min()) for _, t in truths)}


def run_ct(doc, plan: Plan, opts: Options, log: Log) -> None:
    from ..operators.ct import clear_cache

    for dataset, cases in ct_datasets(plan):
        truths = [(k, img[0].numpy().astype(np.float64)) for k, img in cases]
        _describe(doc, dataset, truths)
        for setting, n_views, span in plan.ct_settings:
            _ct_setting(doc, f"{dataset}, {setting}", n_views, span, cases, truths, plan, opts, log)
            clear_cache()


def _ct_setting(doc, setting, n_views, span, cases, truths, plan: Plan, opts: Options, log: Log) -> None:
    import math

    from ..operators.ct import ParallelBeam
    from ..reconstructors.fbp import FBP
    from ..registry import RECONSTRUCTORS

    device = opts.device
    angles = np.arange(n_views) * math.radians(span) / n_views
    op = ParallelBeam(image_size=plan.size, angles=angles.tolist(), normalize=True).to(device)
    n_det = op.n_detectors
    log(f"classical: CT {setting}, {len(cases)} image(s), {n_det} bins")
    with torch.no_grad():
        ys = [op(img[None].to(device)) for _, img in cases]

    def fbp(i, lam):
        return lambda: FBP(filter="ramp")(ys[i], op)[0, 0].cpu().numpy()

    _evaluate(doc, "ct", setting, "genrecon fbp (ramp)", fbp, [None], truths, warm=True, log=log)

    def fista(i, lam):
        recon = RECONSTRUCTORS.build("fista_tv", {"tv_weight": lam, "n_iter": plan.n_iter, "nonneg": True})
        return lambda: recon(ys[i], op)[0, 0].cpu().numpy()

    _evaluate(doc, "ct", setting, "genrecon fista_tv", fista, plan.ct_lams, truths, warm=True, log=log,
              note="distance-driven projector, non-negative")
    if plan.peers:
        _ct_astra(doc, setting, angles, n_det, cases, truths, plan, opts, log)
        _ct_skimage(doc, setting, angles, cases, truths, log)
        reason = (peers.missing_reason("deepinv") if not peers.available("deepinv")
                  else "not wired into this suite yet")
        _missing(doc, "ct", setting, "DeepInverse Tomography + TV", reason)


def _ct_astra(doc, setting, angles, n_det, cases, truths, plan: Plan, opts: Options, log: Log) -> None:
    from ..registry import RECONSTRUCTORS

    labels = ["ASTRA FBP (CPU, ram-lak)", f"ASTRA SIRT (CPU, {plan.n_iter} it, >= 0)",
              "ASTRA + TV (genrecon fista_tv on ASTRA 'linear')"]
    if not peers.available("astra"):
        for lab in labels:
            _missing(doc, "ct", setting, lab, peers.missing_reason("astra"))
        return
    name = peers.label("astra")
    try:
        raw = peers.AstraProjector(image_size=plan.size, angles=angles, n_detectors=n_det, kind="linear")
        sinos = [raw(img[None].float())[0, 0].numpy() for _, img in cases]
        raw.release()
        for lab, algorithm in ((labels[0], "FBP"), (labels[1], "SIRT")):
            def make(i, lam, algorithm=algorithm):
                return lambda: peers.astra_fbp_sirt(sinos[i], angles, plan.size, n_det, algorithm=algorithm,
                                                    n_iter=plan.n_iter)

            _evaluate(doc, "ct", setting, lab.replace("ASTRA", name), make, [None], truths, warm=False, log=log,
                      note="'linear' (Joseph) projector")
        op = peers.AstraProjector(image_size=plan.size, angles=angles, n_detectors=n_det, kind="linear",
                                  normalize=True)
        ys = [op(img[None].float()) for _, img in cases]

        def fista(i, lam):
            recon = RECONSTRUCTORS.build("fista_tv", {"tv_weight": lam, "n_iter": plan.n_iter, "nonneg": True})
            return lambda: recon(ys[i], op)[0, 0].numpy()

        _evaluate(doc, "ct", setting, labels[2].replace("ASTRA", name), fista, plan.ct_lams, truths, warm=False,
                  log=log, note="the same FISTA-TV and weights as genrecon's, ASTRA's CPU projector via OpTomo")
        op.release()
    except Exception as exc:  # noqa: BLE001
        _failed(doc, "ct", setting, "ASTRA", exc)


def _ct_skimage(doc, setting, angles, cases, truths, log: Log) -> None:
    lab = "scikit-image iradon (ramp)"
    if not peers.available("skimage"):
        _missing(doc, "ct", setting, lab, peers.missing_reason("skimage"))
        return
    from skimage.transform import iradon, radon

    theta = np.degrees(angles)
    sinos = [radon(img[0].numpy().astype(np.float64), theta=theta, circle=False) for _, img in cases]
    n = cases[0][1].shape[-1]

    def make(i, lam):
        return lambda: iradon(sinos[i], theta=theta, filter_name="ramp", circle=False, output_size=n)

    _evaluate(doc, "ct", setting, f"{peers.label('skimage')} iradon (ramp)", make, [None], truths, warm=False,
              log=log, note="on scikit-image radon data")


# -- the suite -------------------------------------------------------------------------------------------
def run(opts: Options, log: Log, plan: Plan | None = None) -> dict[str, Any]:
    plan = plan or default_plan(opts)
    doc = new_document(NAME, TITLE, opts, {
        "size": plan.size, "accelerations": list(plan.accelerations),
        "ct_settings": [list(s) for s in plan.ct_settings], "n_iter": plan.n_iter, "mri_lams": list(plan.mri_lams),
        "ct_lams": list(plan.ct_lams), "noise": "none", "peers": plan.peers})
    run_mri(doc, plan, opts, log)
    run_ct(doc, plan, opts, log)
    doc["tables"] = make_tables(doc)
    return doc


def summary(records: list[dict[str, Any]], modality: str) -> list[dict[str, Any]]:
    """Per (setting, method): the best weight's mean ± std PSNR/SSIM and seconds, or the missing reason."""
    out, seen = [], []
    for r in records:
        if r["modality"] != modality or (r["setting"], r["method"]) in seen:
            continue
        seen.append((r["setting"], r["method"]))
        if "missing" in r:
            out.append({"setting": r["setting"], "method": r["method"], "missing": r["missing"]})
            continue
        _, lam = _best(records, modality, r["setting"], r["method"])
        rows = [x for x in records if x["modality"] == modality and x["setting"] == r["setting"]
                and x["method"] == r["method"] and x.get("lam") == lam and "psnr" in x]
        p, ps = mean_std([x["psnr"] for x in rows])
        s, ss = mean_std([x["ssim"] for x in rows])
        out.append({"setting": r["setting"], "method": r["method"], "lam": lam, "n": len(rows), "psnr": p,
                    "psnr_std": ps, "ssim": s, "ssim_std": ss, "seconds": mean_std([x["seconds"] for x in rows])[0],
                    "note": r.get("note", "")})
    return out


def make_tables(doc: dict[str, Any]) -> list[dict[str, Any]]:
    s = doc["settings"]
    tables = []
    for modality, title in (("mri", "MRI (bundled brain T1 slices, single coil, noiseless)"),
                            ("ct", "CT (bundled head CT slices and Shepp-Logan, parallel beam, noiseless)")):
        rows = []
        for r in summary(doc["records"], modality):
            if "missing" in r:
                rows.append([r["setting"], r["method"], r["missing"], "", "", "", ""])
                continue
            lam = "-" if r["lam"] is None else f"{r['lam']:g}"
            rows.append([r["setting"], r["method"], pm(r["psnr"], r["psnr_std"]), pm(r["ssim"], r["ssim_std"], ".3f"),
                         fmt(r["seconds"], ".2f"), lam, r.get("note", "")])
        if not rows:
            continue
        datasets = {name: d for name, d in s.get("datasets", {}).items()
                    if any(r["setting"].startswith(name + ",") for r in doc["records"] if r["modality"] == modality)}
        ranges = "; ".join(f"{name}: {data_range_note(d['max'], d['min'])}" for name, d in datasets.items())
        images = "; ".join(f"{name}: {', '.join(d['images'])}" for name, d in datasets.items())
        conv = metric_conventions(
            data_range="1 (images in [0, 1]: brain clip(I / p99.5, 0, 1); CT (HU + 1024) / 4095, phantom [0, 1]); "
                       + ranges,
            magnitude=modality == "mri",
            averaging=f"mean ± std over the images of each dataset ({images}) at each method's best weight "
                      f"(the best mean PSNR of its grid: {s[modality + '_lams']}); {s['n_iter']} iterations for every "
                      f"iterative method; seconds: mean per image, one run each")
        tables.append(table(title, ["setting", "method", "PSNR dB", "SSIM", "s / image", "weight", "notes"], rows,
                            conventions=conv))
    return tables
