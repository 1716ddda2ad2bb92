"""Forward finite differences with a Neumann boundary, and the matching divergence ``div = -grad^T``.

    (grad x)[0, i, j] = x[i+1, j] - x[i, j]   (0 on the last row)
    (grad x)[1, i, j] = x[i, j+1] - x[i, j]   (0 on the last column)

:func:`grad2d` and :func:`div2d` are the inner loop of TV solvers: slicing only, one output allocation
each, no temporaries, any leading dims, real or complex, any device. The operator built on them is
:class:`genrecon.operators.FiniteDifference`.

Example:
    >>> import torch
    >>> x = torch.randn(3, 8, 8); p = torch.randn(3, 2, 8, 8)
    >>> lhs = (grad2d(x) * p).sum(); rhs = -(x * div2d(p)).sum()
    >>> bool(torch.isclose(lhs, rhs, rtol=1e-4, atol=1e-4))
    True
"""

from __future__ import annotations

import torch

from ..errors import ShapeError


def grad2d(x: torch.Tensor) -> torch.Tensor:
    """Forward differences along H and W with a Neumann boundary.

    Args:
        x: ``(..., H, W)``, real or complex.

    Returns:
        ``(..., 2, H, W)`` of ``x``'s dtype: index 0 is the difference along H (rows), 1 along W (columns).
    """
    if x.dim() < 2:
        raise ShapeError(f"grad2d: expected a tensor (..., H, W), got shape {tuple(x.shape)}")
    out = x.new_empty((*x.shape[:-2], 2, *x.shape[-2:]))
    dh, dw = out.select(-3, 0), out.select(-3, 1)
    if x.requires_grad and torch.is_grad_enabled():  # out= does not record gradients
        dh[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
        dw[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    else:
        torch.sub(x[..., 1:, :], x[..., :-1, :], out=dh[..., :-1, :])
        torch.sub(x[..., :, 1:], x[..., :, :-1], out=dw[..., :, :-1])
    dh[..., -1, :] = 0
    dw[..., :, -1] = 0
    return out


def div2d(p: torch.Tensor) -> torch.Tensor:
    """Discrete divergence, exactly ``-grad2d^T``.

    Args:
        p: ``(..., 2, H, W)``, real or complex (a field as returned by :func:`grad2d`). The last row of
            ``p[..., 0, :, :]`` and the last column of ``p[..., 1, :, :]`` are ignored, as ``grad2d``'s
            transpose requires.

    Returns:
        ``(..., H, W)`` of ``p``'s dtype.
    """
    if p.dim() < 3 or p.shape[-3] != 2:
        raise ShapeError(f"div2d: expected a tensor (..., 2, H, W), got shape {tuple(p.shape)}")
    ph, pw = p.select(-3, 0), p.select(-3, 1)
    out = p.new_empty((*p.shape[:-3], *p.shape[-2:]))
    # rows: out[0] = ph[0], out[i] = ph[i] - ph[i-1], out[H-1] = -ph[H-2]; then the same along columns
    out[..., :-1, :] = ph[..., :-1, :]
    out[..., -1, :] = 0
    out[..., 1:, :] -= ph[..., :-1, :]
    out[..., :, :-1] += pw[..., :, :-1]
    out[..., :, 1:] -= pw[..., :, :-1]
    return out
