"""DA3's dense heads: `DualDPT` (any-view: depth + ray maps) and `MonoDPT` (mono/metric: depth + sky).

Input: the backbone's 4 feature maps (B, S, h*w, C') (row-major patch grids of an H x W image).
Per frame: (LayerNorm for DualDPT) -> 1x1 `projects[k]` (+ 0.1 * UV embedding for DualDPT) ->
`resize_layers[k]` to 4h, 2h, h, ceil(h/2) -> 3x3 `scratch.layer{k}_rn` -> top-down RefineNet fusion
(each stage bilinearly resized, align_corners True, to the next finer level; the last one x2) -> the
output convolutions. Frames run `frame_chunk` at a time (the head is per frame).

DualDPT outputs (B, S, ...): depth = exp(l0) and depth_conf = exp(l1) + 1 at H x W; the ray branch
(own fusion blocks on the same lateral maps, last pyramid level only) gives ray (8h, 8w, 6: origin and
direction, linear) and ray_conf = exp(l6) + 1 at 8h x 8w. The reference also computes aux levels 0-2
and discards them; they are skipped here (their weights exist only so checkpoints load strictly).
MonoDPT outputs depth = exp(l) and sky = relu(s) at H x W (no confidence, no UV embedding).
GSDPT (the Giant's Gaussian-splatting head, run only on request) is MonoDPT's pyramid with DualDPT's UV
embedding and no token norm; at H x W it adds a small conv encoder of the input images before the last
convs and outputs the 37 raw Gaussian parameters per pixel and a sigmoid density (see its docstring).

Precision: the convolutions run in the head's parameter dtype; the final 1x1 convs and activations
run in float32 so exp() never sees bf16-rounded logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..dpt import ResidualConvUnit  # DA3's unit adds x (not relu(x)) on the skip, as DUSt3R's does
from ..vggt.dpt import FusionBlock as _VGGTFusionBlock
from ..vggt.dpt import cached_uv_embedding

UV_SCALE = 0.1


def fusion_block(features: int, has_residual: bool = True) -> nn.Module:
    """VGGT's RefineNet stage with DUSt3R's residual unit (DA3's skip adds x, not relu(x))."""
    return _VGGTFusionBlock(features, has_residual, unit=ResidualConvUnit)


def _last_conv_fp32(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x.float(), conv.weight.float(), None if conv.bias is None else conv.bias.float())


class _Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class _Scratch(nn.Module):
    def __init__(self, out_channels, features: int, n_out: int, dual: bool, sky: bool = True):
        super().__init__()
        for i, oc in enumerate(out_channels):
            setattr(self, f"layer{i + 1}_rn", nn.Conv2d(oc, features, 3, padding=1, bias=False))
        half = features // 2
        names = ("", "_aux") if dual else ("",)
        for suffix in names:
            for i in range(1, 5):
                setattr(self, f"refinenet{i}{suffix}", fusion_block(features, has_residual=i != 4))
            if suffix == "":
                self.output_conv1 = nn.Conv2d(features, half, 3, padding=1)
                self.output_conv2 = nn.Sequential(nn.Conv2d(half, 32, 3, padding=1), nn.ReLU(),
                                                  nn.Conv2d(32, n_out, 1))
        if dual:
            # Aux pyramid: 4 levels (only the last is used); 5 plain convs F->F/2->F->F/2->F->F/2 each.
            chans = [features, half, features, half, features, half]
            self.output_conv1_aux = nn.ModuleList([
                nn.Sequential(*[nn.Conv2d(chans[j], chans[j + 1], 3, padding=1) for j in range(5)])
                for _ in range(4)])
            ln = nn.LayerNorm(32)  # one module shared by the 4 levels (tied in the checkpoints)
            self.output_conv2_aux = nn.ModuleList([
                nn.Sequential(nn.Conv2d(half, 32, 3, padding=1), _Permute((0, 2, 3, 1)), ln,
                              _Permute((0, 3, 1, 2)), nn.ReLU(), nn.Conv2d(32, 7, 1))
                for _ in range(4)])
        elif sky:
            self.sky_output_conv2 = nn.Sequential(nn.Conv2d(half, 32, 3, padding=1), nn.ReLU(),
                                                  nn.Conv2d(32, 1, 1))


class _DPTBase(nn.Module):
    dual = True        # the ray (aux) branch exists
    token_norm = True  # LayerNorm on the input tokens
    uv = True          # UV embedding after the projections (and before the last convs)
    sky = False        # a sky branch exists (monocular heads)

    def __init__(self, dim_in: int, features: int, out_channels, n_out: int, patch_size: int = 14):
        super().__init__()
        self.patch_size = patch_size
        if self.token_norm:
            self.norm = nn.LayerNorm(dim_in)
        oc = list(out_channels)
        self.projects = nn.ModuleList([nn.Conv2d(dim_in, c, 1) for c in oc])
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
            nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
        ])
        self.scratch = _Scratch(oc, features, n_out, self.dual, self.sky)

    def _uv(self, x: torch.Tensor, aspect: float) -> torch.Tensor:
        return x + UV_SCALE * cached_uv_embedding(x.shape[2], x.shape[3], aspect, x.shape[1], x.device, x.dtype)

    def laterals(self, feats: list[torch.Tensor], gh: int, gw: int, aspect: float, trace=None):
        """feats: 4 x (F, h*w, C') of F frames -> the 4 lateral maps `layer{k}_rn` (F, features, ., .)."""
        dtype = self.projects[0].weight.dtype
        out = []
        for k, t in enumerate(feats):
            t = t.to(dtype)
            if self.token_norm:
                t = self.norm(t)
            x = t.transpose(1, 2).reshape(t.shape[0], -1, gh, gw)
            if x.is_cuda:  # NHWC: cuDNN's fastest conv kernels; results are layout-independent
                x = x.contiguous(memory_format=torch.channels_last)
            x = self.projects[k](x)
            if self.uv:
                x = self._uv(x, aspect)
            x = self.resize_layers[k](x)
            out.append(getattr(self.scratch, f"layer{k + 1}_rn")(x))
            if trace is not None:
                trace[f"head_layer{k + 1}_rn"] = out[-1]
        return out

    def fuse(self, lat, suffix: str = "") -> torch.Tensor:
        sc = self.scratch
        l1, l2, l3, l4 = lat
        out = getattr(sc, "refinenet4" + suffix)(l4, size=l3.shape[2:])
        out = getattr(sc, "refinenet3" + suffix)(out, l3, size=l2.shape[2:])
        out = getattr(sc, "refinenet2" + suffix)(out, l2, size=l1.shape[2:])
        return getattr(sc, "refinenet1" + suffix)(out, l1)

    def forward(self, feats: list[torch.Tensor], height: int, width: int, frame_chunk: int = 8,
                trace: dict | None = None, rays: bool = True) -> dict[str, torch.Tensor]:
        """feats: 4 x (B, S, h*w, C') -> dict of (B, S, ...) maps (see the module docstring).

        rays=False skips DualDPT's ray branch (its outputs are not needed when cameras are decoded).
        """
        b, s = feats[0].shape[:2]
        flat = [f.reshape(b * s, *f.shape[2:]) for f in feats]
        parts: dict[str, list[torch.Tensor]] = {}
        for a in range(0, b * s, frame_chunk):
            out = self.forward_frames([f[a:a + frame_chunk] for f in flat], height, width, trace, rays)
            for k, v in out.items():
                parts.setdefault(k, []).append(v)
        return {k: torch.cat(v).reshape(b, s, *v[0].shape[1:]) for k, v in parts.items()}


