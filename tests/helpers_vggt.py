"""VGGT test helpers: parity fixture location and the tiny model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

VGGT_PARITY_DIR = Path(os.environ.get("POINTMAP_VGGT_PARITY_DIR",
                                      str(Path(__file__).parent / "fixtures" / "vggt" / "parity")))


def manifest() -> dict:
    """The parity set's manifest.json: model config, key list, parameter count, images (with their use), files."""
    return json.loads((VGGT_PARITY_DIR / "manifest.json").read_text())


def tiny_config() -> dict:
    return manifest()["tiny_model_config"]


def weights_file(fmt: str = "pt") -> Path:
    """The tiny weights the manifest lists: its one '.pt' file or its one '.safetensors' file."""
    suffix = ".pt" if fmt == "pt" else ".safetensors"
    (name,) = [n for n in manifest()["files"] if n.endswith(suffix) and "/" not in n]
    return VGGT_PARITY_DIR / name


def tiny_model(fmt: str = "pt"):
    """The tiny reference VGGT, loaded strictly from the .pt or the .safetensors fixture."""
    from pointmap.core.models.vggt import load_vggt

    return load_vggt(weights_file(fmt), config=tiny_config())


def images_for(use: str) -> list[Path]:
    """The manifest's images whose `use` mentions `use` ("tiny model input", "preprocessing"), sorted by name."""
    return [VGGT_PARITY_DIR / "images" / n for n, spec in sorted(manifest()["images"].items()) if use in spec["use"]]


def tiny_inputs() -> list[Path]:
    """The tiny model's input frames (all one size), as the manifest names them."""
    return images_for("tiny model input")


def cases() -> list[str]:
    return sorted(p.stem.removeprefix("tiny_outputs_") for p in VGGT_PARITY_DIR.glob("tiny_outputs_*.npz"))


def case_frames(case: str) -> list[Path] | None:
    """The input files of a single-batch case, matched by content (png/255 equals the recorded input), in the
    case's order; None when the case is batched or an input is not a whole tiny frame (e.g. a crop)."""
    from PIL import Image

    with np.load(VGGT_PARITY_DIR / f"tiny_outputs_{case}.npz") as z:
        images = z["images"]
    if images.shape[0] != 1:
        return None
    frames = {p: np.asarray(Image.open(p).convert("RGB"), np.float32).transpose(2, 0, 1) / np.float32(255)
              for p in tiny_inputs()}
    out = []
    for img in images[0]:
        match = [p for p, f in frames.items() if f.shape == img.shape and np.array_equal(f, img)]
        if not match:
            return None
        out.append(match[0])
    return out


def main_case() -> tuple[str, list[Path]]:
    """The single-batch case over the most tiny frames, and those frames in its order."""
    found = [(c, f) for c in cases() if (f := case_frames(c))]
    assert found, f"{VGGT_PARITY_DIR}: no tiny_outputs_<case>.npz whose input is the tiny frames themselves"
    return max(found, key=lambda cf: (len(cf[1]), cf[0]))


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
