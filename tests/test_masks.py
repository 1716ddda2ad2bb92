"""Sampling masks: acceleration, fully sampled centre, determinism, no global RNG, parameter errors."""

from __future__ import annotations

import math
import time

import pytest
import torch

from genrecon.errors import ConfigError, RegistryError
from genrecon.registry import MASKS
from genrecon.simulate import masks as M
from genrecon.simulate.masks import achieved_acceleration

SHAPE = (128, 256)  # (H, W): phase encoding along W


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def _lines(mask):
    """Columns of a line mask (checks that every row is the same)."""
    assert torch.equal(mask, mask[:1].expand_as(mask))
    return mask[0]


def test_registered_names_and_docs():
    assert {"random", "equispaced", "gaussian2d", "poisson_disc", "radial"} <= set(MASKS.names())
    for name in MASKS.names():
        assert MASKS.doc(name)  # a one-line summary for `genrecon list`


# -- acceleration -------------------------------------------------------------------------------------
@pytest.mark.parametrize("acc", [4, 8])
def test_random_fixed_count_is_exact(acc):
    for seed in range(5):
        mask = MASKS.build("random", {"acceleration": acc, "fixed_count": True})(SHAPE, _g(seed))
        assert int(_lines(mask).sum()) == round(SHAPE[1] / acc)


@pytest.mark.parametrize("acc", [4, 8])
def test_random_mean_acceleration_over_seeds(acc):
    # fastMRI: E[#lines] = W / acc; over 40 seeds the mean line count is within 3% of it
    make = MASKS.build("random", {"acceleration": acc})
    counts = [int(_lines(make(SHAPE, _g(seed))).sum()) for seed in range(40)]
    mean = sum(counts) / len(counts)
    assert mean == pytest.approx(SHAPE[1] / acc, rel=0.03)
    assert len(set(counts)) > 1  # the count is random without fixed_count


@pytest.mark.parametrize("acc", [4, 8])
@pytest.mark.parametrize("w", [256, 320, 368])
def test_equispaced_exact_acceleration(acc, w):
    mask = MASKS.build("equispaced", {"acceleration": acc, "exact": True})((8, w), _g(acc))
    assert achieved_acceleration(mask) == pytest.approx(acc, rel=0.05)


@pytest.mark.parametrize("acc", [4, 8])
def test_equispaced_lines_are_equally_spaced(acc):
    w = 256
    cf = 0.32 / acc
    num_low = round(w * cf)
    centre = M._center_lines(w, num_low)
    for seed in range(4):
        lines = _lines(MASKS.build("equispaced", {"acceleration": acc})((4, w), _g(seed)))
        outer = torch.nonzero(lines & ~centre).squeeze(1)
        assert torch.all(outer % acc == outer[0] % acc)  # one offset, spacing acc
        assert int(lines.sum()) == int((centre | (torch.arange(w) % acc == outer[0] % acc)).sum())
    # fastMRI's plain equispaced mask undershoots the nominal acceleration: the centre comes on top
    expected = w / (w / acc + num_low * (1 - 1 / acc))
    assert achieved_acceleration(lines) == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("name", ["gaussian2d", "poisson_disc"])
@pytest.mark.parametrize("acc", [4, 8])
def test_point_masks_hit_the_acceleration_exactly(name, acc):
    for shape in [(64, 64), (96, 80)]:
        mask = MASKS.build(name, {"acceleration": acc})(shape, _g(1))
        assert mask.shape == shape and mask.dtype == torch.bool
        assert int(mask.sum()) == round(shape[0] * shape[1] / acc)


@pytest.mark.parametrize("acc", [4, 8])
def test_radial_acceleration_and_spokes(acc):
    mask = MASKS.build("radial", {"acceleration": acc})((128, 128), _g())
    assert achieved_acceleration(mask) == pytest.approx(acc, rel=0.05)
    few = MASKS.build("radial", {"n_spokes": 8})((64, 64), _g())
    many = MASKS.build("radial", {"n_spokes": 32})((64, 64), _g())
    assert few.sum() < many.sum()
    # every spoke passes through the centre; a horizontal spoke spans the full width
    assert few[32, 32] and torch.all(few[32, :])


