"""Load DA3 weights: a Hugging Face folder (config.json + model.safetensors) or the safetensors file.

A DA3-only front of `core.weights.checkpoint` (one reader and one strict key check for every family):
the file is memory-mapped, the network built on the meta device, tied tensors restored from the file's
metadata, keys and shapes checked strictly (every tensor of every preset, the Giant's `gs_head.*` too).
"""

from __future__ import annotations

import os

from ...errors import CheckpointError
from ...weights.checkpoint import CheckpointInfo, load_raw_checkpoint, read_checkpoint


def load_da3(path: str | os.PathLike, device="cpu", config=None):
    """(model, info): the DA3 network (eval mode, float32, on `device`) with the weights of `path`.

    config: a preset name, DA3Config or dict overriding the checkpoint's preset (None = from the
    checkpoint: config.json's model_name, else its key layout).
    """
    raw = read_checkpoint(path)
    if raw.family != "da3":
        raise CheckpointError(f"{raw.path} is a {raw.family} checkpoint ({raw.class_name}), not a DA3 one.")
    model, info = load_raw_checkpoint(raw, device, da3_config=config)
    return model, info


__all__ = ["CheckpointInfo", "load_da3"]
