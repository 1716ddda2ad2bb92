"""The reconstruction pipeline: config -> loader -> simulator -> reconstructors -> saved cases -> report.

- :mod:`.plan`: which cases a config selects, loading and preparing each (size, normalisation);
- :mod:`.records`: the hashes results are stored with, and whether a run folder's results belong to a config;
- :mod:`.locking`: one writer per run folder (shards of one array excepted);
- :mod:`.execute`: :func:`run`, every case through the simulator and each method.
"""

from ..seeding import derive_seed
from .execute import nonfinite_reason, run, write_run_config
from .locking import RunLock, RunLockedError
from .plan import (
    HU_MAX,
    HU_MIN,
    CaseRef,
    case_dirname,
    case_key,
    load_case,
    make_loader,
    plan,
    resolve_device,
    shard,
    sources,
)
from .records import case_hash, check_output_dir, config_differences, method_hash, read_record

__all__ = [
    "HU_MAX", "HU_MIN", "CaseRef", "RunLock", "RunLockedError", "case_dirname", "case_hash", "case_key",
    "check_output_dir", "config_differences", "derive_seed", "load_case", "make_loader", "method_hash",
    "nonfinite_reason", "plan", "read_record", "resolve_device", "run", "shard", "sources", "write_run_config",
]
