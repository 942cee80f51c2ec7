"""The asymmetric CroCo encoder/decoder of DUSt3R (`AsymmetricCroCo3DStereo`) and MASt3R (`AsymmetricMASt3R`).

Shapes (p = patch size 16, S = H/p * W/p tokens, row-major; a "grid" is (H/p, W/p)):
  encode(img (B, 3, H, W) in [-1, 1])            → tokens (B, S, C_enc)  (after enc_norm)
  decode(f1, grid1, f2, grid2)                   → two lists of L+1 tensors: [encoder tokens,
                                                   block 1..L outputs (B, S, C_dec), last one dec_norm'ed]
  predict(dec1, size1, dec2, size2)              → (res1, res2) dicts: pts3d (B, H, W, 3), conf (B, H, W),
                                                   MASt3R also desc (B, H, W, D), desc_conf (B, H, W)
Frames: res1['pts3d'] is view 1's pointmap in view 1's camera frame; res2['pts3d'] is view 2's pixels,
also in view 1's frame (the reference renames it `pts3d_in_other_view` in `forward`).
Portrait images are processed as they are (the official loader's PatchEmbedDust3R + landscape_only=False).
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from ..errors import CheckpointError
from .heads import CatMLPDPTPts3d, DPTPts3d, LinearPts3d, postprocess
from .layers import Block, DecoderBlock, PatchEmbed
from .rope import RoPE2D

INF = math.inf

# Constructor keyword arguments of the reference classes, with their defaults.
CROCO_DEFAULTS = dict(img_size=224, patch_size=16, mask_ratio=0.9, enc_embed_dim=768, enc_depth=12,
                      enc_num_heads=12, dec_embed_dim=512, dec_depth=8, dec_num_heads=16, mlp_ratio=4,
                      norm_layer=None, norm_im2_in_dec=True, pos_embed="cosine")
DUST3R_DEFAULTS = dict(output_mode="pts3d", head_type="linear", depth_mode=("exp", -INF, INF),
                       conf_mode=("exp", 1, INF), freeze="none", landscape_only=True,
                       patch_embed_cls="PatchEmbedDust3R", **CROCO_DEFAULTS)
MAST3R_DEFAULTS = dict(desc_mode="norm", two_confs=False, desc_conf_mode=None, **DUST3R_DEFAULTS)
CLASSES = {"AsymmetricCroCo3DStereo": ("dust3r", DUST3R_DEFAULTS), "AsymmetricMASt3R": ("mast3r", MAST3R_DEFAULTS)}


def _mode(value, name: str, cls: str):
    """('exp', vmin, vmax) from a tuple or a JSON list; None stays None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str):
        return (value[0], float(value[1]), float(value[2]))
    raise CheckpointError(f"{cls}: {name}={value!r} is not a (mode, min, max) triple.")


