"""Training of generative priors (``genrecon train-prior``).

- :func:`load_train_config` (YAML + ``--set`` overrides -> :class:`TrainConfig`, every problem at once);
- :func:`train_prior` (one loop for ``diffusion`` and ``generator`` priors; resumable, DDP-aware);
- ``python -m genrecon.training --config FILE`` (also under ``torchrun``).
"""

from .config import TrainConfig, apply_overrides, config_to_dict, load_train_config, parse_train_config
from .loop import train_prior
from .state import save_grid

__all__ = [
    "TrainConfig",
    "apply_overrides",
    "config_to_dict",
    "load_train_config",
    "parse_train_config",
    "save_grid",
    "train_prior",
]
