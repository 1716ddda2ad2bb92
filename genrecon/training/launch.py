"""``python -m genrecon.training --config FILE [--resume] [--set k=v]``: the entry ``torchrun`` starts.

Run::

    torchrun --standalone --nproc_per_node=2 -m genrecon.training --config configs/train_prior_tiny.yaml
    python -m genrecon.training --config configs/train_prior_tiny.yaml --set train.steps=50   # one process
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..errors import GenreconError
from .config import load_train_config
from .loop import train_prior


def _print_progress(step: int, total: int, metrics: dict[str, float]) -> None:
    if "train_loss" not in metrics and "val_loss" not in metrics:
        return
    parts = [f"step {step}/{total}"] + [
        f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items()
    ]
    print("  ".join(parts), flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m genrecon.training --config FILE [--resume] [--set k=v ...] [--summary-json PATH]``."""
    parser = argparse.ArgumentParser(prog="python -m genrecon.training", description="Train a genrecon prior.")
    parser.add_argument("--config", required=True, help="train-prior YAML")
    parser.add_argument("--resume", action="store_true", help="continue from output.dir/checkpoint.pt")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--summary-json", default=None, help="also write this rank's summary here ({rank} allowed)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    try:
        cfg = load_train_config(args.config, args.overrides)
        progress = None if args.quiet or rank != 0 else _print_progress
        summary = train_prior(cfg, resume=args.resume, progress=progress)
    except GenreconError as exc:
        print(f"error (rank {rank}): {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    if args.summary_json:
        out = Path(args.summary_json.replace("{rank}", str(rank)))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=2))
    if rank == 0 and not args.quiet:
        print(json.dumps(summary, indent=2), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
