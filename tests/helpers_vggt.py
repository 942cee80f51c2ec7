"""VGGT test helpers: parity fixture location and the tiny model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

VGGT_PARITY_DIR = Path(os.environ.get("POINTMAP_VGGT_PARITY_DIR",
                                      str(Path(__file__).parent / "fixtures" / "vggt" / "parity")))


def tiny_config() -> dict:
    return json.loads((VGGT_PARITY_DIR / "manifest.json").read_text())["tiny_model_config"]


def tiny_model(fmt: str = "pt"):
    """The tiny reference VGGT, loaded strictly from the .pt or the .safetensors fixture."""
    from pointmap.core.models.vggt import load_vggt

    name = "tiny_vggt_state_dict.pt" if fmt == "pt" else "tiny_vggt.safetensors"
    return load_vggt(VGGT_PARITY_DIR / name, config=tiny_config())


def assert_close(got, ref, name: str, tol: float = 1e-4) -> float:
    """|got − ref| <= tol·max|ref| + tol·|ref| elementwise; returns the worst ratio to the bound."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{name}: shape {got.shape} != {ref.shape}"
    bound = tol * np.abs(ref).max() + tol * np.abs(ref)
    excess = np.abs(got - ref) / np.maximum(bound, 1e-30)
    worst = float(excess.max())
    assert worst <= 1.0, f"{name}: max |err| {np.abs(got - ref).max():.3g} exceeds the bound ({worst:.3g}x)"
    return worst
