#!/usr/bin/env python
"""Training and inference cost of a full-size diffusion prior on the CPU (issue 17 part 3).

For the model of a train-prior config (default: configs/train_prior_brain_diffusion_320.yaml), measures per
setting, each in a fresh subprocess on 1 torch thread:
  train   seconds per optimisation step (the loop's loss -> backward -> grad clip -> AdamW step, no EMA) at batch
          B, wall and CPU time of the process (less sensitive to a loaded machine), with and without
          model.checkpointing (and, with --bf16, bf16 autocast as train.amp does on the CPU); peak resident memory of the timed steps above the level after a
          warm-up step (weights, AdamW state and data already allocated), the process's VmHWM, and the MiB of
          tensors autograd saves for the backward pass (exact; what checkpointing cuts)
  infer   one denoiser forward at batch 1 without gradients (a sampler step), and one with the gradient w.r.t. the
          input (a DPS step)
Images: the config's data file when it exists (data.path), else uniform noise of the same shape (the cost does not
depend on the pixel values). Memory: genrecon.benchmark.common.PeakMemory (RSS sampled every 1 ms).

    python scripts/bench_fullsize_train.py --out benchmarks/fullsize/train320.json            # batch 2 and 4
    python scripts/bench_fullsize_train.py --one '{"mode": "train", "batch": 2, "checkpointing": true}'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CONFIG = "configs/train_prior_brain_diffusion_320.yaml"


def _vm_hwm_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _saved_mib(model, x, amp: bool) -> float:
    """MiB of the distinct tensors autograd keeps for the backward pass of one loss (weights included): the
    activation memory checkpointing cuts, counted exactly (no sampling, independent of the machine's load)."""
    import torch

    sizes: dict[int, int] = {}

    def pack(t):
        sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            model.loss(x, torch.Generator().manual_seed(1))
    return round(sum(sizes.values()) / 2**20, 1)


def _images(cfg, n: int):
    import numpy as np
    import torch

    path = ROOT / cfg.data.path
    if path.is_file():
        import h5py

        with h5py.File(path, "r") as fh:
            imgs = np.asarray(fh["train/images"][:n], dtype=np.float32)
        return torch.from_numpy(imgs)[:, None], str(cfg.data.path)
    g = torch.Generator().manual_seed(0)
    return torch.rand((n, 1, cfg.data.size, cfg.data.size), generator=g), "uniform noise (data file not made)"


def one(spec: dict) -> dict:
    """Run one measurement in this process; return its record."""
    import torch

    from genrecon.benchmark.common import PeakMemory
    from genrecon.training.config import load_train_config
    from genrecon.training.loop import make_task

    torch.set_num_threads(1)
    cfg = load_train_config(ROOT / spec["config"])
    task = make_task(cfg)
    model = task.build(torch.Generator().manual_seed(0))
    model.net.checkpointing = bool(spec.get("checkpointing", False))
    params = sum(p.numel() for p in model.parameters())
    rec = dict(spec, params=params, image_size=cfg.data.size)
    if spec["mode"] == "train":
        x, rec["images"] = _images(cfg, spec["batch"])
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(1)
        amp = spec.get("amp_bf16", False)

        def step() -> float:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                loss = model.loss(x, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return float(loss.detach())

        model.train()
        rec["saved_activations_mib"] = _saved_mib(model, x, amp)
        t0 = time.perf_counter()
        step()
        rec["first_step_s"] = round(time.perf_counter() - t0, 3)
        times, cpu = [], []
        with PeakMemory("cpu") as pm:
            for _ in range(spec.get("steps", 3)):
                t0, c0 = time.perf_counter(), time.process_time()
                step()
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
        med = lambda v: round(sorted(v)[len(v) // 2], 3)  # noqa: E731
        rec.update(step_s=[round(t, 3) for t in times], step_s_median=med(times),
                   step_cpu_s=[round(t, 3) for t in cpu], step_cpu_s_median=med(cpu),
                   peak_mib_above_warm=None if pm.mib is None else round(pm.mib, 1), memory_method=pm.method)
    else:
        model.eval().requires_grad_(False)
        n = cfg.data.size
        x = torch.randn((1, 1, n, n), generator=torch.Generator().manual_seed(2))
        t = torch.tensor([500.0])
        with torch.no_grad():
            model.net(x, t)  # warm-up
        with PeakMemory("cpu") as pm:
            t0 = time.perf_counter()
            with torch.no_grad():
                model.net(x, t)
            rec["forward_s"] = round(time.perf_counter() - t0, 3)
        rec["forward_peak_mib"] = None if pm.mib is None else round(pm.mib, 1)
        xg = x.clone().requires_grad_(True)
        with PeakMemory("cpu") as pm:
            t0 = time.perf_counter()
            model.net(xg, t).square().sum().backward()
            rec["forward_backward_x_s"] = round(time.perf_counter() - t0, 3)
        rec["forward_backward_x_peak_mib"] = None if pm.mib is None else round(pm.mib, 1)
    rec["vm_hwm_mib"] = _vm_hwm_mib()
    return rec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=DEFAULT_CONFIG)
    ap.add_argument("--batches", default="2,4", help="comma-separated training batch sizes")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per setting (after one warm-up step)")
    ap.add_argument("--bf16", action="store_true", help="also time bf16 autocast on the CPU (batch 2)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--one", default=None, help="JSON spec: run one measurement here and print it")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one({"config": args.config, "steps": args.steps, **json.loads(args.one)})), flush=True)
        return 0
    specs = [{"mode": "infer"}]
    for b in (int(v) for v in args.batches.split(",")):
        specs += [{"mode": "train", "batch": b, "checkpointing": ck} for ck in (False, True)]
    if args.bf16:
        specs += [{"mode": "train", "batch": 2, "checkpointing": ck, "amp_bf16": True} for ck in (False, True)]
    from genrecon.benchmark.common import load_average, machine_info
    from genrecon.io.writers import write_json

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    records = []
    for spec in specs:
        load = load_average()
        out = subprocess.run([sys.executable, __file__, "--config", args.config, "--steps", str(args.steps),
                              "--one", json.dumps(spec)], capture_output=True, text=True, env=env, cwd=ROOT)
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            return out.returncode
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        rec["load_1min_before"], rec["load_1min_after"] = load, load_average()
        print(json.dumps(rec), flush=True)
        records.append(rec)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    used = ["genrecon/priors", "genrecon/training", "genrecon/benchmark/common.py", "scripts/bench_fullsize_train.py",
            args.config]  # what this benchmark runs; other agents' uncommitted files elsewhere do not count
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", *used], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip())
    result = {
        "what": "CPU cost of a full-size diffusion prior (train step, denoiser forward)",
        "script": "scripts/bench_fullsize_train.py",
        "config": args.config,
        "machine": {k: v for k, v in machine_info("cpu").items() if k in ("cpu", "cores", "python", "torch")},
        "threads": 1,
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "records": records,
    }
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
