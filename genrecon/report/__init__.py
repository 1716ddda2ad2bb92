"""Metrics and reports from a run folder.

``evaluate_run(run_dir)`` reads the resolved ``config.yaml`` and every case's saved ground truth and
reconstructions, computes the configured metrics under the stated ``data_range`` convention, and writes
``report.json``, ``report.csv`` (one row per case and method), ``report.md`` (aggregate mean ± std) and,
when ``png`` is in ``output.save``, a figure panel per case. It merges the cases of every shard.

Modules: :mod:`.evaluate` (metrics from the saved files), :mod:`.summary` (aggregates and tables),
:mod:`.files` (the report files and stacked volumes).
"""

from ..metrics import coverage
from .evaluate import _crop, data_range_of, evaluate_run, load_json  # noqa: F401 (_crop: tests)
from .files import write_reports, write_volumes
from .summary import aggregate, best_methods, convention_text, summary_table

__all__ = ["aggregate", "best_methods", "convention_text", "coverage", "data_range_of", "evaluate_run", "load_json",
           "summary_table", "write_reports", "write_volumes"]


