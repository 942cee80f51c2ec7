"""Texture atlas: every face of the fused mesh textured from the one photo that sees it best.

Layout: faces go in pairs into the square cells of a G x G grid (cell edge c texels). In a cell, face
2k fills the lower-left right triangle and face 2k+1 the upper-right one, each a right isosceles
triangle whose legs lie `GUTTER` texels inside the cell and whose hypotenuses keep `DIAGONAL_GAP`
texels apart (in x + y). Every texel of a cell is filled from the plane of the triangle on its side
of the diagonal (extrapolated beyond the triangle), so bilinear filtering anywhere inside a triangle
reads only texels of that same face: no bleeding between faces or cells.

Atlas texel space: x right, y down, texel (row r, column q) covers [q, q+1] x [r, r+1]. UVs follow
Blender / OpenGL: u = x / S, v = 1 - y / S (v up, origin at the bottom-left of the image).
World frame: that of the mesh and cameras (OpenCV camera axes in `cam2world`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .views import FusionViews

GUTTER = 1.0          # texels between a triangle's legs and its cell's border
DIAGONAL_GAP = 2.0    # x + y distance from each hypotenuse to the cell's diagonal: a bilinear tap reaches < 2
MIN_CELL = 6          # smallest cell edge in texels (a leg of 2 texels)


@dataclass
class Atlas:
    """uvs:   (F, 3, 2) float32 per-corner UVs in [0, 1] (corner j of face f is `faces[f, j]`).
    image: (S, S, 3) float32 sRGB in [0, 1], row 0 at the top (as the photos).
    view:  (F,) int32 the view each face was textured from, -1 where no view sees it (vertex colours).
    cell:  edge of one grid cell in texels."""

    uvs: np.ndarray
    image: np.ndarray
    view: np.ndarray
    cell: int


def atlas_cell(n_faces: int, size: int) -> int:
    """Edge in texels of the grid cells that fit `n_faces` faces (two per cell) into a size x size atlas."""
    per_side = max(1, int(np.ceil(np.sqrt((n_faces + 1) // 2))))
    return size // per_side


def max_faces(size: int) -> int:
    """The most faces a size x size atlas holds with cells of at least `MIN_CELL` texels."""
    return 2 * (size // MIN_CELL) ** 2


def _cell_layout(c: int):
    """Texel-space corners (2, 3, 2) of the two triangles of a cell of edge c (cell-local x, y), the
    side of every texel (c, c) bool (True: second triangle) and its barycentrics (c, c, 3)."""
    g, d = GUTTER, DIAGONAL_GAP
    tri = np.array([[[g, g], [c - g - d, g], [g, c - g - d]],
                    [[c - g, c - g], [g + d, c - g], [c - g, g + d]]], np.float64)
    ys, xs = np.mgrid[0:c, 0:c] + 0.5
    second = xs + ys > c
    bary = np.empty((c, c, 3))
    for k, mask in ((0, ~second), (1, second)):
        a, b, e = tri[k]
        m = np.stack([b - a, e - a], 1)                                   # columns: the two legs
        rel = np.stack([xs[mask] - a[0], ys[mask] - a[1]], 1)
        st = rel @ np.linalg.inv(m).T
        bary[mask] = np.stack([1 - st[:, 0] - st[:, 1], st[:, 0], st[:, 1]], 1)
    return tri, second, bary


def best_views(vertices: np.ndarray, faces: np.ndarray, views: FusionViews, tolerance: float) -> np.ndarray:
    """(F,) int32 for each face the view maximising cos(normal, direction to the camera) x projected
    area in pixels, among the views that see it: centroid in front of the camera, passing the depth test
    (|view depth at its pixel - its z| <= tolerance, world units), all three corners inside the image.
    -1 where no view sees the face."""
    tri = vertices[faces].astype(np.float64)                     # (F, 3, 3)
    centre = tri.mean(1)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-30)
    best = np.full(len(faces), -1, np.int32)
    best_score = np.zeros(len(faces))
    for i in range(views.n_views):
        if not views.valid(i).any():
            continue
        h, w = views.depth[i].shape
        c2w = views.cam2world[i]
        to_cam = c2w[:3, 3] - centre
        cos = np.einsum("fk,fk->f", normal, to_cam) / np.maximum(np.linalg.norm(to_cam, axis=1), 1e-30)
        w2c = np.linalg.inv(c2w)
        cam = tri @ w2c[:3, :3].T + w2c[:3, 3]                     # (F, 3, 3) corners in camera i
        z = cam[..., 2]
        zs = np.maximum(z, 1e-9)
        px = cam[..., 0] / zs * views.K[i, 0, 0] + views.K[i, 0, 2]
        py = cam[..., 1] / zs * views.K[i, 1, 1] + views.K[i, 1, 2]
        inside = ((z > 1e-9) & (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)).all(1)
        area = 0.5 * np.abs((px[:, 1] - px[:, 0]) * (py[:, 2] - py[:, 0]) - (px[:, 2] - px[:, 0]) * (py[:, 1] - py[:, 0]))
        cc = centre @ w2c[:3, :3].T + w2c[:3, 3]
        czs = np.maximum(cc[:, 2], 1e-9)
        cu = np.clip(np.rint(cc[:, 0] / czs * views.K[i, 0, 0] + views.K[i, 0, 2]), 0, w - 1).astype(np.int64)
        cv = np.clip(np.rint(cc[:, 1] / czs * views.K[i, 1, 1] + views.K[i, 1, 2]), 0, h - 1).astype(np.int64)
        d = views.depth[i][cv, cu]
        seen = inside & (cos > 0) & (views.weight[i][cv, cu] > 0) & (np.abs(d - cc[:, 2]) <= tolerance)
        score = np.where(seen, cos * area, 0.0)
        better = score > best_score
        best[better], best_score[better] = i, score[better]
    return best


def _sample_bilinear(image: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """(n, 3) float64 colours of `image` (h, w, 3) at pixel positions (n,) (centres at integers), clamped
    to the image."""
    h, w = image.shape[:2]
    px = np.clip(px, 0, w - 1)
    py = np.clip(py, 0, h - 1)
    x0 = np.minimum(np.floor(px).astype(np.int64), w - 2) if w > 1 else np.zeros(len(px), np.int64)
    y0 = np.minimum(np.floor(py).astype(np.int64), h - 2) if h > 1 else np.zeros(len(py), np.int64)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (px - x0)[:, None], (py - y0)[:, None]
    im = image.astype(np.float64)
    top = im[y0, x0] * (1 - fx) + im[y0, x1] * fx
    bottom = im[y1, x0] * (1 - fx) + im[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def texture_atlas(vertices: np.ndarray, faces: np.ndarray, vertex_colors: np.ndarray, views: FusionViews,
                  size: int, tolerance: float) -> Atlas:
    """Project the photos onto the mesh into a size x size atlas.

    vertices: (V, 3) world positions; faces: (F, 3) vertex indices; vertex_colors: (V, 3) sRGB in
    [0, 255] (used for faces no view sees); views: the fusion views (their colours, K, cam2world,
    depth for the visibility test); tolerance: depth-test tolerance in world units.
    Raises ValueError when `size` cannot hold F faces (cells under `MIN_CELL` texels; see `max_faces`).
    """
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    n_faces = len(faces)
    c = atlas_cell(n_faces, size)
    if c < MIN_CELL:
        raise ValueError(f"a {size} x {size} texture holds at most {max_faces(size)} faces, the mesh has {n_faces}")
    per_side = size // c
    tri, second, bary = _cell_layout(c)

    view = best_views(vertices, faces, views, tolerance)
    cell = np.arange(n_faces) // 2
    origin = np.stack([cell % per_side, cell // per_side], 1).astype(np.float64) * c      # (F, 2) x, y
    corners = origin[:, None, :] + tri[np.arange(n_faces) % 2]                            # (F, 3, 2)
    uvs = np.stack([corners[..., 0] / size, 1.0 - corners[..., 1] / size], -1).astype(np.float32)

    # Every texel of every used cell: which face it belongs to and its barycentrics in that face.
    n_cells = (n_faces + 1) // 2
    k = np.arange(n_cells)
    face_of = 2 * k[:, None, None] + second[None].astype(np.int64)                        # (n_cells, c, c)
    texel_bary = np.broadcast_to(bary, (n_cells, c, c, 3))
    missing = face_of >= n_faces        # the empty half of the last cell with an odd face count
    face_of = np.where(missing, face_of - 1, face_of)
    flat_face = face_of.reshape(-1)
    flat_bary = texel_bary.reshape(-1, 3)
    rows = (k // per_side)[:, None, None] * c + np.arange(c)[None, :, None]
    cols = (k % per_side)[:, None, None] * c + np.arange(c)[None, None, :]
    flat_r = np.broadcast_to(rows, face_of.shape).reshape(-1)
    flat_q = np.broadcast_to(cols, face_of.shape).reshape(-1)

    image = np.zeros((size, size, 3), np.float64)
    texel_view = view[flat_face]
    for i in np.unique(texel_view):
        sel = np.nonzero(texel_view == i)[0]
        fv = faces[flat_face[sel]]                                                         # (n, 3)
        if i < 0:       # no view: the vertex colours, interpolated (clamped outside the triangle)
            b = np.clip(flat_bary[sel], 0, None)
            b /= b.sum(1, keepdims=True)
            col = np.einsum("nj,njk->nk", b, np.asarray(vertex_colors, np.float64)[fv])
        else:
            p = np.einsum("nj,njk->nk", flat_bary[sel], vertices[fv])
            w2c = views.world2cam[i]
            cam = p @ w2c[:3, :3].T + w2c[:3, 3]
            zs = np.maximum(cam[:, 2], 1e-9)
            px = cam[:, 0] / zs * views.K[i, 0, 0] + views.K[i, 0, 2]
            py = cam[:, 1] / zs * views.K[i, 1, 1] + views.K[i, 1, 2]
            col = _sample_bilinear(views.colors[i], px, py)
        image[flat_r[sel], flat_q[sel]] = col
    return Atlas(uvs, np.clip(image / 255.0, 0.0, 1.0).astype(np.float32), view, c)
