"""Surface extraction: PyMCubes' marching cubes on the small sub-volumes that hold surface.

PyMCubes (numpy-only, small wheels, returns an indexed mesh) costs ~150 ns per cube it visits,
surface or not, so it is called only on "bricks": 4^3 cubes (5^3 voxel samples, the last plane
borrowed from the neighbouring blocks, so seams match) that hold at least one valid cube with a
sign change. Everything else (brick assembly and selection, the per-cube checks, welding the
vertices that two bricks both computed on their shared face) is vectorised in torch on the device
that holds the volume; only the selected bricks travel to the host.

A triangle is kept only when all 8 corners of its cube are observed. Checking every corner (not one,
as scikit-image's `mask=` does) matters: behind every real surface the band ends in observed
negative voxels next to unobserved ones, and a one-corner check turns that boundary into a second
sheet one truncation distance behind the real surface.
"""

from __future__ import annotations

import numpy as np

from .tsdf import BLOCK, SparseTSDF

SUB = 4                     # brick edge in cubes (divides BLOCK); 4 visits ~half the cubes of 8
BLOCKS_PER_BATCH = {"cuda": 16384, "cpu": 256}   # blocks assembled at once (CPU: temporaries in cache)


def block_lookup(blocks, n_blocks: np.ndarray):
    """A function (..., 3) block coordinates -> (...) row in `blocks`, or len(blocks) where absent.
    `blocks` must not be empty."""
    import torch

    nb = [int(x) for x in n_blocks]
    key = (blocks[:, 0] * nb[1] + blocks[:, 1]) * nb[2] + blocks[:, 2]
    sorted_key, order = torch.sort(key)

    def find(q):
        inside = ((q >= 0) & (q < torch.as_tensor(nb, device=q.device))).all(-1)
        k = (q[..., 0] * nb[1] + q[..., 1]) * nb[2] + q[..., 2]
        pos = torch.searchsorted(sorted_key, k).clamp_(max=len(key) - 1)
        return torch.where(inside & (sorted_key[pos] == k), order[pos], len(key))

    return find


def _brick_samples(device):
    """For the 9^3 samples of a block plus its +x/+y/+z apron: (729,) neighbour offset id in 0..7
    (bit 4 = +x, 2 = +y, 1 = +z) and (729,) flat voxel index inside that neighbour."""
    import torch

    p = torch.arange(BLOCK + 1, device=device)
    d, loc = (p == BLOCK).long(), p % BLOCK
    dx, dy, dz = torch.meshgrid(d, d, d, indexing="ij")
    lx, ly, lz = torch.meshgrid(loc, loc, loc, indexing="ij")
    return (dx * 4 + dy * 2 + dz).reshape(-1), ((lx * BLOCK + ly) * BLOCK + lz).reshape(-1)


def select_bricks(vol: SparseTSDF, min_weight: float, max_span: float):
    """The bricks to mesh. Returns, on the host: samples (n, 5, 5, 5) float32 tsdf, valid (n, 4, 4, 4)
    bool (cube observed at all 8 corners and not spanning more than `max_span`), origin (n, 3) int64
    voxel coordinates of each brick's sample (0, 0, 0)."""
    import torch

    dev = vol.tsdf.device
    B = len(vol.blocks)
    empty = (np.zeros((0, SUB + 1, SUB + 1, SUB + 1), np.float32), np.zeros((0, SUB, SUB, SUB), bool),
             np.zeros((0, 3), np.int64))
    if B == 0:
        return empty
    find = block_lookup(vol.blocks, vol.n_blocks)
    offs = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], device=dev)
    which, local = _brick_samples(dev)
    # A sentinel block (row B): unobserved free space, so cubes touching a missing neighbour are invalid.
    tsdf = torch.cat([vol.tsdf.reshape(B, -1), torch.ones((1, BLOCK ** 3), device=dev)])
    weight = torch.cat([vol.weight.reshape(B, -1), torch.zeros((1, BLOCK ** 3), device=dev)])
    nsub = BLOCK // SUB
    r = torch.arange(SUB + 1, device=dev)
    out_t, out_v, out_o = [], [], []
    batch = BLOCKS_PER_BATCH.get(dev.type, 16384)
    for b0 in range(0, B, batch):
        bl = vol.blocks[b0:b0 + batch]
        nbr = find(bl[:, None, :] + offs[None])                                     # (b, 8)
        rows = nbr[:, which]                                                        # (b, 729)
        T = tsdf[rows, local[None]].reshape(-1, BLOCK + 1, BLOCK + 1, BLOCK + 1)
        obs = (weight[rows, local[None]] >= min_weight).reshape(T.shape)
        cmin, cmax, cobs = T[:, :-1, :-1, :-1], T[:, :-1, :-1, :-1], obs[:, :-1, :-1, :-1]
        for a in (0, 1):
            for b in (0, 1):
                for c in (0, 1):
                    if a or b or c:
                        s = (slice(None), slice(a, a + BLOCK), slice(b, b + BLOCK), slice(c, c + BLOCK))
                        cmin, cmax, cobs = torch.minimum(cmin, T[s]), torch.maximum(cmax, T[s]), cobs & obs[s]
        valid = cobs & (cmax - cmin <= max_span)
        crossing = valid & (cmin < 0) & (cmax >= 0)
        has = crossing.reshape(-1, nsub, SUB, nsub, SUB, nsub, SUB).any(6).any(4).any(2)   # (b, 2, 2, 2)
        kb, sx, sy, sz = torch.nonzero(has, as_tuple=True)
        if not len(kb):
            continue
        ix = (sx * SUB)[:, None] + r                                                # (n, 5)
        iy = (sy * SUB)[:, None] + r
        iz = (sz * SUB)[:, None] + r
        out_t.append(T[kb[:, None, None, None], ix[:, :, None, None], iy[:, None, :, None], iz[:, None, None, :]])
        out_v.append(valid[kb[:, None, None, None], ix[:, :SUB, None, None], iy[:, None, :SUB, None],
                           iz[:, None, None, :SUB]])
        out_o.append(bl[kb] * BLOCK + torch.stack([sx, sy, sz], 1) * SUB)
    if not out_t:
        return empty
    return (torch.cat(out_t).cpu().numpy(), torch.cat(out_v).cpu().numpy(), torch.cat(out_o).cpu().numpy())


