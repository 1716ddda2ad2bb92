"""Submitting work: a reconstruction as a job array (plus its evaluation job) and prior training.

Everything is validated before anything is written; when ``sbatch`` refuses a job, the files the submission
wrote are put back as they were (:class:`_Rollback`).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .options import SlurmError, SlurmOptions, _check_count
from .scripts import array_script, evaluate_script, train_script
from .slurm import _active, _now, _record_job, _sbatch, find_sbatch


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
