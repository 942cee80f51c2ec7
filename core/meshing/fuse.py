"""The meshing entry points: depth maps + cameras -> one fused, coloured `Mesh`."""

from __future__ import annotations

import time

import numpy as np

from .atlas import max_faces, texture_atlas
from .bounds import robust_bounds, sample_points
from .clean import compact, decimate, keep_large_components, smooth_taubin, vertex_normals
from .colour import vertex_colours
from .depth_fields import correct_depth_fields
from .edges import drop_depth_edges
from .errors import MeshingError
from .extract import extract_surface
from .mesh import Mesh
from .options import MeshOptions
from .resolution import choose_truncation, choose_voxel_size, median_footprint, relative_depth_noise
from .support import drop_unsupported
from .tsdf import BLOCK, fuse_tsdf
from .views import check_views

MAX_BLOCKS_PER_AXIS = 1024     # the block lookup grid; a user voxel size finer than this allows is refused


def fuse_mesh(depth, conf, K, cam2world, images, options: MeshOptions | None = None,
              names: list[str] | None = None) -> Mesh:
    """Fuse N depth maps into one surface mesh (TSDF fusion + marching cubes + clean-up).

    depth:     N x (H_i, W_i) z-depth along each camera's optical axis; 0 / non-finite = no measurement.
    conf:      N x (H_i, W_i) confidence (higher is better); pixels below `options.min_confidence` are ignored.
    K:         (N, 3, 3) intrinsics of those pixel grids, pixel centres at integer coordinates.
    cam2world: (N, 4, 4) camera -> world, OpenCV camera axes (x right, y down, z forward).
    images:    N x (H_i, W_i, 3) uint8 sRGB colours of the pixels.
    Returns a `Mesh` in that world frame. Views without a confident pixel are skipped (named in
    `mesh.info["warnings"]`); a single view gives the one-sided surface it sees. Raises
    `MeshingError` when no surface can be built (no confident depth, or nothing observed twice...).
    """
    opt = options or MeshOptions()
    t0 = time.perf_counter()
    views = check_views(depth, conf, K, cam2world, images, opt.min_confidence, names)
    device = _device(opt.device)
    pts = sample_points(views)
    drop_unsupported(views, pts, opt.min_view_support)
    lo, hi = robust_bounds(pts, opt.bounds_percentile)
    extent = float(np.max(hi - lo))
    if not np.isfinite(extent) or extent <= 0:
        raise MeshingError("Cannot build a mesh: the confident points of all views fall on one spot.")
    footprint, med_depth = median_footprint(views)
    voxel = opt.voxel_size if opt.voxel_size > 0 else choose_voxel_size(footprint, extent, opt.max_resolution)
    field_max, t_refine = 0.0, time.perf_counter()
    if opt.depth_fields:
        field_max = correct_depth_fields(views, device=device)
        # The band (truncation) must cover the disagreement of the depth maps that are fused: the corrected ones.
        pts = sample_points(views)
    t_refine = time.perf_counter() - t_refine
    noise = relative_depth_noise(views, pts)
    trunc = opt.truncation if opt.truncation > 0 else choose_truncation(
        voxel, noise, med_depth, opt.truncation_voxels, opt.truncation_sigmas)
    max_jump = opt.edge_jump if opt.edge_jump > 0 else max(0.05, opt.edge_jump_sigmas * noise)
    n_edge = drop_depth_edges(views, max_jump) if opt.edge_jump >= 0 else 0
    margin = 0.1 * extent + trunc
    lo, hi = lo - margin, hi + margin
    n_blocks = np.ceil((hi - lo) / (voxel * BLOCK)).astype(np.int64) + 1
    if n_blocks.max() > MAX_BLOCKS_PER_AXIS:
        raise MeshingError(
            f"Voxel size {voxel:g} is too fine for a scene {extent:g} across "
            f"(more than {MAX_BLOCKS_PER_AXIS * BLOCK} voxels along one side); use a larger voxel size.")
    t_prepare = time.perf_counter()
    vol = fuse_tsdf(views, lo, voxel, trunc, n_blocks, device)
    _sync(device)
    t_fuse = time.perf_counter()
    pix_w = np.median(np.concatenate([w[views.valid(i)][::7] for i, w in enumerate(views.weight)]))
    max_span = opt.max_span if opt.max_span > 0 else max(1.0, 3.0 * voxel / trunc)
    v, f = extract_surface(vol, opt.min_weight * float(pix_w), max_span)
    _sync(device)
    t_extract = time.perf_counter()
    info = {
        "voxel_size": voxel, "truncation": trunc, "depth_noise_rel": noise, "median_depth": med_depth,
        "median_footprint": footprint, "depth_field_max": field_max, "edge_jump": max_jump, "edge_pixels_dropped": n_edge,
        "bounds": [lo.tolist(), hi.tolist()], "blocks": int(len(vol.blocks)), "fusion_work": dict(vol.work),
        "device": str(device), "views_used": int(sum(bool(w.any()) for w in views.weight)),
        "warnings": list(views.warnings),
    }
    del vol
    if not len(f):
        raise MeshingError(
            "The depth maps gave no surface: no part of the volume was observed consistently "
            f"(voxel size {voxel:g}, truncation {trunc:g}); check the cameras or lower the minimum confidence.")
    v, f, _ = compact(v, f[keep_large_components(len(v), f, opt.min_component)])
    if opt.smooth_iterations > 0:
        v = smooth_taubin(v, f, opt.smooth_iterations)
    c = vertex_colours(views, v, max(trunc, 2.0 * voxel))
    if opt.face_budget > 0 and len(f) > opt.face_budget:
        vn, fn, cn = decimate(v.cpu().numpy(), f.cpu().numpy(), c.cpu().numpy(), opt.face_budget, 2.0 * voxel)
        normals = vertex_normals(vn, fn)
    else:
        normals = vertex_normals(v, f).cpu().numpy()
        vn, fn, cn = v.cpu().numpy(), f.cpu().numpy(), c.cpu().numpy()
    uvs = texture = None
    if opt.texture_size > 0:
        if len(fn) > max_faces(opt.texture_size):
            info["warnings"].append(
                f"No texture: a {opt.texture_size} x {opt.texture_size} texture holds at most "
                f"{max_faces(opt.texture_size)} faces and the mesh has {len(fn)}; set a face budget or a larger "
                "texture size. The mesh keeps its vertex colours.")
        else:
            atlas = texture_atlas(vn, fn, cn, views, opt.texture_size, max(trunc, 2.0 * voxel))
            uvs, texture = atlas.uvs, atlas.image
            info["texture_faces_unseen"] = int((atlas.view < 0).sum())
    info.update(faces=int(len(fn)), vertices=int(len(vn)), seconds_fuse=t_fuse - t0,
                seconds_prepare=t_prepare - t0, seconds_refine_views=t_refine, seconds_integrate=t_fuse - t_prepare,
                seconds_extract=t_extract - t_fuse, seconds_total=time.perf_counter() - t0)
    return Mesh(np.ascontiguousarray(vn, np.float32), np.ascontiguousarray(fn, np.int32), normals,
                np.clip(np.rint(cn), 0, 255).astype(np.uint8), info, uvs, texture)


def fuse_reconstruction(recon, options: MeshOptions | None = None) -> Mesh:
    """`fuse_mesh` on a `core.reconstruction.Reconstruction`: its network-resolution depth, confidence
    and colours with `K_net` (pixel centres at integer coordinates, as fuse_mesh expects)."""
    return fuse_mesh(recon.depth, recon.conf, recon.K_net, recon.cam2world, recon.colors, options,
                     names=list(recon.names))


def _sync(device) -> None:
    """Wait for queued GPU work, so that the phase timings in `Mesh.info` are true."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
