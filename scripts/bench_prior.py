"""Score another prior on a setting of the generative suite: the suite's config, slices, seeds and overrides, with
the prior of every method that uses one of the same kind replaced (e.g. a prior you trained with train-prior).

    python scripts/bench_prior.py --setting ct30 --prior runs/train/ct-diffusion-extended/prior.pt \\
        --split test_subject --slices 4 --samples 2 --out runs/bench-prior

Runs FISTA-TV and the methods whose prior has the new prior's kind (diffusion: ``dps`` variants; generator:
``latent_inversion`` variants) through the same pipeline as ``genrecon benchmark generative`` (same labels, so the
same random draws as the suite's run of that setting and split), on one torch thread. Writes
``<out>/<setting>_<split>.json`` (config, per-slice records) and prints mean PSNR and 2-sigma coverage per method.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from genrecon.benchmark import generative as G
from genrecon.benchmark.common import Options
from genrecon.errors import GenreconError
from genrecon.io.writers import write_json
from genrecon.priors.checkpoint import load_prior, read_checkpoint


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--setting", required=True, choices=G.SETTINGS)
    ap.add_argument("--prior", required=True, help="a prior file (.pt) or pretrained:NAME")
    ap.add_argument("--split", default="val", choices=["val", "test_subject"])
    ap.add_argument("--slices", type=int, default=4)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--out", default="runs/bench-prior")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    try:
        kind = load_prior(args.prior)[1]["kind"]  # the new prior: checked whole (weights fit), once
        kinds: dict[str, str] = {}  # the suite's priors: the kind field only (no model built), each read once
        opts = Options(out=out, threads=1, slices=args.slices, samples=args.samples, split=args.split,
                       settings=(args.setting,))
        raw, _ = G.run_config(args.setting, G.default_plan(opts), opts, out / "runs" / args.setting)
        keep = []
        for rc in raw["reconstructors"]:
            params = rc.get("params") or {}
            if rc["name"] == "fista_tv":
                keep.append(rc)
            elif "prior" in params:
                name = str(params["prior"])
                if name not in kinds:
                    kinds[name] = read_checkpoint(name)[0].get("kind")
                if kinds[name] == kind:
                    params["prior"] = str(args.prior)
                    keep.append(rc)
        raw["reconstructors"] = keep
        t0 = time.perf_counter()
        report, peaks = G.run_setting(raw, opts, out / "runs" / args.setting)
    except GenreconError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    recs = G.records_of(args.setting, report, peaks)
    write_json(out / f"{args.setting}_{args.split}.json",
               {"setting": args.setting, "split": args.split, "prior": str(args.prior), "config": raw, "records": recs,
                "seconds": time.perf_counter() - t0})
    for label in dict.fromkeys(r["method"] for r in recs):
        psnr = [r["psnr"] for r in recs if r["method"] == label and r.get("psnr") is not None]
        cov = [r["coverage"] for r in recs if r["method"] == label and r.get("coverage") is not None]
        failed = sum(1 for r in recs if r["method"] == label and "failed" in r)
        print(f"{label}: " + (f"{sum(psnr) / len(psnr):.2f} dB" if psnr else "no PSNR")
              + (f", coverage {sum(cov) / len(cov):.2f}" if cov else "") + (f", {failed} slice(s) failed" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
