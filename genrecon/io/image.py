"""Grayscale image files: PNG (one slice) and TIFF (each page a slice).

Pixel values are kept as stored (8-bit 0..255, 16-bit 0..65535, float TIFF as is) and converted to
float32; normalisation is the pipeline's ``data.normalize``. Colour images become luminance
``Y = 0.299 R + 0.587 G + 0.114 B`` (ITU-R 601, as PIL's "L" mode); alpha is ignored; palette images are
expanded first. :func:`read_pixels` returns a file's pixel array as stored (before the luminance).

Example:
    >>> from genrecon.io.image import ImageLoader
    >>> ImageLoader.accepts("slice.png"), ImageLoader.accepts("stack.tif")
    (True, True)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..registry import LOADERS
from ..types import Case
from .base import Loader
from .transforms import as_image, source_stem

_LUMA = np.array([0.299, 0.587, 0.114])
_TIFF = (".tif", ".tiff")


def to_gray(pixels: np.ndarray, source: str) -> np.ndarray:
    """``(H, W)`` as is; ``(H, W, 3|4)`` colour -> luminance; ``(H, W, 2)`` gray + alpha -> gray."""
    if pixels.ndim == 2:
        return pixels
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        return pixels[..., :3].astype(np.float64) @ _LUMA
    if pixels.ndim == 3 and pixels.shape[-1] == 2:
        return pixels[..., 0]
    raise DataError(f"{source}: expected a grayscale or RGB image, got pixel array of shape {pixels.shape}")


@LOADERS.register("image")
class ImageLoader(Loader):
    """Grayscale PNG or TIFF (.png, .tif, .tiff): one slice per file or TIFF page; RGB to luminance."""

    suffixes = (".png",) + _TIFF

    def _is_tiff(self, source: str) -> bool:
        return Path(source).name.lower().endswith(_TIFF)

    def _exists(self, source: str) -> None:
        if not Path(source).is_file():
            raise DataError(f"{source}: file not found")

    def n_slices(self, source: str) -> int:
        self._exists(source)
        if self._is_tiff(source):
            import tifffile

            try:
                with tifffile.TiffFile(source) as tif:
                    return len(tif.pages)
            except Exception as exc:  # TiffFileError, struct errors on truncated files
                raise DataError(f"{source}: not a readable TIFF file: {type(exc).__name__}: {exc}") from None
        return 1

    def load(self, source: str, index: int) -> Case:
        self._exists(source)
        n = self.n_slices(source)
        if not 0 <= index < n:
            raise DataError(f"{source}: slice {index} does not exist; the file has slices 0..{n - 1}")
        pixels = read_pixels(source, index)
        return Case(
            key=f"{source_stem(source)}/{index}",
            image=as_image(to_gray(pixels, source), source, f"page {index}"),
            meta={
                "source": str(source),
                "slice": int(index),
                "loader": "image",
                "pixel_spacing": None,
                "units": "a.u.",
                "affine": None,
                "dtype": str(pixels.dtype),
            },
        )

    @staticmethod
    def _read_tiff(source: str, index: int) -> np.ndarray:
        import tifffile

        try:
            with tifffile.TiffFile(source) as tif:
                page = tif.pages[index]
                pixels = page.asarray()
                if pixels.ndim == 3 and pixels.shape[0] in (3, 4) and page.planarconfig == 2:  # separate planes
                    pixels = np.moveaxis(pixels, 0, -1)
        except Exception as exc:
            raise DataError(f"{source}: cannot read TIFF page {index}: {type(exc).__name__}: {exc}") from None
        return np.asarray(pixels)

    @staticmethod
    def _read_pil(source: str) -> np.ndarray:
        from PIL import Image

        try:
            with Image.open(source) as im:
                if im.mode == "P":
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                elif im.mode == "1":
                    im = im.convert("L")
                pixels = np.array(im)
        except Exception as exc:  # UnidentifiedImageError, truncated data
            raise DataError(f"{source}: not a readable image file: {type(exc).__name__}: {exc}") from None
        return pixels


def read_pixels(source: str | Path, page: int = 0) -> np.ndarray:
    """The pixel array of a PNG file or of one TIFF page, as stored (dtype and channels kept).

    TIFF is read with tifffile (separate colour planes are moved last), other files with PIL (palette
    images expanded to RGB/RGBA, 1-bit images to 8-bit). Raises DataError for a missing or unreadable file.

    Example:
        >>> from genrecon.io.image import read_pixels
        >>> pixels = read_pixels("slice.png")  # doctest: +SKIP
    """
    source = str(source)
    if not Path(source).is_file():
        raise DataError(f"{source}: file not found")
    if Path(source).name.lower().endswith(_TIFF):
        return ImageLoader._read_tiff(source, page)
    return ImageLoader._read_pil(source)
