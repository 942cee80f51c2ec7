"""Load VGGT weights: the official flat state_dict `model.pt`, `model.safetensors`, or a folder holding one.

A VGGT-only front of `core.weights` (`read_checkpoint` + `load_raw_checkpoint`), which reads the file
(memory-mapped), builds the network on the meta device, checks keys and shapes strictly (one clear
`CheckpointError`) and ignores `track_head.*` with a note (that head is not implemented).
"""

from __future__ import annotations

import os

import torch

from ...errors import CheckpointError
from ...weights.checkpoint import RawCheckpoint, load_raw_checkpoint, read_checkpoint
from .model import VGGT


def _read_vggt(path: str | os.PathLike) -> RawCheckpoint:
    raw = read_checkpoint(path)
    if raw.family != "vggt":
        raise CheckpointError(f"{raw.path} is a {raw.family} checkpoint ({raw.class_name}), not a VGGT one.")
    return raw


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Flat key -> tensor mapping of a VGGT checkpoint file or folder (CPU, memory-mapped)."""
    return _read_vggt(path).state_dict


def load_vggt(path: str | os.PathLike, device="cpu", config: dict | None = None) -> VGGT:
    """VGGT (eval mode, float32, on `device`) with the weights of `path` (file or folder).

    config None = VGGT-1B. The returned model has `checkpoint_notes` (list of str) for the user.
    """
    return load_raw_checkpoint(_read_vggt(path), device, vggt_config=config)[0]
