"""DA3 test helpers: parity fixture location (from $POINTMAP_DA3_PARITY_DIR), its manifest, the tiny model."""

from __future__ import annotations

import json
import os
from pathlib import Path

DA3_PARITY_DIR = Path(os.environ.get("POINTMAP_DA3_PARITY_DIR",
                                     str(Path(__file__).parent / "fixtures" / "da3" / "parity")))
DA3_KEYS_FILE = DA3_PARITY_DIR.parent / "checkpoint_keys.json"


def manifest() -> dict:
    """The parity set's manifest, or {} when the folder has none (the tests then fail, never skip)."""
    path = DA3_PARITY_DIR / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def tiny_model():
    """The tiny reference DA3 net, loaded strictly through core.weights with the manifest's config."""
    from pointmap.core.models.da3.checkpoint import load_da3

    return load_da3(DA3_PARITY_DIR / "tiny_da3.safetensors", config=manifest()["tiny_model_config"])
