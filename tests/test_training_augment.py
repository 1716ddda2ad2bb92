"""Augmentation in train-prior: each step's defining property, seeding, ranges, and bit-identity of old configs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from genrecon.errors import ConfigError
from genrecon.training import augment as A
from genrecon.training.config import AugmentSection, load_train_config, parse_train_config

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = {"version": 1, "kind": "diffusion", "data": {"path": "x.h5", "size": 32}, "output": {"dir": "runs/t"}}
ALL_ON = dict(flips=True, rotation_deg=20.0, intensity_scale=0.2, vflips=True, scale=0.3, shear_deg=20.0,
              elastic_px=4.0, elastic_grid=6, crop_min=0.5, gamma=2.0, contrast=0.5, bias_field=0.5, noise_std=0.1)


def _legacy(x, generator, *, flips, rotation_deg, intensity_scale):
    """The augmentation as it was before the new keys (frozen copy): the reference stream."""
    b = x.shape[0]
    u = torch.rand((3, b), generator=generator, device=generator.device, dtype=torch.float64).to(x.device)
    out = x
    if flips:
        out = torch.where((u[0] < 0.5).reshape(-1, 1, 1, 1), out.flip(-1), out)
    if rotation_deg > 0:
        angles = (2 * u[1] - 1) * math.radians(rotation_deg)
        cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
        zero = torch.zeros_like(cos)
        theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if intensity_scale > 0:
        out = out * (1 + intensity_scale * (2 * u[2] - 1)).to(x.dtype).reshape(-1, 1, 1, 1)
    return out.clamp(0, 1)


def _images(b=6, size=24, seed=0):
    return torch.rand(b, 1, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("flips,rot,inten", [(True, 5.0, 0.05), (False, 0.0, 0.0), (True, 0.0, 0.1), (False, 10.0, 0.0)])
def test_old_configs_give_the_old_stream_bit_for_bit(flips, rot, inten):
    x = _images()
    section = parse_train_config({**MINIMAL, "augment": {"flips": flips, "rotation_deg": rot,
                                                         "intensity_scale": inten}}).augment
    g_old, g_new = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for _ in range(3):  # several batches: the generator stays in step
        assert torch.equal(A.augment(x, g_new, **section.params()), _legacy(x, g_old, flips=flips,
                                                                             rotation_deg=rot, intensity_scale=inten))
    assert torch.equal(g_old.get_state(), g_new.get_state())
    assert AugmentSection() == parse_train_config(MINIMAL).augment  # every new key off by default


def test_same_seed_same_output_and_global_rng_untouched():
    x = _images()
    state = torch.random.get_rng_state()
    a = A.augment(x, torch.Generator().manual_seed(3), **ALL_ON)
    b = A.augment(x, torch.Generator().manual_seed(3), **ALL_ON)
    c = A.augment(x, torch.Generator().manual_seed(4), **ALL_ON)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(state, torch.random.get_rng_state())


@pytest.mark.parametrize("key", sorted(k for k in ALL_ON if k not in ("flips", "rotation_deg", "intensity_scale")))
def test_each_step_alone_stays_in_range_and_finite(key):
    x = _images(size=32)
    kw = {"flips": False, "rotation_deg": 0.0, "intensity_scale": 0.0, key: ALL_ON[key]}
    if key == "elastic_grid":
        kw["elastic_px"] = 2.0
    y = A.augment(x, torch.Generator().manual_seed(0), **kw)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1 and not torch.equal(y, x)


def test_all_steps_together_stay_in_range_for_extreme_inputs():
    for x in (torch.zeros(3, 1, 16, 16), torch.ones(3, 1, 16, 16), _images(3, 16)):
        y = A.augment(x, torch.Generator().manual_seed(1), **ALL_ON)
        assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1


def test_zero_parameters_are_identities():
    x = _images(b=3, size=20).double()
    b = x.shape[0]
    zero, one = torch.zeros(b, dtype=torch.float64), torch.ones(b, dtype=torch.float64)
    assert torch.allclose(A.rotate(x, zero), x, atol=1e-12)
    assert torch.allclose(A.affine(x, zero, one, zero), x, atol=1e-12)
    assert torch.allclose(A.crop_resize(x, one, torch.zeros(b, 2, dtype=torch.float64)), x, atol=1e-12)
    assert torch.allclose(A.elastic(x, torch.zeros(b, 2, 20, 20, dtype=torch.float64)), x, atol=1e-12)
    off = {"flips": False, "rotation_deg": 0.0, "intensity_scale": 0.0}
    for key, value in (("gamma", 1.0), ("scale", 0.0), ("shear_deg", 0.0), ("crop_min", 1.0), ("contrast", 0.0),
                       ("bias_field", 0.0), ("noise_std", 0.0), ("elastic_px", 0.0), ("vflips", False)):
        assert torch.equal(A.augment(x.float(), torch.Generator().manual_seed(0), **off, **{key: value}), x.float())


def test_flips_and_exact_geometry():
    x = _images(b=8)
    y = A.augment(x, torch.Generator().manual_seed(0), flips=False, rotation_deg=0.0, intensity_scale=0.0,
                  vflips=True)
    per = [torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(-2)) for i in range(8)]
    assert all(per) and any(not torch.equal(y[i], x[i]) for i in range(8))
    # a half-size crop of a ramp at the centre spans the ramp's middle half; a zoom by 2 shows the same
    ramp = torch.linspace(0, 1, 32, dtype=torch.float64).repeat(32, 1).reshape(1, 1, 32, 32)
    half = A.crop_resize(ramp, torch.tensor([0.5], dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64))
    assert half[0, 0, 5, 0] == pytest.approx(ramp[0, 0, 5, 8] - (ramp[0, 0, 5, 8] - ramp[0, 0, 5, 7]) * 0.25, abs=1e-9)
    assert half[0, 0, 5].max() < 0.76 and half[0, 0, 5].min() > 0.24
    zoom = A.affine(ramp, torch.zeros(1, dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64),
                    torch.zeros(1, dtype=torch.float64))
    assert torch.allclose(zoom, half, atol=1e-12)  # zoom 2 about the centre = the centred half-size crop


def test_rotation_by_a_quarter_turn_permutes_pixels():
    img = torch.arange(16.0 * 16).reshape(1, 1, 16, 16).double()
    out = A.rotate(img, torch.tensor([math.pi / 2], dtype=torch.float64))
    assert sorted(out.flatten().round().tolist()) == sorted(img.flatten().tolist())  # no pixel lost or blended


def test_elastic_field_is_bounded_and_smooth():
    g = torch.Generator().manual_seed(0)
    for magnitude, grid in ((3.0, 5), (0.5, 2), (8.0, 12)):
        d = A.elastic_field(g, 4, 64, 48, magnitude, grid, "cpu")
        assert d.shape == (4, 2, 64, 48)
        assert d.abs().max() <= magnitude + 1e-12 and d.abs().max() > 0.3 * magnitude
        # piecewise linear between lattice points: neighbouring pixels differ by at most the largest slope
        step_y = 2 * magnitude * (grid - 1) / (64 - 1)
        step_x = 2 * magnitude * (grid - 1) / (48 - 1)
        assert (d[..., 1:, :] - d[..., :-1, :]).abs().max() <= step_y + 1e-9
        assert (d[..., :, 1:] - d[..., :, :-1]).abs().max() <= step_x + 1e-9


def test_intensity_steps_keep_their_defining_properties():
    g = torch.Generator().manual_seed(0)
    # gamma keeps 0 and 1 and the order of values
    x = torch.linspace(0, 1, 64).reshape(1, 1, 8, 8).repeat(4, 1, 1, 1)
    off = {"flips": False, "rotation_deg": 0.0, "intensity_scale": 0.0}
    y = A.augment(x, g, **off, gamma=3.0)
    assert torch.equal(y[:, :, 0, 0], x[:, :, 0, 0]) and torch.allclose(y[:, :, -1, -1], x[:, :, -1, -1])
    assert (y.flatten(1).diff(dim=1) >= 0).all()
    # contrast keeps the mean (no clipping for mid-range images)
    mid = 0.4 + 0.2 * _images(4, 16)
    y = A.augment(mid, g, **off, contrast=0.5)
    assert torch.allclose(y.mean(dim=(1, 2, 3)), mid.mean(dim=(1, 2, 3)), atol=1e-5)
    # the bias field multiplies by exp(b) with |b| <= bias_field, smoothly
    b = A.bias_log_field(torch.rand(16, 5, generator=g, dtype=torch.float64) * 2 - 1, 32, 32, 0.4)
    assert b.abs().max() <= 0.4 + 1e-12 and (b[..., 1:, :] - b[..., :-1, :]).abs().max() < 0.4 * 6 / 31
    ratio = A.augment(mid, g, **off, bias_field=0.4) / mid
    assert ratio.min() >= math.exp(-0.4) - 1e-5 and ratio.max() <= math.exp(0.4) + 1e-5
    # noise: zero-mean, std at most noise_std
    flat = torch.full((8, 1, 64, 64), 0.5)
    n = A.augment(flat, g, **off, noise_std=0.05) - flat
    assert abs(float(n.mean())) < 0.005 and 0 < float(n.std(dim=(1, 2, 3)).max()) <= 0.05 * 1.05


def test_config_ranges_are_checked_and_documented():
    bad = {"gamma": 0.5, "crop_min": 0.0, "elastic_grid": 1, "scale": 0.9, "shear_deg": 60, "noise_std": -0.1,
           "bias_field": 3, "contrast": 1.0, "elastic_px": 40}
    with pytest.raises(ConfigError) as err:
        parse_train_config({**MINIMAL, "augment": bad})
    text = "\n".join(err.value.problems)
    for key in bad:
        assert f"augment.{key}" in text, key
    import dataclasses

    for f in dataclasses.fields(AugmentSection):
        assert f.metadata.get("doc"), f.name
    assert set(AugmentSection().params()) == {f.name for f in dataclasses.fields(AugmentSection)}


def test_augmented_example_config_validates_and_differs_only_in_augmentation():
    base = load_train_config(ROOT / "configs" / "train_prior_brain_diffusion.yaml")
    aug = load_train_config(ROOT / "configs" / "train_prior_brain_diffusion_augmented.yaml")
    assert aug.data == base.data and aug.model == base.model and aug.train == base.train
    assert aug.augment != base.augment and aug.augment.elastic_px > 0 and aug.augment.crop_min < 1
    assert "genrecon/data/priors" not in str(aug.export_path)  # never overwrites the shipped prior
    x = _images(4, 32)
    y = A.augment(x, torch.Generator().manual_seed(0), **aug.augment.params())
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
