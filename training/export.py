"""Export a training checkpoint as the shipped demo model: a Hugging Face folder (config.json + float16
model.safetensors) that `core.weights.checkpoint` loads like the official DUSt3R folders.

    python -m pointmap.training.export training/checkpoints/demo224 weights/pointmap-demo-224 [--crop whole]

A checkpoint whose last stretch trained on whole frames of several aspects (`train.py --aspects`, settings
`input_crop: "whole"`) is exported with `"pointmap_crop": "whole"` in config.json: the loader then shows it
whole photos at 224 (long side 224, sides cropped to multiples of 16) instead of their central square.
Square-only checkpoints get no such key (the folder stays loadable by the official code). `--crop` overrides.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from ..core.weights.checkpoint import CROP_KEY, INPUT_CROPS
from .config import DEMO_CONFIG
from .train import load_checkpoint_parts


def _json_value(v):
    if isinstance(v, float) and math.isinf(v):
        return v   # json writes Infinity, which the loader (and the official config.json files) use
    return v


def export(ckpt: Path, out: Path, crop: str | None = None) -> Path:
    """Write out/config.json and out/model.safetensors (float16); returns out.

    crop: "square" / "whole" (the frames the network expects at 224); None: the checkpoint's settings say
    (`input_crop`, absent in runs before frames had aspects: "square")."""
    from safetensors.torch import save_file

    sd, step = load_checkpoint_parts(ckpt)
    settings = json.loads((ckpt / "step.json").read_text()).get("settings", {})
    crop = crop or settings.get("input_crop", "square")
    if crop not in INPUT_CROPS:
        raise ValueError(f"crop must be one of {', '.join(INPUT_CROPS)}, not {crop!r}")
    out.mkdir(parents=True, exist_ok=True)
    half = {k: v.half().contiguous() for k, v in sd.items()}
    save_file(half, str(out / "model.safetensors"), metadata={"format": "pt", "training_step": str(step)})
    config = {k: _json_value(v) for k, v in settings.get("config", DEMO_CONFIG).items()}
    if crop == "whole":
        config[CROP_KEY] = "whole"
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--crop", choices=INPUT_CROPS, default=None,
                    help="frames the model expects at 224 (default: from the checkpoint's training settings)")
    args = ap.parse_args(argv)
    if not (args.ckpt / "step.json").is_file():
        ap.error(f"{args.ckpt} is not a training checkpoint folder (it has no step.json)")
    print(export(args.ckpt, args.out, args.crop))


if __name__ == "__main__":
    main()
