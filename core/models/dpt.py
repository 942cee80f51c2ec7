"""DPT dense-prediction head (the DUSt3R/MASt3R variant of the reference `DPTOutputAdapter_fix`).

Input: the list of L+1 token tensors of one view [encoder output (B, S, C_enc), decoder block 1..L
outputs (B, S, C_dec), the last one normalised]; four of them (`hooks`) are read. Output: (B, n_out, H, W)
raw channels at full image resolution (before post-processing).

Layout, with P = (H/16, W/16) patches: hook k → 1x1 conv to layer_dims[k] → resample to 4P, 2P, P, P/2
(ConvTranspose k4 s4, ConvTranspose k2 s2, none, Conv3x3 s2) → 3x3 conv to `feature_dim` (layerN_rn)
→ RefineNet fusion from coarse to fine (each ×2 bilinear, align_corners=True) → head:
conv3x3 → ×2 bilinear → conv3x3 → ReLU → conv1x1 to n_out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# How ×2 bilinear upsampling runs: "auto" = as matrix products for half-precision CUDA tensors (the
# channels-last interpolate kernel is far from memory bandwidth there), F.interpolate otherwise;
# "interpolate", "nchw" (interpolate on a contiguous copy) and "matmul" force one way (benchmarking).
UPSAMPLE = "auto"
_MATS: dict = {}


def _interp_matrix(n: int, device, dtype) -> torch.Tensor:
    """(2n, n) matrix of ×2 linear interpolation with align_corners=True (rows sum to 1)."""
    key = (n, str(device), dtype)
    if key not in _MATS:
        src = torch.arange(2 * n, device=device, dtype=torch.float64) * ((n - 1) / max(1, 2 * n - 1))
        i0 = src.floor().long().clamp(max=n - 1)
        i1 = (i0 + 1).clamp(max=n - 1)
        f = src - i0
        a = torch.zeros(2 * n, n, device=device, dtype=torch.float64)
        rows = torch.arange(2 * n, device=device)
        a.index_put_((rows, i0), 1 - f, accumulate=True)
        a.index_put_((rows, i1), f, accumulate=True)
        _MATS[key] = a.to(dtype)
    return _MATS[key]


def _up2_matmul(x: torch.Tensor) -> torch.Tensor:
    """Separable ×2 bilinear (align_corners=True) as two batched GEMMs on the channels-last layout."""
    b, c, h, w = x.shape
    xl = x.permute(0, 2, 3, 1).reshape(b, h, w * c)                  # (B, H, W*C), free for channels-last
    y = torch.matmul(_interp_matrix(h, x.device, x.dtype), xl)       # (B, 2H, W*C)
    z = torch.matmul(_interp_matrix(w, x.device, x.dtype), y.view(b * 2 * h, w, c))  # (B*2H, 2W, C)
    return z.view(b, 2 * h, 2 * w, c).permute(0, 3, 1, 2)            # (B, C, 2H, 2W) channels-last


def _up2(x: torch.Tensor) -> torch.Tensor:
    mode = UPSAMPLE
    if mode == "auto":
        mode = "matmul" if x.is_cuda and x.dtype in (torch.float16, torch.bfloat16) else "interpolate"
    if mode == "matmul":
        return _up2_matmul(x)
    if mode == "nchw":
        out = F.interpolate(x.contiguous(), scale_factor=2, mode="bilinear", align_corners=True)
        return out.contiguous(memory_format=torch.channels_last)
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)


# Not shared with core/models/vggt/dpt.py: VGGT's reference ReLU is in place (its skip adds relu(x), not x).
class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))), 3x3 convs with bias."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x)), inplace=True))


class FusionBlock(nn.Module):
    """RefineNet stage: out_conv1x1(up2(RCU2(a + RCU1(b)))), or without the skip input b."""

    def __init__(self, features: int):
        super().__init__()
        # Registration order (out_conv first) matches the reference state_dict order.
        self.out_conv = nn.Conv2d(features, features, 1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        if b is not None:
            a = a + self.resConfUnit1(b)
        return self.out_conv(_up2(self.resConfUnit2(a)))


class Interpolate2x(nn.Module):
    """Parameter-free ×2 bilinear upsampling (align_corners=True); keeps the reference head indices."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _up2(x)


