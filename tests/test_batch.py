"""``genrecon batch`` without a cluster: script contents, the job script's requeue logic (run under bash with
stand-in SLURM commands), dry runs, bad options, submission records, and the status of a half-done run."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from genrecon import batch
from genrecon.batch import SlurmOptions, array_script, batch_status, time_limit_seconds, train_script
from genrecon.cli.batch import app as batch_app
from genrecon.cli.main import app as main_app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def cli_app() -> typer.Typer:
    """The genrecon app with its ``batch`` group (wired here too until cli/main.py registers it)."""
    if any(g.name == "batch" for g in main_app.registered_groups):
        return main_app
    root = typer.Typer()
    root.add_typer(batch_app, name="batch")
    return root


def invoke(*args):
    return runner.invoke(cli_app(), [str(a) for a in args])


def phantom_config(out: Path, count: int = 7, n_iter: int = 5) -> dict:
    return {
        "version": 1, "seed": 0, "device": "cpu",
        "data": {"source": "phantom:ellipses", "params": {"size": 32, "count": count}, "normalize": "max"},
        "simulate": {"modality": "mri", "mask": {"name": "random", "acceleration": 4, "center_fraction": 0.08},
                     "noise": {"sigma": 0.0}},
        "reconstructors": [{"name": "zero_filled"}, {"name": "fista_tv", "params": {"tv_weight": 0.005, "n_iter": n_iter}}],
        "evaluate": {"metrics": ["psnr", "nmse"], "data_range": "max"},
        "output": {"dir": str(out), "save": ["npy"]},
    }


def write_cfg(tmp_path: Path, cfg: dict, name: str = "cfg.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def fake_tool(bin_dir: Path, name: str, body: str) -> Path:
    bin_dir.mkdir(exist_ok=True)
    p = bin_dir / name
    p.write_text("#!/bin/bash\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return p


def files_under(path: Path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()} if path.exists() else set()


# ---------------------------------------------------------------------------------------------------------
# options and script text
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, seconds", [("30", 1800), ("5:30", 330), ("2:00:00", 7200), ("1-12", 129600),
                                           ("1-0:30", 88200), ("0-1:00:05", 3605), ("1h", None), ("", None)])
def test_time_limit_formats(text, seconds):
    assert time_limit_seconds(text) == seconds


def test_array_script_contents_and_syntax(tmp_path):
    run = tmp_path / "run"
    opts = SlurmOptions(partition="gpu", time="2:00:00", gpus="a100:1", cpus=4, mem="16G", account="lab",
                        signal_before=90, max_requeue=2, setup=("module load cuda/12.1",))
    text = array_script(run_dir=run, config=run / "slurm" / "config.yaml", n_tasks=4, n_cases=10, options=opts,
                        workdir=tmp_path, python="/opt/py/bin/python", max_running=2)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    for directive in ("--array=0-3%2", f"--output={run}/slurm/%A_%a.out", "--signal=B:TERM@90", "--requeue",
                      "--partition=gpu", "--time=2:00:00", "--gpus=a100:1", "--cpus-per-task=4", "--mem=16G",
                      "--account=lab", f"--chdir={tmp_path}", "--open-mode=append"):
        assert f"#SBATCH {directive}" in lines, directive
    # every #SBATCH line comes before the first command, or sbatch ignores it
    first_cmd = next(i for i, line in enumerate(lines) if line and not line.startswith("#"))
    assert all(i < first_cmd for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    assert "N_TASKS=4" in lines and "MAX_REQUEUE=2" in lines
    assert (f"/opt/py/bin/python -m genrecon.cli.main reconstruct --config {run}/slurm/config.yaml "
            '--shard "$SLURM_ARRAY_TASK_ID/$N_TASKS" --no-evaluate -q &') in text
    assert 'REQUEUE_ID="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"' in lines
    assert 'scontrol requeue "$REQUEUE_ID"' in text
    assert "module load cuda/12.1" in lines
    script = tmp_path / "a.sbatch"
    script.write_text(text)
    check = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_train_script_contents_and_syntax(tmp_path):
    run = tmp_path / "train"
    text = train_script(run_dir=run, config=run / "slurm" / "train-config.yaml", nodes=2, procs_per_node=4,
                        options=SlurmOptions(gpus="4", time="1-00:00:00", signal_before=300), workdir=tmp_path,
                        python="/opt/py/bin/python")
    lines = text.splitlines()
    for directive in ("--nodes=2", "--ntasks-per-node=1", "--gpus-per-node=4", "--cpus-per-task=4",
                      "--signal=B:TERM@300", "--requeue", "--time=1-00:00:00"):
        assert f"#SBATCH {directive}" in lines, directive
    assert "NPROC_PER_NODE=4" in lines
    pieces = ['srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1', "-m torch.distributed.run",
              '--nproc_per_node="$NPROC_PER_NODE"', "--rdzv_backend=c10d", '--rdzv_endpoint="$RDZV_HOST:$RDZV_PORT"',
              f"-m genrecon.training --config {run}/slurm/train-config.yaml --resume",
              f"--summary-json '{run}/slurm/summary_{{rank}}.json'", 'scancel --signal=TERM "$SLURM_JOB_ID"']
    for piece in pieces:
        assert piece in text, piece
    script = tmp_path / "t.sbatch"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0


def test_static_training_template_matches_the_generated_one():
    """scripts/sbatch_train_prior.sh (for editing by hand) launches training the way the generated script does."""
    template = (ROOT / "scripts" / "sbatch_train_prior.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / "sbatch_train_prior.sh")]).returncode == 0
    for piece in ("#SBATCH --ntasks-per-node=1", "#SBATCH --requeue", "#SBATCH --signal=B:TERM@",
                  'srun --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1', "--rdzv_backend=c10d",
                  '--rdzv_endpoint="$RDZV_HOST:$RDZV_PORT" --rdzv_id="$SLURM_JOB_ID"', "--resume",
                  'scancel --signal=TERM "$SLURM_JOB_ID"', 'scontrol requeue "$SLURM_JOB_ID"', '[ "$term_state" = RUNNING ]'):
        assert piece in template, piece


# ---------------------------------------------------------------------------------------------------------
# the job script's behaviour, run by bash with stand-in scontrol and genrecon
# ---------------------------------------------------------------------------------------------------------
FAKE_GENRECON = """\
echo "$*" > "$FAKE_DIR/args"
if [ "$FAKE_MODE" = exit0 ]; then exit 0; fi
if [ "$FAKE_MODE" = exit2 ]; then exit 2; fi
trap 'echo stopped > "$FAKE_DIR/stopped"; exit 130' TERM
touch "$FAKE_DIR/started"
for i in $(seq 200); do sleep 0.05; done
exit 0
"""
FAKE_SCONTROL = """\
echo "$*" >> "$FAKE_DIR/scontrol.log"
case "$1" in
  show) echo "JobId=11 JobName=x JobState=$FAKE_STATE Reason=None" ;;
  requeue) exit "$FAKE_REQUEUE_RC" ;;