def extract_surface(vol: SparseTSDF, min_weight: float, max_span: float):
    """Marching cubes of the zero level set where observed (weight >= min_weight at all 8 corners).

    A cube whose corner values span more than `max_span` (tsdf units) is dropped too: a real surface
    changes the tsdf by about voxel / truncation per voxel, while the boundary between a surface's
    back band (-1) and space carved by a stray ray (+1) jumps by up to 2.
    Returns torch tensors on the volume's device: vertices (V, 3) float64 world, faces (F, 3) int64
    oriented so that face normals point to positive tsdf (free space, out of the solid).
    """
    import torch

    dev = vol.tsdf.device
    samples, valid, origin = select_bricks(vol, min_weight, max_span)
    v, f, brick = _march_bricks(samples)
    if not len(f):
        return torch.zeros((0, 3), dtype=torch.float64, device=dev), torch.zeros((0, 3), dtype=torch.long, device=dev)
    brick_f = brick[f[:, 0]]
    # Keep a triangle when its cube (its centroid lies inside it) is valid.
    cube = np.clip(np.floor(v[f].mean(axis=1)).astype(np.int64), 0, SUB - 1)
    f = f[valid[brick_f, cube[:, 0], cube[:, 1], cube[:, 2]]]
    v = torch.as_tensor(v + origin[brick], device=dev)             # global voxel units
    f = torch.as_tensor(f, device=dev)
    v, f = weld(v, f, (vol.n_blocks * BLOCK + 1).tolist())
    v = torch.as_tensor(vol.origin, device=dev) + v * vol.voxel
    # PyMCubes winds triangles so that normals point to decreasing values (into the solid): reverse.
    return v, f.flip(1).contiguous()


def _march_bricks(samples: np.ndarray, per_call: int = 4096):
    """Marching cubes of many (5, 5, 5) bricks with few PyMCubes calls (its per-call overhead, not its
    per-cube cost, dominated one call per brick). Bricks are laid side by side along x, brick k at
    samples x = 5k..5k+4; the cubes between two bricks (x = 5k+4 .. 5k+5) mix them and their
    triangles are dropped. Returns vertices (V, 3) in each brick's own sample coordinates, faces
    (F, 3) int64, and (V,) the brick of each vertex."""
    import mcubes

    n = SUB + 1
    vs, fs, bs = [], [], []
    nv = 0
    for k0 in range(0, len(samples), per_call):
        chunk = samples[k0:k0 + per_call]
        v, f = mcubes.marching_cubes(np.ascontiguousarray(chunk.reshape(-1, n, n)), 0.0)
        if not len(f):
            continue
        f = f.astype(np.int64)
        # A triangle's brick and cube column from its centroid; seam cubes (x mod 5 == 4) go.
        cx = v[f, 0].mean(axis=1)
        f = f[np.floor(cx).astype(np.int64) % n != SUB]
        b = np.floor(v[:, 0] / n).astype(np.int64)
        # A vertex on the seam plane x = 5k+4.. belongs to brick k (floor), one at x = 5k+5 to k+1.
        v = v - np.stack([b * n, np.zeros_like(b), np.zeros_like(b)], 1)
        vs.append(v)
        fs.append(f + nv)
        bs.append(b + k0)
        nv += len(v)
    if not vs:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros(0, np.int64)
    return np.concatenate(vs), np.concatenate(fs), np.concatenate(bs)


def weld(v, f, dims):
    """Merge the vertices that neighbouring bricks computed on their shared faces; drop the vertices no
    face uses and the faces that collapse. A marching-cubes vertex lies on one grid edge (or on a grid
    point), which is its identity: key = (lower grid point, edge axis)."""
    import torch

    r = torch.round(v)
    frac = (v - r).abs()
    fmax, axis = frac.max(1)
    base = r.long()
    on_edge = fmax > 1e-6
    lower = torch.floor(v).long()
    base = torch.where(on_edge[:, None] & (torch.arange(3, device=v.device)[None] == axis[:, None]), lower, base)
    axis = torch.where(on_edge, axis, 3)
    key = (((base[:, 0] * dims[1] + base[:, 1]) * dims[2] + base[:, 2]) * 4 + axis)
    uniq, inv = torch.unique(key[f.reshape(-1)], return_inverse=True)
    f2 = inv.reshape(-1, 3)
    pos = torch.zeros((len(uniq), 3), dtype=v.dtype, device=v.device)
    pos[inv] = v[f.reshape(-1)]
    good = (f2[:, 0] != f2[:, 1]) & (f2[:, 1] != f2[:, 2]) & (f2[:, 0] != f2[:, 2])
    return pos, f2[good]
