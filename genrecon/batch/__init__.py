"""Batch jobs on a SLURM cluster: job-array reconstruction, its status, and multi-process prior training.

A reconstruction run becomes one ``sbatch`` job array of ``N`` tasks; task ``i`` runs
``genrecon reconstruct --shard i/N`` (cases ``i, i+N, i+2N, ...``). Per-case seeds do not depend on the
sharding and finished (case, method) pairs are skipped on a rerun, so the array's results equal a
single-process run's, and a task that is stopped and run again loses nothing. Everything lives in the run
folder::

    <run>/slurm/config.yaml          the resolved config the tasks run (overrides applied)
    <run>/slurm/reconstruct.sbatch   the job-array script (readable; `sbatch` it by hand if you like)
    <run>/slurm/evaluate.sbatch      merges all cases into one report once every task succeeded
    <run>/slurm/jobs.json            every submission: job ids, array size, options
    <run>/slurm/tasks/<job>_<i>.json one record per finished task attempt (outcome, exit code)
    <run>/slurm/<job>_<i>.out        the tasks' logs

Time limits and preemption: ``--signal=B:TERM@S`` makes SLURM send SIGTERM to the job script ``S``
seconds before the time limit; the script passes it on, genrecon stops like Ctrl-C (exit 130, finished work
kept) and the script requeues the task (``scontrol requeue <job>_<i>``), at most ``max_requeue`` times.
A task cancelled by a user (``scancel``) is not requeued. Task states come from ``squeue``, then
``sacct`` when the cluster keeps accounting, then the task records; otherwise they are ``UNKNOWN``.

Example:
    >>> opts = SlurmOptions(partition="gpu", time="2:00:00", gpus="1", cpus=4, mem="16G")
    >>> opts.problems()
    []
    >>> [d for d in opts.directives() if "time" in d]
    ['#SBATCH --time=2:00:00']
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, GenreconError

#: seconds any SLURM query may take before its answer counts as unavailable
QUERY_TIMEOUT = 10.0
#: exit status of genrecon when SIGTERM or Ctrl-C stopped it (see genrecon.cli.common.handle_errors)
EXIT_INTERRUPTED = 130

_TIME_FORMATS = [  # SLURM's --time formats -> (days, hours, minutes, seconds) group names
    re.compile(r"^(?P<m>\d+)$"),
    re.compile(r"^(?P<m>\d+):(?P<s>\d{1,2})$"),
    re.compile(r"^(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2})$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d+)$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d+):(?P<m>\d{1,2})$"),
    re.compile(r"^(?P<d>\d+)-(?P<h>\d+):(?P<m>\d{1,2}):(?P<s>\d{1,2})$"),
]
_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_NAMES = re.compile(r"^[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*$")
_MEM = re.compile(r"^[1-9]\d*[KMGT]?$")
_GPUS = re.compile(r"^([A-Za-z0-9_.-]+:)?[1-9]\d*$")


class SlurmError(GenreconError):
    """SLURM is missing, refused a job, or did not answer."""

    exit_code = 1


def time_limit_seconds(text: str) -> int | None:
    """Seconds of a SLURM ``--time`` value (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``), else None."""
    for pattern in _TIME_FORMATS:
        m = pattern.match(text)
        if m:
            g = {k: int(v) for k, v in m.groupdict().items() if v is not None}
            return ((g.get("d", 0) * 24 + g.get("h", 0)) * 60 + g.get("m", 0)) * 60 + g.get("s", 0)
    return None


@dataclass(frozen=True)
class SlurmOptions:
    """Resources and behaviour of the submitted jobs; ``None`` leaves a setting to the cluster's default.

    Args:
        partition: ``--partition`` (one name or a comma-separated list).
        time: ``--time`` limit, e.g. ``"30"`` (minutes), ``"2:00:00"`` or ``"1-12"``.
        gpus: ``--gpus`` per array task (``"1"`` or ``"a100:1"``); per node for training.
        cpus: ``--cpus-per-task``; also sets ``OMP_NUM_THREADS`` in the job.
        mem: ``--mem`` per node, e.g. ``"16G"``.
        account: ``--account`` to charge.
        signal_before: seconds before the time limit at which the job script gets SIGTERM.
        max_requeue: how many times a task stopped by that signal (or preemption) requeues itself.
        setup: shell lines run before genrecon, e.g. ``"module load cuda/12.1"``.
    """

    partition: str | None = None
    time: str | None = None
    gpus: str | None = None
    cpus: int | None = None
    mem: str | None = None
    account: str | None = None
    signal_before: int = 60
    max_requeue: int = 3
    setup: tuple[str, ...] = field(default=())

    def problems(self) -> list[str]:
        """Every invalid option, each as ``--option: expected ..., got ...``."""
        out = []
        if self.partition is not None and not _NAMES.match(self.partition):
            out.append(f"--partition: expected a partition name (or a comma-separated list), got {self.partition!r}")
        if self.account is not None and not _NAME.match(self.account):
            out.append(f"--account: expected an account name, got {self.account!r}")
        if self.mem is not None and not _MEM.match(self.mem):
            out.append(f"--mem: expected a size such as 16G, 8000M or 4000 (MB), got {self.mem!r}")
        if self.gpus is not None and not _GPUS.match(self.gpus):
            out.append(f"--gpus: expected a count such as 1 or TYPE:COUNT such as a100:2, got {self.gpus!r}")
        if self.cpus is not None and self.cpus < 1:
            out.append(f"--cpus: expected an integer >= 1, got {self.cpus}")
        if self.signal_before < 1:
            out.append(f"--signal-before: expected seconds >= 1, got {self.signal_before}")
        if self.max_requeue < 0:
            out.append(f"--max-requeue: expected an integer >= 0, got {self.max_requeue}")
        if self.time is not None:
            seconds = time_limit_seconds(self.time)
            if seconds is None or seconds == 0:
                out.append(f"--time: expected MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS, got {self.time!r}")
            elif seconds <= self.signal_before:
                out.append(f"--time {self.time}: the job would be told to stop at once (--signal-before is "
                           f"{self.signal_before} s): give a longer limit or a smaller --signal-before")
        for line in self.setup:
            if "\n" in line or not line.strip():
                out.append(f"--setup: expected one non-empty shell line per option, got {line!r}")
        return out

    def directives(self, *, gpus_flag: str = "--gpus") -> list[str]:
        """The ``#SBATCH`` lines of the options that are set."""
        pairs = [("--partition", self.partition), ("--account", self.account), ("--time", self.time),
                 (gpus_flag, self.gpus), ("--cpus-per-task", self.cpus), ("--mem", self.mem)]
        return [f"#SBATCH {flag}={value}" for flag, value in pairs if value is not None]


