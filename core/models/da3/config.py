"""DA3 network configurations: the published presets and how a checkpoint names its preset.

A `DA3Config` describes one `DA3Net` (any-view model: DINOv2 backbone with alternating local/global
attention + DualDPT head + camera encoder/decoder; or the monocular/metric model: plain DINOv2 + DPT
head with a sky branch). The nested preset is an any-view Giant plus a metric Large (`NESTED`).

The preset of a checkpoint comes from its Hugging Face `config.json` (`model_name`, e.g. "da3-large")
when present, otherwise from the key/shape signature of its state_dict (`preset_from_keys`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

# The DA3 API's default processing resolution (long side, pixels); every preset is run at it.
DA3_INPUT_SIZE = 504
DA3_PATCH = 14

NESTED = "da3nested-giant-large"


@dataclass(frozen=True)
class DA3Config:
    """Architecture of one DA3 network.

    embed_dim/depth/num_heads/ffn: the DINOv2 ViT (ffn "mlp" or "swiglu"); img_size 518 = 37x37 pos_embed.
    out_layers:   the 4 blocks whose outputs feed the head.
    alt_start:    first block with cross-view (global) attention on odd blocks; -1 = none (mono/metric).
    qknorm_start, rope_start: first block with qk-norm / 2-D RoPE (-1 = none).
    cat_token:    features are cat(last local output, output) (2C wide) and a camera token exists.
    head:         "dualdpt" (depth + ray) or "dpt" (depth + sky).
    features, out_channels: DPT widths. head_dim_in: channels of the head's input tokens.
    cam_enc_depth/cam_enc_heads: camera encoder trunk (any-view models only; 0 = no camera modules).
    gs_head:      the network has the Giant's Gaussian-splatting head (head.GSDPT, `gs_head.*`).
    """

    embed_dim: int
    depth: int
    num_heads: int
    out_layers: tuple[int, ...]
    alt_start: int
    qknorm_start: int
    rope_start: int
    cat_token: bool
    head: str
    features: int
    out_channels: tuple[int, ...]
    ffn: str = "mlp"
    mlp_ratio: float = 4.0
    img_size: int = 518
    patch_size: int = DA3_PATCH
    rope_freq: float = 100.0
    interpolate_offset: float = 0.1
    cam_enc_depth: int = 4
    cam_enc_heads: int = 16
    gs_head: bool = False
    input_size: int = DA3_INPUT_SIZE

    @property
    def any_view(self) -> bool:
        return self.head == "dualdpt"

    @property
    def head_dim_in(self) -> int:
        return 2 * self.embed_dim if self.cat_token else self.embed_dim

    def to_dict(self) -> dict:
        return asdict(self)


def _anyview(embed_dim: int, depth: int, heads: int, out_layers, start: int, features: int, out_channels,
             ffn: str = "mlp", gs_head: bool = False) -> DA3Config:
    return DA3Config(embed_dim=embed_dim, depth=depth, num_heads=heads, out_layers=tuple(out_layers),
                     alt_start=start, qknorm_start=start, rope_start=start, cat_token=True, head="dualdpt",
                     features=features, out_channels=tuple(out_channels), ffn=ffn, gs_head=gs_head)


_MONO = DA3Config(embed_dim=1024, depth=24, num_heads=16, out_layers=(4, 11, 17, 23), alt_start=-1,
                  qknorm_start=-1, rope_start=-1, cat_token=False, head="dpt", features=256,
                  out_channels=(256, 512, 1024, 1024), cam_enc_depth=0)

PRESETS: dict[str, DA3Config] = {
    "da3-small": _anyview(384, 12, 6, (5, 7, 9, 11), 4, 64, (48, 96, 192, 384)),
    "da3-base": _anyview(768, 12, 12, (5, 7, 9, 11), 4, 128, (96, 192, 384, 768)),
    "da3-large": _anyview(1024, 24, 16, (11, 15, 19, 23), 8, 256, (256, 512, 1024, 1024)),
    "da3-giant": _anyview(1536, 40, 24, (19, 27, 33, 39), 13, 256, (256, 512, 1024, 1024), ffn="swiglu",
                          gs_head=True),
    "da3metric-large": _MONO,
    "da3mono-large": replace(_MONO),
}
# Metric models predict depth in metres (after the focal rescale), the others up to scale.
METRIC_PRESETS = frozenset({"da3metric-large", NESTED})
PRESET_NAMES = (*PRESETS, NESTED)


def config_from_dict(d: dict) -> DA3Config:
    """A DA3Config from its `to_dict()` form or from the parity manifest's `tiny_model_config`
    ({"backbone": {...}, "head": {...}, "cam_enc": {...}})."""
    if "backbone" not in d:
        d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return DA3Config(**d)
    bb, head = d["backbone"], d["head"]
    enc = d.get("cam_enc") or {}
    return DA3Config(
        embed_dim=bb["embed_dim"], depth=bb["depth"], num_heads=bb["num_heads"],
        out_layers=tuple(bb["out_layers"]), alt_start=bb["alt_start"], qknorm_start=bb["qknorm_start"],
        rope_start=bb["rope_start"], cat_token=bb["cat_token"],
        head="dualdpt" if head.get("class", "DualDPT") == "DualDPT" else "dpt",
        features=head["features"], out_channels=tuple(head["out_channels"]),
        ffn="swiglu" if "swiglu" in str(bb.get("ffn_layer", "mlp")) else "mlp",
        mlp_ratio=bb.get("mlp_ratio", 4.0), img_size=bb.get("img_size", 518),
        patch_size=bb.get("patch_size", DA3_PATCH), rope_freq=bb.get("rope_freq", 100),
        interpolate_offset=bb.get("interpolate_offset", 0.1),
        cam_enc_depth=enc.get("trunk_depth", 0), cam_enc_heads=enc.get("num_heads", 16))


def preset_from_keys(shapes: dict[str, tuple[int, ...]]) -> str | None:
    """The preset whose layout a state_dict (keys without the `model.` prefix -> shapes) has, or None.

    Signature: nested (`da3.` + `da3_metric.` sub-networks), else embed width (cls_token), block count,
    and whether camera modules exist. da3metric-large and da3mono-large share a layout; both map to
    "da3mono-large"'s architecture, so the caller must take the name from config.json to know which.
    """
    if any(k.startswith("da3.backbone.") for k in shapes) and any(k.startswith("da3_metric.") for k in shapes):
        return NESTED
    cls = shapes.get("backbone.pretrained.cls_token")
    if cls is None:
        return None
    width = int(cls[-1])
    depth = 1 + max((int(k.split(".")[3]) for k in shapes if k.startswith("backbone.pretrained.blocks.")),
                    default=-1)
    has_cam = any(k.startswith("cam_dec.") for k in shapes)
    for name, cfg in PRESETS.items():
        if cfg.embed_dim == width and cfg.depth == depth and cfg.any_view == has_cam:
            return "da3mono-large" if name == "da3metric-large" else name
    return None
