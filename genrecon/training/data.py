"""Training images for priors, and the seeded, shardable order they are visited in.

The prepared files (``scripts/prepare_data.py``) are HDF5 with datasets ``train/images`` and ``val/images``
of shape ``(N, S, S)``, float32 in ``[0, 1]``, and root attributes ``modality``, ``size``,
``normalisation``, ``sources``, ``licence``. They are small (a few hundred MB at most), so they are read
into memory once.

Example:
    >>> b = ShardedBatches(10, batch_size=4, seed=0)
    >>> first = b.next_indices(); b.state_dict()
    {'epoch': 0, 'index': 1}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..seeding import derive_seed  # noqa: F401  (re-exported for the loop)


@dataclass
class PriorData:
    """Images in memory: ``train`` ``(N, 1, S, S)`` and ``val`` ``(M, 1, S, S)`` float32 in ``[0, 1]``."""

    train: torch.Tensor
    val: torch.Tensor
    summary: dict[str, Any] = field(default_factory=dict)
    normalisation: dict[str, Any] = field(default_factory=dict)


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        return [_attr(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _images(h5: Any, key: str, path: Path, size: int) -> np.ndarray | None:
    if key not in h5:
        return None
    ds = h5[key]
    if ds.ndim != 3 or ds.shape[1] != ds.shape[2]:
        raise DataError(f"{path}: '{key}' must have shape (N, S, S); got {ds.shape}: re-run scripts/prepare_data.py")
    if ds.shape[1] != size:
        raise DataError(
            f"{path} holds {ds.shape[1]}x{ds.shape[2]} images but data.size is {size}: set data.size: {ds.shape[1]} "
            f"or prepare the data at {size}"
        )
    return np.asarray(ds[...], dtype=np.float32)


def load_prior_data(
    path: str | Path,
    *,
    size: int,
    val_fraction: float | None = None,
    max_train: int | None = None,
    max_val: int | None = None,
    seed: int = 0,
) -> PriorData:
    """Read a prepared HDF5 file into memory and check it.

    Args:
        path: the ``.h5`` file.
        size: expected image size ``S``.
        val_fraction: if the file has no ``val/images``, hold out this share of ``train/images`` (a seeded
            permutation); required in that case.
        max_train, max_val: keep at most the first this many images.
        seed: seed of the hold-out permutation.

    Raises:
        DataError: missing or unreadable file, missing datasets, wrong shape or size, values outside ``[0, 1]``.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"training data {path} not found: create it with 'python scripts/prepare_data.py all'")
    try:
        with h5py.File(path, "r") as h5:
            train = _images(h5, "train/images", path, size)
            val = _images(h5, "val/images", path, size)
            attrs = {k: _attr(v) for k, v in h5.attrs.items()}
    except OSError as exc:
        raise DataError(f"cannot read {path} as HDF5 ({exc}): re-run scripts/prepare_data.py") from None
    if train is None:
        raise DataError(f"{path} has no 'train/images' dataset: re-run scripts/prepare_data.py")
    if val is None:
        if val_fraction is None:
            raise ConfigError(f"{path} has no 'val/images': set data.val_fraction (e.g. 0.1) to hold out a share")
        g = torch.Generator().manual_seed(derive_seed(seed, "val-split"))
        perm = torch.randperm(len(train), generator=g).numpy()
        n_val = max(1, int(round(val_fraction * len(train))))
        val, train = train[perm[:n_val]], train[perm[n_val:]]
    for name, arr in (("train", train), ("val", val)):
        if len(arr) == 0:
            raise DataError(f"{path}: '{name}/images' is empty")
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: '{name}/images' holds NaN or infinite values: re-run scripts/prepare_data.py")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-6 or hi > 1 + 1e-6:
            raise DataError(f"{path}: '{name}/images' must lie in [0, 1]; got [{lo:.4g}, {hi:.4g}]")
    if max_train is not None:
        train = train[:max_train]
    if max_val is not None:
        val = val[:max_val]
    source = attrs.get("normalisation", "unknown")
    summary = {
        "file": str(path),
        "n_train": int(len(train)),
        "n_val": int(len(val)),
        "size": int(size),
        "modality": attrs.get("modality"),
        "normalisation": source,
        "sources": attrs.get("sources"),
        "licence": attrs.get("licence"),
    }
    to_t = lambda a: torch.from_numpy(np.clip(a, 0.0, 1.0)).unsqueeze(1).contiguous()  # noqa: E731
    return PriorData(to_t(train), to_t(val), summary, {"range": [0, 1], "source": source})


def write_prior_data(
    path: str | Path,
    train: np.ndarray,
    val: np.ndarray,
    *,
    modality: str = "unknown",
    normalisation: str = "unknown",
    sources: str = "",
    licence: str = "",
) -> Path:
    """Write images ``(N, S, S)`` in ``[0, 1]`` in the prepared layout (``train/images``, ``val/images``, attrs)."""
    import h5py

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        h5.create_dataset("train/images", data=np.asarray(train, dtype=np.float32))
        h5.create_dataset("val/images", data=np.asarray(val, dtype=np.float32))
        h5.attrs.update({"modality": modality, "size": int(np.shape(train)[-1]), "normalisation": normalisation,
                         "sources": sources, "licence": licence})
    return path


class ShardedBatches:
    """Endless batches of indices: one permutation per epoch from ``(seed, epoch)``, last partial batch dropped.

    Each global batch of ``batch_size`` indices is split into ``world_size`` disjoint, equal slices; rank
    ``r`` gets slice ``r``. So the union over ranks is the single-process batch, and the position
    ``(epoch, index)`` is the whole state (no RNG state to save).

    Args:
        n: dataset size.
        batch_size: global batch size; a multiple of ``world_size`` and at most ``n``.
        seed: run seed.
        rank, world_size: this process's shard.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ConfigError(
                f"train.batch_size {batch_size} must be a multiple of the {world_size} processes: "
                f"use {batch_size - batch_size % world_size or world_size}"
            )
        if batch_size > n:
            raise ConfigError(f"train.batch_size {batch_size} exceeds the {n} training images: lower it")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.per_rank = batch_size // world_size
        self.batches_per_epoch = n // batch_size
        self.epoch, self.index = 0, 0
        self._perm: torch.Tensor | None = None

    def _permutation(self) -> torch.Tensor:
        if self._perm is None:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "data-order", self.epoch))
            self._perm = torch.randperm(self.n, generator=g)
        return self._perm

    def next_indices(self) -> torch.Tensor:
        """This rank's indices ``(batch_size // world_size,)`` of the next batch."""
        start = self.index * self.batch_size + self.rank * self.per_rank
        idx = self._permutation()[start : start + self.per_rank]
        self.index += 1
        if self.index >= self.batches_per_epoch:
            self.epoch, self.index, self._perm = self.epoch + 1, 0, None
        return idx

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.index, self._perm = int(state["epoch"]), int(state["index"]), None
