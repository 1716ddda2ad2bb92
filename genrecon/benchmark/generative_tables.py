"""The generative suite's tables and PSNR plot, from its records (:mod:`.generative`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import fmt, mean_std, metric_conventions, pm, table

NAME = "generative"
#: (x-axis value for the PSNR plot, label); None: not on the curve (limited angle)
AXIS = {"mri4": (4, "MRI 4x"), "mri8": (8, "MRI 8x"), "mri16": (16, "MRI 16x"), "ct60": (60, "CT 60 views"),
        "ct30": (30, "CT 30 views"), "ct15": (15, "CT 15 views"), "ct_lim90": (None, "CT 90 views / 90 deg")}


def summarise(records: list[dict]) -> list[dict]:
    """Per (setting, method): mean ± std PSNR/SSIM, seconds, NFE, coverage, peak memory; or why it is missing."""
    out, seen = [], []
    for r in records:
        k = (r["setting"], r["method"])
        if k in seen:
            continue
        seen.append(k)
        if "missing" in r:
            out.append({"setting": k[0], "method": k[1], "missing": r["missing"]})
            continue
        rows = [x for x in records if (x["setting"], x["method"]) == k and x.get("psnr") is not None]
        failed = [x for x in records if (x["setting"], x["method"]) == k and "failed" in x]
        if not rows:
            out.append({"setting": k[0], "method": k[1], "missing": f"failed on {len(failed)} slice(s): "
                                                                     f"{failed[0]['failed'] if failed else '?'}"})
            continue
        p, ps = mean_std([x["psnr"] for x in rows])
        ss_ = [x["ssim"] for x in rows if x.get("ssim") is not None]
        s, ss = mean_std(ss_) if ss_ else (float("nan"), float("nan"))
        cov = [x["coverage"] for x in rows if x.get("coverage") is not None]
        mem = [x["peak_mb"] for x in rows if x.get("peak_mb") is not None]
        out.append({"setting": k[0], "method": k[1], "n": len(rows), "failed": len(failed), "psnr": p,
                    "psnr_std": ps, "ssim": s, "ssim_std": ss,
                    "seconds": mean_std([x["seconds"] for x in rows])[0], "nfe": rows[0]["nfe"],
                    "coverage": mean_std(cov)[0] if cov else None, "peak_mb": max(mem) if mem else None})
    return out


BASELINE = "zero-filled / FBP"


def _ordered(doc: dict[str, Any]) -> list[dict]:
    """:func:`summarise` in the order of the settings and of each setting's methods."""
    s = doc["settings"]
    order = {(st, lab): (i, j) for i, st in enumerate(s["settings"]) for j, lab in enumerate(s.get("methods", {})
                                                                                         .get(st, []))}
    return sorted(summarise(doc["records"]), key=lambda r: order.get((r["setting"], r["method"]), (99, 99)))


def make_tables(doc: dict[str, Any]) -> list[dict[str, Any]]:
    from .common import data_range_note

    s = doc["settings"]
    summ = _ordered(doc)
    n = {m: len(v) for m, v in s.get("images", {}).items()}
    split = s.get("split", "val")
    source = ("bundled sample slices resized to 128x128 (smoke: not held out from anything)" if s["source"] != "prepared"
              else f"held-out val slices of {s['data_dir']}: slabs of the subjects the priors were trained on"
              if split == "val" else f"{split} slices of {s['data_dir']}: whole subjects never used in training")
    ranges = "; ".join(f"{m.upper()}: {data_range_note(*v)}" for m, v in s.get("reference_max_min", {}).items())
    conv = metric_conventions(
        data_range="the configs' evaluate.data_range: 1 in image units ([0, 1]: MRI clip(I / p99.5, 0, 1), CT "
                   "(HU + 1024) / 4095; CT in mu units with data_range 0.15 = mu_per_unit, the same numbers), the "
                   "intensity range of the normalisation; " + ranges,
        magnitude=True,
        averaging=f"mean ± std over {n.get('mri', 0)} MRI / {n.get('ct', 0)} CT slice(s) ({source}); "
                  "seconds and peak memory per slice; NFE: network evaluations per sample (FISTA-TV: iterations); "
                  "2-sigma coverage: fraction of pixels with ||mean| - |truth|| <= 2 std over the posterior samples; "
                  "settings: benchmarks/configs/generative/<setting>.yaml, run through the reconstruct pipeline")
    rows = []
    for r in summ:
        label = AXIS.get(r["setting"], (None, r["setting"]))[1]
        if "missing" in r:
            rows.append([label, r["method"], "missing (" + r["missing"] + ")", "", "", "", "", "", ""])
            continue
        n_text = str(r["n"]) + (f" ({r['failed']} failed)" if r.get("failed") else "")
        rows.append([label, r["method"], n_text, pm(r["psnr"], r["psnr_std"]), pm(r["ssim"], r["ssim_std"], ".3f"),
                     fmt(r["seconds"], ".1f"), str(r["nfe"]), fmt(r["coverage"], ".2f"), fmt(r["peak_mb"], ".0f")])
    full = table("Per setting and method", ["setting", "method", "slices", "PSNR dB", "SSIM", "s / slice", "NFE",
                                           "2-sigma coverage", "peak MiB"], rows, conventions=conv)

    def column(method: str) -> str:
        return BASELINE if method in ("zero_filled", "fbp") else method

    methods = list(dict.fromkeys(column(r["method"]) for r in summ))
    pivot = []
    for setting in s["settings"]:
        cells = []
        for m in methods:
            r = next((x for x in summ if x["setting"] == setting and column(x["method"]) == m), None)
            cells.append("missing" if r is not None and "missing" in r else
                         ("-" if r is None else pm(r["psnr"], r["psnr_std"])))
        pivot.append([AXIS.get(setting, (None, setting))[1], *cells])
    head = table("PSNR (dB), mean ± std over slices", ["setting", *methods], pivot, conventions=conv,
                 notes=["missing: see the per-setting table for the reason"])
    return [head, full]


