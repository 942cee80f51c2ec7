"""Prediction heads of DUSt3R / MASt3R and their output post-processing.

Every head takes the L+1 token tensors of one view (encoder output, decoder block outputs, the last one
normalised) and the image size (H, W), and returns
  raw:  (B, n_raw, H, W) channels  [x, y, z, (conf), (desc 0..D-1), (desc_conf)]
and `postprocess` turns raw channels into
  pts3d (B, H, W, 3), conf (B, H, W), and for MASt3R desc (B, H, W, D) unit-L2 and desc_conf (B, H, W).
Post-processing always runs in float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.layers import Mlp
from torch import nn

from .dpt import DPTAdapter


def reg_dense_depth(xyz: torch.Tensor, mode) -> torch.Tensor:
    """(…, 3) raw → points. 'exp': direction kept, norm d mapped to expm1(d); 'square': d²; 'linear'."""
    kind, vmin, vmax = mode
    if kind == "linear":
        if vmin == -math.inf and vmax == math.inf:
            return xyz
        return xyz.clip(min=vmin, max=vmax)
    d = xyz.norm(dim=-1, keepdim=True)
    xyz = xyz / d.clip(min=1e-8)
    if kind == "square":
        return xyz * d.square()
    if kind == "exp":
        return xyz * torch.expm1(d)
    raise ValueError(f"unknown depth_mode {kind!r}")


def reg_dense_conf(x: torch.Tensor, mode) -> torch.Tensor:
    """'exp': vmin + exp(x) (clipped at vmax - vmin); 'sigmoid': vmin + (vmax - vmin) * sigmoid(x)."""
    kind, vmin, vmax = mode
    if kind == "exp":
        return vmin + x.exp().clip(max=vmax - vmin)
    if kind == "sigmoid":
        return (vmax - vmin) * torch.sigmoid(x) + vmin
    raise ValueError(f"unknown conf_mode {kind!r}")


def postprocess(raw: torch.Tensor, depth_mode, conf_mode, desc_dim: int | None = None,
                two_confs: bool = False, desc_conf_mode=None) -> dict[str, torch.Tensor]:
    """raw (B, C, H, W) → dict of pts3d / conf / desc / desc_conf (channels-last, float32)."""
    fmap = raw.float().permute(0, 2, 3, 1)
    res = {"pts3d": reg_dense_depth(fmap[..., 0:3], depth_mode)}
    if conf_mode is not None:
        res["conf"] = reg_dense_conf(fmap[..., 3], conf_mode)
    if desc_dim is not None:
        start = 3 + int(conf_mode is not None)
        desc = fmap[..., start:start + desc_dim]
        res["desc"] = desc / desc.norm(dim=-1, keepdim=True)
        if two_confs:
            res["desc_conf"] = reg_dense_conf(fmap[..., start + desc_dim], desc_conf_mode or conf_mode)
        else:
            res["desc_conf"] = res["conf"].clone()
    return res


def _tokens_to_pixels(feat: torch.Tensor, image_size: tuple[int, int], patch: int) -> torch.Tensor:
    """(B, S, C * p²) per-patch features → (B, C, H, W) by pixel shuffle."""
    b = feat.shape[0]
    h, w = image_size[0] // patch, image_size[1] // patch
    return F.pixel_shuffle(feat.transpose(1, 2).reshape(b, -1, h, w), patch)


class LinearPts3d(nn.Module):
    """Linear(C_dec, n_out * p²) on the last (normalised) decoder tokens, then pixel shuffle."""

    def __init__(self, dec_dim: int, n_out: int, patch_size: int = 16):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Linear(dec_dim, n_out * patch_size ** 2)

    def forward(self, tokens: list[torch.Tensor], image_size: tuple[int, int],
                fp32_last: bool = False) -> torch.Tensor:
        x = tokens[-1]
        if fp32_last:
            with torch.autocast(x.device.type, enabled=False):
                feat = F.linear(x.float(), self.proj.weight.float(), self.proj.bias.float())
                return _tokens_to_pixels(feat, image_size, self.patch_size)
        return _tokens_to_pixels(self.proj(x), image_size, self.patch_size)


class DPTPts3d(nn.Module):
    """DUSt3R DPT head: `dpt` adapter giving n_out = 3 + has_conf raw channels."""

    def __init__(self, dim_tokens: list[int], hooks: list[int], n_out: int, patch_size: int = 16):
        super().__init__()
        self.dpt = DPTAdapter(dim_tokens, hooks, n_out, patch_size=patch_size)

    def forward(self, tokens: list[torch.Tensor], image_size: tuple[int, int],
                fp32_last: bool = False) -> torch.Tensor:
        return self.dpt(tokens, image_size, fp32_last=fp32_last)


class CatMLPDPTPts3d(DPTPts3d):
    """MASt3R head: DPT for (x, y, z, conf) plus an MLP on cat(encoder tokens, last decoder tokens)
    giving (desc_dim + two_confs) * p² per patch, pixel-shuffled and appended to the DPT channels."""

    def __init__(self, dim_tokens: list[int], hooks: list[int], n_out: int, desc_dim: int, two_confs: bool,
                 patch_size: int = 16, hidden_factor: float = 4.0):
        super().__init__(dim_tokens, hooks, n_out, patch_size)
        self.patch_size = patch_size
        idim = dim_tokens[0] + dim_tokens[-1]
        self.head_local_features = Mlp(idim, int(hidden_factor * idim),
                                       out_features=(desc_dim + int(two_confs)) * patch_size ** 2)

    def forward(self, tokens: list[torch.Tensor], image_size: tuple[int, int],
                fp32_last: bool = False) -> torch.Tensor:
        pts = self.dpt(tokens, image_size, fp32_last=fp32_last)
        cat = torch.cat([tokens[0], tokens[-1]], dim=-1)
        local = _tokens_to_pixels(self.head_local_features(cat), image_size, self.patch_size)
        return torch.cat([pts.float(), local.float()], dim=1)