@dataclass(frozen=True)
class Submission:
    """What :func:`submit_array` or :func:`submit_train` did."""

    run_dir: Path
    script: Path
    job_id: str | None  # None for a dry run
    n_tasks: int = 1
    n_cases: int | None = None
    evaluate_job_id: str | None = None
    notes: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------------------
# SLURM commands
# ---------------------------------------------------------------------------------------------------------
def find_sbatch() -> str:
    """The ``sbatch`` executable, or a :class:`SlurmError` that says what to do."""
    exe = shutil.which("sbatch")
    if exe is None:
        raise SlurmError("SLURM's sbatch was not found: run on a cluster login node (or load its SLURM module), "
                         "start a local cluster with scripts/slurm_local.sh, or use --dry-run to only write the script")
    return exe


def _query(args: list[str]) -> subprocess.CompletedProcess | None:
    """Run a SLURM query; None when the command is missing, hangs or fails to start."""
    if shutil.which(args[0]) is None:
        return None
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=QUERY_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None


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


class _Rollback:
    """Remember the files a submission writes; put everything back as it was if the submission fails."""

    def __init__(self) -> None:
        self.files: list[tuple[Path, bytes | None]] = []
        self.dirs: list[Path] = []

    def mkdir(self, path: Path) -> None:
        missing = [p for p in [path, *path.parents] if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        self.dirs.extend(missing)  # deepest first

    def write(self, path: Path, text: str, mode: int = 0o644) -> None:
        from ..io.writers import write_text

        self.files.append((path, path.read_bytes() if path.is_file() else None))
        write_text(path, text)
        path.chmod(mode)

    def undo(self) -> None:
        for path, old in reversed(self.files):
            if old is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(old)
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------------------
# script text
# ---------------------------------------------------------------------------------------------------------
def _q(value: Any) -> str:
    return shlex.quote(str(value))


def _job_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)


def _p(path: Path) -> str:
    """A path in an ``#SBATCH`` line (sbatch reads double quotes there, not backslashes)."""
    text = str(path)
    return f'"{text}"' if any(c.isspace() for c in text) else text


