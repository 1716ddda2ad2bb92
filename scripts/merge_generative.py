#!/usr/bin/env python
"""Merge generative-suite runs of disjoint settings on one split into the suite's document, then RESULTS.md.

    python scripts/merge_generative.py --out benchmarks RUN_DIR_OR_JSON [...]

Each input is a ``generative*.json`` written by ``genrecon benchmark generative --settings ... --out DIR`` (or its
folder). The merged document goes to ``<out>/generative.json`` (val) or ``generative_<split>.json``, with its plot,
and RESULTS.md is rewritten; each run's settings, machine, commit and load stay listed in it
(:func:`genrecon.benchmark.generative.merge`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    from genrecon.benchmark import write_results
    from genrecon.benchmark.generative import merge, plot, stem
    from genrecon.io.writers import write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("inputs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    docs = []
    for path in args.inputs:
        files = sorted(path.glob("generative*.json")) if path.is_dir() else [path]
        if len(files) != 1:
            print(f"error: {path}: expected one generative*.json, found {len(files)}", file=sys.stderr)
            return 1
        docs.append(json.loads(files[0].read_text(encoding="utf-8")))
    try:
        doc = merge(docs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    doc["plots"] = plot(doc, args.out)
    write_json(args.out / f"{stem(doc)}.json", doc)
    print(f"{args.out / (stem(doc) + '.json')}: {', '.join(doc['settings']['settings'])}; "
          f"{write_results(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