class DualDPT(_DPTBase):
    dual = True

    def __init__(self, dim_in: int, features: int, out_channels, patch_size: int = 14):
        super().__init__(dim_in, features, out_channels, 2, patch_size)

    def forward_frames(self, feats, height: int, width: int, trace=None, rays: bool = True) -> dict[str, torch.Tensor]:
        """feats: 4 x (F, h*w, C') -> depth, depth_conf (F, H, W); ray (F, 8h, 8w, 6), ray_conf (F, 8h, 8w)."""
        gh, gw = height // self.patch_size, width // self.patch_size
        aspect = width / height
        sc = self.scratch
        lat = self.laterals(feats, gh, gw, aspect, trace)
        main = sc.output_conv1(self.fuse(lat))
        main = F.interpolate(main, size=(height, width), mode="bilinear", align_corners=True)
        conv_a, relu, conv_b = sc.output_conv2
        logits = _last_conv_fp32(conv_b, relu(conv_a(self._uv(main, aspect))))
        del main
        out = {"depth": logits[:, 0].exp(), "depth_conf": logits[:, 1].exp() + 1}
        if not rays:
            return out
        aux = sc.output_conv1_aux[3](self.fuse(lat, "_aux"))
        del lat
        seq = sc.output_conv2_aux[3]
        aux = seq[:5](self._uv(aux, aspect))
        aux = _last_conv_fp32(seq[5], aux).permute(0, 2, 3, 1)
        out.update(ray=aux[..., :6], ray_conf=aux[..., 6].exp() + 1)
        return out


