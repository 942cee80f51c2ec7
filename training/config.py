"""The demo network's architecture: DUSt3R (`AsymmetricCroCo3DStereo`) at a small size, 224 input.

These are constructor arguments of the official class, so the exported file loads through the same code
path as the official checkpoints (`core.weights.checkpoint`: Hugging Face layout, config.json + safetensors).
About 12.6 M parameters: 25 MB in float16.
"""

DEMO_CLASS = "AsymmetricCroCo3DStereo"
DEMO_CONFIG = {
    "img_size": [224, 224],
    "patch_size": 16,
    "enc_embed_dim": 256,
    "enc_depth": 8,
    "enc_num_heads": 4,
    "dec_embed_dim": 192,
    "dec_depth": 5,
    "dec_num_heads": 4,
    "head_type": "linear",
    "output_mode": "pts3d",
    "depth_mode": ["exp", float("-inf"), float("inf")],
    "conf_mode": ["exp", 1, float("inf")],
    "patch_embed_cls": "PatchEmbedDust3R",
    "pos_embed": "RoPE100",
    "landscape_only": False,
}
