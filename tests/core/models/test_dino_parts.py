"""DINOv2 parts shared by VGGT and DA3: the patch GEMM and the cached position-embedding table."""

import torch
from pointmap.core.models.vggt.dino import cached_pos_embed, interpolate_pos_embed, patchify_linear
from torch import nn


def test_patch_gemm_equals_the_patch_convolution():
    torch.manual_seed(0)
    proj = nn.Conv2d(3, 32, kernel_size=14, stride=14)
    x = torch.randn(3, 3, 14 * 5 + 3, 14 * 7 + 9, dtype=torch.float64)   # a remainder the conv drops too
    proj = proj.double()
    want = proj(x).flatten(2).transpose(1, 2)
    got = patchify_linear(x, proj)
    assert got.shape == want.shape == (3, 35, 32)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_cached_position_table_follows_the_grid_and_the_weights():
    owner = nn.Module()
    pos = nn.Parameter(torch.randn(1, 1 + 16 * 16, 8))
    with torch.no_grad():
        a = cached_pos_embed(owner, pos, 12, 9, antialias=False)
        assert cached_pos_embed(owner, pos, 12, 9, antialias=False) is a
        torch.testing.assert_close(a, interpolate_pos_embed(pos, 12, 9, antialias=False))
        b = cached_pos_embed(owner, pos, 10, 9, antialias=False)
        assert b.shape == (1, 91, 8)
        pos.mul_(2.0)                                   # new weights in place (load_state_dict does the same)
        c = cached_pos_embed(owner, pos, 10, 9, antialias=False)
        torch.testing.assert_close(c, 2.0 * b)
    # While autograd records, the table is computed afresh (gradients reach the parameter).
    cached_pos_embed(owner, pos, 10, 9, antialias=False).sum().backward()
    assert pos.grad is not None and pos.grad.abs().sum() > 0
