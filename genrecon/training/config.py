"""The ``train-prior`` configuration: YAML -> frozen dataclasses, every problem reported at once.

Example YAML (see ``configs/train_prior_*.yaml``)::

    version: 1
    seed: 0
    device: auto
    kind: diffusion                       # or generator (a VAE whose decoder is G(z))
    data:    {path: data/prepared/brain-mri-128.h5, size: 128}
    model:   {base_channels: 32, channel_mults: [1, 2, 2, 2], patch_size: 2, schedule: vp}
    train:   {steps: 20000, max_minutes: 40, batch_size: 8, lr: 2.0e-4, ema: 0.999}
    augment: {flips: true, rotation_deg: 5, intensity_scale: 0.1}
    output:  {dir: runs/train/brain-diffusion, export: genrecon/data/priors/brain-mri-128-diffusion.pt}

``model`` is read according to ``kind`` (:class:`DiffusionModel` or :class:`GeneratorModel`).
Overrides ``--set a.b=c`` are YAML-parsed values (``--set train.lr=1e-4 --set model.channel_mults=[1,2]``).

Example:
    >>> raw = {"version": 1, "kind": "diffusion", "data": {"path": "x.h5", "size": 32},
    ...        "output": {"dir": "runs/t"}, "train": {"lr": -1, "stpes": 3}}
    >>> try:
    ...     parse_train_config(raw)
    ... except ConfigError as e:
    ...     print(e.problems)
    ["train: unknown key 'stpes' (did you mean 'steps'?)", 'train.lr: must be > 0, got -1.0']
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


from ..yamlio import apply_override, read_yaml
from ..errors import ConfigError
from ..schema import parse


@dataclass(frozen=True)
class DataSection:
    """Where the training images come from (an HDF5 file written by ``scripts/prepare_data.py``)."""

    path: str = field(metadata={"doc": ".h5 with train/images and val/images (N, S, S) float32 in [0, 1]"})
    size: int = field(default=128, metadata={"ge": 8, "doc": "image size S; must match the file"})
    val_fraction: float | None = field(
        default=None, metadata={"gt": 0, "lt": 1, "doc": "held-out share, used only if the file has no val/images"}
    )
    max_train: int | None = field(default=None, metadata={"ge": 1, "doc": "use at most this many training images"})
    max_val: int = field(default=64, metadata={"ge": 1, "doc": "held-out images for the validation loss"})


CHECKPOINTING_DOC = ("gradient checkpointing: recompute each residual unit (VAE: stage) in the backward pass; less "
                     "memory, ~1 more forward of time, same results; not stored in the exported prior")
#: model keys that change how a run computes, not the network: a resumed run may change them
RUN_TIME_MODEL_KEYS = ("checkpointing",)


@dataclass(frozen=True)
class DiffusionModel:
    """UNet denoiser and noise schedule (``kind: diffusion``)."""

    base_channels: int = field(default=32, metadata={"ge": 4, "doc": "width of the first UNet level"})
    channel_mults: tuple[int, ...] = field(
        default=(1, 2, 2, 2), metadata={"item": {"ge": 1}, "doc": "width multiplier per level (one halving each)"}
    )
    num_res_blocks: int = field(default=1, metadata={"ge": 1, "doc": "residual blocks per level"})
    attention_levels: tuple[int, ...] = field(
        default=(-1,), metadata={"doc": "levels with self-attention; negative counts from the coarsest (-1)"}
    )
    groups: int = field(default=8, metadata={"ge": 1, "doc": "GroupNorm groups"})
    dropout: float = field(default=0.0, metadata={"ge": 0, "lt": 1, "doc": "dropout in residual blocks"})
    patch_size: int = field(default=1, metadata={"ge": 1, "doc": "fold p x p pixel patches into channels"})
    schedule: Literal["vp", "edm"] = field(
        default="vp", metadata={"doc": "vp: DDPM eps-prediction, cosine schedule; edm: Karras preconditioning"}
    )
    timesteps: int = field(default=1000, metadata={"ge": 2, "doc": "VP training timesteps T"})
    sigma_data: float = field(default=0.5, metadata={"gt": 0, "doc": "EDM data std (images in [-1, 1])"})
    sigma_min: float = field(default=0.002, metadata={"gt": 0, "doc": "EDM smallest sampling sigma"})
    sigma_max: float = field(default=80.0, metadata={"gt": 0, "doc": "EDM largest sampling sigma"})
    checkpointing: bool = field(default=False, metadata={"doc": CHECKPOINTING_DOC})

    def problems(self) -> list[str]:
        out = []
        n = len(self.channel_mults)
        bad = [a for a in self.attention_levels if not -n <= a < n]
        if bad:
            out.append(f"attention_levels {bad} outside the {n} levels of channel_mults (use 0..{n - 1} or -{n}..-1)")
        if self.sigma_min >= self.sigma_max:
            out.append(f"sigma_min ({self.sigma_min}) must be < sigma_max ({self.sigma_max})")
        return out

    def arch_params(self) -> dict[str, Any]:
        """The ``{"unet": ..., "schedule": ...}`` that :meth:`DiffusionPrior.build` takes."""
        unet = {
            "base_channels": self.base_channels,
            "channel_mults": list(self.channel_mults),
            "num_res_blocks": self.num_res_blocks,
            "attention_levels": list(self.attention_levels),
            "groups": self.groups,
            "dropout": self.dropout,
            "patch_size": self.patch_size,
        }
        if self.schedule == "vp":
            schedule: dict[str, Any] = {"name": "vp", "timesteps": self.timesteps}
        else:
            schedule = {"name": "edm", "sigma_data": self.sigma_data, "sigma_min": self.sigma_min,
                        "sigma_max": self.sigma_max}
        return {"unet": unet, "schedule": schedule}

    def size_multiple(self) -> int:
        return self.patch_size * 2 ** (len(self.channel_mults) - 1)


@dataclass(frozen=True)
class GeneratorModel:
    """Convolutional VAE (``kind: generator``); its decoder is the generator ``G(z)``."""

    latent_dim: int = field(default=128, metadata={"ge": 1, "doc": "size of the latent code z"})
    base_channels: int = field(default=16, metadata={"ge": 4, "doc": "width of the finest stage"})
    channel_mults: tuple[int, ...] = field(
        default=(1, 2, 4, 8, 8), metadata={"item": {"ge": 1}, "doc": "width multiplier per stage (one halving each)"}
    )
    groups: int = field(default=8, metadata={"ge": 1, "doc": "GroupNorm groups"})
    latent_channels: int = field(default=0, metadata={
        "ge": 0, "doc": "0: latent vector; > 0: spatial latent grid of this many channels at the coarse "
                        "resolution (latent_dim must be latent_channels x coarse^2)"})
    recon: Literal["mse", "bce"] = field(default="mse", metadata={"doc": "reconstruction loss"})
    beta: float = field(default=0.01, metadata={"ge": 0, "doc": "KL weight (per image, against summed recon)"})
    beta_warmup_steps: int = field(default=1000, metadata={"ge": 0, "doc": "beta ramps linearly from 0"})
    checkpointing: bool = field(default=False, metadata={"doc": CHECKPOINTING_DOC})

    def arch_params(self) -> dict[str, Any]:
        """The parameters :meth:`ConvVAE.build` takes."""
        return {
            "latent_dim": self.latent_dim,
            "base_channels": self.base_channels,
            "channel_mults": list(self.channel_mults),
            "groups": self.groups,
            **({"latent_channels": self.latent_channels} if self.latent_channels else {}),
        }

    def size_multiple(self) -> int:
        return 2 ** len(self.channel_mults)


@dataclass(frozen=True)
class TrainSection:
    """Optimisation, budgets and the cadence of logs, validation, samples and checkpoints."""

    steps: int = field(default=10000, metadata={"ge": 1, "doc": "optimisation steps (total, across resumes)"})
    max_minutes: float | None = field(default=None, metadata={"gt": 0, "doc": "stop (and export) after this long"})
    batch_size: int = field(default=8, metadata={"ge": 1, "doc": "global batch (split across DDP ranks)"})
    lr: float = field(default=2e-4, metadata={"gt": 0, "doc": "AdamW learning rate"})
    lr_schedule: Literal["constant", "cosine"] = field(
        default="constant",
        metadata={"doc": "after the warm-up: constant, or a half cosine down to lr_min at train.steps"})
    lr_min: float = field(default=0.0, metadata={"ge": 0, "doc": "final learning rate of the cosine schedule"})
    weight_decay: float = field(default=0.0, metadata={"ge": 0, "doc": "AdamW weight decay"})
    warmup_steps: int = field(default=100, metadata={"ge": 0, "doc": "linear learning-rate warm-up"})
    grad_clip: float | None = field(default=1.0, metadata={"gt": 0, "doc": "max gradient norm (null: off)"})
    ema: float = field(default=0.999, metadata={"ge": 0, "lt": 1, "doc": "EMA decay of exported weights (0: off)"})
    amp: bool = field(default=False, metadata={
        "doc": "mixed precision: bf16 autocast (CUDA; fp16 + loss scaling on GPUs without bf16; on the CPU bf16, "
               "faster only on CPUs with native bf16, e.g. AVX512-BF16 or AMX)"})
    checkpoint_every: int = field(default=500, metadata={"ge": 1, "doc": "steps between training checkpoints"})
    sample_every: int = field(default=1000, metadata={"ge": 1, "doc": "steps between val loss + sample grids"})
    log_every: int = field(default=50, metadata={"ge": 1, "doc": "steps between loss.csv rows"})
    n_samples: int = field(default=16, metadata={"ge": 1, "doc": "images per sample grid"})
    sample_steps: int = field(default=50, metadata={"ge": 1, "doc": "diffusion sampler steps for grids"})
    init_from: str | None = field(
        default=None,
        metadata={"doc": "start from an exported prior's weights (e.g. pretrained:brain-mri-128-diffusion): "
                         "continue training a shipped prior in a new run; its architecture must match"},
    )


@dataclass(frozen=True)
class AugmentSection:
    """Random augmentation of training images (drawn from a seeded generator; :mod:`genrecon.training.augment`).

    Every key is off by default, and a config without the keys added later (all but ``flips``, ``rotation_deg``
    and ``intensity_scale``) draws the same random numbers and gives bit-identical batches as before.
    """

    flips: bool = field(default=False, metadata={"doc": "random left-right flips (probability 1/2)"})
    rotation_deg: float = field(default=0.0, metadata={"ge": 0, "le": 180, "doc": "uniform rotation in +-deg"})
    intensity_scale: float = field(
        default=0.0, metadata={"ge": 0, "lt": 1, "doc": "multiply by U(1-s, 1+s), clamp to [0, 1]"}
    )
    vflips: bool = field(default=False, metadata={"doc": "random up-down flips (probability 1/2)"})
    scale: float = field(default=0.0, metadata={
        "ge": 0, "le": 0.5, "doc": "zoom by U(1-s, 1+s) about the centre (0: off; range 0..0.5)"})
    shear_deg: float = field(default=0.0, metadata={
        "ge": 0, "le": 45, "doc": "shear by U(-d, d) degrees (0: off; range 0..45)"})
    elastic_px: float = field(default=0.0, metadata={
        "ge": 0, "le": 32, "doc": "elastic deformation: largest displacement in pixels (0: off; range 0..32)"})
    elastic_grid: int = field(default=5, metadata={
        "ge": 2, "le": 64, "doc": "control points per side of the elastic field (2..64; more: finer warps)"})
    crop_min: float = field(default=1.0, metadata={
        "gt": 0, "le": 1, "doc": "random square crop of side U(c, 1) of the image, resized back (1: off; 0 < c <= 1)"})
    gamma: float = field(default=1.0, metadata={
        "ge": 1, "le": 4, "doc": "gamma x^g, g = exp(U(-ln G, ln G)) (1: off; range 1..4)"})
    contrast: float = field(default=0.0, metadata={
        "ge": 0, "lt": 1, "doc": "contrast m + c (x - m) about the image mean, c ~ U(1-s, 1+s) (0: off; 0..<1)"})
    bias_field: float = field(default=0.0, metadata={
        "ge": 0, "le": 1, "doc": "smooth multiplicative bias exp(b), b a random quadratic, |b| <= this (0: off; 0..1)"})
    noise_std: float = field(default=0.0, metadata={
        "ge": 0, "le": 0.5, "doc": "additive Gaussian noise of std U(0, s) (0: off; range 0..0.5)"})

    def params(self) -> dict[str, Any]:
        """The keyword arguments of :func:`genrecon.training.augment.augment`."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class OutputSection:
    """Where the run folder and the exported prior go."""

    dir: str = field(metadata={"doc": "run folder: checkpoint.pt, loss.csv, samples/, config.yaml, summary.json"})
    export: str | None = field(default=None, metadata={"doc": "path of the exported prior .pt (default dir/prior.pt)"})
    name: str | None = field(default=None, metadata={"doc": "prior name recorded in the checkpoint"})
    storage_dtype: Literal["float32", "float16"] = field(
        default="float32", metadata={"doc": "dtype of the exported weights (float16 halves the file)"}
    )