_TERM_HANDLER = """\
# SIGTERM arrives here {before} s before the time limit (--signal=B:TERM@{before}), on preemption, and from
# `scancel --signal=TERM --batch`. The handler notes the job's state at that moment (RUNNING: time limit or
# preemption, worth a requeue; COMPLETING: cancelled by a user, not requeued) and passes the signal on.
term_state=""
child=""
on_term() {{
    if [ -z "$term_state" ]; then
        term_state=$(scontrol show job "$SLURM_JOB_ID" -o 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2)
        term_state=${{term_state:-UNKNOWN}}
        echo "[genrecon] SIGTERM received (job state $term_state)"
    fi
{forward}
}}
trap on_term TERM
"""

_FORWARD_CHILD = '    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null'
# srun would answer SIGTERM by killing its step at once; signalling the step's processes instead lets every
# rank finish its step, agree to stop and write the checkpoint (exit 130) before the time runs out
_FORWARD_STEPS = """\
    # signal the job steps (the torchrun agents and their workers), not srun itself
    scancel --signal=TERM "$SLURM_JOB_ID" 2>/dev/null || { [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; }"""

_FINISH = """\
# The first `wait` returns early when the trap runs; the second collects the real exit status.
wait "$child"; rc=$?
if [ -n "$term_state" ]; then wait "$child"; rc=$?; fi

# requeue on time limit / preemption (at most MAX_REQUEUE times), else exit with the command's status:
# 0 done; {interrupted} stopped by a signal, finished work kept (submit again to finish); 1 data error; 2 config error
if [ "$rc" -ne 0 ] && [ "$term_state" = RUNNING ] && [ "$ATTEMPT" -lt "$MAX_REQUEUE" ]; then
    record requeued "$rc"
    if scontrol requeue "$REQUEUE_ID"; then
        echo "[genrecon] stopped before the time limit; requeued $REQUEUE_ID (requeue $((ATTEMPT + 1)) of at most $MAX_REQUEUE)"
        exit 0
    fi
    echo "[genrecon] scontrol requeue $REQUEUE_ID failed; submit again to finish"
fi
if [ "$rc" -eq 0 ]; then
    record completed 0
elif [ "$rc" -eq {interrupted} ] || [ -n "$term_state" ]; then
    # a signal may end genrecon before its handler runs (exit 128+15=143): the task's code is {interrupted} either way
    echo "[genrecon] interrupted (exit $rc): finished work is kept; submit the same command again to finish"
    rc={interrupted}
    record interrupted "$rc"
else
    record failed "$rc"
fi
exit "$rc"
"""

_RECORD = """\
# one small JSON record per attempt, read by `genrecon batch status` (works without SLURM accounting)
record() {{  # record OUTCOME EXIT_CODE
    local file="$RECORDS/$RECORD_NAME.json"
    mkdir -p "$RECORDS"
    printf '{{"job": "%s", "task": %s, "attempt": %d, "outcome": "%s", "exit_code": %d, "signal_state": "%s", "host": "%s", "end": "%s"}}\\n' \\
        "$REQUEUE_ID" "{task_json}" "$ATTEMPT" "$1" "$2" "$term_state" "$(hostname)" "$(date -Is)" >"$file.tmp.$$" \\
        && mv -f "$file.tmp.$$" "$file"
}}
"""


def _header(title: list[str], directives: list[str]) -> str:
    lines = ["#!/bin/bash"] + [f"# {t}".rstrip() for t in title] + ["#"] + directives
    return "\n".join(lines) + "\n"


def _setup_block(setup: tuple[str, ...]) -> str:
    if not setup:
        return ""
    return "# environment set-up (--setup)\n" + "\n".join(setup) + "\n\n"