esac
"""


@pytest.mark.parametrize(
    "mode, state, attempt, requeue_rc, signal_it, exit_code, outcome, requeued",
    [
        ("exit0", "RUNNING", 0, 0, False, 0, "completed", False),
        ("exit2", "RUNNING", 0, 0, False, 2, "failed", False),
        ("slow", "RUNNING", 0, 0, True, 0, "requeued", True),  # time limit / preemption: requeue itself
        ("slow", "RUNNING", 2, 0, True, 130, "interrupted", False),  # MAX_REQUEUE (2) reached
        ("slow", "COMPLETING", 0, 0, True, 130, "interrupted", False),  # scancel by a user: never requeued
        ("slow", "RUNNING", 0, 1, True, 130, "interrupted", True),  # scontrol requeue refused
    ],
)
def test_job_script_requeues_only_on_time_limit_or_preemption(
        tmp_path, mode, state, attempt, requeue_rc, signal_it, exit_code, outcome, requeued):
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "scontrol", FAKE_SCONTROL)
    genrecon = fake_tool(bin_dir, "fake-python", FAKE_GENRECON)
    run = tmp_path / "run"
    script = tmp_path / "job.sbatch"
    script.write_text(array_script(run_dir=run, config=run / "slurm" / "config.yaml", n_tasks=4, n_cases=8,
                                   options=SlurmOptions(max_requeue=2), workdir=tmp_path, python=str(genrecon)))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_DIR": str(tmp_path),
           "FAKE_MODE": mode, "FAKE_STATE": state, "FAKE_REQUEUE_RC": str(requeue_rc),
           "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": "1", "SLURM_JOB_ID": "11",
           "SLURM_RESTART_COUNT": str(attempt)}
    proc = subprocess.Popen(["bash", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if signal_it:
        deadline = time.monotonic() + 20
        while not (tmp_path / "started").exists():
            assert time.monotonic() < deadline and proc.poll() is None, "the stand-in genrecon did not start"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == exit_code, out
    assert (tmp_path / "args").read_text().split() == [
        "-m", "genrecon.cli.main", "reconstruct", "--config", str(run / "slurm" / "config.yaml"), "--shard", "1/4", "--no-evaluate", "-q"]
    if signal_it:
        assert (tmp_path / "stopped").exists(), "the signal was not passed on to genrecon"
    log = (tmp_path / "scontrol.log").read_text() if (tmp_path / "scontrol.log").exists() else ""
    assert ("requeue 7_1" in log) == requeued, log
    record = json.loads((run / "slurm" / "tasks" / "7_1.json").read_text())
    assert record["outcome"] == outcome and record["task"] == 1 and record["attempt"] == attempt
    assert record["exit_code"] == (0 if mode == "exit0" else 2 if mode == "exit2" else 130)
    assert record["signal_state"] == (state if signal_it else "")


# ---------------------------------------------------------------------------------------------------------
# the command line: dry runs, mistakes, submission through a stand-in sbatch
# ---------------------------------------------------------------------------------------------------------
def test_dry_run_writes_only_the_script_and_its_config(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no SLURM needed for a dry run
    out = tmp_path / "run"
    cfg = write_cfg(tmp_path, phantom_config(out))
    res = invoke("batch", "submit", "--config", cfg, "--array", 3, "--dry-run", "--time", "30",
                 "--set", "reconstructors.1.params.tv_weight=0.02")
    assert res.exit_code == 0, res.output
    script = out / "slurm" / "reconstruct.sbatch"
    assert str(script) in res.output.replace("\n", "")
    assert files_under(out) == {"slurm/reconstruct.sbatch", "slurm/config.yaml"}
    text = script.read_text()
    assert "#SBATCH --array=0-2" in text and "#SBATCH --time=30" in text and "--shard" in text
    resolved = yaml.safe_load((out / "slurm" / "config.yaml").read_text())
    assert resolved["reconstructors"][1]["params"]["tv_weight"] == 0.02  # overrides are baked into the run's config
    # the short form of the issue, `genrecon batch --config X --array N`, writes the same script
    res2 = invoke("batch", "--config", cfg, "--array", 3, "--dry-run", "--time", "30",
                  "--set", "reconstructors.1.params.tv_weight=0.02")
    assert res2.exit_code == 0, res2.output
    strip = lambda s: [line for line in s.splitlines() if "written by" not in line]  # noqa: E731
    assert strip(script.read_text()) == strip(text)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--array", "0"], "--array: expected an integer >= 1"),
        (["--array", "9"], "only 7 case(s)"),
        (["--array", "2", "--time", "1h"], "--time: expected"),
        (["--array", "2", "--time", "1"], "would be told to stop at once"),
        (["--array", "2", "--mem", "16 GB"], "--mem: expected"),
        (["--array", "2", "--gpus", "two"], "--gpus: expected"),
        (["--array", "2", "--cpus", "0"], "--cpus: expected"),
        (["--array", "2", "--partition", "a b"], "--partition: expected"),
        (["--array", "2", "--max-running", "0"], "--max-running: expected"),
        (["--array", "2", "--set", "reconstructors.9.params.tv_weight=1"], "not an index"),
        (["--array", "2", "--set", "simulate.mask.acceleration=0.5"], "acceleration"),
        ([], "give --config FILE and --array N"),
    ],
)
def test_bad_options_exit_2_and_write_nothing(tmp_path, args, expected):
    out = tmp_path / "run"
    cfg = write_cfg(tmp_path, phantom_config(out))
    res = invoke("batch", "submit", "--config", cfg, *args, "--dry-run")
    assert res.exit_code == 2, res.output
    assert expected in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    assert not out.exists()


def test_bare_batch_and_misplaced_options_exit_2(tmp_path):
    res = invoke("batch")
    assert res.exit_code == 2 and "give --config FILE --array N" in res.output
    res = invoke("batch", "--array", 2, "status", tmp_path)
    assert res.exit_code == 2 and "after the command" in res.output
    res = invoke("batch", "status", tmp_path / "missing")
    assert res.exit_code == 2 and "no such run folder" in res.output


def test_missing_sbatch_exit_1_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "run"
    res = invoke("batch", "submit", "--config", write_cfg(tmp_path, phantom_config(out)), "--array", 2)
    assert res.exit_code == 1, res.output
    assert "SLURM's sbatch was not found" in res.output and "--dry-run" in res.output
    assert not out.exists()


def test_submission_records_jobs_and_chains_the_evaluation(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    # a stand-in sbatch: logs its arguments, answers like `sbatch --parsable` (job ids 4242, 4243, ...)
    fake_tool(bin_dir, "sbatch", f"""\
