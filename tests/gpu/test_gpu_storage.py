"""GPU tier, pair storage: pinned (registered) host buffers and asynchronous writes from the GPU."""

import numpy as np
import torch
from pointmap.core.pairwise.graph import make_pairs
from pointmap.core.pairwise.predictions import PairStorage, pinned_empty


def test_pinned_empty_is_page_locked_and_unpinned_when_collected():
    t = pinned_empty(1000, 64, 3, dtype=torch.float16)
    assert t.is_pinned() and t.shape == (1000, 64, 3)
    del t   # the finalizer unregisters; a second allocation must work
    assert pinned_empty(10, dtype=torch.float32).is_pinned()


def test_async_writes_to_pinned_storage_equal_synchronous_ones():
    edges = make_pairs(12, "seq-2").edges
    shapes = [(32, 48)] * 12
    gen = torch.Generator(device="cuda").manual_seed(0)
    pts = torch.randn(len(edges), 32, 48, 3, device="cuda", generator=gen) * 100
    conf = 1 + torch.rand(len(edges), 32, 48, device="cuda", generator=gen)
    fast = PairStorage(edges, shapes, torch.float16, "cpu", pin_memory=True)
    slow = PairStorage(edges, shapes, torch.float16, "cpu", pin_memory=False)
    assert all(p.is_pinned() for p, _ in fast.buffers.values())
    for start in range(0, len(edges), 5):
        ids = np.arange(start, min(len(edges), start + 5))
        for side in "ij":
            fast.write(side, ids, pts[ids], conf[ids], non_blocking=True)
            slow.write(side, ids, pts[ids].cpu(), conf[ids].cpu())
    fast.synchronize()
    for shape in fast.buffers:
        for a, b in zip(fast.buffers[shape], slow.buffers[shape], strict=True):
            assert torch.equal(a, b)