def array_script(
    *,
    run_dir: Path,
    config: Path,
    n_tasks: int,
    n_cases: int,
    options: SlurmOptions,
    workdir: Path,
    python: str = sys.executable,
    max_running: int | None = None,
    job_name: str | None = None,
) -> str:
    """The text of the job-array script: task ``i`` runs ``genrecon reconstruct --shard i/n_tasks``.

    Args:
        run_dir: absolute run folder (``output.dir``); logs go to ``run_dir/slurm``.
        config: absolute path of the resolved config the tasks run.
        n_tasks: array size ``N`` (``--array=0-(N-1)``).
        n_cases: number of cases (documented in the header only).
        options: resources and requeue behaviour.
        workdir: the job's working directory (relative data paths in the config resolve from it).
        python: interpreter that runs genrecon on the compute nodes.
        max_running: at most this many tasks at once (``--array=0-(N-1)%M``).
        job_name: ``--job-name`` (default ``genrecon-<run folder name>``).
    """
    slurm = run_dir / "slurm"
    array = f"0-{n_tasks - 1}" + (f"%{max_running}" if max_running else "")
    directives = [
        f"#SBATCH --job-name={_job_name(job_name or 'genrecon-' + run_dir.name)}",
        f"#SBATCH --array={array}",
        f"#SBATCH --output={_p(slurm / '%A_%a.out')}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --chdir={_p(workdir)}",
        "#SBATCH --requeue",
        f"#SBATCH --signal=B:TERM@{options.signal_before}",
        *options.directives(),
    ]
    title = [
        f"genrecon reconstruction as a SLURM job array, written by `genrecon batch submit` at {_now()}.",
        f"Task i of {n_tasks} runs `genrecon reconstruct --shard i/{n_tasks}`: cases i, i+{n_tasks}, i+{2 * n_tasks}, ... "
        f"of the {n_cases} in the config.",
        "Per-case seeds do not depend on the sharding, so the results equal a single-process run; a task run",
        "again skips the (case, method) pairs it already finished. Submit by hand with: sbatch THIS_FILE",
        "",
        f"run folder: {run_dir}",
        f"config:     {config} (resolved, overrides applied)",
        f"logs:       {slurm}/<job>_<task>.out; evaluation: {slurm}/evaluate.sbatch after all tasks succeed",
    ]
    cmd = (f"{_q(python)} -m genrecon.cli.main reconstruct --config {_q(config)} "
           f'--shard "$SLURM_ARRAY_TASK_ID/$N_TASKS" --no-evaluate -q &')
    body = f"""
set -uo pipefail  # no -e: the exit status of genrecon is examined below

N_TASKS={n_tasks}
MAX_REQUEUE={options.max_requeue}
: "${{SLURM_ARRAY_TASK_ID:?this is a job-array script: submit it with sbatch}}"
# braces matter: "$SLURM_ARRAY_JOB_ID_$SLURM_ARRAY_TASK_ID" would read a variable named SLURM_ARRAY_JOB_ID_
REQUEUE_ID="${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}}"
ATTEMPT=${{SLURM_RESTART_COUNT:-0}}
RECORDS={_q(slurm / "tasks")}
RECORD_NAME="$REQUEUE_ID"
export OMP_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}}

{_setup_block(options.setup)}echo "[genrecon] task $SLURM_ARRAY_TASK_ID of $N_TASKS (job $REQUEUE_ID, attempt $ATTEMPT) on $(hostname) at $(date -Is)"

{_RECORD.format(task_json="$SLURM_ARRAY_TASK_ID")}
{_TERM_HANDLER.format(before=options.signal_before, forward=_FORWARD_CHILD)}
# genrecon runs in the background so that the trap can run while it works
{cmd}
child=$!

{_FINISH.format(interrupted=EXIT_INTERRUPTED)}"""
    return _header(title, directives) + body


def evaluate_script(*, run_dir: Path, options: SlurmOptions, workdir: Path, python: str = sys.executable,
                    job_name: str | None = None) -> str:
    """The text of the job that merges every case into one report (``genrecon evaluate RUN``)."""
    directives = [
        f"#SBATCH --job-name={_job_name(job_name or 'genrecon-' + run_dir.name)}-evaluate",
        f"#SBATCH --output={_p(run_dir / 'slurm' / 'evaluate_%j.out')}",
        f"#SBATCH --chdir={_p(workdir)}",
        *SlurmOptions(partition=options.partition, account=options.account, time=options.time,
                      cpus=options.cpus, mem=options.mem).directives(),
    ]
    title = [
        "genrecon: merge every case of the run into report.json/.csv/.md (`genrecon evaluate`).",
        "Submitted with --dependency=afterok:<array job> --kill-on-invalid-dep=yes: it runs once every task",
        "succeeded and is cancelled if one fails (then submit again, or run `genrecon evaluate` yourself).",
    ]
    body = f"""
set -uo pipefail

REQUEUE_ID="${{SLURM_JOB_ID:?submit this script with sbatch}}"
ATTEMPT=${{SLURM_RESTART_COUNT:-0}}
RECORDS={_q(run_dir / "slurm" / "tasks")}
RECORD_NAME="$SLURM_JOB_ID"
term_state=""
export OMP_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-1}}

{_setup_block(options.setup)}{_RECORD.format(task_json="0")}
{_q(python)} -m genrecon.cli.main evaluate {_q(run_dir)}
rc=$?
if [ "$rc" -eq 0 ]; then record completed 0; else record failed "$rc"; fi
exit "$rc"
"""
    return _header(title, directives) + body