n=0; [ -f {tmp_path}/n ] && read -r n < {tmp_path}/n; n=$((n + 1)); echo $n > {tmp_path}/n  # bash builtins only
echo "$*" >> {tmp_path}/sbatch.log
echo "$((4241 + n));cluster"
""")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{tmp_path / 'empty'}")  # no squeue: nothing is active
    out = tmp_path / "run"
    res = invoke("batch", "--config", write_cfg(tmp_path, phantom_config(out)), "--array", 3, "--partition", "debug")
    assert res.exit_code == 0, res.output
    assert "array job 4242" in res.output and "evaluation job 4243" in res.output
    calls = (tmp_path / "sbatch.log").read_text().splitlines()
    assert calls[0] == f"--parsable {out / 'slurm' / 'reconstruct.sbatch'}"
    assert calls[1] == (f"--parsable --dependency=afterok:4242 --kill-on-invalid-dep=yes "
                        f"{out / 'slurm' / 'evaluate.sbatch'}")
    jobs = json.loads((out / "slurm" / "jobs.json").read_text())["jobs"]
    assert [(j["kind"], j["job_id"]) for j in jobs] == [("reconstruct", "4242"), ("evaluate", "4243")]
    assert jobs[0]["n_tasks"] == 3 and jobs[0]["n_cases"] == 7 and jobs[0]["options"]["partition"] == "debug"
    assert jobs[1]["after"] == "4242"
    assert "#SBATCH --partition=debug" in (out / "slurm" / "evaluate.sbatch").read_text()


def test_refused_submission_leaves_nothing_behind(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "sbatch", 'echo "sbatch: error: invalid partition specified: nope" >&2; exit 1\n')
    monkeypatch.setenv("PATH", str(bin_dir))
    out = tmp_path / "deep" / "run"
    res = invoke("batch", "submit", "--config", write_cfg(tmp_path, phantom_config(out)), "--array", 2,
                 "--partition", "nope")
    assert res.exit_code == 1, res.output
    assert "sbatch refused reconstruct.sbatch" in res.output and "invalid partition" in res.output
    assert not (tmp_path / "deep").exists()


def test_train_dry_run_writes_script_and_resolved_config(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "train"
    res = invoke("batch", "--train", ROOT / "configs" / "train_prior_tiny.yaml", "--nodes", 2, "--procs-per-node", 2,
                 "--set", f"output.dir={out}", "--set", "train.steps=7", "--dry-run")
    assert res.exit_code == 0, res.output
    assert files_under(out) == {"slurm/train.sbatch", "slurm/train-config.yaml"}
    assert yaml.safe_load((out / "slurm" / "train-config.yaml").read_text())["train"]["steps"] == 7
    assert "#SBATCH --nodes=2" in (out / "slurm" / "train.sbatch").read_text()
    res = invoke("batch", "train", "--config", ROOT / "configs" / "train_prior_tiny.yaml", "--nodes", 0, "--dry-run")
    assert res.exit_code == 2 and "--nodes: expected an integer >= 1" in res.output


# ---------------------------------------------------------------------------------------------------------
# status of a run folder with done, partial and pending cases
# ---------------------------------------------------------------------------------------------------------
def test_status_reports_done_partial_pending_and_task_states(tmp_path, monkeypatch):
    from genrecon.cli.main import app

    out = tmp_path / "run"
    cfg = write_cfg(tmp_path, phantom_config(out, count=7))
    for shard in ("0/3", "1/3"):  # shards 0 and 1 of 3: cases 0, 3, 6 and 1, 4
        res = runner.invoke(app, ["reconstruct", "--config", str(cfg), "--shard", shard, "-q"])
        assert res.exit_code == 0, res.output
    # case 4 is interrupted half-way: its fista_tv record is missing
    half = next(p for p in (out / "cases").iterdir() if p.name.endswith("__4"))
    (half / "fista_tv.json").unlink()
    # one stale method record (another lam) makes case 6 partial too: it would be recomputed
    stale = next(p for p in (out / "cases").iterdir() if p.name.endswith("__6"))
    rec = json.loads((stale / "zero_filled.json").read_text())
    (stale / "zero_filled.json").write_text(json.dumps({**rec, "hash": "0" * 16}))

    # a submission of 3 tasks (job 50): task 0 finished (its record), task 2 is queued, task 1 left no trace
    slurm = out / "slurm"
    slurm.mkdir()
    (slurm / "config.yaml").write_text((out / "config.yaml").read_text())
    (slurm / "jobs.json").write_text(json.dumps({"jobs": [
        {"kind": "reconstruct", "job_id": "50", "n_tasks": 3}, {"kind": "evaluate", "job_id": "51", "after": "50"}]}))
    (slurm / "tasks").mkdir()
    (slurm / "tasks" / "50_0.json").write_text(json.dumps({"job": "50_0", "task": 0, "attempt": 1,
                                                          "outcome": "completed", "exit_code": 0}))
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "squeue", 'echo "50_2|PENDING|Resources"; echo "51|PENDING|Dependency"\n')
    fake_tool(bin_dir, "sacct", "sleep 30\n")  # a cluster whose accounting hangs must not hang the status
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(batch, "QUERY_TIMEOUT", 1.0)

    t0 = time.monotonic()
    st = batch_status(out)
    assert time.monotonic() - t0 < 10
    assert st.counts() == {"done": 3, "partial": 2, "pending": 2}
    by_key = {c.key.split("/")[-1]: c for c in st.cases}
    assert [by_key[str(i)].state for i in range(7)] == ["done", "done", "pending", "done", "partial", "pending",
                                                         "partial"]
    assert by_key["4"].missing == ("fista_tv",) and by_key["6"].missing == ("zero_filled",)
    assert [c.task for c in st.cases] == [0, 1, 2, 0, 1, 2, 0]
    states = {t.task: t for t in st.tasks}
    assert states[0].state == "COMPLETED" and (states[0].done, states[0].partial) == (2, 1)
    assert states[1].state == "UNKNOWN" and (states[1].done, states[1].partial) == (1, 1)
    assert states[2].state == "PENDING (Resources)" and states[2].pending == 2
    assert st.other_jobs == (("evaluate", "51", "PENDING (Dependency)"),)
    assert "sacct" not in st.sources and "squeue" in st.sources

    res = invoke("batch", "status", out, "--cases")
    assert res.exit_code == 0, res.output
    assert "7 case(s): 3 done, 2 partial, 2 pending" in res.output.replace("\n", " ")
    assert "PENDING (Resources)" in res.output and "UNKNOWN" in res.output and "evaluate job 51" in res.output


def test_status_without_any_slurm_command(tmp_path, monkeypatch):
    out = tmp_path / "run"
    cfg = write_cfg(tmp_path, phantom_config(out, count=3))
    res = runner.invoke(main_app, ["reconstruct", "--config", str(cfg), "--shard", "0/2", "-q"])
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    st = batch_status(out)  # a run never submitted: its own config.yaml, no jobs
    assert st.counts() == {"done": 2, "partial": 0, "pending": 1} and st.tasks == () and st.sources == ()
    res = invoke("batch", "status", out)
    assert res.exit_code == 0 and "no job submitted" in res.output
