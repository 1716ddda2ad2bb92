"""The ``train-prior`` loop, one for both kinds of prior.

``theta <- AdamW(theta, mean_r grad L_r(theta))`` with the kind's loss ``L`` (diffusion: denoising MSE;
generator: VAE reconstruction + beta KL), a linear learning-rate warm-up, gradient clipping, an EMA of the
weights, optional mixed precision (bf16 autocast on CUDA or the CPU; fp16 with loss scaling on GPUs without
bf16), and seeded generators for everything random (initialisation, data order, augmentation, noise). A run
folder ``output.dir`` holds::

    config.yaml     the resolved configuration
    checkpoint.pt   training state for --resume (weights, optimiser, EMA, step, data position, RNG states)
    loss.csv        step, train_loss (mean since the last row), val_loss, lr, seconds
    samples/        PNG grids of unconditional samples (step_000500.png, ..., final.png)
    summary.json    what :func:`train_prior` returns

Stopping: ``train.steps`` reached, or ``train.max_minutes`` spent in this invocation (both export the
prior to ``output.export``), or SIGTERM/SIGINT (saves ``checkpoint.pt``, then raises
:class:`~genrecon.errors.Interrupted`). ``--resume`` continues bit-exactly where the checkpoint stopped.
"""

from __future__ import annotations

import copy
import csv
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch
import yaml

from .. import __version__
from ..errors import CheckpointError, ConfigError, Interrupted
from ..priors.checkpoint import TRAIN_STATE_FORMAT, atomic_torch_save, save_prior
from .augment import augment
from .config import RUN_TIME_MODEL_KEYS, TrainConfig, config_to_dict
from .data import PriorData, ShardedBatches, derive_seed, load_prior_data
from .diffusion import DiffusionTask
from .distributed import DistContext, setup_distributed
from .ema import EMA
from .state import SignalFlag, lr_at, save_grid, seeded_global_rng, weights_sha256
from .generator import GeneratorTask

Progress = Callable[[int, int, dict[str, Any]], None]
CSV_HEADER = ["step", "train_loss", "val_loss", "lr", "seconds"]
#: config entries a resumed run must share with its checkpoint
RESUME_FIXED = ("kind", "seed", "model", "data.size")


def make_task(cfg: TrainConfig) -> DiffusionTask | GeneratorTask:
    cls = DiffusionTask if cfg.kind == "diffusion" else GeneratorTask
    return cls(cfg.model, image_size=cfg.data.size, channels=1, sample_steps=cfg.train.sample_steps)