def stem(doc: dict[str, Any]) -> str:
    """The file stem of a generative document and its plot: ``generative`` for the val split (the held-out slabs),
    ``generative_<split>`` for another (``generative_test_subject``), so a run on one split never replaces the
    other's results."""
    split = doc.get("settings", {}).get("split", "val")
    return NAME if split == "val" else f"{NAME}_{split}"


def plot(doc: dict[str, Any], out_dir, prefix: str | None = None) -> list[dict[str, Any]]:
    """Write ``<prefix>_psnr.png`` (PSNR against acceleration / views; ``prefix`` default :func:`stem`); returns the
    plot entries."""
    from .plots import COLOURS, MARKERS, line_plot

    prefix = prefix or stem(doc)

    summ = [r for r in (_ordered(doc) if "methods" in doc.get("settings", {}) else summarise(doc["records"]))
            if "missing" not in r]
    # one colour and marker per method in both panels (the MRI and CT baselines share the first)
    slots = list(dict.fromkeys("baseline" if r["method"] in ("zero_filled", "fbp") else r["method"] for r in summ))

    def style(method: str) -> dict:
        i = slots.index("baseline" if method in ("zero_filled", "fbp") else method)
        return {"colour": COLOURS[i % len(COLOURS)], "marker": MARKERS[i % len(MARKERS)]}

    panels = []
    for mod, xlabel in (("mri", "acceleration (x)"), ("ct", "views over 180 deg")):
        series = []
        for m in dict.fromkeys(r["method"] for r in summ):
            pts = sorted((AXIS[r["setting"]][0], r["psnr"]) for r in summ
                         if r["method"] == m and r["setting"].startswith(mod)
                         and AXIS.get(r["setting"], (None,))[0] is not None)
            if pts:
                series.append({"label": m, "x": [p[0] for p in pts], "y": [p[1] for p in pts], **style(m)})
        panels.append({"title": f"{mod.upper()}: PSNR vs {'acceleration' if mod == 'mri' else 'views'}",
                       "x_label": xlabel, "y_label": "PSNR (dB)", "log_x": True, "series": series,
                       "legend": "upper right" if mod == "mri" else "lower right"})
    path = Path(out_dir) / f"{prefix}_psnr.png"
    split = doc.get("settings", {}).get("split", "val")
    line_plot(path, panels, title=f"generative ({split}): mean PSNR over slices (data_range 1)")
    return [{"file": path.name, "caption": f"PSNR (mean over {split} slices) against MRI acceleration and CT views "
                                          "(the limited-angle setting is not on these axes)"}]


def _deltas(doc: dict[str, Any]) -> dict[tuple[str, str], list[float]]:
    """Per (setting, method): PSNR minus FISTA-TV's on the same slice, one value per slice both have."""
    ref = {(r["setting"], r["image"]): r["psnr"] for r in doc["records"]
           if r["method"] == "fista_tv" and r.get("psnr") is not None}
    out: dict[tuple[str, str], list[float]] = {}
    for r in doc["records"]:
        key = (r["setting"], r.get("image"))
        if r["method"] in ("fista_tv", "zero_filled", "fbp") or r.get("psnr") is None or key not in ref:
            continue
        out.setdefault((r["setting"], r["method"]), []).append(r["psnr"] - ref[key])
    return out


def split_gap(val: dict[str, Any], unseen: dict[str, Any]) -> dict[str, Any] | None:
    """The table that sets the two splits side by side: per setting and method, PSNR minus FISTA-TV's on the same
    slice, mean and worst slice, on the held-out slabs of the training subjects (``val``) and on whole subjects
    never trained on (``unseen``), and the gap between them; None when the documents share no setting."""
    dv, du = _deltas(val), _deltas(unseen)
    order = [k for k in du if k in dv]
    if not order:
        return None
    rows = []
    for setting, method in order:
        v, u = dv[(setting, method)], du[(setting, method)]
        mv, mu = sum(v) / len(v), sum(u) / len(u)
        rows.append([AXIS.get(setting, (None, setting))[1], method, f"{mv:+.2f} ({min(v):+.2f})",
                     f"{mu:+.2f} ({min(u):+.2f})", f"{mu - mv:+.2f}", f"{sum(x >= 0 for x in u)} / {len(u)}"])
    dates = [d.get("machine", {}).get("date", "?") for d in (val, unseen)]
    return table("Held-out slabs against unseen subjects: PSNR minus FISTA-TV's on the same slice (dB)",
                 ["setting", "method", "val slabs: mean (worst slice)", "unseen subjects: mean (worst slice)",
                  "gap (unseen - val)", "unseen slices >= FISTA-TV"], rows,
                 notes=[f"val: generative.json ({dates[0]}), unseen: generative_{unseen['settings'].get('split')}.json "
                        f"({dates[1]}); the same configs, seeds and protocol, other slices: val = held-out slabs of "
                        "the subjects the priors were trained on, unseen = whole subjects no prior was trained on"])
