"""Measurement simulation: ``simulate(case, config, generator) -> Measurement``.

Each modality is a module exposing:

- ``Config``: a frozen dataclass of its ``simulate:`` section (with a ``modality`` field);
- ``build_operator(cfg, case, *, generator, device, dtype) -> LinearOperator``;
- ``simulate(case, cfg, *, generator, device) -> Measurement`` (operator, noisy data, ground truth, info).
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODALITIES = {"mri": "genrecon.simulate.mri", "ct": "genrecon.simulate.ct"}


def modality_module(name: str) -> ModuleType:
    from ..errors import ConfigError
    from ..registry import did_you_mean

    if name not in MODALITIES:
        raise ConfigError(
            f"simulate.modality: unknown modality '{name}'{did_you_mean(name, MODALITIES)}; "
            f"choose one of: {', '.join(MODALITIES)}"
        )
    return importlib.import_module(MODALITIES[name])


def simulate(case, cfg, *, generator, device="cpu"):
    """Simulate the measurement of ``case`` as configured by ``cfg`` (a modality ``Config``)."""
    return modality_module(cfg.modality).simulate(case, cfg, generator=generator, device=device)
