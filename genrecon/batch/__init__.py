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

Modules: ``options`` (:class:`SlurmOptions`, ``--time`` parsing, :class:`SlurmError`), ``slurm`` (the
``sbatch``/``squeue``/``sacct`` calls and ``jobs.json``), ``scripts`` (the script texts, from
``templates/*.sh``), ``submit`` (:func:`submit_array`, :func:`submit_train`) and ``status``
(:func:`batch_status`).

Example:
    >>> opts = SlurmOptions(partition="gpu", time="2:00:00", gpus="1", cpus=4, mem="16G")
    >>> opts.problems()
    []
    >>> [d for d in opts.directives() if "time" in d]
    ['#SBATCH --time=2:00:00']
"""

from __future__ import annotations

#: seconds any SLURM query may take before its answer counts as unavailable (read at each query, so setting
#: ``genrecon.batch.QUERY_TIMEOUT`` takes effect at once)
QUERY_TIMEOUT = 10.0

from .options import SlurmError, SlurmOptions, time_limit_seconds  # noqa: E402
from .scripts import EXIT_INTERRUPTED, array_script, evaluate_script, train_script  # noqa: E402
from .slurm import accounting_states, find_sbatch, queue_states, read_jobs  # noqa: E402
from .status import BatchStatus, CaseStatus, TaskStatus, batch_status, case_states  # noqa: E402
from .submit import Submission, submit_array, submit_train  # noqa: E402

__all__ = [
    "QUERY_TIMEOUT", "EXIT_INTERRUPTED", "SlurmError", "SlurmOptions", "time_limit_seconds", "find_sbatch",
    "queue_states", "accounting_states", "read_jobs", "array_script", "evaluate_script", "train_script",
    "Submission", "submit_array", "submit_train", "CaseStatus", "TaskStatus", "BatchStatus", "case_states",
    "batch_status",
]
