#!/usr/bin/env python
"""Fetch real scans and write genrecon's bundled samples and training datasets.

    python scripts/prepare_data.py all                 # fetch + samples + datasets (+ test_subject, extended)
    python scripts/prepare_data.py all --base-only     # the four original volumes only
    python scripts/prepare_data.py fetch [--apt-update]
    python scripts/prepare_data.py samples             # genrecon/data/samples/*
    python scripts/prepare_data.py datasets [--size 128]
    python scripts/prepare_data.py folder DIR --modality mri --out data/prepared/my-mri-128.h5

Downloads go to data/cache/ and datasets to data/prepared/ (both git-ignored). The work is done by
genrecon.data_prep; this file only parses arguments and prints progress.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genrecon import data_prep  # noqa: E402
from genrecon.errors import GenreconError  # noqa: E402


def _log(message: str) -> None:
    print(message, flush=True)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache", type=Path, default=ROOT / "data" / "cache", help="download/unpack folder")
    common.add_argument("--prepared", type=Path, default=ROOT / "data" / "prepared", help="dataset folder")
    common.add_argument("--samples-dir", type=Path, default=ROOT / "genrecon" / "data" / "samples",
                        help="where the bundled samples go")
    common.add_argument("--apt-update", action="store_true",
                        help="run apt-get update before apt-get download (needs root)")
    common.add_argument("--size", type=int, default=128, help="side of the dataset images (default 128)")
    common.add_argument("--base-only", action="store_true",
                        help="only the original four volumes: no pyradiomics/pydeface download, no test_subject "
                             "group, no extended datasets")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="step", required=True)
    for name, help_ in (("fetch", "download and unpack the packages into --cache"),
                        ("samples", "write the bundled samples (fetches first if needed)"),
                        ("datasets", "write the training HDF5 files (fetches first if needed)"),
                        ("all", "fetch, samples and datasets")):
        sub.add_parser(name, help=help_, parents=[common])
    fo = sub.add_parser("folder", parents=[common],
                        help="build a training HDF5 from a folder of NIfTI/DICOM/HDF5/PNG/TIFF/.npy")
    fo.add_argument("input", type=Path)
    fo.add_argument("--modality", choices=["mri", "ct"], required=True)
    fo.add_argument("--out", type=Path, required=True)
    fo.add_argument("--normalisation", choices=["percentile", "hu"], default=None)
    fo.add_argument("--split", choices=["slab", "volume"], default="slab")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        if args.step == "folder":
            counts = data_prep.build_dataset_from_folder(
                args.input, args.out, modality=args.modality, size=args.size,
                normalisation=args.normalisation, split=args.split, log=_log)
            _log(f"{args.out}: {counts['train']} train, {counts['val']} val")
        else:
            sources = data_prep.fetch(args.cache, apt_update=args.apt_update, log=_log)
            if not args.base_only:
                sources = dataclasses.replace(sources, extra=data_prep.fetch_more(args.cache, log=_log))
            if args.step in ("samples", "all"):
                data_prep.write_samples(sources, args.samples_dir, log=_log)
                total = sum(p.stat().st_size for p in args.samples_dir.glob("*.nii.gz"))
                _log(f"samples: {total / 1e6:.2f} MB in {args.samples_dir}")
            if args.step in ("datasets", "all"):
                for name, counts in data_prep.build_datasets(sources, args.prepared, size=args.size,
                                                             log=_log).items():
                    size_mb = (args.prepared / name).stat().st_size / 1e6
                    held = f", {counts['test_subject']} test_subject" if "test_subject" in counts else ""
                    _log(f"{name}: {counts['train']} train, {counts['val']} val{held}, {size_mb:.1f} MB")
    except GenreconError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    _log(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
