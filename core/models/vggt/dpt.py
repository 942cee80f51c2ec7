"""VGGT's DPT head (depth and point maps), separate from the DUSt3R DPT in core/models/dpt.py.

Input: four aggregator layers (B, S, P, 2C) (indices `intermediate_layer_idx`), of which the patch
tokens (from `patch_start_idx`) are used, and the image size H x W (multiples of 14).
Output: preds (B, S, H, W, output_dim-1) and conf (B, S, H, W):
  depth head  output_dim 2, activation "exp"      -> depth = exp(x)
  point head  output_dim 4, activation "inv_log"  -> points = sign(x)·(exp|x| − 1) (world frame)
  conf        "expp1"                             -> 1 + exp(x)

Pipeline per layer: shared LayerNorm -> 1x1 projection at patch resolution (+ sin/cos UV embedding)
-> resize to 4x, 2x, 1x, 0.5x patch resolution -> 3x3 conv to `features` -> RefineNet fusion from
coarse to fine (bilinear, align_corners True) -> conv -> bilinear upsample to H x W (+ embedding)
-> conv, ReLU, 1x1 conv -> activation. Frames are processed in chunks to bound memory.

Precision: the head runs in its parameter dtype (float32 on CPU; run_vggt uses bf16 on bf16 GPUs),
except the final 1x1 conv and the activations, which are always float32 (cheap: 32 channels in), so
the exp() of the logits is not evaluated on bf16-rounded sums.

Reference quirk kept on purpose: the residual units' first ReLU is in place in the original, so the
skip connection adds relu(x), not x.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def uv_embedding(h: int, w: int, aspect: float, channels: int, device=None) -> torch.Tensor:
    """(channels, h, w) float32 sin/cos embedding of a UV grid normalised by the image diagonal.

    x spans ±aspect/diag·(w−1)/w and y spans ±1/diag·(h−1)/h; the first half of the channels encodes
    x, the second y, each as [sin(pos·ω), cos(pos·ω)] with ω_i = 100^(−i/(channels/4)).
    """
    diag = math.sqrt(aspect * aspect + 1.0)
    sx, sy = aspect / diag, 1.0 / diag
    xs = torch.linspace(-sx * (w - 1) / w, sx * (w - 1) / w, w, dtype=torch.float32, device=device)
    ys = torch.linspace(-sy * (h - 1) / h, sy * (h - 1) / h, h, dtype=torch.float32, device=device)
    quarter = channels // 4
    omega = torch.arange(quarter, dtype=torch.float64, device=device) / (channels / 4.0)
    omega = 1.0 / 100.0 ** omega

    def sincos(pos: torch.Tensor) -> torch.Tensor:
        ang = pos.double()[:, None] * omega[None]
        return torch.cat([ang.sin(), ang.cos()], dim=-1).float()

    ex = sincos(xs)[None, :, :].expand(h, w, -1)
    ey = sincos(ys)[:, None, :].expand(h, w, -1)
    return torch.cat([ex, ey], dim=-1).permute(2, 0, 1).contiguous()


_UV_CACHE: dict = {}


def cached_uv_embedding(h: int, w: int, aspect: float, channels: int, device, dtype) -> torch.Tensor:
    """`uv_embedding` cast to dtype, computed once per (size, channels, device, dtype) and reused."""
    key = (h, w, aspect, channels, str(device), dtype)
    if key not in _UV_CACHE:
        if len(_UV_CACHE) > 32:  # image sizes change rarely; bound the cache anyway
            _UV_CACHE.clear()
        _UV_CACHE[key] = uv_embedding(h, w, aspect, channels, device).to(dtype)
    return _UV_CACHE[key]


class ResidualConvUnit(nn.Module):
    # Not core/models/dpt.py's unit: VGGT's reference ReLU is in place, so its skip adds relu(x), not x.
    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.conv2(F.relu(self.conv1(x))) + x


class FusionBlock(nn.Module):
    """out_conv(upsample(rcu2(x + rcu1(skip)))) with bilinear, align_corners True.

    `unit`: the residual unit class (VGGT's, whose skip adds relu(x); DA3 passes core/models/dpt.py's).
    """

    def __init__(self, features: int, has_residual: bool = True, unit: type[nn.Module] | None = None):
        super().__init__()
        unit = unit or ResidualConvUnit
        self.out_conv = nn.Conv2d(features, features, 1)
        if has_residual:
            self.resConfUnit1 = unit(features)
        self.resConfUnit2 = unit(features)
        self.has_residual = has_residual

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None, size=None) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class _Scratch(nn.Module):
    def __init__(self, out_channels, features: int, output_dim: int):
        super().__init__()
        for i, oc in enumerate(out_channels):
            setattr(self, f"layer{i + 1}_rn", nn.Conv2d(oc, features, 3, padding=1, bias=False))
        self.refinenet1 = FusionBlock(features)
        self.refinenet2 = FusionBlock(features)
        self.refinenet3 = FusionBlock(features)
        self.refinenet4 = FusionBlock(features, has_residual=False)
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(),
                                          nn.Conv2d(32, output_dim, 1))


class DPTHead(nn.Module):
    def __init__(self, dim_in: int = 2048, output_dim: int = 4, activation: str = "inv_log",
                 features: int = 256, out_channels=(256, 512, 1024, 1024),
                 intermediate_layer_idx=(4, 11, 17, 23), patch_size: int = 14, **_unused):
        super().__init__()
        if activation not in ("exp", "inv_log"):
            raise ValueError(f"unknown DPT activation {activation!r}")
        self.activation = activation
        self.patch_size = patch_size
        self.intermediate_layer_idx = list(intermediate_layer_idx)
        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList([nn.Conv2d(dim_in, oc, 1) for oc in out_channels])
        oc = list(out_channels)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
            nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
        ])
        self.scratch = _Scratch(oc, features, output_dim)

    def forward(self, layers: list, height: int, width: int, patch_start_idx: int,
                frames_chunk: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
        """layers: aggregator outputs (entries (B, S, P, 2C)) -> preds (B,S,H,W,D-1), conf (B,S,H,W)."""
        s = layers[self.intermediate_layer_idx[0]].shape[1]
        preds, confs = [], []
        for start in range(0, s, frames_chunk):
            p, c = self.forward_frames(layers, height, width, patch_start_idx, start, min(s, start + frames_chunk))
            preds.append(p)
            confs.append(c)
        return torch.cat(preds, dim=1), torch.cat(confs, dim=1)

    def forward_frames(self, layers: list, height: int, width: int, patch_start_idx: int,
                       start: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames start..end-1 only; tokens are cast to this head's dtype here, chunk by chunk."""
        gh, gw = height // self.patch_size, width // self.patch_size
        dtype = self.norm.weight.dtype
        feats = []
        for j, li in enumerate(self.intermediate_layer_idx):
            x = layers[li][:, start:end, patch_start_idx:]
            b, s = x.shape[:2]
            x = self.norm(x.reshape(b * s, gh * gw, -1).to(dtype))
            x = x.transpose(1, 2).reshape(b * s, -1, gh, gw)
            if x.is_cuda:  # NHWC lets cuDNN use its fastest conv kernels; results are layout-independent
                x = x.contiguous(memory_format=torch.channels_last)
            x = self.projects[j](x)
            x = x + 0.1 * cached_uv_embedding(gh, gw, width / height, x.shape[1], x.device, x.dtype)
            feats.append(self.resize_layers[j](x))
        sc = self.scratch
        l1, l2, l3, l4 = (getattr(sc, f"layer{i + 1}_rn")(f) for i, f in enumerate(feats))
        del feats
        out = sc.refinenet4(l4, size=l3.shape[2:])
        out = sc.refinenet3(out, l3, size=l2.shape[2:])
        out = sc.refinenet2(out, l2, size=l1.shape[2:])
        out = sc.refinenet1(out, l1)
        del l1, l2, l3, l4
        out = sc.output_conv1(out)
        out = F.interpolate(out, size=(gh * self.patch_size, gw * self.patch_size), mode="bilinear",
                            align_corners=True)
        out = out + 0.1 * cached_uv_embedding(out.shape[2], out.shape[3], width / height, out.shape[1],
                                              out.device, out.dtype)
        conv_a, relu, conv_b = sc.output_conv2
        out = relu(conv_a(out)).float()
        out = F.conv2d(out, conv_b.weight.float(), None if conv_b.bias is None else conv_b.bias.float())
        out = out.permute(0, 2, 3, 1)
        raw, conf = out[..., :-1], out[..., -1]
        if self.activation == "exp":
            pred = torch.exp(raw)
        else:
            pred = torch.sign(raw) * torch.expm1(raw.abs())
        conf = 1 + torch.exp(conf)
        return pred.reshape(b, s, *pred.shape[1:]), conf.reshape(b, s, *conf.shape[1:])
