"""Pseudo-sources: phantom:* (with a stand-in phantoms module and, when present, the real one) and sample:*."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

import genrecon
from genrecon.errors import ConfigError, DataError, RegistryError
from genrecon.io.phantom import PhantomLoader, slice_generator
from genrecon.io.samples import SampleLoader, sample_info, sample_names
from genrecon.registry import LOADERS



@pytest.fixture
def fake_phantoms(monkeypatch):
    """A stand-in genrecon.phantoms: the loader's own logic does not depend on the real images."""
    fake = types.ModuleType("genrecon.phantoms")
    fake.shepp_logan = lambda n: torch.ones(n, n)
    fake.random_ellipses = lambda n, generator: torch.rand(1, n, n, generator=generator)
    monkeypatch.setitem(sys.modules, "genrecon.phantoms", fake)
    monkeypatch.setattr(genrecon, "phantoms", fake, raising=False)
    return fake


def test_registered_and_accepts():
    assert LOADERS.get("phantom") is PhantomLoader and LOADERS.get("sample") is SampleLoader
    assert PhantomLoader.accepts("phantom:shepp-logan") and not PhantomLoader.accepts("shepp.png")
    assert SampleLoader.accepts("sample:brain-mri")


def test_phantom_counts_keys_and_meta(fake_phantoms):
    loader = PhantomLoader(size=32, count=5, seed=7)
    assert loader.n_slices("phantom:shepp-logan") == 1 and loader.n_slices("phantom:ellipses") == 5
    case = loader.load("phantom:shepp-logan", 0)
    assert case.key == "shepp-logan/0" and case.image.shape == (1, 32, 32) and case.image.dtype == torch.float32
    assert case.meta["source"] == "phantom:shepp-logan" and case.meta["loader"] == "phantom"
    ell = loader.load("phantom:ellipses", 4)
    assert ell.key == "ellipses/4" and ell.image.shape == (1, 32, 32)
    with pytest.raises(DataError, match=r"valid: 0\.\.4"):
        loader.load("phantom:ellipses", 5)


def test_ellipses_reproducible_per_image(fake_phantoms):
    state = torch.get_rng_state()  # the global RNG must not be touched
    a = PhantomLoader(size=16, seed=3)
    b = PhantomLoader(size=16, seed=3)
    imgs_a = [a.load("phantom:ellipses", i).image for i in (0, 1, 2)]
    imgs_b = [b.load("phantom:ellipses", i).image for i in (2, 1, 0)][::-1]  # other order, same images
    for x, y in zip(imgs_a, imgs_b):
        torch.testing.assert_close(x, y)
    assert not torch.equal(imgs_a[0], imgs_a[1])
    assert not torch.equal(imgs_a[0], PhantomLoader(size=16, seed=4).load("phantom:ellipses", 0).image)
    assert torch.equal(torch.get_rng_state(), state)
    g1, g2 = slice_generator(0, 1), slice_generator(0, 1)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_unknown_phantom_and_bad_params():
    with pytest.raises(RegistryError, match=r"unknown phantom 'shep-logan' \(did you mean 'shepp-logan'\?\)"):
        PhantomLoader().n_slices("phantom:shep-logan")
    assert "phantom:ellipses" in PhantomLoader().check("phantom:circles")[0]
    assert PhantomLoader().check("phantom:ellipses") == []
    with pytest.raises(ConfigError, match="size"):
        PhantomLoader(size=4)
    with pytest.raises(ConfigError, match="count"):
        PhantomLoader(count=0)


def test_real_phantoms():
    loader = PhantomLoader(size=64, count=2, seed=0)
    sl = loader.load("phantom:shepp-logan", 0).image
    assert sl.shape == (1, 64, 64) and sl.dtype == torch.float32 and float(sl.max()) > 0
    e0, e0b = (PhantomLoader(size=64, count=2).load("phantom:ellipses", 0).image for _ in range(2))
    torch.testing.assert_close(e0, e0b)
    assert not torch.equal(e0, loader.load("phantom:ellipses", 1).image)




def test_unknown_sample_lists_names():
    with pytest.raises(RegistryError, match=r"unknown sample 'brain'.*sample:brain-mri.*sample:head-ct"):
        SampleLoader().n_slices("sample:brain")
    assert SampleLoader().check("sample:nope")[0].startswith("data.source: unknown sample")
    assert sample_names() == ["brain-mri", "head-ct"]


@pytest.mark.parametrize("name, units", [("brain-mri", "normalised"), ("head-ct", "HU")])
def test_samples(name, units):
    loader = SampleLoader()
    assert loader.check(f"sample:{name}") == []
    n = loader.n_slices(f"sample:{name}")
    assert n >= 1
    case = loader.load(f"sample:{name}", n // 2)
    assert case.key == f"{name}/{n // 2}"
    assert case.image.dim() == 3 and case.image.shape[0] == 1 and case.image.dtype == torch.float32
    assert case.meta["source"] == f"sample:{name}" and case.meta["units"] == units
    assert case.meta["file"].endswith(f"{name}.nii.gz") and len(case.meta["affine"]) == 4
    assert case.meta["plane"] == "axial" and float(case.image.abs().max()) > 0
    # the samples are stored display-ready (data[row, column, slice]): read as stored
    import nibabel as nib

    stored = np.asarray(nib.load(case.meta["file"]).dataobj[:, :, n // 2], dtype=np.float32)
    np.testing.assert_array_equal(case.image[0].numpy(), stored)