def resolve_config(class_name: str, kwargs: dict) -> tuple[str, dict]:
    """Validate constructor kwargs against the reference signature → (family, full settings with defaults)."""
    if class_name not in CLASSES:
        raise CheckpointError(f"Unknown model class {class_name!r}; expected one of {sorted(CLASSES)}.")
    family, defaults = CLASSES[class_name]
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise CheckpointError(f"{class_name} does not take the argument(s) {', '.join(unknown)}.")
    cfg = {**defaults, **kwargs}
    cfg["depth_mode"] = _mode(cfg["depth_mode"], "depth_mode", class_name)
    cfg["conf_mode"] = _mode(cfg["conf_mode"], "conf_mode", class_name)
    if family == "mast3r":
        cfg["desc_conf_mode"] = _mode(cfg["desc_conf_mode"], "desc_conf_mode", class_name) or cfg["conf_mode"]
        if "norm" not in str(cfg["desc_mode"]):
            raise CheckpointError(f"{class_name}: desc_mode={cfg['desc_mode']!r} is not supported (only 'norm').")
    if cfg["depth_mode"] is None or cfg["depth_mode"][0] not in ("exp", "square", "linear"):
        raise CheckpointError(f"{class_name}: depth_mode={cfg['depth_mode']!r} is not supported.")
    if cfg["conf_mode"] is not None and cfg["conf_mode"][0] not in ("exp", "sigmoid"):
        raise CheckpointError(f"{class_name}: conf_mode={cfg['conf_mode']!r} is not supported.")
    m = re.fullmatch(r"RoPE(\d+(?:\.\d*)?)", str(cfg["pos_embed"]))
    if m is None:
        raise CheckpointError(f"{class_name}: pos_embed={cfg['pos_embed']!r} is not supported (only 'RoPE<base>').")
    cfg["rope_base"] = float(m.group(1))
    if cfg["norm_layer"] is not None:
        raise CheckpointError(f"{class_name}: a custom norm_layer cannot be rebuilt from a checkpoint.")
    if cfg["patch_embed_cls"] not in ("PatchEmbedDust3R", "ManyAR_PatchEmbed"):
        raise CheckpointError(f"{class_name}: patch_embed_cls={cfg['patch_embed_cls']!r} is not supported.")
    p = int(cfg["patch_size"])
    img = cfg["img_size"]
    img = (img, img) if isinstance(img, (int, float)) else tuple(img)
    if len(img) != 2 or img[0] % p or img[1] % p:
        raise CheckpointError(f"{class_name}: img_size={cfg['img_size']!r} is not a multiple of patch_size {p}.")
    for dim, heads in (("enc_embed_dim", "enc_num_heads"), ("dec_embed_dim", "dec_num_heads")):
        if cfg[dim] % cfg[heads] or (cfg[dim] // cfg[heads]) % 4:
            raise CheckpointError(f"{class_name}: {dim}/{heads} must give a head size divisible by 4 for RoPE.")
    head, out = cfg["head_type"], cfg["output_mode"]
    if family == "dust3r":
        if head not in ("linear", "dpt") or out != "pts3d":
            raise CheckpointError(f"{class_name}: head_type={head!r} with output_mode={out!r} is not supported.")
        cfg["desc_dim"] = None
    else:
        dm = re.fullmatch(r"pts3d\+desc(\d+)", str(out))
        if head != "catmlp+dpt" or dm is None:
            raise CheckpointError(f"{class_name}: head_type={head!r} with output_mode={out!r} is not supported.")
        cfg["desc_dim"] = int(dm.group(1))
    if head != "linear" and cfg["dec_depth"] < 10:
        raise CheckpointError(f"{class_name}: a DPT head needs dec_depth >= 10, got {cfg['dec_depth']}.")
    return family, cfg


class AsymmetricCroCo(nn.Module):
    """DUSt3R / MASt3R network; `state_dict()` keys, shapes and order equal the reference class's."""

    def __init__(self, class_name: str, kwargs: dict):
        super().__init__()
        family, cfg = resolve_config(class_name, kwargs)
        self.family = family
        self.class_name = class_name
        self.config = dict(kwargs)
        self.settings = cfg
        self.patch_size = p = int(cfg["patch_size"])
        self.enc_embed_dim = ce = int(cfg["enc_embed_dim"])
        self.dec_embed_dim = cd = int(cfg["dec_embed_dim"])
        self.dec_depth = int(cfg["dec_depth"])
        self.depth_mode, self.conf_mode = cfg["depth_mode"], cfg["conf_mode"]
        self.desc_dim = cfg["desc_dim"]
        self.two_confs = bool(cfg.get("two_confs", False))
        self.desc_conf_mode = cfg.get("desc_conf_mode")
        mlp_ratio = float(cfg["mlp_ratio"])
        rope = RoPE2D(cfg["rope_base"])

        # Registration order follows the reference: mask_token (a direct parameter) comes first.
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cd))
        self.patch_embed = PatchEmbed(p, ce)
        self.enc_blocks = nn.ModuleList([Block(ce, cfg["enc_num_heads"], mlp_ratio, rope)
                                         for _ in range(cfg["enc_depth"])])
        self.enc_norm = nn.LayerNorm(ce, eps=1e-6)
        self.decoder_embed = nn.Linear(ce, cd)
        self.dec_blocks = nn.ModuleList([DecoderBlock(cd, cfg["dec_num_heads"], mlp_ratio, rope,
                                                      cfg["norm_im2_in_dec"]) for _ in range(self.dec_depth)])
        self.dec_norm = nn.LayerNorm(cd, eps=1e-6)
        self.dec_blocks2 = nn.ModuleList([DecoderBlock(cd, cfg["dec_num_heads"], mlp_ratio, rope,
                                                       cfg["norm_im2_in_dec"]) for _ in range(self.dec_depth)])
        n_out = 3 + int(self.conf_mode is not None)
        L = self.dec_depth
        hooks, dims = [0, L * 2 // 4, L * 3 // 4, L], [ce, cd, cd, cd]
        for name in ("downstream_head1", "downstream_head2"):
            if cfg["head_type"] == "linear":
                head = LinearPts3d(cd, n_out, p)
            elif cfg["head_type"] == "dpt":
                head = DPTPts3d(dims, hooks, n_out, p)
            else:
                head = CatMLPDPTPts3d(dims, hooks, n_out, self.desc_dim, self.two_confs, p)
            setattr(self, name, head)

    # -- pieces used by the inference engine -------------------------------------------------------

    def grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        h, w = int(image_size[0]), int(image_size[1])
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} (HxW) is not a multiple of the patch size {self.patch_size}")
        return h // self.patch_size, w // self.patch_size

    def encode(self, img: torch.Tensor) -> torch.Tensor:
        """img (B, 3, H, W) normalised to [-1, 1] → encoder tokens (B, S, C_enc) after enc_norm."""
        grid = self.grid(img.shape[-2:])
        x = self.patch_embed(img)
        for blk in self.enc_blocks:
            x = blk(x, grid)
        return self.enc_norm(x)

    def decode(self, f1: torch.Tensor, grid1: tuple[int, int], f2: torch.Tensor,
               grid2: tuple[int, int]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Encoder tokens of the two views (B, S1, C_enc), (B, S2, C_enc) → per-view lists of L+1 tensors.

        Block i of each view reads the block i-1 outputs of both views; dec_norm on the last outputs.
        """
        out1, out2 = [f1], [f2]
        x1, x2 = self.decoder_embed(f1), self.decoder_embed(f2)
        for blk1, blk2 in zip(self.dec_blocks, self.dec_blocks2, strict=True):
            x1, x2 = blk1(x1, x2, grid1, grid2), blk2(x2, x1, grid2, grid1)
            out1.append(x1)
            out2.append(x2)
        out1[-1], out2[-1] = self.dec_norm(out1[-1]), self.dec_norm(out2[-1])
        return out1, out2

    def raw_heads(self, dec1: list[torch.Tensor], size1: tuple[int, int], dec2: list[torch.Tensor],
                  size2: tuple[int, int], fp32_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Head pre-activations (B, n_raw, H, W) of view 1 (head 1) and view 2 (head 2)."""
        return (self.downstream_head1(dec1, tuple(size1), fp32_last=fp32_last),
                self.downstream_head2(dec2, tuple(size2), fp32_last=fp32_last))

    def postprocess(self, raw: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head channels (B, n_raw, H, W) → pts3d / conf (/ desc / desc_conf), float32, channels last."""
        return postprocess(raw, self.depth_mode, self.conf_mode, self.desc_dim, self.two_confs,
                           self.desc_conf_mode)

    def predict(self, dec1, size1, dec2, size2, fp32_last: bool = False):
        """Decoder token lists of both views → (res1, res2) post-processed dicts (res2['pts3d'] in view 1's frame)."""
        r1, r2 = self.raw_heads(dec1, size1, dec2, size2, fp32_last=fp32_last)
        return self.postprocess(r1), self.postprocess(r2)

    # -- reference-like entry point ----------------------------------------------------------------

    def forward(self, view1: dict, view2: dict) -> tuple[dict, dict]:
        """view{1,2}['img']: (B, 3, H_k, W_k) in [-1, 1] → (res1, res2) as the reference model returns them:
        res1 pts3d / conf (/ desc / desc_conf), res2 pts3d_in_other_view / conf (/ desc / desc_conf)."""
        img1, img2 = view1["img"], view2["img"]
        size1, size2 = tuple(img1.shape[-2:]), tuple(img2.shape[-2:])
        if size1 == size2:
            f1, f2 = self.encode(torch.cat([img1, img2])).chunk(2)
        else:
            f1, f2 = self.encode(img1), self.encode(img2)
        dec1, dec2 = self.decode(f1, self.grid(size1), f2, self.grid(size2))
        res1, res2 = self.predict(dec1, size1, dec2, size2)
        res2["pts3d_in_other_view"] = res2.pop("pts3d")
        return res1, res2
