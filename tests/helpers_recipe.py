"""Rebuild the exact weights of the tiny parity models from `weights_recipe.json` (splitmix64-uniform-v1).

For k = 1..n (uint64 arithmetic, wrapping): z = seed + k*GOLDEN; two xor-shift-multiply rounds; final
xor-shift; v = (z >> 40) / 2**23 - 1 in [-1, 1); w = float32(offset + 2**scale_log2 * v) (float64 math).
Entries with `alias_of` share the tensor of their target key.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


def splitmix_uniform(seed: int, n: int) -> np.ndarray:
    """n float64 values in [-1, 1) from the seeded splitmix64 stream (k = 1..n)."""
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64)
        z *= GOLDEN
        z += np.uint64(seed)
        z ^= z >> np.uint64(30)
        z *= M1
        z ^= z >> np.uint64(27)
        z *= M2
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(40)).astype(np.float64) / 2.0 ** 23 - 1.0


def entry_values(entry: dict) -> np.ndarray:
    """The float32 array of one recipe entry, reshaped row-major to its shape."""
    n = int(np.prod(entry["shape"], dtype=np.int64))
    v = entry["offset"] + 2.0 ** entry["scale_log2"] * splitmix_uniform(entry["seed"], n)
    return v.astype(np.float32).reshape(entry["shape"])


def load_recipe(folder: Path) -> list[dict]:
    recipe = json.loads((Path(folder) / "weights_recipe.json").read_text())
    if recipe.get("generator") != "splitmix64-uniform-v1":
        raise ValueError(f"{folder}: unknown weight generator {recipe.get('generator')!r}")
    return recipe["entries"]


def recipe_state_dict(folder: Path, check: bool = True):
    """OrderedDict key → torch.Tensor (aliases share storage); `check` verifies sum/abs_sum/first3."""
    import torch

    sd: OrderedDict = OrderedDict()
    for e in load_recipe(folder):
        if e.get("alias_of"):
            sd[e["key"]] = sd[e["alias_of"]]
            continue
        w = entry_values(e)
        if check:
            c = e["check"]
            flat = w.reshape(-1).astype(np.float64)
            assert np.allclose(flat.sum(), c["sum"], rtol=1e-9, atol=1e-6), e["key"]
            assert np.allclose(np.abs(flat).sum(), c["abs_sum"], rtol=1e-9, atol=1e-6), e["key"]
            assert np.array_equal(w.reshape(-1)[:3], np.float32(c["first3"])), e["key"]
        sd[e["key"]] = torch.from_numpy(w)
    return sd

