"""Self-describing prior checkpoints: the contract between ``train-prior`` and the reconstructors.

A prior file is a ``torch.save`` of one plain dict (tensors and JSON-able values only, so it loads with
``torch.load(..., weights_only=True)``):

========================  =====================================================================
``format``                ``"genrecon-prior"``; ``format_version``: 1
``genrecon_version``      version that wrote it
``kind``                  ``"diffusion"`` (denoiser + schedule) or ``"generator"`` (decoder ``G(z)``)
``arch``, ``arch_params`` ``"unet-diffusion"`` / ``"conv-vae"`` and what rebuilds the network
``image_size``            square size ``S`` of the training images; ``channels``: ``C``
``normalisation``         ``{"range": [0, 1], "source": <dataset normalisation>}``: the image range
                          the model was trained on (diffusion maps it to ``[-1, 1]`` internally)
``training``, ``data``    resolved training config; dataset summary (files, sizes, sources)
``steps``, ``extra``      optimisation steps; free-form extras (losses, timings, EMA decay, ...)
``state_dict``            ``{name: tensor}`` (float16 or float32 storage; loaded as float32)
========================  =====================================================================

Example:
    >>> import torch, tempfile, os
    >>> from genrecon.priors.vae import ConvVAE
    >>> g = ConvVAE.build({"latent_dim": 4, "base_channels": 8, "channel_mults": [1]}, image_size=8,
    ...                   generator=torch.Generator().manual_seed(0))
    >>> path = os.path.join(tempfile.mkdtemp(), "g.pt")
    >>> _ = save_prior(path, g, kind="generator", arch="conv-vae", arch_params=g.arch_params(), image_size=8,
    ...                channels=1, normalisation={"range": [0, 1], "source": "test"}, training={}, data={},
    ...                steps=0, extra={})
    >>> model, meta = load_prior(path, kind="generator", image_size=8)
    >>> meta["kind"], model.latent_dim
    ('generator', 4)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .. import __version__
from ..errors import CheckpointError, ConfigError
from .pretrained import resolve_prior_path
from .diffusion import DiffusionPrior
from .vae import ConvVAE

FORMAT = "genrecon-prior"
FORMAT_VERSION = 1
TRAIN_STATE_FORMAT = "genrecon-train-state"

#: arch name -> (kind, class with ``build(arch_params, image_size=, channels=, generator=)``)
ARCHS: dict[str, tuple[str, Any]] = {
    DiffusionPrior.arch: ("diffusion", DiffusionPrior),
    ConvVAE.arch: ("generator", ConvVAE),
}

Kind = Literal["generator", "diffusion"]


def build_prior(
    arch: str,
    arch_params: dict[str, Any],
    *,
    image_size: int,
    channels: int = 1,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Build the network of ``arch``; initialised from ``generator``, or left empty (for loading) if None."""
    if arch not in ARCHS:
        raise CheckpointError(f"unknown prior architecture {arch!r}: this genrecon knows {', '.join(ARCHS)}")
    return ARCHS[arch][1].build(arch_params, image_size=image_size, channels=channels, generator=generator)