class Scratch(nn.Module):
    """Projection convs `layerN_rn` (aliased as `layer_rn[N-1]`, as in the reference) and RefineNets."""

    def __init__(self, layer_dims: list[int], features: int):
        super().__init__()
        for i, d in enumerate(layer_dims):
            setattr(self, f"layer{i + 1}_rn", nn.Conv2d(d, features, 3, padding=1, bias=False))
        # The same four modules registered twice: checkpoints hold both key spellings.
        self.layer_rn = nn.ModuleList([getattr(self, f"layer{i + 1}_rn") for i in range(len(layer_dims))])
        for i in range(4):
            setattr(self, f"refinenet{i + 1}", FusionBlock(features))


class DPTAdapter(nn.Module):
    """The reference `dpt` sub-module: `scratch`, `head`, `act_postprocess` (in this registration order)."""

    def __init__(self, dim_tokens: list[int], hooks: list[int], n_out: int, patch_size: int = 16,
                 layer_dims=(96, 192, 384, 768), feature_dim: int = 256, last_dim: int = 128):
        super().__init__()
        self.hooks = list(hooks)
        self.patch_size = patch_size
        self.scratch = Scratch(list(layer_dims), feature_dim)
        self.head = nn.Sequential(
            nn.Conv2d(feature_dim, feature_dim // 2, 3, padding=1),
            Interpolate2x(),
            nn.Conv2d(feature_dim // 2, last_dim, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(last_dim, n_out, 1),
        )
        d = list(layer_dims)
        self.act_postprocess = nn.ModuleList([
            nn.Sequential(nn.Conv2d(dim_tokens[0], d[0], 1), nn.ConvTranspose2d(d[0], d[0], 4, stride=4)),
            nn.Sequential(nn.Conv2d(dim_tokens[1], d[1], 1), nn.ConvTranspose2d(d[1], d[1], 2, stride=2)),
            nn.Sequential(nn.Conv2d(dim_tokens[2], d[2], 1)),
            nn.Sequential(nn.Conv2d(dim_tokens[3], d[3], 1), nn.Conv2d(d[3], d[3], 3, stride=2, padding=1)),
        ])

    def forward(self, tokens: list[torch.Tensor], image_size: tuple[int, int],
                fp32_last: bool = False) -> torch.Tensor:
        """tokens: L+1 tensors (B, S, C_k) → raw (B, n_out, H, W).

        fp32_last: run the final 1x1 conv in float32 (float32 copies of its weights, autocast off) so that
        the raw values, which post-processing exponentiates, keep full precision in bf16/fp16 runs.
        """
        h, w = image_size[0] // self.patch_size, image_size[1] // self.patch_size
        layers = []
        for k, hook in enumerate(self.hooks):
            t = tokens[hook]
            # A channels-last view of the token grid, no copy: convs run fastest in that layout on GPU.
            x = t.reshape(t.shape[0], h, w, t.shape[2]).permute(0, 3, 1, 2)
            layers.append(self.scratch.layer_rn[k](self.act_postprocess[k](x)))
        s = self.scratch
        # P/2 from the stride-2 conv rounds up for odd P; crop its ×2 upsampling back to P.
        p4 = s.refinenet4(layers[3])[:, :, :layers[2].shape[2], :layers[2].shape[3]]
        p3 = s.refinenet3(p4, layers[2])
        p2 = s.refinenet2(p3, layers[1])
        p1 = s.refinenet1(p2, layers[0])
        x = self.head[:4](p1)
        last = self.head[4]
        if fp32_last:
            with torch.autocast(x.device.type, enabled=False):
                return F.conv2d(x.float(), last.weight.float(), last.bias.float())
        return last(x)
