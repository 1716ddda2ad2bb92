"""Synthetic pseudo-sources: ``phantom:shepp-logan`` (one image) and ``phantom:ellipses`` (``count`` images).

The images come from :mod:`genrecon.phantoms` (imported when a phantom is made). Random-ellipse image
``i`` uses its own generator seeded from ``(seed, i)``, so each image is the same whatever slices are
selected and in whatever order they are read.

Example:
    >>> from genrecon.io.phantom import PhantomLoader
    >>> PhantomLoader(count=4).n_slices("phantom:ellipses")
    4
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, DataError, RegistryError
from ..registry import LOADERS, did_you_mean
from ..types import Case
from .base import Loader
from .transforms import as_image

PREFIX = "phantom:"
PHANTOMS = ("shepp-logan", "ellipses")


def slice_generator(seed: int, index: int) -> torch.Generator:
    """A CPU generator for image ``index`` of a phantom set, independent of every other image."""
    state = np.random.SeedSequence([int(seed) % 2**63, int(index)]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


@LOADERS.register("phantom")
class PhantomLoader(Loader):
    """Synthetic phantoms (phantom:shepp-logan, phantom:ellipses): no files needed.

    Args:
        size: image side in pixels.
        count: number of random-ellipse images (``phantom:ellipses``); Shepp-Logan is one image.
        seed: seed of the random-ellipse images.
    """

    prefixes = (PREFIX,)

    def __init__(self, size: int = 256, count: int = 8, seed: int = 0):
        for name, value, low in (("size", size, 8), ("count", count, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"phantom {name}: expected an integer >= {low}, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"phantom seed: expected an integer, got {seed!r}")
        self.size = size
        self.count = count
        self.seed = seed

    @staticmethod
    def _name(source: str) -> str:
        name = source[len(PREFIX):] if source.startswith(PREFIX) else source
        if name not in PHANTOMS:
            raise RegistryError(
                f"unknown phantom '{name}'{did_you_mean(name, PHANTOMS)}; "
                f"choose one of: {', '.join(PREFIX + p for p in PHANTOMS)}"
            )
        return name

    def check(self, source: str) -> list[str]:
        try:
            self._name(source)
        except RegistryError as exc:
            return [f"data.source: {exc}"]
        return []

    def n_slices(self, source: str) -> int:
        return 1 if self._name(source) == "shepp-logan" else self.count

    def load(self, source: str, index: int) -> Case:
        name = self._name(source)
        n = self.n_slices(source)
        if not 0 <= index < n:
            raise DataError(f"{source}: image {index} does not exist; valid: 0..{n - 1} (set data.params.count)")
        from .. import phantoms

        make: Callable[[], torch.Tensor]
        if name == "shepp-logan":
            make = lambda: phantoms.shepp_logan(self.size)  # noqa: E731
        else:
            make = lambda: phantoms.random_ellipses(self.size, slice_generator(self.seed, index))  # noqa: E731
        image = torch.as_tensor(make())
        while image.dim() > 2 and image.shape[0] == 1:
            image = image[0]
        meta = {
            "source": source,
            "slice": int(index),
            "loader": "phantom",
            "phantom": name,
            "size": self.size,
            "seed": self.seed if name == "ellipses" else None,
            "pixel_spacing": None,
            "units": "normalised",
            "affine": None,
        }
        return Case(key=f"{name}/{index}", image=as_image(image, source, f"phantom image {index}"), meta=meta)