def _plain(value: Any, what: str) -> Any:
    """A JSON round trip: tuples become lists; anything not JSON-able is refused."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint field '{what}' must be JSON-able: {exc}") from None


def atomic_torch_save(payload: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temporary file next to ``path``, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_prior(
    path: str | Path,
    model: nn.Module,
    *,
    kind: Kind,
    arch: str,
    arch_params: dict[str, Any],
    image_size: int,
    channels: int,
    normalisation: dict[str, Any],
    training: dict[str, Any],
    data: dict[str, Any],
    steps: int,
    extra: dict[str, Any],
    storage_dtype: Literal["float32", "float16"] = "float32",
) -> Path:
    """Write a prior checkpoint atomically (temporary file + rename); return its path.

    Args:
        path: destination ``.pt`` file (folders are created).
        model: the network (its ``state_dict`` is stored, moved to the CPU).
        kind: ``"diffusion"`` or ``"generator"``; must match ``arch``.
        arch, arch_params: what :func:`build_prior` needs to rebuild ``model``.
        image_size, channels: the image shape ``(C, S, S)`` the model works on.
        normalisation: the image range and its source, e.g. ``{"range": [0, 1], "source": "..."}``.
        training, data, extra: JSON-able records (resolved config, dataset summary, anything else).
        steps: optimisation steps the weights have seen.
        storage_dtype: ``"float16"`` halves the file; weights are loaded back as float32.
    """
    if kind not in ("diffusion", "generator"):
        raise CheckpointError(f"prior kind must be 'diffusion' or 'generator'; got {kind!r}")
    if arch not in ARCHS or ARCHS[arch][0] != kind:
        known = ", ".join(f"{a} ({k})" for a, (k, _) in ARCHS.items())
        raise CheckpointError(f"architecture {arch!r} does not make a {kind!r} prior; known: {known}")
    if "range" not in normalisation:
        raise CheckpointError("normalisation must record the image 'range', e.g. {'range': [0, 1], 'source': ...}")
    dtype = {"float32": torch.float32, "float16": torch.float16}[storage_dtype]
    state = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().to("cpu")).contiguous()
        for k, v in model.state_dict().items()
    }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "genrecon_version": __version__,
        "kind": kind,
        "arch": arch,
        "arch_params": _plain(arch_params, "arch_params"),
        "image_size": int(image_size),
        "channels": int(channels),
        "normalisation": _plain(normalisation, "normalisation"),
        "training": _plain(training, "training"),
        "data": _plain(data, "data"),
        "steps": int(steps),
        "extra": _plain(extra, "extra"),
        "param_count": int(sum(p.numel() for p in model.parameters())),
        "storage_dtype": storage_dtype,
        "state_dict": state,
    }
    return atomic_torch_save(payload, path)


def read_checkpoint(path_or_name: str | Path) -> tuple[dict[str, Any], Path]:
    """Load the raw dict of a prior checkpoint with ``weights_only=True``; check its format."""
    label = str(path_or_name)
    path = resolve_prior_path(path_or_name)
    if not path.is_file():
        raise CheckpointError(f"prior file {label} not found: check the path, or use pretrained:<name>")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt or foreign file
        raise CheckpointError(
            f"prior {label} is not a readable genrecon checkpoint ({type(exc).__name__} in torch.load, "
            "weights_only=True): the file is corrupt or not a genrecon prior; re-export it with 'genrecon train-prior'"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        if isinstance(payload, dict) and payload.get("format") == TRAIN_STATE_FORMAT:
            raise CheckpointError(
                f"{label} is a training checkpoint (for --resume), not a prior: use the exported file (output.export)"
            )
        raise CheckpointError(f"{label} is not a genrecon prior checkpoint (no format '{FORMAT}'): give a file "
                              "written by 'genrecon train-prior' or a pretrained:<name>")
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"prior {label} has format version {payload['format_version']}, newer than this genrecon reads "
            f"({FORMAT_VERSION}): upgrade genrecon"
        )
    return payload, path


def load_prior(
    path_or_name: str | Path,
    *,
    kind: Kind | None = None,
    image_size: int | None = None,
    device: str | torch.device = "cpu",
    purpose: str | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Load a prior checkpoint (``weights_only=True``) and rebuild its model.

    Args:
        path_or_name: a ``.pt`` path or ``pretrained:<name>``.
        kind: required kind (``"diffusion"`` for DPS, ``"generator"`` for latent inversion), or None.
        image_size: required image size ``S``, or None.
        device: where the model goes.
        purpose: who needs it (e.g. ``"dps"``), used in error messages.

    Returns:
        ``(model, meta)``: the model in eval mode with frozen (``requires_grad=False``) float32 parameters
        (a :class:`DiffusionPrior` or :class:`ConvVAE`), and every checkpoint field except the weights,
        plus ``path``.

    Raises:
        CheckpointError: missing, corrupt or foreign file; wrong kind; wrong image size.
    """
    label = str(path_or_name)
    payload, path = read_checkpoint(path_or_name)
    who = purpose or "this use"
    try:
        got_kind, arch, size = payload["kind"], payload["arch"], int(payload["image_size"])
        channels, arch_params, state = int(payload["channels"]), payload["arch_params"], payload["state_dict"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"prior {label} lacks field {exc}: re-export it with 'genrecon train-prior'") from None
    if kind is not None and got_kind != kind:
        raise CheckpointError(f"prior {label} is a '{got_kind}' prior; {who} needs a '{kind}' prior")
    if image_size is not None and size != int(image_size):
        raise CheckpointError(
            f"prior {label} was trained on {size}x{size} images; {who} has {image_size}x{image_size} images: "
            f"resize the data to {size} (data.size) or train a prior at {image_size}"
        )
    if arch not in ARCHS or ARCHS[arch][0] != got_kind:
        raise CheckpointError(f"prior {label} has architecture {arch!r} of kind {got_kind!r}, unknown to this genrecon")
    try:
        model = build_prior(arch, arch_params, image_size=size, channels=channels, generator=None)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    except (RuntimeError, TypeError, ValueError, AttributeError, ConfigError) as exc:
        first = str(exc).strip().splitlines()[0][:160]
        raise CheckpointError(f"prior {label}: weights do not fit architecture {arch!r} ({first})") from None
    model = model.to(device).eval().requires_grad_(False)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    meta["path"] = str(path)
    return model, meta
