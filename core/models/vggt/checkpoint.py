"""Load VGGT weights: the official flat state_dict `model.pt` or `model.safetensors`.

Both hold exactly the keys of `VGGT()` (track head included). We build the network on the meta
device (no random init of 1.26 B parameters), check keys and shapes ourselves so the user gets one
clear `CheckpointError`, then assign the loaded tensors (memory-mapped where possible).
`track_head.*` keys are ignored (that head is not implemented) and a note says so.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ...errors import CheckpointError
from .model import VGGT, build_vggt

_FILE_NAMES = ("model.safetensors", "model.pt")


def _resolve(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        for name in _FILE_NAMES:
            if (p / name).is_file():
                return p / name
        raise CheckpointError(f"VGGT checkpoint folder {p} contains neither {' nor '.join(_FILE_NAMES)}.")
    if not p.is_file():
        raise CheckpointError(f"VGGT checkpoint {p} does not exist.")
    return p


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Flat key -> tensor mapping from a .safetensors file or a torch.save'd state_dict (CPU, mmap)."""
    p = _resolve(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p), device="cpu")
        else:
            try:
                sd = torch.load(p, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as err:
                if "mmap" not in str(err):
                    raise
                sd = torch.load(p, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except CheckpointError:
        raise
    except Exception as err:  # truncated zip, bad header, pickled code refused by weights_only, ...
        raise CheckpointError(f"Cannot read VGGT checkpoint {p}: {type(err).__name__}: {err}") from err
    if isinstance(sd, dict) and "model" in sd and isinstance(sd["model"], dict):
        sd = sd["model"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"VGGT checkpoint {p} is not a flat state_dict of tensors.")
    return sd


def check_state_dict(model: VGGT, sd: dict, path) -> list[str]:
    """Raise CheckpointError unless `sd` matches `model` exactly (track_head.* aside); return notes."""
    expected = model.state_dict()
    track = [k for k in sd if k.startswith("track_head.")]
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected and not k.startswith("track_head.")]
    wrong = [f"{k} {tuple(sd[k].shape)} (expected {tuple(v.shape)})"
             for k, v in expected.items() if k in sd and tuple(sd[k].shape) != tuple(v.shape)]
    problems = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped tensors", wrong)):
        if items:
            shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            problems.append(f"{len(items)} {label}: {shown}")
    if problems:
        raise CheckpointError(f"VGGT checkpoint {path} does not fit the VGGT model ({'; '.join(problems)}). "
                              "Is it a VGGT checkpoint of this size?")
    return [f"{len(track)} track_head tensors ignored (point tracking is not implemented)"] if track else []


def load_vggt(path: str | os.PathLike, device="cpu", config: dict | None = None) -> VGGT:
    """VGGT (eval mode, float32, on `device`) with the weights of `path` (file or folder).

    config None = VGGT-1B. The returned model has `checkpoint_notes` (list of str) for the user.
    """
    sd = read_state_dict(path)
    with torch.device("meta"):
        model = build_vggt(config)
    notes = check_state_dict(model, sd, path)
    own = model.state_dict()
    # Stored dtype may differ (fp16 exports); keep the module's float32 so the heads stay exact.
    weights = {k: sd[k].to(own[k].dtype) for k in own}
    model.load_state_dict(weights, strict=True, assign=True)
    model.aggregator.patch_embed.mask_token.requires_grad_(False)
    model.checkpoint_notes = notes
    return model.to(device).eval()
