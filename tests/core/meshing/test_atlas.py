"""core/meshing/atlas.py: a ray-cast cube seen by a few views, its atlas checked against the photos."""

import numpy as np
import pytest
from pointmap.core.meshing.atlas import MIN_CELL, _sample_bilinear, max_faces, texture_atlas
from pointmap.core.meshing.views import check_views

H, W, FOCAL = 96, 128, 110.0


def _look_at(centre, target):
    z = np.asarray(target, float) - centre
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, np.cross(z, x), z], 1)
    T[:3, 3] = centre
    return T


def _cube(n=3):
    """Cube [-0.5, 0.5]^3, each side an n x n grid of quads split in two, wound CCW seen from outside."""
    verts, faces = [], []
    for axis in range(3):
        for sign in (-1.0, 1.0):
            a, b = [k for k in range(3) if k != axis]
            base = len(verts)
            for i in range(n + 1):
                for j in range(n + 1):
                    p = np.zeros(3)
                    p[axis], p[a], p[b] = 0.5 * sign, i / n - 0.5, j / n - 0.5
                    verts.append(p)
            for i in range(n):
                for j in range(n):
                    q = [base + i * (n + 1) + j, base + (i + 1) * (n + 1) + j,
                         base + (i + 1) * (n + 1) + j + 1, base + i * (n + 1) + j + 1]
                    faces += [[q[0], q[1], q[2]], [q[0], q[2], q[3]]]
    v, f = np.array(verts), np.array(faces)
    e = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    flip = np.einsum("fk,fk->f", e, v[f].mean(1)) < 0
    f[flip] = f[flip][:, ::-1]
    return v, f


def _colour(X):
    """sRGB 0..255: smooth, different per channel."""
    return 255 * (0.5 + 0.4 * np.sin(X @ np.array([[3.0, 1.0, -2.0], [1.5, -2.5, 2.0], [-1.0, 2.0, 3.0]])))


def _render(c2w, K):
    """Depth (H, W) and uint8 image of the cube (background: no depth, black)."""
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    d = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K).T @ c2w[:3, :3].T   # z-unit rays (z = t)
    o = c2w[:3, 3]
    with np.errstate(divide="ignore"):
        t0 = (-0.5 - o) / d
        t1 = (0.5 - o) / d
    tn = np.minimum(t0, t1).max(-1)
    tf = np.maximum(t0, t1).min(-1)
    hit = (tn <= tf) & (tn > 0)
    depth = np.where(hit, tn, 0.0).astype(np.float32)
    X = o + tn[..., None] * d
    img = np.where(hit[..., None], _colour(X), 0.0)
    return depth, np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _scene():
    K = np.array([[FOCAL, 0, (W - 1) / 2], [0, FOCAL, (H - 1) / 2], [0, 0, 1.0]])
    cams = [_look_at(3.0 * np.array([np.cos(a) * 0.8, np.sin(a) * 0.8, 0.6]), [0, 0, 0])
            for a in np.deg2rad([20, 110, 200, 290])]
    depth, imgs = zip(*(_render(T, K) for T in cams), strict=True)
    views = check_views(list(depth), [np.where(d > 0, 10.0, 0.0) for d in depth], np.stack([K] * 4),
                        np.stack(cams), list(imgs), min_confidence=3.0)
    return views


def _atlas_at(image, uv):
    """Bilinear atlas colour (n, 3) in [0, 255] at UVs (n, 2) (v up, texel centres at +0.5)."""
    s = image.shape[0]
    return 255 * _sample_bilinear(image, uv[:, 0] * s - 0.5, (1 - uv[:, 1]) * s - 0.5)


def _photo_at(views, i, X):
    w2c = np.linalg.inv(views.cam2world[i])
    c = X @ w2c[:3, :3].T + w2c[:3, 3]
    return _sample_bilinear(views.colors[i], c[:, 0] / c[:, 2] * FOCAL + (W - 1) / 2,
                            c[:, 1] / c[:, 2] * FOCAL + (H - 1) / 2)


