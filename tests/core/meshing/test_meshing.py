"""core.meshing: accuracy on the meshing fixtures, bad input, clean-up, PLY output, torch-free import."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_meshgen import make_case
from helpers_meshscore import load_case, score_mesh, targets
from pointmap.core import PointmapError
from pointmap.core.meshing import Mesh, MeshingError, MeshOptions, fuse_mesh
from pointmap.core.meshing.clean import component_labels, decimate, drop_small_components

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "meshing"


def _fuse(case, **kw):
    opts = MeshOptions(device="cpu", **kw)
    return fuse_mesh(list(case["depth"]), list(case["conf"]), case["K"], case["cam2world"], list(case["images"]), opts)


@pytest.fixture(scope="module")
def small_case():
    return make_case(seed=11, views=6, W=64, H=48, gt_factor=3, gt_points=30_000)


def _check_targets(path: Path) -> dict:
    """Fuse one case file and assert its targets; returns the scores."""
    case = load_case(path)
    mesh = _fuse(case)
    s = score_mesh(mesh.vertices, mesh.faces, case)
    t = targets(case)
    assert s["f1"] >= t["f1_min"], (path.name, s)
    assert s["chamfer_pct"] <= t["chamfer_max_pct"], (path.name, s)
    if t["f05_min"] is not None:
        assert s["f05"] >= t["f05_min"], (path.name, s)
    return s


def test_example_fixture_meets_targets():
    """Clean-scene bar on the shared example: F@1% >= 0.97, Chamfer <= 0.35 % of the diagonal; and F@0.5 %,
    0.903 with the depth fields (0.835 without; target 0.9), guarded at 0.89 against BLAS differences."""
    assert _check_targets(FIXTURES / "example_object_hemi8.npz")["f05"] >= 0.89


@pytest.mark.skipif(not os.environ.get("POINTMAP_MESH_DIR"), reason="POINTMAP_MESH_DIR not set")
def test_cases_from_env_dir():
    cases = sorted(Path(os.environ["POINTMAP_MESH_DIR"]).glob("*.npz"))
    assert cases, "POINTMAP_MESH_DIR holds no *.npz case"
    failures = []
    for path in cases:
        try:
            _check_targets(path)
        except AssertionError as err:
            failures.append(str(err))
    assert not failures, failures


def test_mesh_is_oriented_coloured_and_written(small_case, tmp_path):
    mesh = _fuse(small_case)
    assert mesh.n_faces > 1000 and mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int32
    assert mesh.colors.shape == (mesh.n_vertices, 3) and mesh.colors.dtype == np.uint8
    # Normals point to the cameras' side: towards the camera that sees the vertex best (nearest).
    centres = small_case["cam2world"][:, :3, 3]
    near = centres[np.argmin(np.linalg.norm(mesh.vertices[:, None] - centres[None], axis=2), axis=1)]
    facing = np.einsum("ij,ij->i", mesh.normals, near - mesh.vertices)
    assert (facing > 0).mean() > 0.9
    # Vertex colours come from the images (same colour function at the same point).
    assert mesh.colors.std() > 10
    path = tmp_path / "m.ply"
    mesh.write_ply(path)
    data = path.read_bytes()
    head = data[:data.index(b"end_header\n") + 11].decode()
    assert "binary_little_endian" in head and f"element vertex {mesh.n_vertices}" in head
    assert f"element face {mesh.n_faces}" in head and "property uchar red" in head
    assert len(data) == len(head) + mesh.n_vertices * 27 + mesh.n_faces * 13


def test_small_case_scores(small_case):
    s = score_mesh(*(lambda m: (m.vertices, m.faces))(_fuse(small_case)), small_case)
    assert s["f1"] > 0.9, s


def test_no_views_all_zero_conf_and_no_depth_are_clear_errors(small_case):
    with pytest.raises(MeshingError, match="zero views"):
        fuse_mesh([], [], np.zeros((0, 3, 3)), np.zeros((0, 4, 4)), [])
    conf0 = [np.zeros_like(c) for c in small_case["conf"]]
    with pytest.raises(MeshingError, match="confidence"):
        fuse_mesh(list(small_case["depth"]), conf0, small_case["K"], small_case["cam2world"],
                  list(small_case["images"]), MeshOptions(device="cpu"))
    d0 = [np.zeros_like(d) for d in small_case["depth"]]
    with pytest.raises(PointmapError, match="valid depth"):
        fuse_mesh(d0, list(small_case["conf"]), small_case["K"], small_case["cam2world"],
                  list(small_case["images"]), MeshOptions(device="cpu"))
    with pytest.raises(MeshingError, match="disagree"):
        fuse_mesh(list(small_case["depth"]), list(small_case["conf"])[:2], small_case["K"],
                  small_case["cam2world"], list(small_case["images"]), MeshOptions(device="cpu"))


def test_view_without_depth_is_skipped_with_a_warning(small_case):
    depth = [d.copy() for d in small_case["depth"]]
    depth[2][:] = 0
    mesh = fuse_mesh(depth, list(small_case["conf"]), small_case["K"], small_case["cam2world"],
                     list(small_case["images"]), MeshOptions(device="cpu"))
    assert mesh.n_faces > 0 and mesh.info["views_used"] == 5
    assert any("view 2" in w and "no valid depth" in w for w in mesh.info["warnings"])


def test_single_view_gives_its_visible_surface(small_case):
    c = small_case
    mesh = fuse_mesh([c["depth"][0]], [c["conf"][0]], c["K"][:1], c["cam2world"][:1], [c["images"][0]],
                     MeshOptions(device="cpu"))
    assert mesh.n_faces > 100 and mesh.info["depth_noise_rel"] == 0.0


def test_misplaced_camera_is_left_out_with_a_warning(small_case):
    """A camera 100 m off (a failed alignment) puts its depth far from the rest: it is left out."""
    c = small_case
    c2w = c["cam2world"].copy()
    c2w[3, :3, 3] += [100.0, 0.0, 0.0]
    mesh = fuse_mesh(list(c["depth"]), list(c["conf"]), c["K"], c2w, list(c["images"]), MeshOptions(device="cpu"))
    assert any("view 3" in w and "misplaced" in w for w in mesh.info["warnings"])
    s = score_mesh(mesh.vertices, mesh.faces, c)
    assert s["f1"] > 0.85, s


def test_components_and_decimation():
    # Two separate triangles strips: a big one (100 faces) and a tiny one (2 faces).
    n = 51
    top = np.stack([np.arange(n), np.zeros(n), np.zeros(n)], 1)
    bot = top + [0, 1, 0]
    v = np.concatenate([top, bot, [[100, 0, 0], [101, 0, 0], [100, 1, 0], [101, 1, 0]]]).astype(float)
    f = [[i, n + i, i + 1] for i in range(n - 1)] + [[i + 1, n + i, n + i + 1] for i in range(n - 1)]
    f += [[2 * n, 2 * n + 2, 2 * n + 1], [2 * n + 1, 2 * n + 2, 2 * n + 3]]
    f = np.array(f)
    c = np.zeros_like(v)
    lab = component_labels(len(v), f)
    assert len(np.unique(lab)) == 2
    v2, f2, _ = drop_small_components(v, f, c, 0.05)
    assert len(f2) == 2 * (n - 1) and len(v2) == 2 * n
    # A 30 x 30 vertex grid (1682 faces) decimated to a budget keeps a grid-like surface.
    g = 30
    idx = np.arange(g * g).reshape(g, g)
    a, b, d, e = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    gf = np.concatenate([np.stack([a, d, b], 1), np.stack([b, d, e], 1)])
    yy, xx = np.mgrid[0:g, 0:g]
    gv = np.stack([xx.ravel(), yy.ravel(), np.zeros(g * g)], 1).astype(float)
    v3, f3, c3 = decimate(gv, gf, np.zeros_like(gv), 400, 1.0)
    assert 100 < len(f3) <= 400 and f3.max() < len(v3) and len(c3) == len(v3)


def test_import_is_torch_free():
    code = "import sys, pointmap.core, pointmap.core.meshing; assert 'torch' not in sys.modules, 'torch loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_mesh_dataclass_roundtrip_counts():
    m = Mesh(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]], np.int32), np.zeros((3, 3), np.float32),
             np.zeros((3, 3), np.uint8))
    assert m.n_vertices == 3 and m.n_faces == 1


def test_two_disagreeing_views_give_a_mesh_and_a_warning(small_case):
    """Two views, one camera 100 m off: neither can outvote the other, so both stay and a warning
    says they disagree (never a silent coarse mesh)."""
    c = small_case
    c2w = c["cam2world"][:2].copy()
    c2w[1, :3, 3] += [100.0, 0.0, 0.0]
    mesh = fuse_mesh(list(c["depth"][:2]), list(c["conf"][:2]), c["K"][:2], c2w, list(c["images"][:2]),
                     MeshOptions(device="cpu"))
    assert mesh.n_faces > 0
    assert any("do not agree" in w and "view 1" in w for w in mesh.info["warnings"])


def test_views_below_confidence_are_named_and_the_rest_is_meshed(small_case):
    c = small_case
    conf = [np.ones_like(x) for x in c["conf"]]
    conf[0] = c["conf"][0]
    mesh = fuse_mesh(list(c["depth"]), conf, c["K"], c["cam2world"], list(c["images"]), MeshOptions(device="cpu"))
    assert mesh.n_faces > 100 and mesh.info["views_used"] == 1
    assert sum("confidence >= 3" in w for w in mesh.info["warnings"]) == 5


def test_bricks_are_welded_without_seams(small_case):
    """Marching cubes runs per 4^3 brick: vertices on shared brick faces are merged, so no two vertices
    coincide and no edge has more than two faces."""
    mesh = _fuse(small_case)
    assert len(np.unique(mesh.vertices, axis=0)) == mesh.n_vertices
    e = np.sort(mesh.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, count = np.unique(e, axis=0, return_counts=True)
    assert count.max() <= 2 and (count == 2).mean() > 0.9


def test_batched_bricks_match_one_call_per_brick():
    """extract._march_bricks (bricks side by side, seam cubes dropped) gives exactly the triangles of
    one PyMCubes call per brick."""
    import mcubes
    from pointmap.core.meshing.extract import _march_bricks

    rng = np.random.default_rng(0)
    g = np.mgrid[0:5, 0:5, 0:5].astype(np.float64)
    bricks = np.stack([np.sqrt(((g - rng.uniform(0, 4, 3)[:, None, None, None]) ** 2).sum(0)) - rng.uniform(0.5, 3)
                       for _ in range(40)]).astype(np.float32)
    v, f, b = _march_bricks(bricks, per_call=16)
    got = {(int(b[t[0]]), *sorted(tuple(np.round(p, 6)) for p in v[t])) for t in f}
    want = set()
    for k, s in enumerate(bricks):
        vk, fk = mcubes.marching_cubes(s, 0.0)
        want |= {(k, *sorted(tuple(np.round(p, 6)) for p in vk[t])) for t in fk}
    assert got == want and len(want) > 100
