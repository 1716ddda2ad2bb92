"""The generator prior of ``latent_inversion``: a checkpoint path, ``pretrained:<name>`` or a module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ...errors import CheckpointError, ConfigError

WHO = "latent_inversion"


def resolve_prior(prior: Any) -> tuple[nn.Module, dict[str, Any], str]:
    """``(module, meta, label)`` of a prior given as a path, ``pretrained:<name>`` or an ``nn.Module``.

    A checkpoint must be a ``generator`` prior on ``[0, 1]`` images; a module must say it is a generator (or say
    nothing) and have ``latent_shape`` or ``latent_dim``. Each refusal is one line."""
    if isinstance(prior, (str, Path)):
        from ...priors.checkpoint import load_prior

        model, meta = load_prior(prior, kind="generator", purpose=WHO)
        rng = (meta.get("normalisation") or {}).get("range")
        if rng is not None and [float(v) for v in rng] != [0.0, 1.0]:
            raise CheckpointError(
                f"prior {prior} was trained on images in {rng}; {WHO} needs a prior on [0, 1] images"
            )
        return model, meta, str(prior)
    if isinstance(prior, nn.Module):
        label = type(prior).__name__
        kind = getattr(prior, "kind", "generator")
        if kind != "generator":
            raise CheckpointError(
                f"prior {label} is a '{kind}' prior; {WHO} needs a 'generator' prior (a decoder G(z))"
            )
        if getattr(prior, "latent_shape", None) is None and getattr(prior, "latent_dim", None) is None:
            raise CheckpointError(f"prior {label} has neither latent_shape nor latent_dim: {WHO} needs a decoder G(z)")
        return prior, {"normalisation": {"range": [0, 1], "source": "given module"}}, label
    raise ConfigError(
        f"{WHO}: prior must be a path, pretrained:<name> or an nn.Module, got {type(prior).__name__}"
    )
