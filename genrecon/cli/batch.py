"""``genrecon batch``: run a reconstruction as a SLURM job array, follow it, and train priors with torchrun.

Commands (``genrecon batch --config X --array N`` is short for ``genrecon batch submit --config X --array N``,
and ``genrecon batch --train X`` for ``genrecon batch train --config X``)::

    genrecon batch submit --config X --array N [--partition P --time T --gpus G --cpus C --mem M --account A]
    genrecon batch status RUN [--cases]
    genrecon batch train --config X --nodes K --procs-per-node P [...]
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError
from .common import console, handle_errors, print_table

app = typer.Typer(
    name="batch",
    help="Run on a SLURM cluster: job-array reconstruction (submit), its progress (status), prior training (train).",
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

# options shared by the commands and by the short form `genrecon batch --config X --array N`
CONFIG = typer.Option(None, "--config", "-c", help="run config (YAML)")
ARRAY = typer.Option(None, "--array", "-a", help="number of array tasks N; task i runs shard i/N of the cases")
SET = typer.Option(None, "--set", help="override a config key: a.b.c=value (repeatable)")
PARTITION = typer.Option(None, "--partition", "-p", help="SLURM partition")
TIME = typer.Option(None, "--time", "-t", help="time limit per task: MM, HH:MM:SS or D-HH:MM:SS")
GPUS = typer.Option(None, "--gpus", help="GPUs per array task (per node for train), e.g. 1 or a100:1")
CPUS = typer.Option(None, "--cpus", help="CPUs per task (sets OMP_NUM_THREADS)")
MEM = typer.Option(None, "--mem", help="memory per node, e.g. 16G")
ACCOUNT = typer.Option(None, "--account", "-A", help="account to charge")
MAX_RUNNING = typer.Option(None, "--max-running", help="run at most this many array tasks at once")
SIGNAL_BEFORE = typer.Option(60, "--signal-before", help="seconds before the time limit at which the job is told to stop")
MAX_REQUEUE = typer.Option(3, "--max-requeue", help="requeues of a task stopped by its time limit or preemption")
SETUP = typer.Option(None, "--setup", help="shell line run before genrecon, e.g. 'module load cuda' (repeatable)")
NO_EVALUATE = typer.Option(False, "--no-evaluate", help="do not submit the job that merges all cases into one report")
DRY_RUN = typer.Option(False, "--dry-run", help="only write the sbatch script and print its path")
FORCE = typer.Option(False, "--force", help="submit although an earlier job of this run is queued or running")
OVERWRITE = typer.Option(False, "--overwrite", help="replace results in output.dir made with other settings")
NODES = typer.Option(1, "--nodes", help="nodes for training")
PROCS = typer.Option(1, "--procs-per-node", help="training processes per node (one per GPU on GPU nodes)")
TRAIN = typer.Option(None, "--train", help="training config: submit a torchrun prior-training job instead")


def _options(partition, time, gpus, cpus, mem, account, signal_before, max_requeue, setup):
    from ..batch import SlurmOptions

    return SlurmOptions(partition=partition, time=time, gpus=gpus, cpus=cpus, mem=mem, account=account,
                        signal_before=signal_before, max_requeue=max_requeue, setup=tuple(setup or ()))


def _submit(config, array, set_, options, max_running, no_evaluate, dry_run, force, overwrite=False) -> None:
    from ..batch import submit_array

    if config is None or array is None:
        raise ConfigError("genrecon batch submit: give --config FILE and --array N (e.g. --array 8)")
    sub = submit_array(config, array, overrides=set_ or [], options=options, max_running=max_running,
                       evaluate=not no_evaluate, dry_run=dry_run, force=force, overwrite=overwrite)
    if dry_run:
        console.print(f"wrote {sub.script} ({sub.n_tasks} task(s) over {sub.n_cases} case(s)); submit it with: "
                      f"sbatch {sub.script}", highlight=False, soft_wrap=True)
        return
    console.print(f"submitted array job {sub.job_id}: {sub.n_tasks} task(s) over {sub.n_cases} case(s) of {sub.run_dir}",
                  highlight=False, soft_wrap=True)
    if sub.evaluate_job_id:
        console.print(f"evaluation job {sub.evaluate_job_id} merges the report when every task has succeeded",
                      highlight=False)
    for note in sub.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    console.print(f"logs: {sub.run_dir / 'slurm'}; progress: genrecon batch status {sub.run_dir}",
                  highlight=False, soft_wrap=True)


def _train(config, nodes, procs, set_, options, dry_run, force) -> None:
    from ..batch import submit_train

    if config is None:
        raise ConfigError("genrecon batch train: give --config FILE (a train-prior config)")
    sub = submit_train(config, nodes=nodes, procs_per_node=procs, overrides=set_ or [], options=options,
                       dry_run=dry_run, force=force)
    if dry_run:
        console.print(f"wrote {sub.script}; submit it with: sbatch {sub.script}", highlight=False, soft_wrap=True)
        return
    console.print(f"submitted training job {sub.job_id} ({nodes} node(s) x {procs} process(es)); "
                  f"logs and summaries: {sub.run_dir / 'slurm'}", highlight=False, soft_wrap=True)


@app.callback(invoke_without_command=True)
@handle_errors
def batch(
    ctx: typer.Context,
    config: Optional[Path] = CONFIG,
    array: Optional[int] = ARRAY,
    train: Optional[Path] = TRAIN,
    nodes: int = NODES,
    procs_per_node: int = PROCS,
    set_: Optional[list[str]] = SET,
    partition: Optional[str] = PARTITION,
    time: Optional[str] = TIME,
    gpus: Optional[str] = GPUS,
    cpus: Optional[int] = CPUS,
    mem: Optional[str] = MEM,
    account: Optional[str] = ACCOUNT,
    max_running: Optional[int] = MAX_RUNNING,
    signal_before: int = SIGNAL_BEFORE,
    max_requeue: int = MAX_REQUEUE,
    setup: Optional[list[str]] = SETUP,
    no_evaluate: bool = NO_EVALUATE,
    dry_run: bool = DRY_RUN,
    force: bool = FORCE,
    overwrite: bool = OVERWRITE,
) -> None:
    """Run on a SLURM cluster. Short forms: `genrecon batch --config X --array N` (= submit) and
    `genrecon batch --train X --nodes K --procs-per-node P` (= train)."""
    given = [name for name, value in (("--config", config), ("--array", array), ("--train", train)) if value is not None]
    if ctx.invoked_subcommand is not None:
        if given:
            raise ConfigError(f"genrecon batch: put {', '.join(given)} after the command "
                              f"(genrecon batch {ctx.invoked_subcommand} {given[0]} ...)")
        return
    options = _options(partition, time, gpus, cpus, mem, account, signal_before, max_requeue, setup)
    if train is not None:
        if config is not None or array is not None:
            raise ConfigError("genrecon batch: --train submits a training job; do not combine it with --config/--array")
        _train(train, nodes, procs_per_node, set_, options, dry_run, force)
    elif config is not None or array is not None:
        _submit(config, array, set_, options, max_running, no_evaluate, dry_run, force, overwrite)
    else:
        raise ConfigError("genrecon batch: give --config FILE --array N, --train FILE, or a command "
                          "(submit, status, train); see genrecon batch --help")


@app.command("submit")
@handle_errors
def submit(
    config: Optional[Path] = CONFIG,
    array: Optional[int] = ARRAY,
    set_: Optional[list[str]] = SET,
    partition: Optional[str] = PARTITION,
    time: Optional[str] = TIME,
    gpus: Optional[str] = GPUS,
    cpus: Optional[int] = CPUS,
    mem: Optional[str] = MEM,
    account: Optional[str] = ACCOUNT,
    max_running: Optional[int] = MAX_RUNNING,
    signal_before: int = SIGNAL_BEFORE,
    max_requeue: int = MAX_REQUEUE,
    setup: Optional[list[str]] = SETUP,
    no_evaluate: bool = NO_EVALUATE,
    dry_run: bool = DRY_RUN,
    force: bool = FORCE,
    overwrite: bool = OVERWRITE,
) -> None:
    """Write <run>/slurm/reconstruct.sbatch (a job array: task i runs shard i/N) and submit it."""
    options = _options(partition, time, gpus, cpus, mem, account, signal_before, max_requeue, setup)
    _submit(config, array, set_, options, max_running, no_evaluate, dry_run, force, overwrite)


@app.command("train")
@handle_errors
def train_cmd(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="training config (YAML)"),
    nodes: int = NODES,
    procs_per_node: int = PROCS,
    set_: Optional[list[str]] = SET,
    partition: Optional[str] = PARTITION,
    time: Optional[str] = TIME,
    gpus: Optional[str] = GPUS,
    cpus: Optional[int] = CPUS,
    mem: Optional[str] = MEM,
    account: Optional[str] = ACCOUNT,
    signal_before: int = SIGNAL_BEFORE,
    max_requeue: int = MAX_REQUEUE,
    setup: Optional[list[str]] = SETUP,
    dry_run: bool = DRY_RUN,
    force: bool = FORCE,
) -> None:
    """Write <output.dir>/slurm/train.sbatch (srun + torchrun, --resume) and submit it."""
    options = _options(partition, time, gpus, cpus, mem, account, signal_before, max_requeue, setup)
    _train(config, nodes, procs_per_node, set_, options, dry_run, force)


@app.command("status")
@handle_errors
def status(
    run_dir: Path = typer.Argument(..., help="the run folder (output.dir) of a submitted run"),
    cases: bool = typer.Option(False, "--cases", help="list every case with its state"),
) -> None:
    """Cases done / partial / pending and the state of every array task (squeue, sacct or the task records)."""
    from ..batch import batch_status

    st = batch_status(run_dir)
    source = ", ".join(st.sources) or "no SLURM command answered"
    if st.kind == "reconstruct":
        n = st.counts()
        console.print(f"{st.run_dir}: {len(st.cases)} case(s): {n['done']} done, {n['partial']} partial, "
                      f"{n['pending']} pending", highlight=False, soft_wrap=True)
    if st.tasks:
        header = ["task", "state", "exit"] + (["done", "partial", "pending"] if st.kind == "reconstruct" else [])
        rows = []
        for t in st.tasks:
            row = [str(t.task), t.state, "" if t.exit_code is None else str(t.exit_code)]
            if st.kind == "reconstruct":
                row += [str(t.done), str(t.partial), str(t.pending)]
            rows.append(row)
        title = f"{'array' if st.kind == 'reconstruct' else 'training'} job {st.tasks[0].job_id}"
        print_table(title, header, rows, caption=f"states from: {source}")
    else:
        console.print("no job submitted from this folder yet (genrecon batch submit ...)", highlight=False)
    for kind, job_id, state in st.other_jobs:
        console.print(f"{kind} job {job_id}: {state}", highlight=False)
    if cases:
        print_table("cases", ["case", "state", "task", "missing"],
                    [[c.key, c.state, "" if c.task is None else str(c.task), ", ".join(c.missing) if c.state != "done"
                      else ""] for c in st.cases])
    else:
        partial = [c.key for c in st.cases if c.state == "partial"]
        if partial:
            more = f" (+{len(partial) - 10} more; --cases lists all)" if len(partial) > 10 else ""
            console.print(f"partial: {', '.join(partial[:10])}{more}", highlight=False, soft_wrap=True)
