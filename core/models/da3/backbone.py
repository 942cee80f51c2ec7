"""DA3's DINOv2 backbone: per-view (local) and cross-view (global) attention over S views.

Input: images (B, S, 3, H, W), ImageNet-normalised, H and W multiples of 14; optional camera tokens
(B, S, C) from the camera encoder. Output: for each of the 4 `out_layers`, the head features
(B, S, h*w, C') in row-major patch order and the raw camera token (B, S, C'), where C' = 2C when
`cat_token` (features = [last local output | final-norm(output)]) and C otherwise (= final-norm(output)).
Outputs are always in the caller's view order.

Per view the tokens are [token 0; h*w patches] (no registers): token 0 is DINOv2's cls token until block
`alt_start`, where it is overwritten by the camera token (`camera_token[0]` for the reference view,
`camera_token[1]` for the others, or the camera encoder's tokens). Block i is global (attends over all
S*(1+h*w) tokens of a batch item) iff alt_start >= 0, i >= alt_start and i is odd: parity decides.
Blocks from `qknorm_start` normalise q and k per head; from `rope_start` they rotate them with 2-D RoPE:
local blocks at (row+1, col+1) for patches and (0, 0) for token 0, global blocks at (1, 1) for every patch.

Without input cameras and with S >= 3, the reference view is chosen from the cls tokens entering block
alt_start-1 (`reference.py`); views are processed as [ref, the others in order] and restored after.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..rope import RoPE2D
from ..vggt.blocks import Block
from ..vggt.dino import PatchEmbed, cached_pos_embed
from ..vggt.rope import rope_tables
from .config import DA3Config
from .reference import reference_order, restore_order, take_views

DINO_EPS = 1e-6        # LayerNorms inside the DINOv2 blocks
FINAL_NORM_EPS = 1e-5  # DA3 builds the final norm as a plain nn.LayerNorm


class SwiGLU(nn.Module):
    """DINOv2-giant's FFN: w3(silu(a) * b) with [a | b] = w12(x); hidden = 2/3 * 4C rounded to 8."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


class DinoTrunk(nn.Module):
    """The parameters of the reference `backbone.pretrained` (DinoVisionTransformer + camera_token)."""

    def __init__(self, cfg: DA3Config):
        super().__init__()
        c = cfg.embed_dim
        grid = cfg.img_size // cfg.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c))
        if cfg.cat_token:
            self.camera_token = nn.Parameter(torch.zeros(1, 2, c))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, c))
        self.patch_embed = PatchEmbed(cfg.patch_size, c)
        blocks = []
        for i in range(cfg.depth):
            blk = Block(c, cfg.num_heads, cfg.mlp_ratio, qk_norm=0 <= cfg.qknorm_start <= i, init_values=1.0,
                        norm_eps=DINO_EPS)
            if cfg.ffn == "swiglu":
                blk.mlp = SwiGLU(c, int(c * cfg.mlp_ratio))
            blocks.append(blk)
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(c, eps=FINAL_NORM_EPS)