def test_atlas_reproduces_the_photos_inside_every_face():
    views = _scene()
    v, f = _cube()
    grey = np.full((len(v), 3), 77.0)
    atlas = texture_atlas(v, f, grey, views, 512, tolerance=0.02)
    assert atlas.image.shape == (512, 512, 3) and atlas.image.dtype == np.float32
    assert atlas.uvs.shape == (len(f), 3, 2)
    bottom = v[f].mean(1)[:, 2] < -0.49
    # The cameras are above the cube: its bottom is unseen (vertex colours), every other face is textured.
    assert (atlas.view[bottom] == -1).all() and (atlas.view[~bottom] >= 0).all()
    # Chosen views face the side: the camera's direction has a positive component along the normal.
    normal = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    for k in np.nonzero(~bottom)[0]:
        assert normal[k] @ (views.cam2world[atlas.view[k], :3, 3] - v[f[k]].mean(0)) > 0
    # Centres and points near the corners: atlas == photo there. Near a corner the tolerance is wider:
    # a texel is 1/7 photo pixel, and the photo has a kink at the cube's silhouette one pixel away.
    for bary in ([1 / 3, 1 / 3, 1 / 3], [0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9], [0.05, 0.475, 0.475]):
        b = np.array(bary)
        for k in np.nonzero(~bottom)[0]:
            X = (b @ v[f[k]])[None]
            uv = (b @ atlas.uvs[k].astype(np.float64))[None]
            np.testing.assert_allclose(_atlas_at(atlas.image, uv), _photo_at(views, atlas.view[k], X),
                                       atol=0.5 if bary[0] == 1 / 3 else 8.0)
            if bary[0] == 1 / 3:    # near a corner the photo itself mixes in the background at the silhouette
                np.testing.assert_allclose(_atlas_at(atlas.image, uv), _colour(X), atol=12.0)
    # Unseen faces take the vertex colour.
    for k in np.nonzero(bottom)[0]:
        uv = atlas.uvs[k].astype(np.float64).mean(0)[None]
        np.testing.assert_allclose(_atlas_at(atlas.image, uv), [[77.0] * 3], atol=0.5)


def test_no_colour_bleeds_between_faces():
    """Separate triangles no view sees, each one flat colour far from its neighbours': bilinear reads
    anywhere in a face, up to its corners and edges, return exactly that face's colour."""
    views = _scene()
    rng = np.random.default_rng(1)
    n = 40
    v = rng.normal(size=(3 * n, 3)) + [50.0, 0, 0]       # off every image: no view sees them
    f = np.arange(3 * n).reshape(n, 3)
    face_colour = rng.uniform(0, 255, (n, 3))
    atlas = texture_atlas(v, f, np.repeat(face_colour, 3, 0), views, 6 * 5, tolerance=0.02)
    assert atlas.cell == MIN_CELL and (atlas.view == -1).all()
    for bary in ([1 / 3, 1 / 3, 1 / 3], [0.98, 0.01, 0.01], [0.01, 0.98, 0.01], [0.01, 0.01, 0.98], [0.01, 0.495, 0.495]):
        uv = np.einsum("j,fjk->fk", np.array(bary), atlas.uvs.astype(np.float64))
        np.testing.assert_allclose(_atlas_at(atlas.image, uv), face_colour, atol=1e-3)


def test_uvs_lie_inside_their_own_cell():
    views = _scene()
    v, f = _cube(5)
    atlas = texture_atlas(v, f, np.zeros((len(v), 3)), views, 256, tolerance=0.02)
    assert atlas.cell >= MIN_CELL
    assert (atlas.uvs >= 0).all() and (atlas.uvs <= 1).all()
    x = atlas.uvs[..., 0] * 256
    y = (1 - atlas.uvs[..., 1]) * 256
    per_side = 256 // atlas.cell
    cell = np.arange(len(f)) // 2
    qx, qy = (cell % per_side)[:, None] * atlas.cell, (cell // per_side)[:, None] * atlas.cell
    g = 1.0 - 1e-4     # one texel of gutter
    assert ((x >= qx + g) & (x <= qx + atlas.cell - g) & (y >= qy + g) & (y <= qy + atlas.cell - g)).all()
    # The two triangles of a cell keep apart: first below the diagonal, second above it, by 2 texels in x + y.
    s = (x - qx) + (y - qy)
    first = np.arange(len(f)) % 2 == 0
    assert (s[first] <= atlas.cell - 2 + 1e-3).all() and (s[~first] >= atlas.cell + 2 - 1e-3).all()


def test_too_many_faces_for_the_atlas_is_refused():
    views = _scene()
    v, f = _cube(3)
    with pytest.raises(ValueError, match="holds at most"):
        texture_atlas(v, f, np.zeros((len(v), 3)), views, 24, tolerance=0.02)
    assert max_faces(24) == 32 < len(f)


def _fuse(texture_size):
    from pointmap.core.meshing import MeshOptions, fuse_mesh

    views = _scene()
    conf = [np.where(d > 0, 10.0, 0.0) for d in views.depth]
    return fuse_mesh(views.depth, conf, views.K, views.cam2world, views.colors,
                     MeshOptions(texture_size=texture_size, device="cpu", max_resolution=48, face_budget=4000))


def test_fuse_mesh_with_a_texture_atlas():
    mesh = _fuse(512)
    assert mesh.uvs.shape == (mesh.n_faces, 3, 2) and mesh.texture.shape == (512, 512, 3)
    centre = mesh.vertices[mesh.faces].astype(np.float64).mean(1)
    seen = centre[:, 2] > -0.3      # the bottom is seen by no camera
    got = _atlas_at(mesh.texture, mesh.uvs.astype(np.float64).mean(1))[seen]
    err = np.abs(got - _colour(centre[seen])).max(1)
    assert np.median(err) < 6.0 and np.mean(err < 20) > 0.95


def test_fuse_mesh_keeps_vertex_colours_when_the_atlas_is_too_small():
    mesh = _fuse(6)
    assert mesh.texture is None and mesh.uvs is None
    assert any("No texture" in w for w in mesh.info["warnings"])
