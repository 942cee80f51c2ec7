"""The DA3 network (`DA3Net`) and the nested any-view + metric pair (`DA3Nested`).

`DA3Net(cfg)` submodules and state_dict keys equal the reference `DepthAnything3Net`'s without the
checkpoint's `model.` prefix: `backbone.pretrained.*`, `head.*`, and for any-view models `cam_enc.*`,
`cam_dec.*`, and for the Giant `gs_head.*` (head.GSDPT: run only with gs=True; the reference's
GaussianAdapter, which has no tensors, is not implemented).

Forward: images (B, S, 3, H, W) ImageNet-normalised, H and W multiples of 14, optionally with known
cameras world2cam (B, S, 4, 4) (already normalised: view 0 the identity, translations scaled as the
reference API does, `normalize_world2cam`) and intrinsics (B, S, 3, 3) in network pixels. Outputs
(float32, the caller's view order):
  depth, depth_conf (B, S, H, W)   any-view (depth up to scale) — mono/metric: depth, sky (no conf)
  pose_enc (B, S, 9)               camera decoder output (cam2world encoding, camera.py)
  cam2world, world2cam (B, S, 3, 4), intrinsics (B, S, 3, 3) (network pixels, principal point W/2, H/2)
  ray, ray_conf (B, S, 8h, 8w, 6 / -)  only with rays=True (the reference drops them when it has a
                                    camera decoder, so by default the ray branch is not run at all)
  raw_gs (B, S, H, W, 37), raw_gs_conf (B, S, H, W)   only with gs=True on a model with a Gaussian head
The world frame is (by training) the camera of the reference view (view 0 when cameras are given or S <= 2).
"""

from __future__ import annotations

import torch
from torch import nn

from .backbone import DA3Backbone
from .camera import CameraDec, CameraEnc, invert_rigid, pose_encoding_to_c2w_intrinsics
from .config import PRESETS, DA3Config, config_from_dict
from .head import GSDPT, DualDPT, MonoDPT
from .metric import align_to_metric


