"""Choosing a shot's frames from a saved `Reconstruction` (the CLI's --frames A:B and --stride with
--from-reconstruction): a subset of views, every array sliced alike. Pure numpy."""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .reconstruction import Reconstruction


def parse_frame_range(text: str) -> tuple[int | None, int | None]:
    """"A:B" → (A, B), inclusive; either side may be empty ("1010:" or ":1100")."""
    parts = text.split(":")
    if len(parts) != 2:
        raise InputError(f"The frame range {text!r} is not of the form FIRST:LAST (e.g. 1001:1100).")
    try:
        first, last = (int(p) if p.strip() else None for p in parts)
    except ValueError as err:
        raise InputError(f"The frame range {text!r} is not of the form FIRST:LAST (e.g. 1001:1100).") from err
    if first is not None and last is not None and last < first:
        raise InputError(f"The frame range {text!r} ends before it starts.")
    return first, last


def select_frames(rec: Reconstruction, first: int | None = None, last: int | None = None,
                  stride: int = 1) -> Reconstruction:
    """The views whose frame number lies in [first, last], every `stride`-th from the first kept one.

    Views without frame numbers count as frames 1..N. The result is a new Reconstruction (arrays are
    shared, not copied); the selection is recorded in its `meta["frame_selection"]`.
    """
    if stride < 1:
        raise InputError(f"The stride must be 1 or more, not {stride}.")
    frames = np.arange(1, rec.n_views + 1) if rec.frame_numbers is None else np.asarray(rec.frame_numbers, np.int64)
    keep = np.ones(rec.n_views, bool)
    if first is not None:
        keep &= frames >= first
    if last is not None:
        keep &= frames <= last
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(frames[idx], kind="stable")]
    if len(idx) == 0:
        raise InputError(f"No solved frame lies in {first if first is not None else ''}:"
                         f"{last if last is not None else ''} (the reconstruction has frames "
                         f"{int(frames.min())} to {int(frames.max())}).")
    f0 = frames[idx[0]]
    idx = idx[(frames[idx] - f0) % stride == 0]

    def pick(seq):
        return [seq[i] for i in idx]

    out = Reconstruction(
        names=pick(rec.names), paths=pick(rec.paths), image_sizes=rec.image_sizes[idx],
        cam2world=rec.cam2world[idx], K=rec.K[idx], K_net=rec.K_net[idx], net_to_orig=rec.net_to_orig[idx],
        depth=pick(rec.depth), points=pick(rec.points), conf=pick(rec.conf), colors=pick(rec.colors),
        family=rec.family, model=rec.model, frame_numbers=frames[idx] if rec.frame_numbers is not None else None,
        fps=rec.fps, metric_scale=rec.metric_scale, warnings=list(rec.warnings), meta=dict(rec.meta))
    out.meta["frame_selection"] = {"first": first, "last": last, "stride": stride, "views": int(len(idx))}
    return out
