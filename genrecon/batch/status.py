"""How far a submitted run is: each case done, partial or pending, and the state of each SLURM task.

Task states come from ``squeue`` while SLURM knows the job, else from ``sacct`` when the cluster keeps
accounting, else from the records the job script leaves in ``<run>/slurm/tasks``, else ``UNKNOWN``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .slurm import _read_json, accounting_states, queue_states, read_jobs


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