def train_script(
    *,
    run_dir: Path,
    config: Path,
    nodes: int,
    procs_per_node: int,
    options: SlurmOptions,
    workdir: Path,
    python: str = sys.executable,
    job_name: str | None = None,
) -> str:
    """The text of a prior-training job: ``srun`` starts one ``torchrun`` per node (c10d rendezvous).

    Args:
        run_dir: absolute training folder (``output.dir``); logs go to ``run_dir/slurm``.
        config: absolute path of the resolved training config.
        nodes: ``--nodes``; each node runs ``procs_per_node`` processes (``WORLD_SIZE = nodes * procs_per_node``).
        procs_per_node: processes per node (one per GPU on GPU nodes).
        options: resources (``gpus`` is per node here) and requeue behaviour.
        workdir: the job's working directory.
        python: interpreter on the compute nodes.
        job_name: ``--job-name`` (default ``genrecon-train-<folder name>``).
    """
    slurm = run_dir / "slurm"
    cpus = options.cpus or procs_per_node
    directives = [
        f"#SBATCH --job-name={_job_name(job_name or 'genrecon-train-' + run_dir.name)}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --output={_p(slurm / 'train_%j.out')}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --chdir={_p(workdir)}",
        "#SBATCH --requeue",
        f"#SBATCH --signal=B:TERM@{options.signal_before}",
        *dataclasses.replace(options, cpus=cpus).directives(gpus_flag="--gpus-per-node"),
    ]
    title = [
        f"genrecon prior training on {nodes} node(s) x {procs_per_node} process(es), written by "
        f"`genrecon batch train` at {_now()}.",
        "srun starts one torchrun agent per node (--ntasks-per-node=1); the agents meet through a c10d",
        "rendezvous on the first node and start procs-per-node workers each; gradients are averaged over all",
        "ranks every step and rank 0 writes checkpoints. `--resume` continues from output.dir/checkpoint.pt,",
        "so a requeued job (time limit, preemption) picks up where it stopped.",
        "",
        f"training folder: {run_dir}",
        f"config:          {config} (resolved, overrides applied)",
        f"summaries:       {slurm}/summary_<rank>.json (weights_sha256 agrees across ranks)",
    ]
    body = f"""
set -uo pipefail  # no -e: the exit status of the training is examined below

NPROC_PER_NODE={procs_per_node}
MAX_REQUEUE={options.max_requeue}
: "${{SLURM_JOB_ID:?submit this script with sbatch}}"
REQUEUE_ID="$SLURM_JOB_ID"
ATTEMPT=${{SLURM_RESTART_COUNT:-0}}
RECORDS={_q(slurm / "tasks")}
RECORD_NAME="$SLURM_JOB_ID"
# the CPUs of a node are shared by its worker processes
export OMP_NUM_THREADS=$(( ${{SLURM_CPUS_PER_TASK:-$NPROC_PER_NODE}} / NPROC_PER_NODE ))
[ "$OMP_NUM_THREADS" -ge 1 ] || export OMP_NUM_THREADS=1
# rendezvous: the first node of the allocation hosts the c10d store, on a port derived from the job id
RDZV_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RDZV_PORT=$(( 20000 + SLURM_JOB_ID % 20000 ))

{_setup_block(options.setup)}echo "[genrecon] training on $SLURM_JOB_NUM_NODES node(s) x $NPROC_PER_NODE (job $SLURM_JOB_ID, attempt $ATTEMPT, rendezvous $RDZV_HOST:$RDZV_PORT) at $(date -Is)"

{_RECORD.format(task_json="0")}
{_TERM_HANDLER.format(before=options.signal_before, forward=_FORWARD_STEPS)}
srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1 --kill-on-bad-exit=1 \\
    {_q(python)} -m torch.distributed.run \\
        --nnodes="$SLURM_JOB_NUM_NODES" --nproc_per_node="$NPROC_PER_NODE" \\
        --rdzv_backend=c10d --rdzv_endpoint="$RDZV_HOST:$RDZV_PORT" --rdzv_id="$SLURM_JOB_ID" \\
        -m genrecon.training --config {_q(config)} --resume \\
        --summary-json {_q(str(slurm / "summary_{rank}.json"))} &
child=$!

{_FINISH.format(interrupted=EXIT_INTERRUPTED)}"""
    return _header(title, directives) + body


# ---------------------------------------------------------------------------------------------------------
# submission
# ---------------------------------------------------------------------------------------------------------
def _check_count(name: str, value: int, low: int = 1) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        return [f"{name}: expected an integer >= {low}, got {value!r}"]
    return []