def _dotted(d: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        d = d.get(part, {}) if isinstance(d, dict) else {}
    if key == "model" and isinstance(d, dict):  # run-time keys (checkpointing) may change on resume
        return {k: v for k, v in d.items() if k not in RUN_TIME_MODEL_KEYS}
    return d


class _Trainer:
    def __init__(self, cfg: TrainConfig, dist: DistContext, progress: Progress | None):
        self.cfg, self.dist, self.progress = cfg, dist, progress
        self.device = dist.device
        t = cfg.train
        if t.amp and self.device.type not in ("cuda", "cpu"):
            raise ConfigError(f"train.amp: mixed precision runs on CUDA or the CPU (bf16); this run is on "
                              f"{self.device}: set train.amp: false")
        self.run_dir = Path(cfg.output.dir)
        self.ckpt_path = self.run_dir / "checkpoint.pt"
        self.csv_path = self.run_dir / "loss.csv"
        self.data: PriorData = load_prior_data(
            cfg.data.path, size=cfg.data.size, val_fraction=cfg.data.val_fraction,
            max_train=cfg.data.max_train, max_val=cfg.data.max_val, seed=cfg.seed,
        )
        self.batches = ShardedBatches(len(self.data.train), t.batch_size, cfg.seed, dist.rank, dist.world_size)
        self.task = make_task(cfg)
        init_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "init"))
        self.model = self.task.build(init_gen).to(self.device).train()
        if t.init_from:
            self._init_from(t.init_from)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self.ema = EMA(self.model, t.ema) if t.ema > 0 else None
        self.noise_gen = torch.Generator(self.device).manual_seed(derive_seed(cfg.seed, "noise", dist.rank))
        self.aug_gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "augment", dist.rank))
        self.amp_dtype = None
        if t.amp:
            cpu_or_bf16 = self.device.type == "cpu" or torch.cuda.is_bf16_supported()
            self.amp_dtype = torch.bfloat16 if cpu_or_bf16 else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self.elapsed_before = 0.0
        self.window_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.window_count = 0
        self.resumed_from: int | None = None
        self.rng_reseeded = False
        self.last_train_loss: float | None = None
        self.last_val_loss: float | None = None
        self._eval_model: torch.nn.Module | None = None

    def _init_from(self, ref: str) -> None:
        """Copy the weights of an exported prior (same kind, size and architecture) into the model."""
        from ..errors import CheckpointError
        from ..priors.checkpoint import load_prior

        prior, meta = load_prior(ref, kind=self.cfg.kind, image_size=self.cfg.data.size, purpose="train.init_from")
        try:
            self.model.load_state_dict({k: v.float() for k, v in prior.state_dict().items()})
        except RuntimeError:
            raise CheckpointError(
                f"train.init_from: {ref} has another architecture ({meta.get('arch_params')}) than this config's "
                "model section; copy its model settings (genrecon priors NAME shows them)"
            ) from None
        self.init_steps = int(meta.get("steps") or 0)

    # -- state -------------------------------------------------------------------------------------
    def save_state(self) -> None:
        noise = self.dist.gather(self.noise_gen.get_state())
        aug = self.dist.gather(self.aug_gen.get_state())
        if not self.dist.is_main:
            return
        payload = {
            "format": TRAIN_STATE_FORMAT,
            "format_version": 1,
            "genrecon_version": __version__,
            "kind": self.cfg.kind,
            "step": self.step,
            "elapsed_seconds": self.elapsed(),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "ema": {k: v.cpu() for k, v in self.ema.state_dict().items()} if self.ema else {},
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "rng": {"noise": noise, "augment": aug},
            "data": self.batches.state_dict(),
            "window": {"sum": self.window_sum.detach().cpu(), "count": self.window_count},
            "world_size": self.dist.world_size,
            "config": config_to_dict(self.cfg),
        }
        atomic_torch_save(payload, self.ckpt_path)

    def load_state(self) -> None:
        try:
            state = torch.load(self.ckpt_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - corrupt or foreign file
            raise CheckpointError(f"training checkpoint {self.ckpt_path} is unreadable ({type(exc).__name__}): "
                                  "delete it to start over, or restore a copy") from None
        if not isinstance(state, dict) or state.get("format") != TRAIN_STATE_FORMAT:
            raise CheckpointError(f"{self.ckpt_path} is not a genrecon training checkpoint: delete it or change "
                                  "output.dir")
        old, new = state.get("config", {}), config_to_dict(self.cfg)
        changed = [k for k in RESUME_FIXED if _dotted(old, k) != _dotted(new, k)]
        if changed:
            raise ConfigError(f"cannot resume {self.ckpt_path}: {', '.join(changed)} differ from the checkpoint's "
                              "config: restore them, or use a new output.dir")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state["ema"]:
            self.ema.load_state_dict(state["ema"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.elapsed_before = float(state["elapsed_seconds"])
        self.batches.load_state_dict(state["data"])
        self.window_sum = state["window"]["sum"].to(self.device, torch.float64)
        self.window_count = int(state["window"]["count"])
        if int(state["world_size"]) == self.dist.world_size:
            self.noise_gen.set_state(state["rng"]["noise"][self.dist.rank])
            self.aug_gen.set_state(state["rng"]["augment"][self.dist.rank])
        else:  # a different number of processes: continue with fresh, step-dependent streams
            self.noise_gen.manual_seed(derive_seed(self.cfg.seed, "noise", self.dist.rank, self.step))
            self.aug_gen.manual_seed(derive_seed(self.cfg.seed, "augment", self.dist.rank, self.step))
            self.rng_reseeded = True
        self.resumed_from = self.step

    def elapsed(self) -> float:
        return self.elapsed_before + (time.monotonic() - self.t_session)

    # -- logging -----------------------------------------------------------------------------------
    def start_csv(self) -> None:
        if not self.dist.is_main:
            return
        rows: list[list[str]] = []
        if self.resumed_from is not None and self.csv_path.is_file():
            with open(self.csv_path, newline="") as fh:
                rows = [r for r in list(csv.reader(fh))[1:] if r and r[0].isdigit() and int(r[0]) <= self.step]
        with open(self.csv_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(CSV_HEADER)
            writer.writerows(rows)

    def write_row(self, train_loss: float | None, val_loss: float | None, lr: float) -> None:
        if not self.dist.is_main:
            return
        fmt = lambda v: "" if v is None else f"{v:.6g}"  # noqa: E731
        with open(self.csv_path, "a", newline="") as fh:
            csv.writer(fh).writerow([self.step, fmt(train_loss), fmt(val_loss), f"{lr:.6g}", f"{self.elapsed():.2f}"])

    # -- evaluation --------------------------------------------------------------------------------
    def eval_model(self) -> torch.nn.Module:
        """The weights that are exported: the EMA average if enabled, else the trained weights."""
        if self._eval_model is None:
            self._eval_model = copy.deepcopy(self.model).eval().requires_grad_(False)
        if self.ema is not None:
            self.ema.copy_to(self._eval_model)
        else:
            self._eval_model.load_state_dict(self.model.state_dict())
        return self._eval_model

    @torch.no_grad()
    def validate(self) -> float:
        model = self.eval_model()
        gen = torch.Generator(self.device).manual_seed(derive_seed(self.cfg.seed, "val"))
        total, count = 0.0, 0
        bs = self.cfg.train.batch_size
        for i in range(0, len(self.data.val), bs):
            x = self.data.val[i : i + bs].to(self.device)
            total += float(self.task.val_loss(model, x, gen)) * len(x)
            count += len(x)
        return total / count

    def write_samples(self, name: str) -> None:
        gen = torch.Generator(self.device).manual_seed(derive_seed(self.cfg.seed, "samples"))
        images = self.task.samples(self.eval_model(), self.cfg.train.n_samples, gen)
        save_grid(images, self.run_dir / "samples" / f"{name}.png")

    # -- the loop ----------------------------------------------------------------------------------
    def lr_for(self, step: int) -> float:
        t = self.cfg.train
        return lr_at(step, t.lr, t.warmup_steps, schedule=t.lr_schedule, total=t.steps, lr_min=t.lr_min)

    def train_step(self) -> tuple[torch.Tensor, float]:
        t, a = self.cfg.train, self.cfg.augment
        idx = self.batches.next_indices()
        x = augment(self.data.train[idx], self.aug_gen, **a.params()).to(self.device)
        lr = self.lr_for(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        drop = (derive_seed(self.cfg.seed, "dropout", self.dist.rank, self.step)
                if getattr(self.cfg.model, "dropout", 0) else None)  # dropout: seeded per step (resumable)
        with seeded_global_rng(drop, self.device), torch.autocast(
                self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            loss, _ = self.task.loss(self.model, x, self.noise_gen, self.step)
        if not torch.isfinite(loss):
            raise ConfigError(f"training diverged at step {self.step} (loss {float(loss)}): lower train.lr "
                              "or set train.grad_clip")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.dist.all_reduce_grads(self.model.parameters())
        if t.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), t.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model, self.step)
        return loss.detach(), lr

    def run(self, resume: bool) -> dict[str, Any]:
        cfg, t, dist = self.cfg, self.cfg.train, self.dist
        self.t_session = time.monotonic()
        self.train_seconds = 0.0
        if self.ckpt_path.is_file():
            if not resume:
                raise ConfigError(f"{self.run_dir} already holds a training checkpoint: pass --resume to continue "
                                  "it, or choose another output.dir")
            self.load_state()
        if dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        self.start_csv()
        budget = None if t.max_minutes is None else t.max_minutes * 60.0
        status, lr, start_step = "completed", self.lr_for(self.step), self.step
        last_val_step = -1
        with SignalFlag() as flag:
            while self.step < t.steps:
                over = budget is not None and time.monotonic() - self.t_session >= budget
                code = dist.max(2 if flag.name is not None else int(over))  # 2: signal, 1: time budget
                if code:
                    status = "interrupted" if code == 2 else "time_budget"
                    break
                tic = time.monotonic()
                loss, lr = self.train_step()
                self.train_seconds += time.monotonic() - tic
                self.window_sum += loss.double()
                self.window_count += 1
                metrics: dict[str, Any] = {"lr": lr, "seconds": round(self.elapsed(), 2)}
                train_loss = val_loss = None
                if self.step % t.log_every == 0 or self.step == t.steps:
                    train_loss = dist.mean(float(self.window_sum) / self.window_count)
                    self.window_sum.zero_()
                    self.window_count = 0
                    self.last_train_loss = metrics["train_loss"] = train_loss
                if self.step % t.sample_every == 0 and dist.is_main:
                    val_loss = self.last_val_loss = metrics["val_loss"] = self.validate()
                    last_val_step = self.step
                    self.write_samples(f"step_{self.step:06d}")
                if train_loss is not None or val_loss is not None:
                    self.write_row(train_loss, val_loss, lr)
                if self.step % t.checkpoint_every == 0:
                    self.save_state()
                if self.progress is not None:
                    self.progress(self.step, t.steps, metrics)
        self.save_state()
        if status == "interrupted":
            raise Interrupted(f"training stopped by {flag.name or 'another rank'} at step {self.step}; checkpoint "
                              f"saved in {self.ckpt_path}: rerun with --resume to continue")
        export = None
        if dist.is_main:
            if last_val_step != self.step:
                self.last_val_loss = self.validate()
                self.write_row(None, self.last_val_loss, lr)
            self.write_samples("final")
            export = str(self.export())
        session = time.monotonic() - self.t_session
        summary = {
            "status": status,
            "kind": cfg.kind,
            "steps": self.step,
            "target_steps": t.steps,
            "resumed_from": self.resumed_from,
            "train_loss": self.last_train_loss,
            "val_loss": self.last_val_loss,
            "seconds": round(self.elapsed(), 2),
            "session_seconds": round(session, 2),
            "steps_per_second": round((self.step - start_step) / self.train_seconds, 4) if self.train_seconds else None,
            "train_seconds": round(self.train_seconds, 2),
            "param_count": sum(p.numel() for p in self.model.parameters()),
            "weights_sha256": weights_sha256(self.model),
            "export_weights_sha256": weights_sha256(self.eval_model()),
            "world_size": dist.world_size,
            "rank": dist.rank,
            "device": str(self.device),
            "rng_reseeded": self.rng_reseeded,
            "run_dir": str(self.run_dir),
            "checkpoint": str(self.ckpt_path),
            "export": export,
            "data": self.data.summary,
        }
        if dist.is_main:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return summary

    def export(self) -> Path:
        cfg = self.cfg
        model = self.eval_model()
        return save_prior(
            cfg.export_path,
            model,
            kind=cfg.kind,
            arch=self.task.arch,
            arch_params=self.task.arch_params(),
            image_size=cfg.data.size,
            channels=1,
            normalisation=self.data.normalisation,
            training=config_to_dict(cfg),
            data=self.data.summary,
            steps=self.step + getattr(self, "init_steps", 0),  # counting the steps of a train.init_from prior
            extra={
                "name": cfg.output.name,
                "init_from": cfg.train.init_from,
                "init_steps": getattr(self, "init_steps", 0),
                "ema": cfg.train.ema,
                "train_loss": self.last_train_loss,
                "val_loss": self.last_val_loss,
                "seconds": round(self.elapsed(), 2),
                "world_size": self.dist.world_size,
                "intensity": "images in [0, 1]" + ("; diffusion space 2x-1 in [-1, 1]" if cfg.kind == "diffusion" else ""),
                **self.task.extra(),
            },
            storage_dtype=cfg.output.storage_dtype,
        )


def train_prior(cfg: TrainConfig, *, resume: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Train the prior ``cfg`` describes and export it; see the module docstring.

    Args:
        cfg: a parsed :class:`TrainConfig` (from :func:`load_train_config`).
        resume: continue from ``output.dir/checkpoint.pt`` if it exists (start fresh otherwise). Without it,
            an existing checkpoint is an error, so a run is never overwritten by accident.
        progress: ``progress(step, total_steps, metrics)`` after every step; ``metrics`` has ``lr`` and
            ``seconds``, plus ``train_loss`` at log steps and ``val_loss`` at validation steps.

    Returns:
        A JSON-able summary: status (``completed`` or ``time_budget``), steps, losses, timings
        (``steps_per_second`` counts optimisation steps only, not validation or sampling), weight hashes,
        paths of the checkpoint and the export. Also written to ``output.dir/summary.json`` (rank 0).

    Raises:
        ConfigError, DataError, CheckpointError: before any training (bad config, data or checkpoint).
        Interrupted: after SIGINT/SIGTERM, once the checkpoint is saved.
    """
    dist = setup_distributed(cfg.device)
    try:
        return _Trainer(cfg, dist, progress).run(resume)
    finally:
        dist.close()
