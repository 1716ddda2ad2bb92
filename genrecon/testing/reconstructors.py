"""The reconstructor contract, checked by running a method on a tiny MRI or CT problem."""

from __future__ import annotations

import torch

from ..reconstructors.base import Reconstructor, plugin_problems


def example_problem(modality: str, size: int = 16, *, seed: int = 0):
    """``(x_true, y, op)``: a smooth test image ``(1, 1, S, S)`` measured by a small operator.

    MRI: single-coil Cartesian with a seeded 4x column mask (complex64); CT: parallel beam, 23 views (float32).
    """
    from ..registry import OPERATORS

    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    img = ((xx**2 + (yy / 0.8) ** 2) < 0.6).float() * (0.6 + 0.4 * torch.rand(1, generator=g))
    if modality == "mri":
        op = OPERATORS.get("mri_single").example(size)
        x = img.to(torch.complex64)[None, None]
    elif modality == "ct":
        op = OPERATORS.get("ct_parallel").example(size)
        x = img[None, None]
    else:
        raise ValueError(f"modality: 'mri' or 'ct', got {modality!r}")
    return x, op(x), op


def check_reconstructor(method: Reconstructor, *, modality: str = "mri", size: int = 16) -> dict:
    """Check a reconstructor instance on a ``size`` x ``size`` problem of ``modality``.

    It must follow the class contract (:func:`~genrecon.reconstructors.base.plugin_problems`), accept the
    operator (``check``), return ``(B, *op.domain_shape)`` in the domain's kind (complex for MRI) with finite
    values, give the same result for the same generator seed without touching torch's global RNG, leave a
    dict in ``info``, call ``callback(step, estimate)`` (if it calls it) with image-space estimates (the
    domain's shape and dtype), and, when it declares ``supports_batch``, reconstruct a batch of two.

    Returns:
        ``{"callback_calls": ..., "info_keys": [...]}``.
    """
    problems = plugin_problems(type(method).__name__, type(method))
    assert not problems, "; ".join(problems)
    assert modality in method.modalities, f"{type(method).__name__} does not support {modality!r}"
    x_true, y, op = example_problem(modality, size)
    method.check(op)
    calls: list[tuple[int, tuple]] = []

    def callback(step, estimate):
        calls.append((step, tuple(estimate.shape), estimate.is_complex()))

    state = torch.random.get_rng_state()
    a = method(y, op, generator=torch.Generator().manual_seed(7), callback=callback)
    b = method(y, op, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), state), "the method used torch's global RNG"
    want = (y.shape[0], *op.domain_shape)
    assert tuple(a.shape) == want, f"expected a result of shape {want}, got {tuple(a.shape)}"
    assert a.is_complex() == op.complex_domain, f"expected a {'complex' if op.complex_domain else 'real'} result"
    assert bool(torch.isfinite(torch.view_as_real(a) if a.is_complex() else a).all()), "the result is not finite"
    assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), "the same generator seed gave different results"
    assert isinstance(method.info, dict), "info must be a dict after a call"
    for step, shape, is_complex in calls:
        assert isinstance(step, int), f"callback step must be an int, got {type(step).__name__}"
        assert shape[1:] == tuple(op.domain_shape), f"callback estimate of shape {shape} is not an image"
        assert is_complex == op.complex_domain, "the callback estimate is not in the image domain's dtype"
    if method.supports_batch:  # two measurements in one call: one result each, the first as alone
        y2 = torch.cat([y, 0.5 * y])
        batch = method(y2, op, generator=torch.Generator().manual_seed(7))
        assert tuple(batch.shape) == (2, *op.domain_shape), f"a batch of 2 gave shape {tuple(batch.shape)}"
        assert bool(torch.isfinite(torch.view_as_real(batch) if batch.is_complex() else batch).all())
    return {"callback_calls": len(calls), "info_keys": sorted(method.info)}
