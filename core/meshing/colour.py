"""Vertex colours from the photos: each vertex takes the confidence-weighted mean colour of the
pixels it projects to in the views that see it (depth test), so colour needs no per-voxel storage."""

from __future__ import annotations

from .views import FusionViews


def vertex_colours(views: FusionViews, vertices, tolerance: float):
    """(V, 3) float32 sRGB in [0, 255] for world vertices (V, 3) (torch, any device).

    View i sees a vertex when it projects inside the image onto a valid pixel whose depth is within
    `tolerance` (world units) of the vertex's depth. Vertices no view sees keep the colour of the
    nearest view's pixel they project to, or mid grey.
    """
    import torch

    dev = vertices.device
    v = vertices.float()
    csum = torch.zeros((len(v), 3), device=dev)
    wsum = torch.zeros(len(v), device=dev)
    fallback = torch.full((len(v), 3), 128.0, device=dev)
    for i in range(views.n_views):
        if not views.valid(i).any():
            continue
        w2c = torch.as_tensor(views.world2cam[i], dtype=torch.float32, device=dev)
        cam = v @ w2c[:3, :3].T + w2c[:3, 3]
        z = cam[:, 2]
        zs = z.clamp_min(1e-6)
        h, w = views.depth[i].shape
        u = torch.round(cam[:, 0] / zs * float(views.K[i, 0, 0]) + float(views.K[i, 0, 2])).long()
        r = torch.round(cam[:, 1] / zs * float(views.K[i, 1, 1]) + float(views.K[i, 1, 2])).long()
        inside = (z > 1e-6) & (u >= 0) & (u < w) & (r >= 0) & (r < h)
        pix = (r.clamp(0, h - 1) * w + u.clamp(0, w - 1))
        d = torch.as_tensor(views.depth[i], device=dev).reshape(-1)[pix]
        pw = torch.as_tensor(views.weight[i], device=dev).reshape(-1)[pix]
        col = torch.as_tensor(views.colors[i], device=dev).reshape(-1, 3)[pix].float()
        seen = inside & (pw > 0) & ((d - z).abs() <= tolerance)
        wt = torch.where(seen, pw, 0.0)
        csum += col * wt[:, None]
        wsum += wt
        fallback = torch.where((inside & (wsum == 0))[:, None], col, fallback)
    return torch.where((wsum > 0)[:, None], csum / wsum.clamp_min(1e-12)[:, None], fallback)
