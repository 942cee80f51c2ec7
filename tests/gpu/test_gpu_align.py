"""GPU tier, alignment: CUDA-graph refinement equals the eager path, predictions offloaded to pinned host
memory give the same cameras, float16 prediction storage stays within the accuracy targets.

Bounds: graph vs eager and offloaded vs on-device: relative rotations within 0.05°, camera centres within
0.1 % of the scene extent, focals within 0.1 % (the same arithmetic in another order). float16 storage vs
float32: the alignment targets of tests/helpers_synth.TARGETS against the ground truth, and rotations within
0.2° of the float32 run.
"""

from __future__ import annotations

import numpy as np
import torch
from helpers_synth import TARGETS, make_case, passes, score
from pointmap.core.align.refine import global_align
from pointmap.core.options import AlignOptions


def _angle_deg(r: np.ndarray) -> float:
    skew = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]])
    return float(np.degrees(np.arctan2(np.linalg.norm(skew) / 2, (np.trace(r) - 1) / 2)))


def _same_cameras(a, b, rot_deg=0.05, centre_frac=1e-3, focal_rel=1e-3) -> None:
    ra, rb = a.cam2world[:, :3, :3], b.cam2world[:, :3, :3]
    worst = max(_angle_deg((ra[i].T @ ra[j]).T @ (rb[i].T @ rb[j])) for i in range(len(ra)) for j in range(len(ra)))
    ca, cb = a.cam2world[:, :3, 3], b.cam2world[:, :3, 3]
    extent = np.linalg.norm(ca - ca.mean(0), axis=1).mean()
    centre = np.linalg.norm(ca - cb, axis=1).max() / extent
    focal = np.abs(a.focals - b.focals).max() / a.focals.max()
    assert worst <= rot_deg and centre <= centre_frac and focal <= focal_rel, (worst, centre, focal)


def test_cuda_graph_refinement_equals_eager():
    pred, truth = make_case(n_views=6, device="cuda")
    graph = global_align(pred, AlignOptions(cuda_graph=True))
    eager = global_align(pred, AlignOptions(cuda_graph=False))
    assert graph.info["refine_mode"] == "cuda-graph" and eager.info["refine_mode"] == "eager"
    _same_cameras(graph, eager)
    assert passes(score(graph.cam2world, graph.focals, truth)), TARGETS


def test_offloaded_predictions_give_the_same_cameras():
    pred, truth = make_case(n_views=6, device="cuda")
    on_device = global_align(pred, AlignOptions())
    host = pred.converted(dtype=pred.storage.dtype, device="cpu", pin_memory=True)
    assert host.storage.device.type == "cpu" and next(iter(host.storage.buffers.values()))[0].is_pinned()
    offloaded = global_align(host, AlignOptions(device="cuda"))
    _same_cameras(on_device, offloaded)
    assert passes(score(offloaded.cam2world, offloaded.focals, truth)), TARGETS


def test_float16_prediction_storage_within_targets():
    pred, truth = make_case(n_views=6, device="cuda")
    assert pred.storage.dtype == torch.float32
    full = global_align(pred, AlignOptions())
    half = global_align(pred.converted(dtype=torch.float16), AlignOptions())
    assert passes(score(half.cam2world, half.focals, truth)), score(half.cam2world, half.focals, truth)
    _same_cameras(full, half, rot_deg=0.2, centre_frac=1e-2, focal_rel=1e-2)
