"""``genrecon benchmark``: quality and speed of every method against the peers, measured side by side.

Suites (one module each): ``operators`` (forward/adjoint speed, adjoint error, batch memory), ``classical``
(zero-filled / FBP / FISTA-TV against BART, SigPy, ASTRA, scikit-image), ``generative`` (FISTA-TV, latent
inversion and DPS on held-out slices), ``scaling`` (FISTA-TV against image and batch size, CPU and CUDA) and
``smoke`` (all of them at tiny sizes, in seconds); ``all`` is the four full suites. Each writes
``<out>/<suite>.json`` (and PNG plots), then ``<out>/RESULTS.md`` is regenerated from every suite file
there (:mod:`genrecon.benchmark.results`). Peers that are not installed are reported as missing, with why.

Example:
    >>> parse_suites("all")
    ['operators', 'classical', 'generative', 'scaling']
    >>> parse_suites("smoke, operators")
    ['smoke', 'operators']
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..registry import did_you_mean
from ..io.writers import write_json
from .common import Log, Options, load_average, no_log
from .results import write_results

SUITES = ("operators", "classical", "generative", "scaling", "smoke")
#: what ``all`` runs
FULL = ("operators", "classical", "generative", "scaling")


def parse_suites(text: str) -> list[str]:
    """``"a,b"`` -> suite names (``all`` expanded, duplicates dropped); a one-line ConfigError otherwise."""
    names: list[str] = []
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise ConfigError(f"no suite given; choose from: {', '.join(SUITES)}, all")
    for part in parts:
        if not part:
            continue
        if part == "all":
            names += list(FULL)
        elif part in SUITES:
            names.append(part)
        else:
            raise ConfigError(f"unknown suite '{part}'{did_you_mean(part, (*SUITES, 'all'))}; choose from: "
                              f"{', '.join(SUITES)}, all (comma-separated)")
    return list(dict.fromkeys(names))


def suite_module(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def preflight(names: list[str], opts: Options) -> list[str]:
    """Problems that would stop a suite (missing data), found before any suite starts."""
    problems: list[str] = []
    for name in names:
        check = getattr(suite_module(name), "preflight", None)
        if check is not None:
            problems += check(opts)
    return problems


def run_suite(name: str, opts: Options, log: Log = no_log, plan: Any = None) -> dict[str, Any]:
    """Run one suite, write its plots and ``<out>/<stem>.json`` (:func:`doc_stem`); returns its document."""
    module = suite_module(name)
    t0 = time.perf_counter()
    doc = module.run(opts, log, plan) if plan is not None else module.run(opts, log)
    doc["seconds"] = time.perf_counter() - t0
    doc.setdefault("machine", {})["load_end"] = load_average()
    Path(opts.out).mkdir(parents=True, exist_ok=True)
    plot = getattr(module, "plot", None)
    if plot is not None:
        doc["plots"] = plot(doc, opts.out)
    write_json(Path(opts.out) / f"{doc_stem(name, doc)}.json", doc)
    return doc


def doc_stem(name: str, doc: dict[str, Any]) -> str:
    """The file stem of suite ``name``'s document: the suite's name, or its module's ``stem(doc)`` (generative:
    one file per split)."""
    stem = getattr(suite_module(name), "stem", None)
    return stem(doc) if stem is not None else name


def run(names: list[str], opts: Options, log: Log = no_log) -> tuple[list[dict[str, Any]], Path]:
    """Run the suites in order; after each, regenerate ``RESULTS.md``. Returns the documents and its path."""
    problems = preflight(names, opts)
    if problems:
        raise DataError("; ".join(problems))
    docs = []
    results = Path(opts.out) / "RESULTS.md"
    for name in names:
        docs.append(run_suite(name, opts, log))
        results = write_results(opts.out)
    return docs, results