def submit_array(
    config: str | Path,
    n_tasks: int,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    options: SlurmOptions = SlurmOptions(),
    max_running: int | None = None,
    evaluate: bool = True,
    dry_run: bool = False,
    force: bool = False,
    overwrite: bool = False,
    python: str = sys.executable,
) -> Submission:
    """Write the job-array script for a reconstruction config and (unless ``dry_run``) submit it.

    Everything is validated before anything is written; when ``sbatch`` refuses the job, the files written
    are removed again. ``dry_run`` writes only the script and the resolved config it runs.

    Args:
        config: run config (YAML).
        n_tasks: array size ``N``; at most the number of cases.
        overrides: ``--set a.b=c`` assignments.
        options: SLURM resources and requeue behaviour.
        max_running: run at most this many tasks at once.
        evaluate: also submit ``genrecon evaluate`` to run after every task succeeded.
        dry_run: write the script, submit nothing.
        force: submit although an earlier array of this run is still queued or running.
        overwrite: delete results in the run folder made with other settings (else they are refused, exit 2).
        python: interpreter that runs genrecon on the compute nodes.

    Returns:
        The :class:`Submission` (``job_id`` None for a dry run).
    """
    from ..config import dump_yaml, load_config
    from ..pipeline import RunLock, check_output_dir, make_loader, plan, write_run_config

    problems = _check_count("--array", n_tasks) + options.problems()
    if max_running is not None:
        problems += _check_count("--max-running", max_running)
    if problems:
        raise ConfigError(problems)
    if not dry_run:
        find_sbatch()
    cfg = load_config(config, list(overrides))
    if not overwrite:  # results of other settings: refused here, not in every task
        check_output_dir(cfg)
    n_cases = len(plan(cfg, make_loader(cfg)))
    if n_tasks > n_cases:
        raise ConfigError(f"--array {n_tasks}: the config selects only {n_cases} case(s), so some tasks would have "
                          f"nothing to do: use --array {n_cases} or fewer")
    run_dir = Path(cfg.output.dir).resolve()
    slurm = run_dir / "slurm"
    if not dry_run and not force:
        active = _active(slurm, ("reconstruct",))
        if active:
            raise ConfigError(f"{run_dir}: array job {', '.join(active)} of this run is still queued or running: "
                              f"wait for it (genrecon batch status {run_dir}), scancel it, or pass --force")
    workdir = Path.cwd().resolve()
    rb = _Rollback()
    try:
        rb.mkdir(slurm)
        cfg_path = slurm / "config.yaml"
        rb.write(cfg_path, dump_yaml(cfg))
        script = slurm / "reconstruct.sbatch"
        rb.write(script, array_script(run_dir=run_dir, config=cfg_path, n_tasks=n_tasks, n_cases=n_cases,
                                      options=options, workdir=workdir, python=python, max_running=max_running),
                 mode=0o755)
        if dry_run:
            return Submission(run_dir, script, None, n_tasks, n_cases)
        if overwrite:  # the tasks then find the folder holding this config's results only
            with RunLock(run_dir):
                check_output_dir(cfg, overwrite=True)
                write_run_config(cfg, run_dir)
        eval_script = slurm / "evaluate.sbatch"
        if evaluate:
            rb.write(eval_script, evaluate_script(run_dir=run_dir, options=options, workdir=workdir, python=python),
                     mode=0o755)
        job_id = _sbatch(script)
    except BaseException:
        rb.undo()
        raise
    record = {"kind": "reconstruct", "job_id": job_id, "n_tasks": n_tasks, "n_cases": n_cases,
              "script": str(script), "config": str(Path(config).resolve()), "overrides": list(overrides),
              "options": _options_record(options), "max_running": max_running, "submitted": _now()}
    _record_job(slurm, record)
    notes: list[str] = []
    eval_id = None
    if evaluate:
        try:
            eval_id = _sbatch(eval_script, [f"--dependency=afterok:{job_id}", "--kill-on-invalid-dep=yes"])
            _record_job(slurm, {"kind": "evaluate", "job_id": eval_id, "after": job_id, "script": str(eval_script),
                                "submitted": _now()})
        except SlurmError as exc:
            notes.append(f"the evaluation job was not submitted ({exc}); run `genrecon evaluate {run_dir}` "
                         "when the tasks are done")
    return Submission(run_dir, script, job_id, n_tasks, n_cases, eval_id, tuple(notes))


