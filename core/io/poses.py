"""Known camera poses from a file: what `--known-poses FILE` reads (`ReconstructOptions.known_poses`).

Two formats:

* JSON: `{"cameras": {KEY: {"cam2world": 4x4, ...}}}` (the layout of `samples/photos/cameras.json`; other
  fields such as "K" are ignored) or `{"cameras": {KEY: 4x4}}`, or the same mapping without "cameras". KEY is a
  photo's file name or image name, or a shot's clip frame number; keys made only of digits become integers
  (frame numbers for a shot, 0-based indices for photos).
* A saved `Reconstruction` (.npz, `--save-reconstruction`): an earlier solve; its cameras by clip frame number
  when it is a shot, else by file name.

Poses are 4x4 camera-to-world matrices with OpenCV camera axes (x right, y down, z forward).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError


def read_known_poses(path: str | Path) -> dict:
    """{key: (4, 4) float64 cam2world} from `path` (module doc). InputError naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Known poses: {path} is not a file.")
    if path.suffix.lower() == ".npz":
        return _from_reconstruction(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"Known poses: cannot read {path} as JSON ({err}).") from None
    cams = doc.get("cameras", doc) if isinstance(doc, dict) else None
    if not isinstance(cams, dict) or not cams:
        raise InputError(f"Known poses: {path} holds no cameras (expected {{\"cameras\": {{name or frame: "
                         f"4x4 cam2world}}}}).")
    out = {}
    for key, entry in cams.items():
        m = entry.get("cam2world") if isinstance(entry, dict) else entry
        try:
            T = np.asarray(m, dtype=np.float64)
        except (TypeError, ValueError):
            T = np.empty(0)
        if T.shape != (4, 4) or not np.isfinite(T).all():
            raise InputError(f"Known poses: {path}, camera {key!r}: expected a 4x4 camera-to-world matrix.")
        out[int(key) if str(key).isdigit() else str(key)] = T
    return out


def _from_reconstruction(path: Path) -> dict:
    from ..reconstruction import Reconstruction

    try:
        rec = Reconstruction.load(path)
    except (OSError, KeyError, ValueError) as err:
        raise InputError(f"Known poses: {path} is not a saved pointmap reconstruction ({err}).") from None
    if rec.frame_numbers is not None:
        return {int(f): rec.cam2world[i].astype(np.float64) for i, f in enumerate(rec.frame_numbers)}
    keys = [Path(p).name if p else n for p, n in zip(rec.paths, rec.names, strict=True)]
    return {k: rec.cam2world[i].astype(np.float64) for i, k in enumerate(keys)}
