"""A compact UNet denoiser for single-channel (or few-channel) images.

``eps_or_F = net(x, noise_label)``: residual blocks with GroupNorm and SiLU, a sinusoidal embedding of the
noise label added to every block, optional self-attention at the coarse levels, strided-conv downsampling
and nearest-neighbour upsampling with skip connections. With ``patch_size=2`` the image is first folded
into 2x2 pixel patches (pixel unshuffle), which cuts the cost at full resolution four-fold.

``net.checkpointing = True`` (training's ``model.checkpointing``) recomputes each residual unit's activations
in the backward pass instead of storing them (:func:`run_unit`): less memory for large images, same outputs
and gradients, about one more forward pass of time. It is a run-time switch, not architecture: it is not in
``net.config``, so exported priors never carry it and inference is unchanged.

Parameters are created on the ``meta`` device and initialised from an explicit ``torch.Generator``
(:func:`init_parameters`), so building a model never touches the global random state.

Example:
    >>> import torch
    >>> net = UNet(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=())
    >>> init_parameters(net, torch.Generator().manual_seed(0))
    >>> net(torch.zeros(2, 1, 16, 16), torch.tensor([0.0, 10.0])).shape
    torch.Size([2, 1, 16, 16])
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError, ShapeError


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer-style embedding of scalar labels.

    ``emb = [cos(t w_k), sin(t w_k)]``, ``w_k = max_period^(-k / (dim/2))``.

    Args:
        t: labels, shape ``(B,)``, any float dtype.
        dim: embedding width (even).

    Returns:
        ``(B, dim)`` tensor of ``t``'s dtype.
    """
    half = dim // 2
    k = torch.arange(half, device=t.device, dtype=t.dtype)
    freqs = torch.exp(-math.log(max_period) * k / half)
    args = t[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def run_unit(module: nn.Module, *args: torch.Tensor, checkpointing: bool = False) -> torch.Tensor:
    """``module(*args)``; with ``checkpointing`` and gradients on, through ``torch.utils.checkpoint``
    (non-reentrant, RNG state preserved so dropout draws the same mask when recomputed)."""
    if checkpointing and torch.is_grad_enabled() and not isinstance(module, nn.Identity):
        return checkpoint(module, *args, use_reentrant=False)
    return module(*args)


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    g = math.gcd(channels, groups)
    return nn.GroupNorm(g, channels)


def _zero(module: nn.Module) -> nn.Module:
    """Mark a layer to be zero-initialised by :func:`init_parameters` (residual branches start as identity)."""
    module._genrecon_zero_init = True  # type: ignore[attr-defined]
    return module


class ResBlock(nn.Module):
    """``h = conv(SiLU(GN(conv(SiLU(GN(x)))) + W emb)) + skip(x)``."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = _norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = _norm(c_out, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over pixels: ``x + proj(softmax(q k^T / sqrt(d)) v)``."""

    def __init__(self, channels: int, groups: int, head_channels: int = 32):
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Unit(nn.Module):
    """A residual block followed by optional self-attention."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float, attention: bool):
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb_dim, groups, dropout)
        self.attn = SelfAttention(c_out, groups) if attention else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, emb))


class UNet(nn.Module):
    """UNet ``F(x, label)`` with the input's shape; the label is a noise level or time index per sample.

    Args:
        channels: image channels (1 for magnitude MRI and CT).
        base_channels: width of the first level.
        channel_mults: width multiplier of each level; level ``i`` works at ``1 / 2^i`` of the (patched) size.
        num_res_blocks: residual blocks per level (encoder and decoder each).
        attention_levels: level indices that get self-attention after each residual block (coarse ones);
            negative indices count from the coarsest level (``-1``).
        groups: GroupNorm groups (reduced to a divisor of the width where needed).
        dropout: dropout rate inside the residual blocks.
        patch_size: fold ``p x p`` pixel patches into channels before the first layer (1 = off).
    """

    arch = "unet"

    def __init__(
        self,
        *,
        channels: int = 1,
        base_channels: int = 32,
        channel_mults: tuple[int, ...] = (1, 2, 2, 2),
        num_res_blocks: int = 1,
        attention_levels: tuple[int, ...] = (-1,),
        groups: int = 8,
        dropout: float = 0.0,
        patch_size: int = 1,
    ):
        super().__init__()
        self.config: dict[str, Any] = {
            "channels": int(channels),
            "base_channels": int(base_channels),
            "channel_mults": [int(m) for m in channel_mults],
            "num_res_blocks": int(num_res_blocks),
            "attention_levels": [int(a) for a in attention_levels],
            "groups": int(groups),
            "dropout": float(dropout),
            "patch_size": int(patch_size),
        }
        self.channels = channels
        self.patch_size = patch_size
        self.checkpointing = False  # run-time switch (module docstring), not in config
        self.levels = len(channel_mults)
        bad = [a for a in attention_levels if not -self.levels <= a < self.levels]
        if bad:
            raise ConfigError(f"attention_levels {bad} outside the {self.levels} levels of channel_mults")
        attention_levels = tuple(a % self.levels for a in attention_levels)
        self.emb_in = base_channels
        emb_dim = 4 * base_channels
        self.emb_mlp = nn.Sequential(nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        c_io = channels * patch_size * patch_size
        self.conv_in = nn.Conv2d(c_io, base_channels, 3, padding=1)

        widths = [base_channels * m for m in channel_mults]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = base_channels
        skips: list[int] = []
        for level, width in enumerate(widths):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(Unit(c, width, emb_dim, groups, dropout, level in attention_levels))
                c = width
                skips.append(c)
            self.down.append(blocks)
            last = level == self.levels - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, stride=2, padding=1))

        self.mid1 = ResBlock(c, c, emb_dim, groups, dropout)
        self.mid_attn = SelfAttention(c, groups) if attention_levels else nn.Identity()
        self.mid2 = ResBlock(c, c, emb_dim, groups, dropout)

        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(self.levels)):
            width = widths[level]
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                blocks.append(Unit(c + skips.pop(), width, emb_dim, groups, dropout, level in attention_levels))
                c = width
            self.up.append(blocks)
            self.upsample.append(nn.Identity() if level == 0 else nn.Conv2d(c, c, 3, padding=1))

        self.norm_out = _norm(c, groups)
        self.conv_out = _zero(nn.Conv2d(c, c_io, 3, padding=1))

    @property
    def size_multiple(self) -> int:
        """Image height and width must be multiples of this."""
        return self.patch_size * 2 ** (self.levels - 1)

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Apply the network.

        Args:
            x: ``(B, C, H, W)`` float images; ``H`` and ``W`` multiples of :attr:`size_multiple`.
            label: ``(B,)`` noise labels (time index or a function of sigma).

        Returns:
            ``(B, C, H, W)`` tensor of ``x``'s dtype.
        """
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ShapeError(f"UNet expects (B, {self.channels}, H, W) images; got shape {tuple(x.shape)}")
        m = self.size_multiple
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ShapeError(
                f"UNet with {self.levels} levels and patch size {self.patch_size} needs H and W divisible by {m}; "
                f"got {x.shape[-2]}x{x.shape[-1]}: resize the images or use fewer levels"
            )
        emb = self.emb_mlp(sinusoidal_embedding(label.to(x.dtype).reshape(-1), self.emb_in))
        h = F.pixel_unshuffle(x, self.patch_size) if self.patch_size > 1 else x
        h = self.conv_in(h)
        skips, ck = [], self.checkpointing
        for blocks, down in zip(self.down, self.downsample):
            for unit in blocks:
                h = run_unit(unit, h, emb, checkpointing=ck)
                skips.append(h)
            h = down(h)
        h = run_unit(self.mid1, h, emb, checkpointing=ck)
        h = run_unit(self.mid2, run_unit(self.mid_attn, h, checkpointing=ck), emb, checkpointing=ck)
        for blocks, up in zip(self.up, self.upsample):
            for unit in blocks:
                h = run_unit(unit, torch.cat([h, skips.pop()], dim=1), emb, checkpointing=ck)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.conv_out(F.silu(self.norm_out(h)))
        return F.pixel_shuffle(h, self.patch_size) if self.patch_size > 1 else h


def init_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """(Re-)initialise every parameter of ``module`` from ``generator`` (a CPU generator).

    Conv and linear layers: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (PyTorch's default), or zeros for layers
    marked as residual outputs; GroupNorm: weight 1, bias 0. Works on a module materialised with
    ``to_empty`` from the meta device. Raises ``TypeError`` for a layer type it does not know.
    """
    for m in module.modules():
        own = list(m.parameters(recurse=False))
        if not own:
            continue
        with torch.no_grad():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if getattr(m, "_genrecon_zero_init", False):
                    m.weight.zero_()
                    if m.bias is not None:
                        m.bias.zero_()
                    continue
                bound = 1.0 / math.sqrt(m.weight[0].numel())
                _uniform_(m.weight, bound, generator)
                if m.bias is not None:
                    _uniform_(m.bias, bound, generator)
            elif isinstance(m, nn.GroupNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
            else:
                raise TypeError(f"init_parameters does not know how to initialise {type(m).__name__}")


def _uniform_(t: torch.Tensor, bound: float, generator: torch.Generator) -> None:
    if t.device == generator.device:
        t.uniform_(-bound, bound, generator=generator)
    else:
        values = torch.empty(t.shape, dtype=t.dtype, device=generator.device)
        t.copy_(values.uniform_(-bound, bound, generator=generator))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters())


def materialise(factory: Callable[[], nn.Module], generator: torch.Generator | None) -> nn.Module:
    """Build ``factory()`` on the meta device, allocate it on the CPU and initialise it from ``generator``.

    With ``generator=None`` the parameters are left uninitialised (to be filled by ``load_state_dict``).
    """
    with torch.device("meta"):
        module = factory()
    module = module.to_empty(device="cpu")
    if generator is not None:
        init_parameters(module, generator)
    return module
