"""Sin-cos position embeddings and their resizing for (T, H, W) token grids.

InternVideo2 initialises its learnable position embedding with a 3-D sin-cos table: the
first quarter of the channels encodes time, the other three quarters encode (x, y), and
the cls position is zero. Checkpoints trained on another clip shape (Stage-2 uses 4 frames)
are resized linearly in time and bicubically in space. Resizing is the identity when the
grids already match, so loading a same-shape checkpoint never perturbs weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Grid = tuple[int, int, int]  # (T, H, W) in tokens


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(M,) positions -> (M, dim): sin on the first half of channels, cos on the second."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dim, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / (10000.0**omega)
    angles = positions.to(torch.float64).reshape(-1, 1) * omega.reshape(1, -1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, height: int, width: int) -> torch.Tensor:
    """(H*W, dim), row-major; half of the channels encode x (column), half encode y (row)."""
    if dim % 2:
        raise ValueError(f"2-D sin-cos embedding needs an even dim, got {dim}")
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64),
        torch.arange(width, dtype=torch.float64),
        indexing="ij",
    )
    return torch.cat([sincos_1d(dim // 2, xs.flatten()), sincos_1d(dim // 2, ys.flatten())], 1)


def sincos_3d(dim: int, grid: Grid, cls_token: bool = True) -> torch.Tensor:
    """(1 + T*H*W, dim) float32 table: [temporal dim/4 | spatial 3*dim/4], cls row zero."""
    if dim % 4:
        raise ValueError(f"3-D sin-cos embedding needs dim divisible by 4, got {dim}")
    t, h, w = grid
    dim_t, dim_s = dim // 4, dim // 4 * 3
    temporal = sincos_1d(dim_t, torch.arange(t)).repeat_interleave(h * w, dim=0)
    spatial = sincos_2d(dim_s, h, w).repeat(t, 1)
    table = torch.cat([temporal, spatial], dim=1)
    if cls_token:
        table = torch.cat([torch.zeros(1, dim, dtype=table.dtype), table], dim=0)
    return table.float()


def resize_temporal(embed: torch.Tensor, new_t: int) -> torch.Tensor:
    """(1, T, D) -> (1, T', D), linear in time."""
    if embed.shape[1] == new_t:
        return embed
    out = F.interpolate(
        embed.float().transpose(1, 2), size=new_t, mode="linear", align_corners=False
    )
    return out.transpose(1, 2).to(embed.dtype)


def resize_spatial(
    embed: torch.Tensor, src_hw: tuple[int, int], dst_hw: tuple[int, int]
) -> torch.Tensor:
    """(B, H*W, D) -> (B, H'*W', D), bicubic in space."""
    if tuple(src_hw) == tuple(dst_hw):
        return embed
    b, _, d = embed.shape
    grid = embed.float().reshape(b, src_hw[0], src_hw[1], d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(dst_hw), mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(b, dst_hw[0] * dst_hw[1], d).to(embed.dtype)


def resize_pos_embed(
    pos_embed: torch.Tensor, src_grid: Grid, dst_grid: Grid, num_prefix: int = 1
) -> torch.Tensor:
    """Resize a joint (1, prefix + T*H*W, D) embedding from src_grid to dst_grid.

    Identity (the same tensor object) when the grids are equal.
    """
    src_grid, dst_grid = tuple(src_grid), tuple(dst_grid)
    if src_grid == dst_grid:
        return pos_embed
    (t0, h0, w0), (t1, h1, w1) = src_grid, dst_grid
    prefix, tokens = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    d = tokens.shape[-1]
    if tokens.shape[1] != t0 * h0 * w0:
        raise ValueError(
            f"pos embed has {tokens.shape[1]} tokens, grid {src_grid} needs {t0 * h0 * w0}"
        )
    x = tokens.reshape(t0, h0 * w0, d)
    if t0 != t1:  # time: one sequence of length T per (spatial position, channel)
        x = resize_temporal(x.reshape(1, t0, h0 * w0 * d), t1).reshape(t1, h0 * w0, d)
    x = resize_spatial(x, (h0, w0), (h1, w1))  # (T', H'*W', D); frames are the batch
    return torch.cat([prefix, x.reshape(1, t1 * h1 * w1, d)], dim=1)


def infer_grid(num_tokens: int, like: Grid) -> Grid:
    """Guess the (T, H, W) grid of a checkpoint's pos embed with `num_tokens` patch tokens.

    Prefers the model's spatial grid (checkpoints usually differ only in frames), then the
    model's frame count with a square spatial grid.
    """
    t, h, w = like
    if num_tokens % (h * w) == 0:
        return (num_tokens // (h * w), h, w)
    if num_tokens % t == 0:
        side = round((num_tokens // t) ** 0.5)
        if side * side == num_tokens // t:
            return (t, side, side)
    for frames in (1, 2, 4, 8, 16, 32):
        side = round((num_tokens / frames) ** 0.5)
        if num_tokens % frames == 0 and side * side * frames == num_tokens:
            return (frames, side, side)
    raise ValueError(f"cannot infer a (T, H, W) grid for {num_tokens} position tokens")
