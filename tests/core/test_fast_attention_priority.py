"""core.backends.vggt.fast_attention leaves torch's global SDPA priority as it found it."""

import contextlib

import torch
from pointmap.core.backends.vggt import fast_attention, keeping_sdpa_priority


def test_priority_is_put_back_even_when_the_inner_context_leaves_its_own():
    before = list(torch._C._get_sdp_priority_order())

    @contextlib.contextmanager
    def leaky():   # sets an order and never restores it
        torch._C._set_sdp_priority_order([3, 1, 2, 0, 4])
        yield

    with keeping_sdpa_priority(leaky()):
        assert list(torch._C._get_sdp_priority_order())[0] == 3
    assert list(torch._C._get_sdp_priority_order()) == before
    with fast_attention("cuda", "cudnn"):
        assert list(torch._C._get_sdp_priority_order())[0] == 3     # cuDNN first inside
    assert list(torch._C._get_sdp_priority_order()) == before
