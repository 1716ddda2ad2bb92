"""Measured MRI k-space as the measurement (the fastMRI protocol): retrospective undersampling, real geometry.

    y = M k_measured        (single coil: k (1, Hk, Wk); multi-coil: k (C, Hk, Wk))

The mask ``M`` is drawn on the acquired grid ``(Hk, Wk)`` with the case's generator (as in simulation) and
applied to the file's fully sampled k-space; the measured noise is the noise. The operator lives on the
acquired grid (fastMRI knee: 640 x 368, readout oversampled 2x): ``SingleCoilMRI(M)``, or for multi-coil
data ``MultiCoilMRI(S, M)`` with sensitivities ``S`` estimated from the auto-calibration region of the
*undersampled* data (``coil_maps: espirit`` as BART's ``ecalib``, or ``lowres``). Reconstructions are
centre-cropped to the reference grid (``Measurement.eval_shape``, fastMRI's 320 x 320) for metrics and
outputs; the reference is the file's target (``reconstruction_esc`` / ``reconstruction_rss``) or, when the
file has none, the RSS of the fully sampled k-space cropped the same way.

Example:
    >>> import torch
    >>> from genrecon.types import Case
    >>> k = torch.randn(1, 48, 32, dtype=torch.complex64, generator=torch.Generator().manual_seed(0))
    >>> case = Case("f/0", image=torch.rand(1, 24, 24), kspace=k)
    >>> m = from_kspace(case, {"name": "equispaced", "acceleration": 4, "center_fraction": 0.125},
    ...                 generator=torch.Generator().manual_seed(0))
    >>> tuple(m.y.shape), m.eval_shape, m.info["measurement"]
    ((1, 1, 48, 32), (24, 24), 'measured')
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import DataError, ShapeError
from ..operators.mri import MultiCoilMRI, SingleCoilMRI
from ..registry import MASKS
from ..types import Case, Measurement
from .masks import achieved_acceleration

COIL_MAPS = ("espirit", "lowres")


def from_kspace(
    case: Case,
    mask: dict[str, Any],
    *,
    generator: torch.Generator,
    coil_maps: str = "espirit",
    device: str | torch.device = "cpu",
) -> Measurement:
    """The measurement of ``case`` from its measured k-space (``case.kspace`` ``(C, Hk, Wk)``).

    Args:
        case: a case whose loader read k-space; ``case.image`` ``(1, h, w)`` is the reference on the
            evaluation grid (``h <= Hk``, ``w <= Wk``).
        mask: ``{name: <mask>, <its parameters>}`` (the ``simulate.mask`` entry), drawn on ``(Hk, Wk)``.
        generator: the case's random source (the mask).
        coil_maps: how multi-coil sensitivities are estimated from the undersampled data's ACS region.
        device: where the measurement and operator live.

    Returns:
        :class:`~genrecon.types.Measurement` with ``y`` ``(1, C, Hk, Wk)`` complex64, ``x_true`` the
        reference ``(1, 1, h, w)`` (None for an already undersampled file: its ``mask`` is used, the config's is
        not, and there is nothing to score against), ``eval_shape = (h, w)`` and ``info``: ``measurement`` ("measured"),
        ``acceleration`` (achieved), ``mask``, ``coils``, ``mask_tensor``, and for multi-coil ``coil_maps``
        (the estimated maps, saved with the outputs) and ``coil_maps_method``.
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"from_kspace: pass a torch.Generator (never the global RNG), got {generator!r}")
    k = case.kspace
    if k is None or k.dim() != 3 or not k.is_complex():
        raise DataError(f"case '{case.key}': no measured k-space (coils, H, W) to reconstruct; use "
                        "simulate.measurement: simulated for image-only sources")
    hk, wk = k.shape[-2:]
    ref = case.image
    h, w = ref.shape[-2:]
    if h > hk or w > wk:
        raise DataError(f"case '{case.key}': the reference image {h}x{w} is larger than the k-space grid {hk}x{wk}")
    file_mask = case.meta.get("file_mask")
    if file_mask is not None:  # already undersampled (fastMRI test/challenge files): reconstructed as it is
        cols = torch.tensor(file_mask, dtype=torch.bool)
        if cols.numel() != wk:
            raise DataError(f"case '{case.key}': the file's mask has {cols.numel()} entries for {wk} k-space columns")
        m, mask_name = cols.expand(hk, wk).clone(), "file"
    else:
        m = MASKS.build(mask["name"], {a: b for a, b in mask.items() if a != "name"})((hk, wk), generator)
        mask_name = mask["name"]
    k = k.to(device=device, dtype=torch.complex64)
    info: dict[str, Any] = {"measurement": "measured", "acceleration": achieved_acceleration(m),
                            "mask": mask_name, "coils": int(k.shape[0]), "mask_tensor": m.detach().cpu()}
    if k.shape[0] == 1:
        op = SingleCoilMRI(m).to(device)
    else:
        maps = estimate_maps(k * m.to(device), coil_maps)
        op = MultiCoilMRI(maps, m).to(device)
        info.update(coil_maps=maps.detach().cpu(), coil_maps_method=coil_maps)
    y = (k * op.mask)[None]
    x_true = ref.to(device)[None].to(torch.complex64) if case.meta.get("reference", True) else None
    return Measurement(y=y, op=op, x_true=x_true, info=info, eval_shape=(int(h), int(w)))


def estimate_maps(kspace: torch.Tensor, method: str = "espirit") -> torch.Tensor:
    """Coil sensitivities ``(C, H, W)`` complex64 from undersampled multi-coil k-space ``(C, H, W)``."""
    from ..calib import espirit_maps, lowres_maps

    if method == "espirit":
        maps, _ = espirit_maps(kspace)
    elif method == "lowres":
        maps = lowres_maps(kspace)
    else:
        raise DataError(f"coil_maps: expected one of {', '.join(COIL_MAPS)}, got {method!r}")
    return maps.to(torch.complex64)