def test_radial_golden_angle_nests():
    a = MASKS.build("radial", {"n_spokes": 10, "golden_angle": True}).spokes(64, 64, 10)
    b = MASKS.build("radial", {"n_spokes": 20, "golden_angle": True}).spokes(64, 64, 20)
    assert torch.all(b[a])  # golden-angle spokes are a prefix: more spokes add points only


@pytest.mark.parametrize(
    "name,params",
    [
        ("random", {}),
        ("random", {"fixed_count": True}),
        ("equispaced", {}),
        ("equispaced", {"exact": True}),
        ("gaussian2d", {}),
        ("poisson_disc", {}),
    ],
)
def test_acceleration_one_samples_everything(name, params):
    mask = MASKS.build(name, {"acceleration": 1, **params})((16, 20), _g())
    assert torch.all(mask)


def test_achieved_acceleration():
    m = torch.zeros(4, 8, dtype=torch.bool)
    m[:, ::2] = True
    assert achieved_acceleration(m) == 2.0
    assert achieved_acceleration(m[0]) == 2.0
    assert achieved_acceleration(torch.zeros(3, 3)) == math.inf


# -- centre -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["random", "equispaced"])
@pytest.mark.parametrize("acc,cf", [(4, 0.08), (8, 0.04), (6, None)])
def test_line_masks_sample_the_centre(name, acc, cf):
    params = {"acceleration": acc} if cf is None else {"acceleration": acc, "center_fraction": cf}
    w = 320
    cf = 0.32 / acc if cf is None else cf
    num_low = round(w * cf)
    pad = (w - num_low + 1) // 2  # fastMRI's placement
    for seed in range(3):
        lines = _lines(MASKS.build(name, params)((4, w), _g(seed)))
        assert torch.all(lines[pad : pad + num_low])
        assert lines[w // 2]  # the zero frequency of fft2c


@pytest.mark.parametrize("name", ["gaussian2d", "poisson_disc"])
def test_point_masks_sample_the_centre_disc(name):
    h, w = 96, 64
    mask = MASKS.build(name, {"acceleration": 8, "center_fraction": 0.2})((h, w), _g())
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    disc = yy**2 + xx**2 <= (0.2 * min(h, w) / 2) ** 2
    assert disc.sum() > 20 and torch.all(mask[disc])


def test_point_masks_are_variable_density():
    for name in ("gaussian2d", "poisson_disc"):
        mask = MASKS.build(name, {"acceleration": 6})((128, 128), _g())
        inner = mask[32:96, 32:96].sum().item() / 64**2
        outer = (mask.sum() - mask[32:96, 32:96].sum()).item() / (128**2 - 64**2)
        assert inner > 1.5 * outer, name  # denser in the middle of k-space (uniform: ratio 1)


# -- Poisson disc packing ------------------------------------------------------------------------------
def _sequential_dart_throwing(radius, priority, fixed):
    h, w = radius.shape
    r = radius.flatten().tolist()
    order = torch.argsort(torch.where(fixed, 2.0, priority), descending=True).tolist()
    taken = []
    out = torch.zeros(h * w, dtype=torch.bool)
    for p in order:
        py, px = divmod(p, w)
        if fixed[p] or all(math.hypot(py - q // w, px - q % w) >= max(r[p], r[q]) for q in taken):
            taken.append(p)
            out[p] = True
    return out


@pytest.mark.parametrize("scale", [1.3, 1.9, 2.6])
def test_parallel_packing_equals_sequential_dart_throwing(scale):
    h, w = 20, 17
    radius = scale * (1 + 1.5 * M._kspace_radius(h, w))
    fixed = M._center_disc(h, w, 0.25).flatten()
    priority = M._uniform(h * w, _g(7))
    expected = _sequential_dart_throwing(radius, priority, fixed)
    assert torch.equal(M._greedy_disc_packing(radius, priority, fixed), expected)


def test_poisson_disc_is_fast_at_256():
    # CPU time on one thread: robust to other processes sharing the machine (wall time is not)
    make = MASKS.build("poisson_disc", {"acceleration": 8})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        make((64, 64), _g())  # warm-up
        start = time.process_time()
        make((256, 256), _g())
        elapsed = time.process_time() - start
    finally:
        torch.set_num_threads(threads)
    assert elapsed < 1.0, f"poisson_disc 256x256 took {elapsed:.2f} s of CPU"


# -- randomness ------------------------------------------------------------------------------------------
ALL = [
    ("random", {"acceleration": 4}),
    ("random", {"acceleration": 8, "fixed_count": True}),
    ("equispaced", {"acceleration": 4}),
    ("equispaced", {"acceleration": 8, "exact": True}),
    ("gaussian2d", {"acceleration": 4}),
    ("poisson_disc", {"acceleration": 4}),
    ("radial", {"n_spokes": 16}),
]


@pytest.mark.parametrize("name,params", ALL)
def test_determinism_and_global_rng_untouched(name, params):
    state = torch.random.get_rng_state()
    make = MASKS.build(name, params)
    a = make((48, 64), _g(5))
    b = make((48, 64), _g(5))
    assert torch.equal(torch.random.get_rng_state(), state)
    assert a.shape == (48, 64) and a.dtype == torch.bool
    assert torch.equal(a, b)
    if name != "radial":  # radial is deterministic by design
        assert any(not torch.equal(a, make((48, 64), _g(s))) for s in range(6, 10))


# -- parameter errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,params,match",
    [
        ("random", {"acceleration": 0.5}, "acceleration: must be >= 1, got 0.5"),
        ("random", {"acceleration": "8"}, "acceleration: expected a finite number, got '8'"),
        ("random", {"acceleration": 4, "center_fraction": 1.0}, "center_fraction: must be < 1, got 1.0"),
        ("random", {"acceleration": 4, "center_fraction": -0.1}, "center_fraction: must be >= 0"),
        ("random", {"acceleration": 8, "center_fraction": 0.2}, "smaller than 1/acceleration"),
        ("random", {"acceleration": 4, "fixed_count": 1}, "fixed_count: expected true or false"),
        ("equispaced", {"acceleration": float("nan")}, "finite number"),
        ("gaussian2d", {"acceleration": 4, "sigma": 0}, "sigma: must be > 0"),
        ("poisson_disc", {"acceleration": 4, "spacing_ratio": 0.5}, "spacing_ratio: must be >= 1"),
        ("radial", {}, "exactly one of n_spokes and acceleration"),
        ("radial", {"n_spokes": 4, "acceleration": 4}, "exactly one"),
        ("radial", {"n_spokes": 0}, "n_spokes: expected an integer >= 1, got 0"),
    ],
)
def test_bad_params_raise_config_errors(name, params, match):
    with pytest.raises(ConfigError, match=match):
        MASKS.build(name, params)


def test_unknown_and_missing_params_are_reported():
    assert MASKS.check_params("random", {"acceleraton": 4})[0].startswith("params: mask 'random' has no parameter")
    assert any("needs parameter 'acceleration'" in p for p in MASKS.check_params("random", {}))
    with pytest.raises(RegistryError, match="did you mean 'random'"):
        MASKS.get("randon")


def test_call_errors():
    make = MASKS.build("random", {"acceleration": 4})
    with pytest.raises(TypeError, match="torch.Generator"):
        make((8, 8), None)
    with pytest.raises(ValueError, match="shape"):
        make((8,), _g())
