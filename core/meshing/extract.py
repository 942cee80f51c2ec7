"""Surface extraction: PyMCubes' marching cubes, slab by slab, only in fully observed cubes.

PyMCubes (numpy-only, small wheels, returns an indexed mesh) runs on dense slabs one block thick
along x (9 voxel planes: the block's 8 plus the next block's first), so memory follows the surface.
A triangle is kept only when all 8 corners of its cube are observed. Checking every corner (not one,
as scikit-image's `mask=` does) matters: behind every real surface the band ends in observed
negative voxels next to unobserved ones, and a one-corner check turns that boundary into a second
sheet one truncation distance behind the real surface.
"""

from __future__ import annotations

import numpy as np

from .tsdf import BLOCK, SparseTSDF


def _slab_index(blocks: np.ndarray, sel: np.ndarray, x_planes: slice, y0: int, z0: int):
    """Dense (x, y, z) indices in a slab for voxels of the blocks `sel` (x planes `x_planes` of each)."""
    r = np.arange(BLOCK)
    lx = r[x_planes]
    gx, gy, gz = np.meshgrid(lx, r, r, indexing="ij")
    b = blocks[sel]
    iy = ((b[:, 1, None] - y0) * BLOCK + gy.reshape(1, -1)).reshape(-1)
    iz = ((b[:, 2, None] - z0) * BLOCK + gz.reshape(1, -1)).reshape(-1)
    return gx.reshape(1, -1).repeat(len(b), 0).reshape(-1), iy, iz


def extract_surface(vol: SparseTSDF, min_weight: float, max_span: float):
    """Marching cubes of the zero level set where observed (weight >= min_weight at all 8 corners).

    A cube whose corner values span more than `max_span` (tsdf units) is dropped too: a real surface
    changes the tsdf by about voxel / truncation per voxel, while the boundary between a surface's
    back band (-1) and space carved by a stray ray (+1) jumps by up to 2.
    Returns vertices (V, 3) float64 world, faces (F, 3) int64 oriented so that face normals point to
    positive tsdf (free space, out of the solid), colours (V, 3) float32 in [0, 255].
    """
    import mcubes

    blocks = vol.blocks.cpu().numpy()
    tsdf = vol.tsdf.cpu().numpy()
    weight = vol.weight.cpu().numpy()
    color = vol.color.cpu().numpy()
    verts, faces, cols = [], [], []
    n_v = 0
    order = np.argsort(blocks[:, 0], kind="stable")
    bx = blocks[order, 0]
    for kx in np.unique(bx):
        cur = order[bx == kx]
        nxt = order[bx == kx + 1]
        both = np.concatenate([cur, nxt])
        y0, z0 = blocks[both, 1].min(), blocks[both, 2].min()
        ny = int(blocks[both, 1].max() - y0 + 1) * BLOCK
        nz = int(blocks[both, 2].max() - z0 + 1) * BLOCK
        T = np.ones((BLOCK + 1, ny, nz), np.float32)
        Wt = np.zeros((BLOCK + 1, ny, nz), np.float32)
        C = np.zeros((BLOCK + 1, ny, nz, 3), np.float32)
        gx, iy, iz = _slab_index(blocks, cur, slice(None), y0, z0)
        T[gx, iy, iz] = tsdf[cur].reshape(-1)
        Wt[gx, iy, iz] = weight[cur].reshape(-1)
        C[gx, iy, iz] = color[cur].reshape(-1, 3)
        if len(nxt):
            gx, iy, iz = _slab_index(blocks, nxt, slice(0, 1), y0, z0)
            T[gx + BLOCK, iy, iz] = tsdf[nxt][:, :1].reshape(-1)
            Wt[gx + BLOCK, iy, iz] = weight[nxt][:, :1].reshape(-1)
            C[gx + BLOCK, iy, iz] = color[nxt][:, :1].reshape(-1, 3)
        v, f = mcubes.marching_cubes(T, 0.0)
        if not len(f):
            continue
        # Check the 8 corners of each triangle's cube (its centroid lies inside that cube).
        cube = np.floor(v[f].mean(axis=1)).astype(np.int64)
        cube = np.clip(cube, 0, np.array(T.shape) - 2)
        corners = [(cube[:, 0] + a, cube[:, 1] + b, cube[:, 2] + c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]
        wc = np.stack([Wt[i] for i in corners], 1)
        tc = np.stack([T[i] for i in corners], 1)
        keep = (wc >= min_weight).all(1) & (tc.max(1) - tc.min(1) <= max_span)
        f = f[keep]
        if not len(f):
            continue
        used = np.unique(f)
        remap = np.full(len(v), -1, np.int64)
        remap[used] = np.arange(len(used))
        v = v[used]
        near = np.rint(v).astype(np.int64)
        cols.append(C[near[:, 0], near[:, 1], near[:, 2]])
        v += np.array([kx, y0, z0]) * BLOCK
        verts.append(v)
        faces.append(remap[f] + n_v)
        n_v += len(v)
    if not verts:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 3), np.float32)
    v = np.concatenate(verts)
    f = np.concatenate(faces)
    c = np.concatenate(cols)
    # Slabs share their boundary planes: weld the vertices computed twice there.
    key = np.rint(v * 4096).astype(np.int64)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    v, c, f = v[first], c[first], inverse.reshape(-1)[f]
    v = vol.origin + v * vol.voxel
    # PyMCubes winds triangles so that normals point to decreasing values (into the solid): reverse.
    return v, np.ascontiguousarray(f[:, ::-1]), c
