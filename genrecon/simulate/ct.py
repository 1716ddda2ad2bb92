"""CT measurement simulation: a sinogram of the case's attenuation image, with optional noise.

    mu = hu_to_mu(image)            (attenuation per pixel: what the operator sees, ``x_true``)
    p  = A_raw mu                   (line integrals, dimensionless)
    gaussian: p~ = p + sigma n;  poisson: N ~ Poisson(i0 exp(-p)),  p~ = -log(max(N, 1) / i0)
    y  = scale * p~                 (``scale`` = 1, or 1 / ||A_raw|| when ``normalize: true``)

Noise is drawn in float64 on the generator's device and applied on the CPU: the same seed gives the same noise
on any device. Geometry lengths (``source_distance``, ``detector_distance``, ``detector_spacing``) are in pixels.

Attenuation mapping (``hu_to_mu``), default ``identity``:
    - ``identity``: the image already holds attenuation per pixel (phantoms, normalised images). Refused
      for images whose ``meta["units"]`` says Hounsfield units.
    - ``hu``: ``mu = mu_water_per_mm * pixel_size_mm * max(1 + HU / 1000, 0)``; ``pixel_size_mm`` defaults to
      the case's ``meta["pixel_spacing"]``; ``mu_water_per_mm`` defaults to 0.0192 (water near 70 keV).
    - ``linear``: ``mu = mu_per_unit * image`` (a normalised image where 1 means ``mu_per_unit`` per pixel).

YAML::

    simulate:
      modality: ct
      geometry: parallel                      # or fan (source_distance, detector_distance in pixels)
      angles: {kind: sparse, n_views: 60}     # full | sparse | limited (span_deg) | list (values_deg)
      noise: {kind: poisson, i0: 100000}      # none | gaussian (sigma) | poisson (i0)
      hu_to_mu: {kind: hu}                    # identity | hu | linear
      normalize: true
      matrix: auto                            # the projector's matrix: auto | always | never (on the fly)
      memory_budget_mib: 4096                 # auto stores the matrix when its build fits this
      projector: genrecon                     # or astra_line | astra_linear | astra_strip (ASTRA's CPU kernels)

Example:
    >>> import torch
    >>> from genrecon.schema import parse
    >>> from genrecon.types import Case
    >>> from genrecon.phantoms import shepp_logan
    >>> problems = []
    >>> cfg = parse(Config, {"modality": "ct", "angles": {"kind": "sparse", "n_views": 30}}, "simulate", problems)
    >>> problems
    []
    >>> m = simulate(Case("sl/0", shepp_logan(32)[None]), cfg, generator=torch.Generator().manual_seed(0))
    >>> m.y.shape, m.info["n_views"]
    (torch.Size([1, 1, 30, 46]), 30)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ..errors import ConfigError, DataError, ShapeError
from ..operators.base import LinearOperator
from ..operators.ct import CTProjector, FanBeam, ParallelBeam
from ..types import Case, Measurement
from .ct_angles import AnglesConfig

#: linear attenuation of water per mm near 70 keV (NIST XCOM: 0.193 /cm)
MU_WATER_PER_MM = 0.0192


@dataclass(frozen=True)
class CTNoiseConfig:
    """Noise on the line integrals: none, additive Gaussian (``sigma``) or Poisson photon counts (``i0``)."""

    kind: Literal["none", "gaussian", "poisson"] = field(default="none", metadata={"doc": "noise model"})
    sigma: float | None = field(
        default=None, metadata={"gt": 0, "doc": "gaussian: std on the line integrals (before normalisation)"}
    )
    i0: float | None = field(default=None, metadata={"gt": 0, "doc": "poisson: incident photons per detector bin"})

    def problems(self) -> list[str]:
        out = []
        if self.kind == "gaussian" and self.sigma is None:
            out.append("noise: kind 'gaussian' needs sigma (std on the line integrals, e.g. 0.01)")
        if self.kind == "poisson" and self.i0 is None:
            out.append("noise: kind 'poisson' needs i0 (incident photons per bin, e.g. 100000)")
        if self.kind != "gaussian" and self.sigma is not None:
            out.append(f"noise.sigma is only used with kind 'gaussian', not '{self.kind}'")
        if self.kind != "poisson" and self.i0 is not None:
            out.append(f"noise.i0 is only used with kind 'poisson', not '{self.kind}'")
        return out


@dataclass(frozen=True)
class HUConfig:
    """Image values -> attenuation per pixel (see the module docstring); default ``identity``."""

    kind: Literal["identity", "hu", "linear"] = field(
        default="identity",
        metadata={"doc": "identity: image is attenuation per pixel; hu: Hounsfield units; linear: mu_per_unit * image"},
    )
    mu_water_per_mm: float | None = field(
        default=None, metadata={"gt": 0, "doc": f"hu: water attenuation per mm (default {MU_WATER_PER_MM})"}
    )
    pixel_size_mm: float | None = field(
        default=None, metadata={"gt": 0, "doc": "hu: pixel size in mm (default: the case's pixel spacing)"}
    )
    mu_per_unit: float | None = field(
        default=None, metadata={"gt": 0, "doc": "linear: attenuation per pixel of an image value of 1"}
    )

    def problems(self) -> list[str]:
        out = []
        if self.kind == "linear" and self.mu_per_unit is None:
            out.append("hu_to_mu: kind 'linear' needs mu_per_unit (attenuation per pixel of image value 1)")
        if self.kind != "linear" and self.mu_per_unit is not None:
            out.append(f"hu_to_mu.mu_per_unit is only used with kind 'linear', not '{self.kind}'")
        for name in ("mu_water_per_mm", "pixel_size_mm"):
            if self.kind != "hu" and getattr(self, name) is not None:
                out.append(f"hu_to_mu.{name} is only used with kind 'hu', not '{self.kind}'")
        return out


@dataclass(frozen=True)
class Config:
    """The ``simulate:`` section for CT."""

    modality: Literal["ct"] = field(metadata={"doc": "measurement modality"})
    geometry: Literal["parallel", "fan"] = field(default="parallel", metadata={"doc": "beam geometry"})
    angles: AnglesConfig = field(default_factory=AnglesConfig, metadata={"doc": "view angles"})
    n_detectors: int | None = field(
        default=None, metadata={"ge": 1, "doc": "detector bins (default: cover the field of view, 363 for 256)"}
    )
    detector_spacing: float | None = field(
        default=None, metadata={"gt": 0, "doc": "bin width in pixels (default 1; fan: 1 pixel at the isocentre)"}
    )
    source_distance: float | None = field(
        default=None, metadata={"gt": 0, "doc": "fan: source to isocentre in pixels (default 2 x image size)"}
    )
    detector_distance: float | None = field(
        default=None, metadata={"ge": 0, "doc": "fan: isocentre to detector in pixels (default image size)"}
    )
    noise: CTNoiseConfig = field(default_factory=CTNoiseConfig, metadata={"doc": "noise model"})
    hu_to_mu: HUConfig = field(default_factory=HUConfig, metadata={"doc": "image values -> attenuation per pixel"})
    normalize: bool = field(default=True, metadata={"doc": "scale the operator to norm 1 (y scaled alike)"})
    matrix: Literal["auto", "always", "never"] = field(
        default="auto",
        metadata={"doc": "store the projection matrix: auto (when its build fits memory_budget_mib), always, never"},
    )
    memory_budget_mib: float = field(
        default=4096.0, metadata={"gt": 0, "doc": "projector memory in MiB (auto: the matrix build's peak)"}
    )
    projector: Literal["genrecon", "astra_line", "astra_linear", "astra_strip"] = field(
        default="genrecon",
        metadata={"doc": "who projects: genrecon's distance-driven projector, or one of ASTRA's CPU kernels (parallel "
                         "beam, 1-pixel bins; needs astra-toolbox) to compare projectors on data each simulated "
                         "itself"},
    )
    sinogram: str | None = field(
        default=None,
        metadata={"doc": "measured line integrals instead of simulated ones: a .npy of shape (n_views, "
                         "n_detectors), or (slices, n_views, n_detectors) indexed by the data's slice index; "
                         "the geometry must describe how it was acquired; noise must be none"},
    )

    def problems(self) -> list[str]:
        out = []
        if self.sinogram is not None:
            if not self.sinogram.lower().endswith(".npy"):
                out.append(f"sinogram: expected a .npy file, got {self.sinogram!r}")
            elif not Path(self.sinogram).is_file():
                out.append(f"sinogram: file not found: {self.sinogram}")
            if self.noise.kind != "none":
                out.append("sinogram: a measured sinogram already holds its noise; set noise.kind: none")
        if self.projector != "genrecon":
            from ..operators.astra import astra_problem

            why = astra_problem()
            if why:
                out.append(f"projector: {self.projector}: {why}")
            if self.geometry != "parallel":
                out.append(f"projector: {self.projector} is wired for geometry 'parallel' only")
            if self.detector_spacing not in (None, 1.0):
                out.append(f"projector: {self.projector} uses 1-pixel bins; remove detector_spacing")
        if self.geometry == "parallel":
            for name in ("source_distance", "detector_distance"):
                if getattr(self, name) is not None:
                    out.append(f"{name} is only used with geometry 'fan'")
        return out


def check_finite(t: torch.Tensor, what: str) -> torch.Tensor:
    """Return ``t``; raise :class:`DataError` if it holds NaN or infinite values."""
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise DataError(f"{what}: {bad} NaN or infinite value(s) of {t.numel()}; fix or mask the input data")
    return t


def _square_size(case: Case) -> int:
    image = case.image
    if image.dim() != 3 or image.shape[0] != 1:
        raise ShapeError(f"CT simulation of {case.key}: expected an image (1, N, N), got {tuple(image.shape)}")
    if image.shape[1] != image.shape[2]:
        raise ShapeError(
            f"CT simulation of {case.key}: CT needs square images, got {image.shape[1]}x{image.shape[2]}; "
            "set data.size to resample to N x N"
        )
    return int(image.shape[1])


def build_operator(
    cfg: Config, case: Case, *, generator: torch.Generator | None = None, device="cpu", dtype=torch.float32
) -> CTProjector | LinearOperator:
    """The projector for ``case``'s image size, prepared for ``dtype``/``device`` (its matrices built, if stored).

    Raises:
        ShapeError: the image is not square.
        ConfigError: an invalid geometry (source inside the image circle, detector too small...), or
            ``matrix: always`` with matrices over the size limit.
    """
    n = _square_size(case)
    angles = [math.radians(a) for a in cfg.angles.degrees(cfg.geometry)]
    common = dict(image_size=n, angles=angles, n_detectors=cfg.n_detectors, normalize=cfg.normalize,
                  matrix=cfg.matrix, memory_budget_mib=cfg.memory_budget_mib)
    if cfg.geometry == "fan":
        op: CTProjector = FanBeam(
            source_distance=cfg.source_distance if cfg.source_distance is not None else 2.0 * n,
            detector_distance=cfg.detector_distance if cfg.detector_distance is not None else float(n),
            detector_spacing=cfg.detector_spacing, **common)
    else:
        op = ParallelBeam(detector_spacing=cfg.detector_spacing if cfg.detector_spacing is not None else 1.0, **common)
    if cfg.projector != "genrecon":  # ASTRA's kernel on the geometry genrecon's projector describes
        from ..operators.astra import KINDS, AstraProjector

        return AstraProjector(image_size=n, angles=op.angles, n_detectors=op.n_detectors, kind=KINDS[cfg.projector],
                              normalize=cfg.normalize).to(device=device)
    return op.prepare(dtype, device)


def _is_hu(case: Case) -> bool:
    units = str(case.meta.get("units") or "").strip().lower()
    return units.startswith("hu") or units.startswith("hounsfield")


def attenuation(case: Case, cfg: HUConfig) -> torch.Tensor:
    """The attenuation image ``mu`` per pixel ``(1, N, N)`` float32 (see the module docstring)."""
    image = case.image
    if image.is_complex():
        raise ShapeError(f"CT simulation of {case.key}: expected a real image, got {image.dtype}")
    image = check_finite(image.to(torch.float32), f"image of {case.key}")
    if cfg.kind == "identity":
        if _is_hu(case):
            raise ConfigError(
                f"simulate.hu_to_mu: the image of {case.key} is in Hounsfield units; set hu_to_mu.kind: hu "
                "(or normalise the data and use identity or linear)"
            )
        return image
    if cfg.kind == "linear":
        return image * float(cfg.mu_per_unit)
    pixel = cfg.pixel_size_mm
    if pixel is None:
        spacing = case.meta.get("pixel_spacing")
        if isinstance(spacing, (list, tuple)) and spacing and spacing[0]:
            pixel = float(spacing[0])
        elif isinstance(spacing, (int, float)) and spacing > 0:
            pixel = float(spacing)
        else:
            raise ConfigError(
                f"simulate.hu_to_mu.pixel_size_mm: {case.key} has no pixel spacing; set pixel_size_mm (mm)"
            )
    mu_water = cfg.mu_water_per_mm if cfg.mu_water_per_mm is not None else MU_WATER_PER_MM
    return (1.0 + image / 1000.0).clamp(min=0.0) * (mu_water * pixel)


def measured_sinogram(path: str, case: Case, shape: tuple[int, int]) -> torch.Tensor:
    """Line integrals of ``case`` from a ``.npy`` file: ``(V, D)`` or ``(slices, V, D)`` by slice index.

    Returns ``(1, 1, V, D)`` float64. A wrong shape is a :class:`ShapeError` naming both shapes; NaN or
    infinite values, or a file numpy cannot read, a :class:`DataError` naming the file.
    """
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy sinogram ({exc})") from None
    if data.ndim == 3:
        index = int(case.meta.get("slice") or 0)
        if not 0 <= index < data.shape[0]:
            raise ShapeError(f"{path}: holds {data.shape[0]} sinograms, the case {case.key} needs index {index}")
        data = data[index]
    if data.ndim != 2 or tuple(data.shape) != tuple(shape):
        raise ShapeError(
            f"{path}: expected a sinogram of shape (n_views, n_detectors) = {tuple(shape)} for this geometry, "
            f"got {tuple(data.shape)}: set simulate.angles and n_detectors to how it was acquired"
        )
    sino = torch.from_numpy(np.array(data, dtype=np.float64))
    if not torch.isfinite(sino).all():
        bad = int((~torch.isfinite(sino)).sum())
        raise DataError(f"{path}: {bad} NaN or infinite values in the sinogram of {case.key}")
    return sino[None, None]


def simulate(case: Case, cfg: Config, *, generator: torch.Generator, device="cpu") -> Measurement:
    """Simulate the sinogram of ``case`` (see the module docstring).

    Returns:
        a :class:`Measurement` with ``y`` ``(1, 1, n_views, n_detectors)`` float32 on ``device``, the operator,
        ``x_true`` (the attenuation image, ``(1, 1, N, N)``) and ``info``: geometry, n_views, span_deg,
        n_detectors, noise, i0, noise_sigma (std of ``y - A x_true``), snr_db (None without noise),
        operator_scale, mu_max, and for Poisson noise the fraction of bins that counted no photon.
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"simulate: pass a torch.Generator (never the global RNG), got {generator!r}")
    op = build_operator(cfg, case, generator=generator, device=device, dtype=torch.float32)
    mu = attenuation(case, cfg.hu_to_mu).to(device).unsqueeze(0)
    with torch.no_grad():
        clean = op(mu)
    check_finite(clean, f"sinogram of {case.key}")
    scale = op.scale
    p = clean.detach().to("cpu", torch.float64) / scale  # physical line integrals
    noise = cfg.noise
    info: dict = {"measurement": "measured" if cfg.sinogram is not None else "simulated"}
    if cfg.sinogram is not None:
        p_noisy = measured_sinogram(cfg.sinogram, case, tuple(p.shape[-2:]))
        info["measured"] = cfg.sinogram
    elif noise.kind == "gaussian":
        draw = torch.randn(p.shape, generator=generator, dtype=torch.float64, device=generator.device).cpu()
        p_noisy = p + float(noise.sigma) * draw
    elif noise.kind == "poisson":
        i0 = float(noise.i0)
        expected = i0 * torch.exp(-p)
        starved = float((expected < 1.0).double().mean())
        if starved > 0.1:
            raise ConfigError(
                f"simulate.noise: {100 * starved:.0f}% of the rays of {case.key} expect < 1 photon (line integrals "
                f"up to {float(p.max()):.1f}); the image is not attenuation per pixel: set simulate.hu_to_mu"
            )
        counts = torch.poisson(expected.to(generator.device), generator=generator).cpu()
        info["zero_count_fraction"] = float((counts == 0).double().mean())
        p_noisy = -torch.log(counts.clamp(min=1.0) / i0)
    else:
        p_noisy = p
    y = (p_noisy * scale).to(device=device, dtype=torch.float32)
    diff = (p_noisy - p) * scale
    sigma = float(diff.std()) if noise.kind != "none" else 0.0
    power = float((diff**2).mean())
    snr = 10 * math.log10(float((p * scale).pow(2).mean()) / power) if noise.kind != "none" and power > 0 else None
    info.update(
        geometry=cfg.geometry,
        n_views=op.n_views,
        span_deg=cfg.angles.span(cfg.geometry),
        n_detectors=op.n_detectors,
        noise=noise.kind,
        i0=noise.i0,
        noise_sigma=sigma,
        snr_db=snr,
        operator_scale=scale,
        mu_max=float(mu.max()),
        hu_to_mu=cfg.hu_to_mu.kind,
    )
    return Measurement(y=y, op=op, x_true=mu.detach(), info=info)
