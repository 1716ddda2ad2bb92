"""The text of the sbatch scripts: the reconstruction job array, its evaluation job, and prior training.

The shell lives in ``genrecon/batch/templates/*.sh`` (readable, checkable with ``bash -n`` or shellcheck);
this module fills in the ``#SBATCH`` header and the templates' ``@NAME@`` placeholders. A placeholder inside a
line is replaced by its value (already shell-quoted here); a placeholder alone on its line is replaced,
newline included, by a block: a rendered snippet (ending in a newline) or nothing. Values are inserted once,
never scanned for placeholders themselves.

Example:
    >>> from pathlib import Path
    >>> from genrecon.batch import SlurmOptions
    >>> text = evaluate_script(run_dir=Path("/runs/a"), options=SlurmOptions(), workdir=Path("/work"), python="python")
    >>> [line for line in text.splitlines() if "genrecon.cli.main" in line]
    ['python -m genrecon.cli.main evaluate /runs/a']
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shlex
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from .options import SlurmOptions
from .slurm import _now

#: exit status of genrecon when SIGTERM or Ctrl-C stopped it (see genrecon.cli.common.handle_errors)
EXIT_INTERRUPTED = 130

_PLACEHOLDER = re.compile(r"^@([A-Z_]+)@\n|@([A-Z_]+)@", re.MULTILINE)


@functools.lru_cache(maxsize=None)
def _template(name: str) -> str:
    return (resources.files(__package__) / "templates" / name).read_text(encoding="utf-8")


def _render(name: str, **values: Any) -> str:
    """Template ``name`` with ``@KEY@`` replaced by ``values["key"]``; every placeholder and value must match."""
    used: set[str] = set()

    def fill(m: re.Match) -> str:
        key = (m.group(1) or m.group(2)).lower()
        if key not in values:
            raise KeyError(f"batch template {name}: no value for @{key.upper()}@")
        used.add(key)
        return str(values[key])

    text = _PLACEHOLDER.sub(fill, _template(name))
    if set(values) - used:
        raise KeyError(f"batch template {name} has no placeholder for {sorted(set(values) - used)}")
    return text


def _q(value: Any) -> str:
    return shlex.quote(str(value))


def _job_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", text)


def _p(path: Path) -> str:
    """A path in an ``#SBATCH`` line (sbatch reads double quotes there, not backslashes)."""
    text = str(path)
    return f'"{text}"' if any(c.isspace() for c in text) else text


def _header(title: list[str], directives: list[str]) -> str:
    lines = ["#!/bin/bash"] + [f"# {t}".rstrip() for t in title] + ["#"] + directives
    return "\n".join(lines) + "\n"


def _setup_block(setup: tuple[str, ...]) -> str:
    if not setup:
        return ""
    return "# environment set-up (--setup)\n" + "\n".join(setup) + "\n\n"


def _term_handler(options: SlurmOptions, forward: str) -> str:
    """The SIGTERM trap; ``forward`` is the template that passes the signal on."""
    return _render("term_handler.sh", before=options.signal_before, forward=_render(forward))


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
    body = _render(
        "array.sh", n_tasks=n_tasks, max_requeue=options.max_requeue, records=_q(slurm / "tasks"),
        setup=_setup_block(options.setup), record=_render("record.sh", task_json="$SLURM_ARRAY_TASK_ID"),
        term_handler=_term_handler(options, "forward_to_child.sh"), python=_q(python), config=_q(config),
        finish=_render("finish.sh", interrupted=EXIT_INTERRUPTED),
    )
    return _header(title, directives) + "\n" + body


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
    body = _render(
        "evaluate.sh", records=_q(run_dir / "slurm" / "tasks"), setup=_setup_block(options.setup),
        record=_render("record.sh", task_json="0"), python=_q(python), run_dir=_q(run_dir),
    )
    return _header(title, directives) + "\n" + body


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
    # srun would answer SIGTERM by killing its step at once; signalling the step's processes instead lets every
    # rank finish its step, agree to stop and write the checkpoint (exit 130) before the time runs out
    body = _render(
        "train.sh", procs_per_node=procs_per_node, max_requeue=options.max_requeue, records=_q(slurm / "tasks"),
        setup=_setup_block(options.setup), record=_render("record.sh", task_json="0"),
        term_handler=_term_handler(options, "forward_to_steps.sh"), python=_q(python), config=_q(config),
        summary_json=_q(str(slurm / "summary_{rank}.json")),
        finish=_render("finish.sh", interrupted=EXIT_INTERRUPTED),
    )
    return _header(title, directives) + "\n" + body