class DA3Backbone(nn.Module):
    def __init__(self, cfg: DA3Config):
        super().__init__()
        self.cfg = cfg
        self.pretrained = DinoTrunk(cfg)
        self.rope = RoPE2D(cfg.rope_freq)

    def is_global(self, i: int) -> bool:
        a = self.cfg.alt_start
        return a >= 0 and i >= a and i % 2 == 1

    def _rope(self, gh: int, gw: int, s: int, device, dtype):
        """RoPE tables (cos, sin) for local (1+h*w, D) and global (S*(1+h*w), D) attention."""
        head_dim = self.cfg.embed_dim // self.cfg.num_heads
        local = rope_tables(self.rope, gh, gw, 1, head_dim, device, dtype)
        # Global blocks: token 0 at (0, 0), every patch at (1, 1) = rows 0 and 3 of RoPE2D's 2x2 grid.
        cos, sin = self.rope.tables(head_dim, (2, 2), device, dtype)
        rows = torch.full((1 + gh * gw,), 3, dtype=torch.long, device=device)
        rows[0] = 0
        glob = (cos[rows].repeat(s, 1), sin[rows].repeat(s, 1))
        return local, glob

    def forward(self, images: torch.Tensor, cam_tokens: torch.Tensor | None = None,
                ref_strategy: str = "saddle_balanced", trace: dict | None = None,
                step=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """images (B, S, 3, H, W) -> 4 x (features (B, S, h*w, C'), camera token (B, S, C')).

        Runs in the dtype of the block weights (the images are cast). `trace` (tests) receives the
        intermediates; `step(i)` is called after block i (progress / cancel). Afterwards `reference_views`
        holds the view each batch item took as its reference (0 when no reference was chosen: fewer than
        3 views, or known cameras).
        """
        cfg, p = self.cfg, self.pretrained
        b, s, _, h, w = images.shape
        gh, gw = h // cfg.patch_size, w // cfg.patch_size
        dtype = p.patch_embed.proj.weight.dtype
        x = p.patch_embed(images.reshape(b * s, 3, h, w).to(dtype))
        pos = cached_pos_embed(self, p.pos_embed, gh, gw, cfg.interpolate_offset, antialias=False)
        x = torch.cat([p.cls_token.to(dtype).expand(b * s, -1, -1), x], dim=1) + pos.to(dtype)
        n, c = x.shape[1:]
        x = x.view(b, s, n, c)
        if trace is not None:
            trace.update(pos_embed_interp=pos, tokens_init=x.clone(), block_outputs=[])
        local_rope, global_rope = self._rope(gh, gw, s, x.device, dtype)
        local_x, order, outs = x, None, []
        self.reference_views = [0] * b
        for i, blk in enumerate(p.blocks):
            if i == cfg.alt_start - 1 and s >= 3 and cam_tokens is None:
                order = reference_order(x[:, :, 0].float(), ref_strategy)
                self.reference_views = [int(v) for v in order[:, 0].tolist()]
                if trace is not None:
                    trace.update(ref_view_order=order, ref_view_strategy_input_cls=x[:, :, 0].float().clone())
                x, local_x = take_views(x, order), take_views(local_x, order)
            if i == cfg.alt_start:
                if cam_tokens is None:
                    tok = p.camera_token.to(dtype)
                    cam = torch.cat([tok[:, :1].expand(b, 1, c), tok[:, 1:].expand(b, s - 1, c)], dim=1)
                else:
                    cam = cam_tokens.to(dtype)
                # In place, as the reference: local_x aliases x here, so the last local output sees it too.
                x[:, :, 0] = cam
            rope_on = 0 <= cfg.rope_start <= i
            if self.is_global(i):
                x = blk(x.reshape(b, s * n, c), global_rope if rope_on else None).view(b, s, n, c)
            else:
                x = blk(x.reshape(b * s, n, c), local_rope if rope_on else None).view(b, s, n, c)
                local_x = x
            if trace is not None:
                trace["block_outputs"].append(x.clone())
            if i in cfg.out_layers:
                outs.append(self._head_input(local_x, x, order))
            if step is not None:
                step(i)
        return outs

    def _head_input(self, local_x, x, order) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (B, S, h*w, C'), camera token (B, S, C')) of one out-layer, in the caller's view order."""
        norm = self.pretrained.norm
        if self.cfg.cat_token:
            out = torch.cat([local_x, x], dim=-1)
            if order is not None:
                out = restore_order(out, order)
            c = x.shape[-1]
            feats = torch.cat([out[:, :, 1:, :c], norm(out[:, :, 1:, c:])], dim=-1)
            return feats, out[:, :, 0]
        if order is not None:
            x = restore_order(x, order)
        return norm(x[:, :, 1:]), x[:, :, 0]
