"""The DA3 network (`DA3Net`) and the nested Giant + metric pair (`DA3Nested`, built for loading only).

`DA3Net(cfg)` submodules and state_dict keys equal the reference `DepthAnything3Net`'s without the
checkpoint's `model.` prefix: `backbone.pretrained.*`, `head.*`, and for any-view models `cam_enc.*`,
`cam_dec.*`. The Giant's Gaussian head (`gs_head.*`) is not built (see config.IGNORED_PREFIXES).

Forward: images (B, S, 3, H, W) ImageNet-normalised, H and W multiples of 14, optionally with known
cameras world2cam (B, S, 4, 4) (already normalised: view 0 the identity, translations scaled as the
reference API does, `normalize_world2cam`) and intrinsics (B, S, 3, 3) in network pixels. Outputs
(float32, the caller's view order):
  depth, depth_conf (B, S, H, W)   any-view (depth up to scale) — mono/metric: depth, sky (no conf)
  pose_enc (B, S, 9)               camera decoder output (cam2world encoding, camera.py)
  cam2world, world2cam (B, S, 3, 4), intrinsics (B, S, 3, 3) (network pixels, principal point W/2, H/2)
  ray, ray_conf (B, S, 8h, 8w, 6 / -)  only with rays=True (the reference drops them when it has a
                                    camera decoder, so by default the ray branch is not run at all)
The world frame is (by training) the camera of the reference view (view 0 when cameras are given or S <= 2).
"""

from __future__ import annotations

import torch
from torch import nn

from .backbone import DA3Backbone
from .camera import CameraDec, CameraEnc, invert_rigid, pose_encoding_to_c2w_intrinsics
from .config import PRESETS, DA3Config, config_from_dict
from .head import DualDPT, MonoDPT


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
                rays: bool = False, frame_chunk: int = 8, trace: dict | None = None) -> dict[str, torch.Tensor]:
        h, w = images.shape[-2:]
        feats = self.encode(images, world2cam, intrinsics, ref_strategy, trace)
        if trace is not None:
            trace["backbone_feats"] = [f for f, _ in feats]
            trace["backbone_cam_tokens"] = [t for _, t in feats]
        out = self.head([f for f, _ in feats], h, w, frame_chunk, trace, rays=rays)
        if self.cam_dec is not None:
            out.update(self.decode_cameras(feats[-1][1], (h, w)))
        return out


class DA3Nested(nn.Module):
    """`da3` (any-view Giant) + `da3_metric` (metric Large): holds the nested checkpoint's tensors.

    Its combined forward (metric rescaling of the any-view result) is not implemented; the backend
    refuses it with a clear message. Built so that the checkpoint's keys are checked strictly.
    """

    family = "da3"

    def __init__(self):
        super().__init__()
        self.da3 = DA3Net(PRESETS["da3-giant"])
        self.da3_metric = DA3Net(PRESETS["da3metric-large"])
        self.name = ""

    @property
    def config(self) -> dict:
        return {"nested": True}


def build_da3(config: str | DA3Config | dict) -> nn.Module:
    """A DA3 network (random init, on the current default device) from a preset name, config or dict."""
    from .config import NESTED

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
