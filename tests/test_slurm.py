"""``genrecon batch`` on a real SLURM cluster (one node on localhost, started by scripts/slurm_local.sh).

(a) a 4-task array ends with exactly the cases and metrics of a single-process run; (b) a task stopped by
SIGTERM requeues itself, a task cancelled by a user does not, and a resubmission finishes the run with
nothing lost or recomputed; (c) two-process torchrun training inside sbatch ends with equal weights on
both ranks.

The session fixture uses the cluster SLURM_CONF points at when one answers; otherwise it starts the local
one (installing SLURM with apt only in CI or when GENRECON_SLURM_INSTALL=1) and stops it afterwards. It
skips only when that cannot work here (not Linux, not root, no SLURM and no permission to install it);
in CI (CI=true) those cases fail instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from genrecon.batch import batch_status, read_jobs
from genrecon.cli.batch import app as batch_app
from genrecon.cli.main import app as main_app
from genrecon.config import load_config_dict
from genrecon.pipeline import case_dirname, run as run_pipeline

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm_local.sh"
SLURM_COMMANDS = ("sbatch", "squeue", "scontrol", "scancel", "srun", "slurmctld", "slurmd", "munged")
N_CASES = 8
SLOW_ITER = 500  # fista_tv iterations: about half a second per 32x32 case, so a task can be stopped mid-run
runner = CliRunner()


# ---------------------------------------------------------------------------------------------------------
# the cluster
# ---------------------------------------------------------------------------------------------------------
def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _cannot(reason: str) -> None:
    if _truthy("CI"):
        pytest.fail(f"the SLURM tests must run in CI, but {reason}", pytrace=False)
    pytest.skip(reason)


def _answers() -> bool:
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and any(s.startswith(("idle", "mixed", "alloc")) for s in proc.stdout.split())


@pytest.fixture(scope="session")
def slurm_cluster():
    """``SLURM_CONF`` of a working cluster; starts (and at the end stops) the local one when needed."""
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PYTHONPATH")}
    # the jobs inherit this environment (sbatch --export=ALL): make sure they import this checkout
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), saved["PYTHONPATH"]) if p)
    started = False
    try:
        if not (saved["SLURM_CONF"] and _answers()):
            if not sys.platform.startswith("linux"):
                _cannot("the local SLURM cluster (scripts/slurm_local.sh) needs Linux")
            search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
            missing = [c for c in SLURM_COMMANDS if shutil.which(c, path=search) is None]
            if missing and not (_truthy("CI") or _truthy("GENRECON_SLURM_INSTALL")):
                pytest.skip(f"SLURM is not installed (missing {', '.join(missing)}): `sudo bash scripts/slurm_local.sh "
                            "start` installs and starts a local cluster (export the SLURM_CONF it prints), or set "
                            "GENRECON_SLURM_INSTALL=1 to let the tests do it")
            if os.geteuid() != 0:
                _cannot("starting slurmd (and installing SLURM) needs root: run `sudo bash scripts/slurm_local.sh "
                        "start` and export the SLURM_CONF it prints")
            if missing and shutil.which("apt-get") is None:
                _cannot(f"SLURM is not installed (missing {', '.join(missing)}) and apt-get is not available")
            already = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True, timeout=60).returncode == 0
            t0 = time.monotonic()
            proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=1200,
                                  stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                pytest.fail(f"scripts/slurm_local.sh start failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}",
                            pytrace=False)
            conf = next(line.split("=", 1)[1] for line in proc.stdout.splitlines() if line.startswith("export SLURM_CONF="))
            os.environ["SLURM_CONF"] = conf
            started = not already
            print(f"\nlocal SLURM cluster ready in {time.monotonic() - t0:.1f} s ({conf})")
            assert _answers(), "the local cluster started but sinfo shows no usable node"
        yield os.environ["SLURM_CONF"]
    finally:
        if started:
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=120)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------
def invoke(*args):
    app = main_app
    if not any(g.name == "batch" for g in main_app.registered_groups):
        app = typer.Typer()
        app.add_typer(batch_app, name="batch")
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


def slurm(*args: str) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}"
    return proc.stdout


def diagnostics(folder: Path) -> str:
    queue = subprocess.run(["squeue", "-r", "-o", "%i %T %r"], capture_output=True, text=True, timeout=10).stdout
    logs = "".join(f"\n--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted((folder / "slurm").glob("*.out")))
    return f"\nsqueue:\n{queue}{logs}"


def wait_for(predicate, timeout: float, what: str, folder: Path):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}{diagnostics(folder)}")
        time.sleep(0.1)


def record(folder: Path, name: str) -> dict | None:
    try:
        return json.loads((folder / "slurm" / "tasks" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def in_queue(job: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-r", "-o", "%i"], capture_output=True, text=True, timeout=10).stdout
    return job in out.split()


@pytest.fixture
def cancel_leftovers():
    """Cancel every job a test submitted, whatever happened to the test."""
    folders: list[Path] = []
    yield folders.append
    ids = [j["job_id"] for f in folders for j in read_jobs(f / "slurm")]
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True, timeout=30)


def phantom_config(out: Path) -> dict:
    return {
        "version": 1, "seed": 3, "device": "cpu",
        "data": {"source": "phantom:ellipses", "params": {"size": 32, "count": N_CASES}, "normalize": "max"},
        "simulate": {"modality": "mri", "mask": {"name": "random", "acceleration": 4, "center_fraction": 0.08},
                     "noise": {"sigma": 0.01}},
        "reconstructors": [{"name": "zero_filled"},
                           {"name": "fista_tv", "params": {"tv_weight": 0.005, "n_iter": SLOW_ITER}}],
        "evaluate": {"metrics": ["psnr", "ssim", "nmse"], "data_range": "volume_max"},
        "output": {"dir": str(out), "save": ["npy"]},
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The single-process run every SLURM run must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "run"
    report = run_pipeline(load_config_dict(phantom_config(out)))
    return out, {(r["case"], r["method"]): r for r in report["rows"]}


def write_config(tmp_path: Path, out: Path) -> Path:
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(phantom_config(out)))
    return path


def assert_same_as_reference(out: Path, reference) -> None:
    ref_dir, ref_rows = reference
    report = json.loads((out / "report.json").read_text())
    rows = {(r["case"], r["method"]): r for r in report["rows"]}
    assert report["cases"] == N_CASES
    assert sorted(rows) == sorted(ref_rows), "the cases or methods differ from the single-process run"
    assert len(report["rows"]) == len(rows) == 2 * N_CASES  # each (case, method) exactly once
    for key, ref in ref_rows.items():
        for metric in ("psnr", "ssim", "nmse"):
            assert rows[key][metric] == pytest.approx(ref[metric], rel=1e-5, abs=1e-7), (key, metric)
    assert sorted(p.name for p in (out / "cases").iterdir()) == sorted(p.name for p in (ref_dir / "cases").iterdir())
    for case in (ref_dir / "cases").iterdir():
        for label in ("zero_filled", "fista_tv"):
            np.testing.assert_allclose(np.load(out / "cases" / case.name / f"{label}.npy"),
                                       np.load(case / f"{label}.npy"), rtol=1e-5, atol=1e-6)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name], "temporary files left behind"


def latest(out: Path, kind: str) -> str:
    return next(j["job_id"] for j in reversed(read_jobs(out / "slurm")) if j["kind"] == kind)


# ---------------------------------------------------------------------------------------------------------
# (a) a job array equals the single-process run
# ---------------------------------------------------------------------------------------------------------
def test_array_of_four_tasks_matches_single_process_run(slurm_cluster, reference, tmp_path, monkeypatch,
                                                         cancel_leftovers):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    cancel_leftovers(out)
    t0 = time.monotonic()
    invoke("batch", "--config", write_config(tmp_path, out), "--array", 4)
    job, eval_job = latest(out, "reconstruct"), latest(out, "evaluate")
    done = wait_for(lambda: record(out, eval_job), 240, "the evaluation job", out)
    seconds = time.monotonic() - t0
    assert done["outcome"] == "completed", diagnostics(out)
    for task in range(4):
        rec = record(out, f"{job}_{task}")
        assert rec and rec["outcome"] == "completed" and rec["attempt"] == 0, rec
    assert_same_as_reference(out, reference)
    st = batch_status(out)
    assert st.counts() == {"done": N_CASES, "partial": 0, "pending": 0}
    assert [t.state for t in st.tasks] == ["COMPLETED"] * 4
    print(f"\n4-task array over {N_CASES} cases, submit to merged report: {seconds:.1f} s")


# ---------------------------------------------------------------------------------------------------------
# (b) stopped tasks: requeue on SIGTERM, no requeue on scancel, resubmission finishes the run
# ---------------------------------------------------------------------------------------------------------
def test_stopped_task_requeues_and_resubmission_loses_nothing(slurm_cluster, reference, tmp_path, monkeypatch,
                                                               cancel_leftovers):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    cancel_leftovers(out)
    config = write_config(tmp_path, out)
    t0 = time.monotonic()
    invoke("batch", "submit", "--config", config, "--array", 2, "--max-requeue", 2)
    job, eval_job = latest(out, "reconstruct"), latest(out, "evaluate")
    task0 = f"{job}_0"  # cases 0, 2, 4, 6
    first = out / "cases" / case_dirname("phantom:ellipses/0")
    wait_for(lambda: (first / "case.json").exists(), 120, "task 0's first case", out)
    first_mtime = (first / "fista_tv.json").stat().st_mtime_ns

    # 1. SIGTERM to the job script (what --signal=B:TERM@S does before the time limit): requeued
    slurm("scancel", "--signal=TERM", "--batch", task0)
    rec = wait_for(lambda: record(out, task0), 60, "task 0 to stop", out)
    assert rec["outcome"] == "requeued", f"task 0 was not stopped mid-run: {rec}"
    assert rec["signal_state"] == "RUNNING" and rec["exit_code"] == 130 and rec["attempt"] == 0
    assert batch_status(out).counts()["done"] < N_CASES  # it was stopped with cases left to do

    # 2. the requeued task starts again (attempt 1); a user's scancel is not undone by a requeue
    log = out / "slurm" / f"{job}_0.out"
    wait_for(lambda: log.exists() and "attempt 1)" in log.read_text(), 90, "task 0's second attempt", out)
    slurm("scancel", task0)
    rec = wait_for(lambda: (r := record(out, task0)) and r["attempt"] == 1 and r, 60, "the cancelled task", out)
    assert rec["outcome"] == "interrupted" and rec["signal_state"] != "RUNNING", rec
    assert rec["exit_code"] == 130, rec  # what the README promises for a cancelled task (not 128 + SIGTERM)
    wait_for(lambda: not in_queue(task0), 30, "the cancelled task to leave the queue", out)
    # the evaluation job can no longer run (afterok on a cancelled task): SLURM removes it
    wait_for(lambda: not in_queue(eval_job), 60, "the evaluation job to be dropped", out)
    assert record(out, eval_job) is None
    st = batch_status(out)
    assert st.counts()["done"] < N_CASES and st.tasks[0].state == "INTERRUPTED"

    # 3. the same command again finishes the run: nothing lost, nothing done twice
    invoke("batch", "submit", "--config", config, "--array", 2)
    job2, eval2 = latest(out, "reconstruct"), latest(out, "evaluate")
    assert job2 != job
    done = wait_for(lambda: record(out, eval2), 240, "the second evaluation job", out)
    assert done["outcome"] == "completed", diagnostics(out)
    assert (first / "fista_tv.json").stat().st_mtime_ns == first_mtime, "a finished case was recomputed"
    assert_same_as_reference(out, reference)
    assert batch_status(out).counts() == {"done": N_CASES, "partial": 0, "pending": 0}
    print(f"\nstop, requeue, cancel and resubmit: {time.monotonic() - t0:.1f} s")


# ---------------------------------------------------------------------------------------------------------
# (c) torchrun training inside sbatch
# ---------------------------------------------------------------------------------------------------------
def test_two_process_training_in_sbatch_ends_with_equal_weights(slurm_cluster, tmp_path, monkeypatch,
                                                                cancel_leftovers):
    from genrecon.training.data import write_prior_data

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    data = write_prior_data(tmp_path / "tiny.h5", rng.uniform(0, 1, (16, 32, 32)), rng.uniform(0, 1, (4, 32, 32)))
    out = tmp_path / "train"
    cancel_leftovers(out)
    t0 = time.monotonic()
    invoke("batch", "train", "--config", ROOT / "configs" / "train_prior_tiny.yaml", "--nodes", 1,
           "--procs-per-node", 2, "--cpus", min(2, os.cpu_count() or 1),
           "--set", f"data.path={data}", "--set", "train.steps=4", "--set", f"output.dir={out}",
           "--set", f"output.export={out / 'prior.pt'}")
    job = latest(out, "train")
    rec = wait_for(lambda: record(out, job), 240, "the training job", out)
    seconds = time.monotonic() - t0
    assert rec["outcome"] == "completed", diagnostics(out)
    s0, s1 = (json.loads((out / "slurm" / f"summary_{r}.json").read_text()) for r in (0, 1))
    assert (s0["rank"], s1["rank"]) == (0, 1) and s0["world_size"] == s1["world_size"] == 2
    assert s0["status"] == s1["status"] == "completed" and s0["steps"] == s1["steps"] == 4
    assert s0["weights_sha256"] == s1["weights_sha256"]
    assert s0["export_weights_sha256"] == s1["export_weights_sha256"]
    assert Path(s0["export"]).is_file() and s1["export"] is None  # rank 0 alone writes
    st = batch_status(out)
    assert st.kind == "train" and st.tasks[0].state == "COMPLETED"
    print(f"\n2-process torchrun training in sbatch: {seconds:.1f} s")
