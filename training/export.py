"""Export a training checkpoint as the shipped demo model: a Hugging Face folder (config.json + float16
model.safetensors) that `core.weights.checkpoint` loads like the official DUSt3R folders.

    python -m pointmap.training.export training/checkpoints/demo224 weights/pointmap-demo-224
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from .config import DEMO_CONFIG
from .train import load_checkpoint_parts


def _json_value(v):
    if isinstance(v, float) and math.isinf(v):
        return v   # json writes Infinity, which the loader (and the official config.json files) use
    return v


def export(ckpt: Path, out: Path) -> Path:
    """Write out/config.json and out/model.safetensors (float16); returns out."""
    from safetensors.torch import save_file

    sd, step = load_checkpoint_parts(ckpt)
    settings = json.loads((ckpt / "step.json").read_text()).get("settings", {})
    out.mkdir(parents=True, exist_ok=True)
    half = {k: v.half().contiguous() for k, v in sd.items()}
    save_file(half, str(out / "model.safetensors"), metadata={"format": "pt", "training_step": str(step)})
    config = {k: _json_value(v) for k, v in settings.get("config", DEMO_CONFIG).items()}
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args(argv)
    print(export(args.ckpt, args.out))


if __name__ == "__main__":
    main()