class DA3Net(nn.Module):
    family = "da3"   # read by core.pipeline for modules passed in directly

    def __init__(self, cfg: DA3Config):
        super().__init__()
        self.cfg = cfg
        self.name = ""
        self.backbone = DA3Backbone(cfg)
        head_cls = DualDPT if cfg.any_view else MonoDPT
        self.head = head_cls(cfg.head_dim_in, cfg.features, cfg.out_channels, cfg.patch_size)
        if cfg.any_view and cfg.cam_enc_depth > 0:
            self.cam_enc = CameraEnc(cfg.embed_dim, cfg.cam_enc_depth, cfg.cam_enc_heads, cfg.mlp_ratio)
            self.cam_dec = CameraDec(cfg.head_dim_in)
        else:
            self.cam_enc = self.cam_dec = None
        self.gs_head = GSDPT(cfg.head_dim_in, cfg.features, cfg.out_channels, cfg.patch_size) if cfg.gs_head else None

    @property
    def config(self) -> dict:
        return self.cfg.to_dict()

    def encode(self, images: torch.Tensor, world2cam: torch.Tensor | None = None,
               intrinsics: torch.Tensor | None = None, ref_strategy: str = "saddle_balanced",
               trace: dict | None = None, step=None):
        """Backbone (+ camera encoder): -> 4 x (features (B, S, h*w, C'), camera token (B, S, C'))."""
        cam_tokens = None
        if world2cam is not None:
            if self.cam_enc is None:
                raise ValueError("this DA3 model takes no input cameras (it has no camera encoder)")
            if intrinsics is None:
                raise ValueError("known cameras need their intrinsics too")
            with torch.autocast(images.device.type, enabled=False):
                cam_tokens = self.cam_enc(world2cam, intrinsics, tuple(images.shape[-2:]), trace)
            if trace is not None:
                trace["cam_enc_out"] = cam_tokens
        return self.backbone(images, cam_tokens, ref_strategy, trace, step)

    def decode_cameras(self, cam_token: torch.Tensor, image_hw: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Last out-layer camera token (B, S, C') -> pose_enc, cam2world, world2cam, intrinsics (float32)."""
        with torch.autocast(cam_token.device.type, enabled=False):
            pose_enc = self.cam_dec(cam_token.float() if self.cam_dec.fc_t.weight.dtype == torch.float32
                                    else cam_token)
            c2w, k = pose_encoding_to_c2w_intrinsics(pose_enc, image_hw)
        return {"pose_enc": pose_enc, "cam2world": c2w, "world2cam": invert_rigid(c2w), "intrinsics": k}

    def forward(self, images: torch.Tensor, world2cam: torch.Tensor | None = None,
                intrinsics: torch.Tensor | None = None, ref_strategy: str = "saddle_balanced",
                rays: bool = False, frame_chunk: int = 8, trace: dict | None = None,
                gs: bool = False) -> dict[str, torch.Tensor]:
        if gs and self.gs_head is None:
            raise ValueError("this DA3 model has no Gaussian-splatting head (only the Giant has one)")
        h, w = images.shape[-2:]
        feats = self.encode(images, world2cam, intrinsics, ref_strategy, trace)
        if trace is not None:
            trace["backbone_feats"] = [f for f, _ in feats]
            trace["backbone_cam_tokens"] = [t for _, t in feats]
        out = self.head([f for f, _ in feats], h, w, frame_chunk, trace, rays=rays)
        if self.cam_dec is not None:
            out.update(self.decode_cameras(feats[-1][1], (h, w)))
        if gs:
            out.update(self.gs_head([f for f, _ in feats], images, frame_chunk))
        return out


class DA3Nested(nn.Module):
    """The nested model: `da3` (any-view, the Giant in the published checkpoint) + `da3_metric` (the metric
    Large), whose depth fixes the any-view result's scale in metres (metric.align_to_metric).

    Forward: as DA3Net's (images, optional known cameras) -> the any-view outputs with depth, depth_conf
    and the camera translations (cam2world, world2cam) in metres, plus metric_depth (B, S, H, W, the metric
    model's depth in metres with the predicted focal lengths), sky (B, S, H, W, the metric model's sky map),
    non_sky (bool) and metric_scale (0-d, the factor applied). As the reference, the metric model sees every
    view on its own and the focal lengths are the any-view model's predicted ones (also in camera-conditioned
    mode).
    """

    family = "da3"

    def __init__(self, anyview: DA3Config | None = None, metric: DA3Config | None = None):
        super().__init__()
        self.da3 = DA3Net(anyview or PRESETS["da3-giant"])
        self.da3_metric = DA3Net(metric or PRESETS["da3metric-large"])
        if not self.da3.cfg.any_view or self.da3_metric.cfg.any_view:
            raise ValueError("a nested DA3 model pairs an any-view network with a monocular/metric one")
        self.name = ""

    @property
    def config(self) -> dict:
        return {"nested": True, "anyview": self.da3.cfg.to_dict(), "metric": self.da3_metric.cfg.to_dict()}

    def forward(self, images: torch.Tensor, world2cam: torch.Tensor | None = None,
                intrinsics: torch.Tensor | None = None, ref_strategy: str = "saddle_balanced",
                rays: bool = False, frame_chunk: int = 8, trace: dict | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        out = self.da3(images, world2cam, intrinsics, ref_strategy, rays, frame_chunk, trace)
        metric_out = self.da3_metric(images, frame_chunk=frame_chunk)
        if trace is not None:
            trace.update(anyview_depth=out["depth"], anyview_depth_conf=out["depth_conf"],
                         metric_raw_depth=metric_out["depth"], metric_sky=metric_out["sky"])
        aligned = align_to_metric(out["depth"], out["depth_conf"], metric_out["depth"], metric_out["sky"],
                                  out["intrinsics"], generator)
        scale = aligned["scale"]
        out.update(depth=aligned["depth"], depth_conf=aligned["depth_conf"], metric_depth=aligned["metric_depth"],
                   sky=metric_out["sky"], non_sky=aligned["non_sky"], metric_scale=scale)
        for key in ("cam2world", "world2cam"):
            m = out[key].clone()
            m[..., :3, 3] *= scale
            out[key] = m
        return out


def build_da3(config: str | DA3Config | dict) -> nn.Module:
    """A DA3 network (random init, on the current default device) from a preset name, config or dict."""
    from .config import NESTED

    if isinstance(config, dict) and config.get("nested"):
        return DA3Nested(config_from_dict(config["anyview"]), config_from_dict(config["metric"]))
    if isinstance(config, str):
        if config == NESTED:
            return DA3Nested()
        if config not in PRESETS:
            raise ValueError(f"unknown DA3 preset {config!r}; known: {', '.join([*PRESETS, NESTED])}")
        cfg = PRESETS[config]
    elif isinstance(config, dict):
        cfg = config_from_dict(config)
    else:
        cfg = config
    return DA3Net(cfg)