class MonoDPT(_DPTBase):
    dual = token_norm = uv = False
    sky = True

    def __init__(self, dim_in: int, features: int, out_channels, patch_size: int = 14):
        super().__init__(dim_in, features, out_channels, 1, patch_size)

    def forward_frames(self, feats, height: int, width: int, trace=None, rays: bool = False) -> dict[str, torch.Tensor]:
        """feats: 4 x (F, h*w, C) -> depth (F, H, W) (exp) and sky (F, H, W) (relu)."""
        gh, gw = height // self.patch_size, width // self.patch_size
        sc = self.scratch
        x = sc.output_conv1(self.fuse(self.laterals(feats, gh, gw, width / height, trace)))
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=True)
        out = {}
        for name, seq in (("depth", sc.output_conv2), ("sky", sc.sky_output_conv2)):
            conv_a, relu, conv_b = seq
            out[name] = _last_conv_fp32(conv_b, relu(conv_a(x)))[:, 0]
        out["depth"] = out["depth"].exp()
        out["sky"] = out["sky"].relu()
        return out


GS_PARAMS = 37   # raw Gaussian parameters per pixel of DA3-Giant's head (sh_degree 2, no colour, with offsets)


class GSDPT(_DPTBase):
    """DA3-Giant's Gaussian-splatting head (`gs_head.*` in the checkpoints): the network part only.

    feats 4 x (B, S, h*w, C') as for the depth head, plus the network's input images (B, S, 3, H, W) ->
    raw_gs (B, S, H, W, 37) (linear: the reference GaussianAdapter's depth/xy offsets, scales, rotations and
    SH coefficients, in that adapter's layout) and raw_gs_conf (B, S, H, W) (sigmoid density, which the
    adapter maps to opacity). The adapter that turns these into world-space Gaussians (and needs the
    predicted depth and cameras) is not implemented, and nothing in the reconstruction backend runs this
    head: it exists so the Giant checkpoints load strictly and their Gaussian outputs can be computed.
    """

    dual = token_norm = sky = False
    uv = True

    def __init__(self, dim_in: int, features: int, out_channels, patch_size: int = 14):
        super().__init__(dim_in, features, out_channels, GS_PARAMS + 1, patch_size)
        m = features // 2
        self.images_merger = nn.Sequential(
            nn.Conv2d(3, m // 4, 3, padding=1), nn.GELU(), nn.Conv2d(m // 4, m // 2, 3, padding=1), nn.GELU(),
            nn.Conv2d(m // 2, m, 3, padding=1), nn.GELU())

    def forward_frames(self, feats, images: torch.Tensor, height: int, width: int) -> dict[str, torch.Tensor]:
        """feats 4 x (F, h*w, C'), images (F, 3, H, W) -> raw_gs (F, H, W, 37), raw_gs_conf (F, H, W)."""
        gh, gw = height // self.patch_size, width // self.patch_size
        aspect = width / height
        sc = self.scratch
        x = sc.output_conv1(self.fuse(self.laterals(feats, gh, gw, aspect)))
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=True)
        x = self._uv(x + self.images_merger(images.to(x.dtype)), aspect)
        conv_a, relu, conv_b = sc.output_conv2
        logits = _last_conv_fp32(conv_b, relu(conv_a(x))).permute(0, 2, 3, 1)
        return {"raw_gs": logits[..., :GS_PARAMS], "raw_gs_conf": logits[..., GS_PARAMS].sigmoid()}

    def forward(self, feats: list[torch.Tensor], images: torch.Tensor, frame_chunk: int = 8) -> dict[str, torch.Tensor]:
        """feats 4 x (B, S, h*w, C'), images (B, S, 3, H, W) -> raw_gs (B, S, H, W, 37), raw_gs_conf (B, S, H, W)."""
        b, s, _, height, width = images.shape
        flat = [f.reshape(b * s, *f.shape[2:]) for f in feats]
        imgs = images.reshape(b * s, 3, height, width)
        parts: dict[str, list[torch.Tensor]] = {}
        for a in range(0, b * s, frame_chunk):
            out = self.forward_frames([f[a:a + frame_chunk] for f in flat], imgs[a:a + frame_chunk], height, width)
            for k, v in out.items():
                parts.setdefault(k, []).append(v)
        return {k: torch.cat(v).reshape(b, s, *v[0].shape[1:]) for k, v in parts.items()}