def _options_record(options: SlurmOptions) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(options).items()}


def submit_train(
    config: str | Path,
    *,
    nodes: int = 1,
    procs_per_node: int = 1,
    overrides: list[str] | tuple[str, ...] = (),
    options: SlurmOptions = SlurmOptions(),
    dry_run: bool = False,
    force: bool = False,
    python: str = sys.executable,
) -> Submission:
    """Write (and unless ``dry_run`` submit) an sbatch script that trains a prior with ``torchrun``.

    The resolved training config is written to ``<output.dir>/slurm/train-config.yaml`` and the job runs
    ``python -m genrecon.training --config it --resume``, so a requeued job continues from the checkpoint.

    Args:
        config: training config (``configs/train_prior_*.yaml``).
        nodes: number of nodes.
        procs_per_node: processes per node (GPUs per node on a GPU cluster).
        overrides: ``--set a.b=c`` assignments.
        options: SLURM resources (``gpus`` per node) and requeue behaviour.
        dry_run: write the script, submit nothing.
        force: submit although an earlier training job of this folder is still queued or running.
        python: interpreter on the compute nodes.
    """
    import yaml

    from ..training.config import config_to_dict, load_train_config

    problems = _check_count("--nodes", nodes) + _check_count("--procs-per-node", procs_per_node) + options.problems()
    if problems:
        raise ConfigError(problems)
    if not dry_run:
        find_sbatch()
    cfg = load_train_config(config, list(overrides))
    run_dir = Path(cfg.output.dir).resolve()
    slurm = run_dir / "slurm"
    if not dry_run and not force:
        active = _active(slurm, ("train",))
        if active:
            raise ConfigError(f"{run_dir}: training job {', '.join(active)} is still queued or running: wait for "
                              "it, scancel it, or pass --force")
    workdir = Path.cwd().resolve()
    rb = _Rollback()
    try:
        rb.mkdir(slurm)
        cfg_path = slurm / "train-config.yaml"
        rb.write(cfg_path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        script = slurm / "train.sbatch"
        rb.write(script, train_script(run_dir=run_dir, config=cfg_path, nodes=nodes, procs_per_node=procs_per_node,
                                      options=options, workdir=workdir, python=python), mode=0o755)
        if dry_run:
            return Submission(run_dir, script, None)
        job_id = _sbatch(script)
    except BaseException:
        rb.undo()
        raise
    _record_job(slurm, {"kind": "train", "job_id": job_id, "nodes": nodes, "procs_per_node": procs_per_node,
                        "script": str(script), "config": str(Path(config).resolve()), "overrides": list(overrides),
                        "options": _options_record(options), "submitted": _now()})
    return Submission(run_dir, script, job_id)


# ---------------------------------------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseStatus:
    """One case of a run: ``done`` (every method's record matches the config), ``partial`` or ``pending``."""

    key: str
    state: str
    task: int | None  # the array task that owns it in the latest submission
    missing: tuple[str, ...] = ()  # labels not done yet


@dataclass(frozen=True)
class TaskStatus:
    """One array task (or the training job, task 0) and its cases."""

    job_id: str
    task: int
    state: str
    done: int = 0
    partial: int = 0
    pending: int = 0
    exit_code: int | None = None


@dataclass(frozen=True)
class BatchStatus:
    """What :func:`batch_status` found; ``sources`` says where the task states came from."""

    run_dir: Path
    kind: str  # "reconstruct" or "train"
    cases: tuple[CaseStatus, ...]
    tasks: tuple[TaskStatus, ...]
    jobs: tuple[dict, ...]
    other_jobs: tuple[tuple[str, str, str], ...]  # (kind, job id, state): the evaluation job of the latest array
    sources: tuple[str, ...]

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "partial": 0, "pending": 0}
        for c in self.cases:
            out[c.state] += 1
        return out


