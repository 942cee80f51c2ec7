"""Score reconstructed cameras against true ones after a similarity fit.

    python -m pointmap.training.score_cameras OUT.npz samples/photos/cameras.json

OUT.npz is a saved `Reconstruction` (the CLI's --save-reconstruction); the JSON maps image file names to
{"cam2world": 4x4 OpenCV, "K": 3x3} (see samples/make_samples.py). Views are matched by file name.
The fit: one global rotation (chordal mean of R_true R_pred^T), then scale and translation by least squares
on the camera centres. Reported: rotation error per view (degrees), focal error (%), centre error as a
fraction of the true cameras' spread.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..core.align.anchor import similarity_to_known


def score(pred_c2w: np.ndarray, pred_K: np.ndarray, true_c2w: np.ndarray, true_K: np.ndarray) -> dict:
    """(N, 4, 4), (N, 3, 3) each -> errors after the similarity fit (see module doc)."""
    Rp, Rt = pred_c2w[:, :3, :3], true_c2w[:, :3, :3]
    s, R, t, _ = similarity_to_known(Rp, pred_c2w[:, :3, 3], Rt, true_c2w[:, :3, 3])
    ct = true_c2w[:, :3, 3]
    centre_err = np.linalg.norm(s * pred_c2w[:, :3, 3] @ R.T + t - ct, axis=1)
    spread = float(np.linalg.norm(ct - ct.mean(0), axis=1).mean())
    rel = np.einsum("nji,jk,nkl->nil", Rt, R, Rp)
    ang = np.degrees(np.arccos(np.clip((np.trace(rel, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    f_pred = 0.5 * (pred_K[:, 0, 0] + pred_K[:, 1, 1])
    f_true = 0.5 * (true_K[:, 0, 0] + true_K[:, 1, 1])
    f_err = np.abs(f_pred / f_true - 1) * 100
    return {"views": int(len(ang)), "rotation_deg_mean": float(ang.mean()), "rotation_deg_max": float(ang.max()),
            "focal_pct_mean": float(f_err.mean()), "focal_pct_max": float(f_err.max()),
            "centre_err_of_spread_mean": float(centre_err.mean() / spread), "rotation_deg": ang.round(3).tolist()}


def score_files(recon_path: str | Path, cameras_json: str | Path) -> dict:
    """`score` of a saved reconstruction against a cameras file (module doc). Unusable input raises
    InputError naming the file."""
    from ..core.errors import InputError
    from ..core.reconstruction import load_reconstruction

    rec = load_reconstruction(recon_path)
    try:
        truth = json.loads(Path(cameras_json).read_text())["cameras"]
    except FileNotFoundError as err:
        raise InputError(f"The cameras file {cameras_json} does not exist.", str(cameras_json)) from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{cameras_json} is not a cameras file (JSON with a \"cameras\" object, as "
                         f"samples/photos/cameras.json): {err!r}", str(cameras_json)) from err
    names = [Path(p).name if p else n for p, n in zip(rec.paths, rec.names, strict=True)]
    missing = [n for n in names if n not in truth]
    if missing:
        raise InputError(f"{cameras_json} has no camera for {', '.join(missing)}", str(cameras_json))
    try:
        true_c2w = np.array([truth[n]["cam2world"] for n in names], float).reshape(len(names), 4, 4)
        true_K = np.array([truth[n]["K"] for n in names], float).reshape(len(names), 3, 3)
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{cameras_json}: a camera lacks a 4x4 \"cam2world\" or a 3x3 \"K\" ({err!r})",
                         str(cameras_json)) from err
    return score(rec.cam2world, rec.K, true_c2w, true_K)


def main(argv=None) -> None:
    from ..core.errors import PointmapError

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reconstruction", type=Path)
    ap.add_argument("cameras", type=Path)
    args = ap.parse_args(argv)
    try:
        print(json.dumps(score_files(args.reconstruction, args.cameras), indent=1))
    except PointmapError as err:
        raise SystemExit(f"score_cameras: {err}") from None


if __name__ == "__main__":
    main()
