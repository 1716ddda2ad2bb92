"""MRI measurement simulation: undersampled, noisy Cartesian k-space from an image.

    y = M F (S_c x) + M n,   n complex Gaussian with E|n|^2 = sigma^2

The mask ``M`` comes from the ``MASKS`` registry, drawn with the case's generator; ``S_c`` are the case's
coil maps or simulated ones (``coils > 1``), or absent (single coil). Noise is added on sampled entries
only, so unsampled k-space stays exactly zero (fastMRI's convention).

YAML::

    simulate:
      modality: mri
      mask: {name: random, acceleration: 8, center_fraction: 0.04}
      coils: 1
      noise: {sigma: 0.01}        # or {snr_db: 30}
      complex_phase: none         # or smooth
      measurement: auto           # measured: mask the file's k-space (fastMRI files); simulated: from the image
      coil_maps: espirit          # measured multi-coil: espirit | lowres

Example:
    >>> import torch
    >>> from genrecon.schema import parse
    >>> from genrecon.types import Case
    >>> problems = []
    >>> cfg = parse(Config, {"modality": "mri", "mask": {"name": "random", "acceleration": 4}}, "simulate", problems)
    >>> problems
    []
    >>> m = simulate(Case("demo/0", torch.rand(1, 32, 32)), cfg, generator=torch.Generator().manual_seed(0))
    >>> m.y.shape, m.x_true.dtype
    (torch.Size([1, 1, 32, 32]), torch.complex64)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..errors import ConfigError, GenreconError, ShapeError
from ..operators.base import LinearOperator
from ..operators.mri import MultiCoilMRI, SingleCoilMRI
from ..registry import MASKS
from ..types import Case, Measurement
from .coils import simulate_coil_maps
from .masks import achieved_acceleration
from .noise import complex_gaussian, sigma_from_snr


@dataclass(frozen=True)
class MRINoiseConfig:
    """k-space noise: an absolute ``sigma`` or a target ``snr_db`` (not both)."""

    sigma: float = field(
        default=0.0, metadata={"ge": 0, "doc": "std of the complex k-space noise, E|n|^2 = sigma^2 (0: none)"}
    )
    snr_db: float | None = field(
        default=None, metadata={"doc": "target SNR in dB over sampled entries, 10 log10(mean|y|^2 / sigma^2)"}
    )

    def problems(self) -> list[str]:
        if self.snr_db is not None and self.sigma > 0:
            return [f"give sigma ({self.sigma}) or snr_db ({self.snr_db}), not both"]
        if self.snr_db is not None and not math.isfinite(self.snr_db):
            return [f"snr_db: must be finite, got {self.snr_db}"]
        return []


@dataclass(frozen=True)
class Config:
    """The ``simulate:`` section for MRI."""

    modality: Literal["mri"] = field(metadata={"doc": "measurement modality"})
    mask: dict[str, Any] = field(
        metadata={"doc": "sampling mask: {name: <mask>, <its parameters>}, e.g. {name: random, acceleration: 8}"}
    )
    coils: int = field(
        default=1, metadata={"ge": 1, "doc": "1: single coil; > 1: SENSE with the case's maps or simulated ones"}
    )
    noise: MRINoiseConfig = field(default_factory=MRINoiseConfig, metadata={"doc": "k-space noise"})
    complex_phase: Literal["none", "smooth"] = field(
        default="none", metadata={"doc": "phase given to real images: none (zero) or smooth (random, smooth)"}
    )
    measurement: Literal["auto", "measured", "simulated"] = field(
        default="auto",
        metadata={"doc": "measured: the mask is applied to the file's k-space (fastMRI protocol); simulated: "
                         "k-space is simulated from the image; auto: measured when the loader read k-space"},
    )
    coil_maps: Literal["espirit", "lowres"] = field(
        default="espirit", metadata={"doc": "measured multi-coil data: sensitivities from the ACS region "
                                            "(espirit as BART's ecalib, or lowres: ACS images / their RSS)"}
    )

    @property
    def mask_name(self) -> str:
        return self.mask.get("name", "")

    @property
    def mask_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.mask.items() if k != "name"}

    def problems(self) -> list[str]:
        name = self.mask.get("name")
        if not isinstance(name, str):
            return [f"mask: needs a 'name' (one of: {', '.join(MASKS.names())}), got {name!r}"]
        # check_params writes "<where>: mask 'x' ..."; the parser already prefixes "simulate: "
        problems = [p.removeprefix("mask: ") for p in MASKS.check_params(name, self.mask_params, where="mask")]
        if problems:
            return problems
        try:  # the mask's own value checks (acceleration >= 1, ...): messages start with "mask <param>"
            MASKS.build(name, self.mask_params)
        except GenreconError as exc:
            return [str(exc)]
        if self.measurement == "measured" and _simulation_only(self):
            return [f"measurement: measured k-space has its own coils and noise: remove "
                    f"{', '.join(_simulation_only(self))} (or set measurement: simulated)"]
        return []


def _check_image(case: Case) -> torch.Tensor:
    image = case.image
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[0] != 1:
        got = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ShapeError(f"MRI simulation of case '{case.key}': expected an image (1, H, W), got {got}")
    return image


def build_operator(
    cfg: Config,
    case: Case,
    *,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.complex64,
) -> LinearOperator:
    """The forward operator for ``case``: draws the mask (then, for simulated coils, the maps).

    Args:
        cfg: the MRI simulation config.
        case: the case; its image fixes ``(H, W)``, its ``maps`` (if any) are used when ``coils > 1``.
        generator: random source for the mask and simulated maps (drawn in that order).
        device: where the operator's buffers live.
        dtype: complex dtype of the coil maps.

    Returns:
        :class:`SingleCoilMRI` (``coils == 1``) or :class:`MultiCoilMRI`, with ``op.mask`` bool ``(H, W)``.
    """
    h, w = _check_image(case).shape[-2:]
    mask = MASKS.build(cfg.mask_name, cfg.mask_params)((h, w), generator)
    if cfg.coils == 1:
        return SingleCoilMRI(mask).to(device)
    if case.maps is not None:
        maps = case.maps
        if maps.dim() != 3 or tuple(maps.shape[-2:]) != (h, w):
            raise ShapeError(
                f"case '{case.key}': coil maps must be (C, {h}, {w}) to match the image, got {tuple(maps.shape)}"
            )
        maps = maps.to(dtype)
    else:
        maps = simulate_coil_maps(cfg.coils, (h, w), generator=generator, dtype=dtype)
    return MultiCoilMRI(maps, mask).to(device)


def _simulation_only(cfg: Config) -> list[str]:
    """The keys set that only make sense when k-space is simulated from an image."""
    out = []
    if cfg.coils != 1:
        out.append("coils")
    if cfg.noise.sigma > 0 or cfg.noise.snr_db is not None:
        out.append("noise")
    if cfg.complex_phase != "none":
        out.append("complex_phase")
    return out


def is_measured(case: Case, cfg: Config) -> bool:
    """Whether ``case`` is reconstructed from its measured k-space (``measurement``: measured, or auto with
    k-space read by the loader); ``measured`` without k-space is a :class:`~genrecon.errors.DataError`."""
    if cfg.measurement == "simulated":
        return False
    if case.kspace is None:
        if cfg.measurement == "measured":
            from ..errors import DataError

            raise DataError(f"case '{case.key}': simulate.measurement is 'measured' but its source holds no "
                            "k-space; use measurement: simulated (or auto) for image sources")
        return False
    return True


def smooth_phase(shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """A random smooth phase map ``(H, W)`` float64 in radians: a random quadratic over the image.

    ``phi = pi c0 + (pi / 2) (c1 x + c2 y + c3 x^2 + c4 y^2 + c5 x y)``, ``c ~ U(-1, 1)``, ``x, y`` in [-1, 1].
    """
    h, w = shape
    c = (torch.rand(6, generator=generator, dtype=torch.float64, device=generator.device).cpu() * 2 - 1).tolist()
    y = ((torch.arange(h, dtype=torch.float64) - h // 2) / max(h / 2, 0.5))[:, None]
    x = ((torch.arange(w, dtype=torch.float64) - w // 2) / max(w / 2, 0.5))[None, :]
    return math.pi * c[0] + (math.pi / 2) * (c[1] * x + c[2] * y + c[3] * x**2 + c[4] * y**2 + c[5] * x * y)


def simulate(
    case: Case, cfg: Config, *, generator: torch.Generator, device: str | torch.device = "cpu"
) -> Measurement:
    """Simulate undersampled, noisy k-space of ``case``.

    Random draws, in order, all from ``generator`` (on its own device, so results do not depend on
    ``device``): mask, simulated coil maps, smooth phase, noise.

    Args:
        case: image ``(1, H, W)``, real (magnitude) or complex.
        cfg: the MRI simulation config.
        generator: the case's random source.
        device: where the measurement and operator live.

    Returns:
        :class:`~genrecon.types.Measurement` with ``y`` ``(1, C, H, W)`` complex64 (``C = 1`` for single
        coil), ``x_true`` ``(1, 1, H, W)`` complex64 and ``info``: ``acceleration`` (achieved), ``mask``
        (name), ``coils``, ``noise_sigma``, ``snr_db`` (nominal SNR of that sigma; None without noise),
        ``mask_tensor`` (bool ``(H, W)``, on the CPU).
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"simulate: pass a torch.Generator (never the global RNG), got {generator!r}")
    if is_measured(case, cfg):
        from .measured import from_kspace

        ignored = _simulation_only(cfg)
        if ignored:
            raise ConfigError(f"case '{case.key}' is reconstructed from its measured k-space, which has its own "
                              f"coils and noise: remove simulate.{', simulate.'.join(ignored)} (or set "
                              "simulate.measurement: simulated)")

        return from_kspace(case, cfg.mask, generator=generator, coil_maps=cfg.coil_maps, device=device)
    image = _check_image(case)
    op = build_operator(cfg, case, generator=generator, device=device, dtype=torch.complex64)
    if image.is_complex():
        x = image.to(torch.complex64)  # keep the measured phase
    else:
        x = image.to(torch.float32).to(torch.complex64)
        if cfg.complex_phase == "smooth":
            x = x * torch.exp(1j * smooth_phase(tuple(x.shape[-2:]), generator)).to(torch.complex64)
    x_true = x.to(device)[None]
    y_clean = op(x_true)

    mask = op.mask
    n_sampled = int(mask.sum()) * op.range_shape[0]
    mean_power = float(torch.sum(y_clean.abs() ** 2)) / max(n_sampled, 1)  # over sampled entries
    if cfg.noise.snr_db is not None:
        sigma = sigma_from_snr(y_clean, cfg.noise.snr_db, mask)
    else:
        sigma = float(cfg.noise.sigma)
    if sigma > 0:
        y = y_clean + complex_gaussian(y_clean, sigma, generator) * mask
        snr_db = 10 * math.log10(mean_power / sigma**2) if mean_power > 0 else -math.inf
    else:
        y = y_clean
        snr_db = None

    info = {
        "measurement": "simulated",
        "acceleration": achieved_acceleration(mask),
        "mask": cfg.mask_name,
        "coils": op.range_shape[0],
        "noise_sigma": sigma,
        "snr_db": snr_db,
        "mask_tensor": mask.detach().cpu(),
    }
    return Measurement(y=y, op=op, x_true=x_true, info=info)
