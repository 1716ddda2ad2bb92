"""Talking to SLURM (``sbatch``, ``squeue``, ``sacct``) and the run folder's record of its jobs.

Queries never hang: each one gives up after :data:`genrecon.batch.QUERY_TIMEOUT` seconds and then counts
as unavailable (``None``), like a missing command. Submissions are recorded in ``<run>/slurm/jobs.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from .options import SlurmError


def find_sbatch() -> str:
    """The ``sbatch`` executable, or a :class:`SlurmError` that says what to do."""
    exe = shutil.which("sbatch")
    if exe is None:
        raise SlurmError("SLURM's sbatch was not found: run on a cluster login node (or load its SLURM module), "
                         "start a local cluster with scripts/slurm_local.sh, or use --dry-run to only write the script")
    return exe


def _query(args: list[str]) -> subprocess.CompletedProcess | None:
    """Run a SLURM query; None when the command is missing, hangs or fails to start."""
    from . import QUERY_TIMEOUT  # the package's setting, read at each query (tests and users may change it)

    if shutil.which(args[0]) is None:
        return None
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=QUERY_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None


#: what sbatch prints when it finds no controller (no slurm.conf, DNS SRV lookup failed, controller down)
UNREACHABLE = ("establish a configuration source", "fetch_config", "Unable to contact slurm controller",
               "Connection refused", "Could not find slurm.conf", "Unable to process configuration file")


def _sbatch(script: Path, extra: list[str] = ()) -> str:
    """Submit ``script``; return the job id (``sbatch --parsable`` prints ``ID`` or ``ID;CLUSTER``)."""
    cmd = [find_sbatch(), "--parsable", *extra, str(script)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise SlurmError(f"sbatch did not answer in 60 s (is slurmctld up?): {' '.join(cmd)}") from None
    out = proc.stdout.strip().splitlines()
    job_id = out[-1].split(";")[0].strip() if out else ""
    if proc.returncode != 0 or not job_id.isdigit():
        msg = " ".join(proc.stderr.split()) or f"exit {proc.returncode}, output {proc.stdout!r}"
        if any(s in msg for s in UNREACHABLE):
            raise SlurmError(f"no SLURM controller reachable from here: set SLURM_CONF to your cluster's slurm.conf "
                             f"(or run on a login node), or use --dry-run to write {script.name} only "
                             f"(sbatch said: {msg[:160]})")
        raise SlurmError(f"sbatch refused {script.name}: {msg}")
    return job_id


def queue_states(job_ids: list[str]) -> dict[str, str] | None:
    """``{"123_4": "RUNNING", "124": "PENDING", ...}`` from ``squeue`` (array tasks one by one); None if absent."""
    if not job_ids:
        return {}
    proc = _query(["squeue", "-h", "-r", "-j", ",".join(job_ids), "-o", "%i|%T|%r"])
    if proc is None:
        return None
    if proc.returncode != 0 and "Invalid job id" not in proc.stderr:
        return None
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2:
            reason = parts[2] if len(parts) > 2 and parts[2] not in ("None", "") else ""
            states[parts[0]] = parts[1] + (f" ({reason})" if reason else "")
    return states


def accounting_states(job_ids: list[str]) -> dict[str, str] | None:
    """States from ``sacct`` (finished jobs); None when the cluster keeps no accounting or does not answer."""
    if not job_ids:
        return {}
    proc = _query(["sacct", "-n", "-P", "-X", "-j", ",".join(job_ids), "-o", "JobID,State,ExitCode"])
    if proc is None or proc.returncode != 0:
        return None
    states = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            states[parts[0]] = parts[1].split()[0] if parts[1] else "UNKNOWN"
    return states


# ---------------------------------------------------------------------------------------------------------
# the run folder's own records
# ---------------------------------------------------------------------------------------------------------
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_jobs(slurm_dir: Path) -> list[dict]:
    """Every submission recorded in ``<dir>/jobs.json`` (oldest first)."""
    data = _read_json(slurm_dir / "jobs.json")
    return list(data.get("jobs", [])) if isinstance(data, dict) else []


def _record_job(slurm_dir: Path, record: dict) -> None:
    from ..io.writers import write_json

    jobs = read_jobs(slurm_dir) + [record]
    write_json(slurm_dir / "jobs.json", {"jobs": jobs})


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _active(slurm_dir: Path, kinds: tuple[str, ...]) -> list[str]:
    """Recorded jobs of these kinds that squeue still lists (pending or running)."""
    ids = [j["job_id"] for j in read_jobs(slurm_dir) if j.get("kind") in kinds and j.get("job_id")]
    states = queue_states(ids) or {}
    return sorted({key.split("_")[0] for key in states})