def case_states(cfg, run_dir: Path, n_tasks: int | None = None) -> list[CaseStatus]:
    """The state of every case the config selects, judged the way ``genrecon reconstruct`` judges it.

    Args:
        cfg: the run's resolved :class:`~genrecon.config.RunConfig`.
        run_dir: the run folder.
        n_tasks: array size of the latest submission (case ``k`` belongs to task ``k % n_tasks``), if any.
    """
    from ..pipeline import case_dirname, case_hash, case_key, make_loader, method_hash, plan
    from ..report import load_json

    labels = cfg.labels()
    c_hash = case_hash(cfg)
    m_hashes = [method_hash(cfg, i) for i in range(len(labels))]
    out = []
    for k, ref in enumerate(plan(cfg, make_loader(cfg))):
        key = case_key(ref)
        cdir = run_dir / "cases" / case_dirname(key)
        missing = tuple(
            label for label, h in zip(labels, m_hashes)
            if (rec := load_json(cdir / f"{label}.json")) is None or rec.get("hash") != h
            or not (cdir / f"{label}.npy").is_file()
        )
        case_rec = load_json(cdir / "case.json")
        if not missing and case_rec is not None and case_rec.get("hash") == c_hash:
            state = "done"
        elif cdir.is_dir() and any(cdir.iterdir()):
            state = "partial"
        else:
            state = "pending"
        out.append(CaseStatus(key, state, k % n_tasks if n_tasks else None, missing))
    return out


def _task_records(slurm: Path) -> dict[str, dict]:
    out = {}
    for f in sorted((slurm / "tasks").glob("*.json")):
        rec = _read_json(f)
        if isinstance(rec, dict):
            out[f.stem] = rec
    return out


_OUTCOME_STATE = {"completed": "COMPLETED", "requeued": "REQUEUED", "interrupted": "INTERRUPTED", "failed": "FAILED"}


def batch_status(run_dir: str | Path) -> BatchStatus:
    """Cases done/partial/pending and the states of the run's SLURM jobs (never hangs: queries time out).

    Task states come from ``squeue`` while SLURM knows the job, else from ``sacct`` when the cluster keeps
    accounting, else from the records the job script leaves in ``<run>/slurm/tasks``, else ``UNKNOWN``.

    Args:
        run_dir: a reconstruction run folder, or a training folder submitted with :func:`submit_train`.
    """
    from ..config import load_config

    run_dir = Path(run_dir)
    slurm = run_dir / "slurm"
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder; give the output.dir of a submitted run")
    jobs = read_jobs(slurm)
    # slurm/config.yaml: a submitted reconstruction; slurm/train-config.yaml: a submitted training run
    # (whose own config.yaml is a training config); config.yaml alone: a run not submitted from here
    cfg_path = next((p for p in (slurm / "config.yaml", run_dir / "config.yaml") if p.is_file()), None)
    kind = "reconstruct"
    if (slurm / "train-config.yaml").is_file() and not (slurm / "config.yaml").is_file():
        kind, cfg_path = "train", None
    if kind == "reconstruct" and cfg_path is None:
        raise ConfigError(f"{run_dir}: not a genrecon run folder (no config.yaml or slurm/config.yaml); "
                          "give the output.dir of a run")
    latest = next((j for j in reversed(jobs) if j.get("kind") == kind), None)
    n_tasks = int(latest.get("n_tasks", 1)) if latest else None
    cases: list[CaseStatus] = []
    if kind == "reconstruct":
        cases = case_states(load_config(cfg_path, check_files=False, build=False), run_dir, n_tasks)

    ids = [j["job_id"] for j in jobs if j.get("job_id")]
    sources = []
    queue = queue_states(ids) if ids else None
    if queue is not None:
        sources.append("squeue")
    acct = accounting_states(ids) if ids else None
    if acct is not None:
        sources.append("sacct")
    records = _task_records(slurm)
    if records:
        sources.append("task records")

    def state_of(key: str) -> tuple[str, int | None]:
        rec = records.get(key)
        code = rec.get("exit_code") if rec else None
        if queue and key in queue:
            return queue[key], code
        if acct and key in acct:
            return acct[key], code
        if rec:
            return _OUTCOME_STATE.get(rec.get("outcome"), "UNKNOWN"), code
        return "UNKNOWN", None

    tasks = []
    if latest:
        jid = latest["job_id"]
        if kind == "reconstruct":
            for i in range(n_tasks):
                mine = [c for c in cases if c.task == i]
                state, code = state_of(f"{jid}_{i}")
                tasks.append(TaskStatus(jid, i, state, sum(c.state == "done" for c in mine),
                                        sum(c.state == "partial" for c in mine),
                                        sum(c.state == "pending" for c in mine), code))
        else:
            state, code = state_of(jid)
            tasks.append(TaskStatus(jid, 0, state, exit_code=code))
    evals = [j for j in jobs if j.get("kind") == "evaluate" and latest and j.get("after") == latest["job_id"]]
    others = tuple(("evaluate", j["job_id"], state_of(j["job_id"])[0]) for j in evals)
    return BatchStatus(run_dir, kind, tuple(cases), tuple(tasks), tuple(jobs), others, tuple(sources))
