"""The VGGT network: aggregator + camera head + depth head + point head (no track head).

`build_vggt(config)` builds it; config None is VGGT-1B. Config keys (all optional) are the
aggregator's (img_size, patch_size, embed_dim, depth, num_heads, mlp_ratio, num_register_tokens,
qk_norm, rope_freq, init_values, aa_order, aa_block_size), plus sub-dicts "dino", "camera_head" and
"dpt" (features, out_channels, intermediate_layer_idx) — the form of the parity manifest's
`tiny_model_config`. Module state_dict keys equal the official ones minus `track_head.*`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .aggregator import Aggregator
from .camera_head import CameraHead
from .dpt import DPTHead

VGGT_1B_CONFIG: dict = {
    "img_size": 518, "patch_size": 14, "embed_dim": 1024, "depth": 24, "num_heads": 16, "mlp_ratio": 4.0,
    "num_register_tokens": 4, "aa_order": ["frame", "global"], "aa_block_size": 1, "qk_norm": True,
    "rope_freq": 100, "init_values": 0.01,
    "dino": {"depth": 24, "num_heads": 16, "mlp_ratio": 4, "num_register_tokens": 4,
             "interpolate_antialias": True, "interpolate_offset": 0.0, "block_chunks": 0, "init_values": 1.0},
    "camera_head": {"trunk_depth": 4, "num_heads": 16, "mlp_ratio": 4, "init_values": 0.01, "num_iterations": 4},
    "dpt": {"features": 256, "out_channels": [256, 512, 1024, 1024], "intermediate_layer_idx": [4, 11, 17, 23]},
}


class VGGT(nn.Module):
    family = "vggt"   # model family, as `core.weights` and the pipeline read it

    def __init__(self, config: dict | None = None):
        super().__init__()
        cfg = copy.deepcopy(VGGT_1B_CONFIG)
        for key, value in (config or {}).items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key].update(value)
            else:
                cfg[key] = value
        self.config = cfg
        agg_cfg = {k: v for k, v in cfg.items() if k not in ("camera_head", "dpt")}
        self.aggregator = Aggregator(**agg_cfg)
        dim_in = 2 * cfg["embed_dim"]
        self.camera_head = CameraHead(dim_in=dim_in, **cfg["camera_head"])
        dpt = dict(cfg["dpt"], patch_size=cfg["patch_size"])
        self.point_head = DPTHead(dim_in=dim_in, output_dim=4, activation="inv_log", **dpt)
        self.depth_head = DPTHead(dim_in=dim_in, output_dim=2, activation="exp", **dpt)

    @property
    def head_layers(self) -> list[int]:
        """Aggregator layers any head reads (the DPT layers and the last one for the camera head)."""
        return sorted(set(self.depth_head.intermediate_layer_idx) | {self.aggregator.depth - 1})

    def forward(self, images: torch.Tensor, keep_all_layers: bool = False, frames_chunk: int = 8) -> dict:
        """images (S, 3, H, W) or (B, S, 3, H, W) in [0, 1] -> dict of the official outputs.

        pose_enc (B,S,9), pose_enc_list [(B,S,9)]*iters, depth (B,S,H,W,1), depth_conf (B,S,H,W),
        world_points (B,S,H,W,3), world_points_conf (B,S,H,W); with keep_all_layers also
        aggregated_tokens (list of (B,S,P,2C)). Heads run in their own parameter dtype.
        """
        if images.dim() == 4:
            images = images[None]
        _, _, _, h, w = images.shape
        layers = self.aggregator(images, keep=None if keep_all_layers else self.head_layers)
        start = self.aggregator.patch_start_idx
        head_dtype = self.camera_head.token_norm.weight.dtype
        with torch.autocast(images.device.type, enabled=False):
            pose_list = self.camera_head(layers[-1].to(head_dtype))
            depth, depth_conf = self.depth_head(layers, h, w, start, frames_chunk)
            points, points_conf = self.point_head(layers, h, w, start, frames_chunk)
        out = {"pose_enc": pose_list[-1], "pose_enc_list": pose_list, "depth": depth, "depth_conf": depth_conf,
               "world_points": points, "world_points_conf": points_conf}
        if keep_all_layers:
            out["aggregated_tokens"] = layers
        return out


def build_vggt(config: dict | None = None, enable_track: bool = False) -> VGGT:
    """Build VGGT (None = VGGT-1B defaults). Works under `with torch.device("meta")`."""
    if enable_track:
        raise NotImplementedError("the VGGT track head is not implemented in pointmap")
    return VGGT(config)