@dataclass(frozen=True)
class TrainConfig:
    """A whole ``train-prior`` configuration."""

    version: Literal[1] = field(metadata={"doc": "config format version"})
    kind: Literal["generator", "diffusion"] = field(metadata={"doc": "what to train"})
    data: DataSection = field(metadata={"doc": "training images"})
    output: OutputSection = field(metadata={"doc": "run folder and export"})
    seed: int = field(default=0, metadata={"ge": 0, "doc": "seed of every random generator"})
    device: str = field(default="auto", metadata={"doc": "auto, cpu, cuda or cuda:N"})
    model: Any = field(default_factory=dict, metadata={"doc": "network (DiffusionModel or GeneratorModel fields)"})
    train: TrainSection = field(default_factory=TrainSection, metadata={"doc": "optimisation"})
    augment: AugmentSection = field(default_factory=AugmentSection, metadata={"doc": "augmentation"})

    @property
    def export_path(self) -> Path:
        """Where the prior is exported."""
        return Path(self.output.export) if self.output.export else Path(self.output.dir) / "prior.pt"


MODEL_SECTIONS: dict[str, type] = {"diffusion": DiffusionModel, "generator": GeneratorModel}
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")


def parse_train_config(raw: dict[str, Any]) -> TrainConfig:
    """Validate a plain dict; raise :class:`ConfigError` listing every problem."""
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise ConfigError(f"a train-prior config must be a mapping at the top level; got {type(raw).__name__}")
    cfg = parse(TrainConfig, raw, "", problems)
    if cfg is None:
        raise ConfigError(problems or ["invalid configuration"])
    model_raw = raw.get("model", {})
    model = None
    if cfg.kind in MODEL_SECTIONS:
        if not isinstance(model_raw, dict):
            problems.append(f"model: expected a mapping, got {model_raw!r}")
        else:
            model = parse(MODEL_SECTIONS[cfg.kind], model_raw, "model", problems)
    if isinstance(cfg.device, str) and not _DEVICE.match(cfg.device):
        problems.append(f"device: expected auto, cpu, cuda or cuda:N; got {cfg.device!r}")
    if model is not None and isinstance(cfg.data, DataSection) and isinstance(cfg.data.size, int):
        m = model.size_multiple()
        if cfg.data.size % m:
            problems.append(
                f"data.size {cfg.data.size} is not a multiple of {m}, which model.channel_mults"
                f"{' and model.patch_size' if cfg.kind == 'diffusion' else ''} require: change one of them"
            )
        elif cfg.kind == "generator" and model.latent_channels:
            from ..priors.vae import spatial_latent_dim

            grid = spatial_latent_dim(model.latent_channels, cfg.data.size, len(model.channel_mults))
            if model.latent_dim != grid:
                problems.append(
                    f"model.latent_dim must be latent_channels x (data.size / 2^len(channel_mults))^2 = "
                    f"{model.latent_channels} x {cfg.data.size // m}^2 = {grid} with a spatial latent; got "
                    f"{model.latent_dim}"
                )
    t = cfg.train
    if isinstance(t, TrainSection) and t.lr_schedule == "cosine" and t.lr_min > t.lr:
        problems.append(f"train.lr_min ({t.lr_min}) must not exceed train.lr ({t.lr}) with lr_schedule: cosine")
    if problems:
        raise ConfigError(problems)
    return dataclasses.replace(cfg, model=model)


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> list[str]:
    """Apply ``a.b=c`` overrides (values parsed as YAML) in place; return the problems found."""
    problems = []
    for item in overrides:
        try:
            apply_override(raw, item)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return problems


def load_train_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read ``path``, apply ``--set`` overrides, validate; raise :class:`ConfigError` with every problem."""
    raw = read_yaml(path)
    problems = apply_overrides(raw, overrides)
    try:
        cfg = parse_train_config(raw)
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems) from None
    if problems:
        raise ConfigError(problems)
    return cfg


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain (YAML/JSON-able) dict of a parsed config: the resolved config written next to the run."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(cfg)
