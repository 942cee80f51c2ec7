"""Depth Anything 3 backend: preprocessed images (core/io/da3_images.py) -> `Reconstruction`.

Conventions of the result (see core/reconstruction.py), mirroring the VGGT backend:
* Any-view models predict per view a depth map, its confidence and a cam2world pose (DA3's pose
  encoding describes cam2world, camera.py). cam2world is re-expressed in camera 0's frame (camera 0
  exactly the identity): by training the world is the reference view's camera, which is not always view 0.
* Intrinsics: the predicted ones have cx = W/2, cy = H/2 and DA3 unprojects integer pixel indices, as
  VGGT does, so K_net is used unchanged in our pixel-centre convention. Known intrinsics (original pixels)
  replace the predicted ones: K_net = orig_to_net @ K. K = net_to_orig @ K_net undoes resize and crop.
* Known cameras (world2cam in the caller's world, plus intrinsics) run the model's camera-conditioned
  mode: as the reference API, cameras are normalised (view 0 the identity, translations divided by the
  lower median camera distance, at least 0.1) before the camera encoder; the result keeps the given
  cameras and multiplies depth by that normalisation scale (the reference API instead fits a Umeyama
  similarity to the predicted poses, which needs `evo`; with a network that honours its input cameras
  both give the same scale).
* Monocular/metric models (no camera modules) reconstruct one image at a time: a single view, camera
  at the origin, with the given intrinsics or, without them, a 60-degree horizontal field of view
  (`meta["assumed_fov_deg"]`). The metric model's depth is metres after the reference's focal rescale
  depth * (fx + fy) / 2 / 300; `metric_scale` is then True. Sky pixels (sky > 0.3) get confidence 0.
* The nested model (any-view + metric network, core.models.da3.DA3Nested) runs both networks on all views
  and aligns the any-view depth to the metric network's (core.models.da3.metric: one least-squares scale
  over the confident non-sky pixels, sky pixels at a capped far depth with the lowest confidence); depth and
  camera translations are then in metres (`metric_scale` True, `meta["metric_scale_factor"]`). As the
  reference, the metric rescale uses the predicted focal lengths, or the known ones when given. With known
  poses the caller's cameras set the scale and the metric network is not run (a warning says so).
* points: depth unprojected with the cameras (float32 world points, camera 0's frame).

Memory/speed: the backbone runs in bf16 on bf16 GPUs (weights cast in place), fp16 autocast on older
GPUs, fp32 on CPU; the camera encoder/decoder always run in float32; the DPT head runs with bf16 weights
on CUDA in bf16 mode (its last 1x1 convs and exp() in float32) and `frame_chunk` frames at a time, each
chunk moved to host memory. The ray branch is not run (the reference drops its outputs too).
Long shots: `run_da3_frames` is one network pass on a list of frames with optional known cameras, the
unit a chunker calls per window (see its docstring).
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..devices import resolve_device_precision
from ..errors import InputError, PointmapError, check_cancel
from ..progress import report
from ..reconstruction import Reconstruction
from .vggt import check_common_shape, check_fits, estimate_activation_bytes, fast_attention

DEFAULT_HFOV_DEG = 60.0
SKY_THRESHOLD = 0.3
METRIC_FOCAL_DIVISOR = 300.0


class DA3MemoryError(PointmapError):
    """The requested frames cannot fit in the device memory."""


def normalize_world2cam(world2cam: np.ndarray) -> tuple[np.ndarray, float]:
    """The reference API's camera normalisation: (S, 4, 4) world2cam -> (normalised (S, 4, 4), scale).

    E'_i = E_i E_0^-1 (view 0 becomes the identity), then every translation is divided by
    scale = max(lower median of the camera-centre distances ‖c_i‖ of E', 0.1) (torch.median semantics).
    """
    e = np.asarray(world2cam, dtype=np.float64)
    if e.ndim != 3 or e.shape[1:] != (4, 4):
        raise ValueError(f"world2cam must be (S, 4, 4), got {e.shape}")
    out = e @ np.linalg.inv(e[0])
    r, t = out[:, :3, :3], out[:, :3, 3]
    centres = -np.einsum("sji,sj->si", r, t)
    dist = np.sort(np.linalg.norm(centres, axis=-1))
    scale = max(float(dist[(len(dist) - 1) // 2]), 0.1)
    out[:, :3, 3] /= scale
    return out, scale


def _images_tensor(images):
    from ..io.da3_images import DA3_PATCH, to_tensor_da3

    check_common_shape(images, "Depth Anything 3", DA3_PATCH, "core.io.da3_images.load_images_da3")
    return to_tensor_da3(list(images))


def _check_memory(device, n_frames: int, h: int, w: int, cfg, precision: str, frame_chunk: int) -> None:
    need = estimate_activation_bytes(n_frames, h, w, cfg.embed_dim, cfg.patch_size, 1, 4,
                                     4 if precision == "fp32" else 2, frame_chunk)
    check_fits(device, need, f"Depth Anything 3 on {n_frames} frames of {w}x{h}", DA3MemoryError)


def prepare_model(model, device, precision: str, head_precision: str = "auto") -> str:
    """Move `model` to `device` and set its precisions (backbone bf16 in bf16 mode, cameras float32).
    Returns the head precision used ("fp32" or "bf16")."""
    import torch

    model.eval()
    model.to(device)
    model.backbone.to(torch.bfloat16 if precision == "bf16" else torch.float32)
    if head_precision == "auto":
        head_precision = "bf16" if precision == "bf16" and device.type == "cuda" else "fp32"
    model.head.to(torch.bfloat16 if head_precision == "bf16" else torch.float32)
    if getattr(model, "gs_head", None) is not None:   # not run by reconstruction; kept small on the device
        model.gs_head.to(torch.bfloat16 if head_precision == "bf16" else torch.float32)
    for part in (model.cam_enc, model.cam_dec):
        if part is not None:
            part.float()
    return head_precision


def run_da3_frames(model, x, device, precision: str, world2cam_net=None, K_net_in=None, frame_chunk: int = 8,
                   ref_strategy: str = "saddle_balanced", step=None, cancel=None,
                   fused: bool = False, descriptors: bool = False) -> dict[str, np.ndarray]:
    """One network pass over S frames: x (S, 3, H, W) normalised -> numpy float32 maps on the host.

    world2cam_net (S, 4, 4) normalised known cameras and K_net_in (S, 3, 3) their intrinsics in network
    pixels (both or neither; any-view models only). fused: VGGT's torch.compile'd block path (CUDA, MLP
    blocks only; compiles once per process). Returns depth, depth_conf (S, H, W) (mono: depth, sky)
    and for any-view models cam2world, world2cam (S, 3, 4) and intrinsics (S, 3, 3) in network pixels, in
    the network's world frame (the reference view's camera). descriptors: also "descriptors", (S, C) float32
    unit rows for loop-closure retrieval (`chunked.find_loop_chunks`): the first output layer's patch tokens
    (their per-frame, local-attention half where the layer concatenates local and global features),
    averaged over the frame.

    This is the per-window call for long shots: a chunker (SEQ's generic machinery) runs it on
    overlapping windows, each at most as many frames as fit (DA3MemoryError otherwise), and links
    consecutive windows by the similarity between the cameras of their shared frames (depth scale
    differs per window). The camera-conditioned mode needs cameras for every frame of a window (the
    camera encoder replaces all camera tokens), so it cannot seed a window from its overlap alone.
    """
    import torch

    from ..models.vggt.blocks import set_fused

    s, _, h, w = x.shape
    _check_memory(device, s, h, w, model.cfg, precision, frame_chunk)
    fused = fused and device.type == "cuda" and model.cfg.ffn == "mlp"   # the fused path knows fc1/fc2 MLPs
    with torch.inference_mode():
        xb = x.to(device)[None]
        kw = {}
        if world2cam_net is not None:
            kw = {"world2cam": torch.as_tensor(world2cam_net, dtype=torch.float32, device=device)[None],
                  "intrinsics": torch.as_tensor(K_net_in, dtype=torch.float32, device=device)[None]}
        set_fused(model.backbone, fused)
        try:
            with torch.autocast(device.type, dtype=torch.float16, enabled=precision == "fp16"), \
                    fast_attention(device):
                feats = model.encode(xb, ref_strategy=ref_strategy, step=step, **kw)
        finally:
            set_fused(model.backbone, False)
        out: dict[str, list] = {}
        if descriptors:
            tok = feats[0][0][0]                                        # (S, h*w, C')
            if model.cfg.cat_token:
                tok = tok[..., : tok.shape[-1] // 2]
            out["descriptors"] = [torch.nn.functional.normalize(tok.float().mean(1), dim=-1).cpu()]
        for a in range(0, s, frame_chunk):
            check_cancel(cancel)
            part = model.head.forward_frames([f[0, a:a + frame_chunk] for f, _ in feats], h, w, rays=False)
            for k, v in part.items():
                out.setdefault(k, []).append(v.float().cpu())
        maps = {k: torch.cat(v).numpy() for k, v in out.items()}
        maps["reference_view"] = np.array(getattr(model.backbone, "reference_views", [0])[0])
        if model.cam_dec is not None:
            cams = model.decode_cameras(feats[-1][1], (h, w))
            maps.update({k: v[0].double().cpu().numpy() for k, v in cams.items() if k != "pose_enc"})
        del feats
    return maps


def _align_nested(depth: np.ndarray, conf: np.ndarray, metric_maps: dict, K_net: np.ndarray):
    """The nested model's metric alignment (core.models.da3.metric) of (S, H, W) depth and confidence, with
    the metric network's raw depth and sky maps and the intrinsics `K_net` (S, 3, 3) of the result (the known
    ones when given: the metric rescale is by the true focal length). -> (depth, conf, scale)."""
    import torch

    from ..models.da3.metric import align_to_metric

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]

    try:
        out = align_to_metric(t(depth), t(conf), t(metric_maps["depth"]), t(metric_maps["sky"]), t(K_net))
    except ValueError as err:
        raise InputError(f"Depth Anything 3 Nested cannot give these images a metric scale: {err}. Use an "
                         f"any-view model (DA3-Base/Large/Giant) for a result up to scale.") from None
    return out["depth"][0].numpy(), out["depth_conf"][0].numpy(), float(out["scale"])


def _homogeneous(m: np.ndarray) -> np.ndarray:
    out = np.tile(np.eye(4), (m.shape[0], 1, 1))
    out[:, :3, :4] = m[:, :3, :4]
    return out


def run_da3(model, images, device=None, precision: str = "auto", frame_chunk: int = 8, intrinsics=None,
            world2cam=None, ref_strategy: str = "saddle_balanced", head_precision: str = "auto",
            fused: bool = False, descriptors: bool = False, progress=None, cancel=None) -> Reconstruction:
    """Reconstruct `images` (LoadedImages of one shape, from load_images_da3) with a DA3 model.

    model:      a `core.models.da3.DA3Net` or `DA3Nested` (moved to `device`; backbones cast to bf16 in bf16 mode).
    intrinsics: None or (S, 3, 3) known intrinsics in original pixels (used instead of the predicted ones).
    world2cam:  None or (S, 4, 4) known world-to-camera poses (OpenCV); needs `intrinsics`; runs the
                camera-conditioned mode and keeps these cameras (world = the caller's frame).
    precision:  "auto" | "fp32" | "bf16" | "fp16" (as run_vggt); head_precision "auto" | "fp32" | "bf16".
    fused:      torch.compile'd transformer blocks on CUDA (as run_vggt's; ~1 min compile per process).
    descriptors: also per-frame retrieval descriptors in `meta["frame_descriptors"]` ((S, C) float32 unit
                rows; `run_da3_frames`), which the chunked path uses to find loop closures.
    Raises InputError (bad images or cameras), DA3MemoryError, Cancelled.
    """
    from ..models.da3 import DA3Nested, DA3Net
    from ..models.da3.config import METRIC_PRESETS
    from ..models.vggt.pose import unproject_depth

    if not isinstance(model, DA3Net | DA3Nested):
        raise InputError(f"{type(model).__name__} is not a Depth Anything 3 network.")
    nested = isinstance(model, DA3Nested)
    net = model.da3 if nested else model    # the any-view (or mono/metric) network
    if head_precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"head_precision must be 'auto', 'fp32' or 'bf16', not {head_precision!r}")
    images = list(images)
    x = _images_tensor(images)
    s, _, h, w = x.shape
    net_to_orig = np.stack([np.asarray(im.net_to_orig, dtype=np.float64) for im in images])
    K_known = None
    if intrinsics is not None:
        K_known = np.asarray(intrinsics, dtype=np.float64).reshape(-1, 3, 3)
        if K_known.shape[0] != s:
            raise InputError(f"{K_known.shape[0]} known intrinsics given for {s} images.")
        K_known = np.linalg.inv(net_to_orig) @ K_known
    if world2cam is not None:
        world2cam = np.asarray(world2cam, dtype=np.float64).reshape(-1, 4, 4)
        if world2cam.shape[0] != s:
            raise InputError(f"{world2cam.shape[0]} known camera poses given for {s} images.")
        if K_known is None:
            raise InputError("Known camera poses need known intrinsics too (Depth Anything 3 encodes both).")
        if net.cam_enc is None:
            raise InputError("This Depth Anything 3 model (monocular/metric) cannot take known camera poses; "
                             "use an any-view model (DA3-Small/Base/Large/Giant).")
    if not net.cfg.any_view and s > 1 and world2cam is None:
        raise InputError(f"The monocular/metric Depth Anything 3 model reconstructs one image at a time "
                         f"(got {s}); use an any-view model (DA3-Small/Base/Large/Giant) for several views.")

    device, precision = resolve_device_precision(device, precision)
    # Known poses fix the scale of a nested model's result: its metric network is not needed then.
    use_metric_net = nested and world2cam is None
    head_precision = prepare_model(net, device, precision, head_precision)
    if use_metric_net:
        prepare_model(model.da3_metric, device, precision, head_precision)
    t0 = time.perf_counter()
    depth_blocks = net.cfg.depth
    metric_blocks = model.da3_metric.cfg.depth if use_metric_net else 0
    total = depth_blocks + metric_blocks + 2

    def step(i: int) -> None:
        check_cancel(cancel)
        report(progress, "da3", i + 1, total, f"backbone block {i + 1}/{depth_blocks}")

    def metric_step(i: int) -> None:
        check_cancel(cancel)
        report(progress, "da3", depth_blocks + i + 1, total, f"metric network block {i + 1}/{metric_blocks}")

    check_cancel(cancel)
    report(progress, "da3", 0, total, f"{s} frames at {w}x{h}")
    norm_scale = 1.0
    w2c_net = None
    if world2cam is not None:
        w2c_net, norm_scale = normalize_world2cam(world2cam)
    maps = run_da3_frames(net, x, device, precision, w2c_net, K_known, frame_chunk, ref_strategy, step, cancel,
                          fused, descriptors)
    metric_maps = None
    if use_metric_net:
        metric_maps = run_da3_frames(model.da3_metric, x, device, precision, frame_chunk=frame_chunk,
                                     step=metric_step, cancel=cancel)
    report(progress, "da3", depth_blocks + metric_blocks + 1, total, "cameras and points")
    t_net = time.perf_counter()

    warnings: list[str] = []
    meta: dict = {}
    if "descriptors" in maps:
        meta["frame_descriptors"] = maps["descriptors"].astype(np.float32)
    meta["reference_view"] = int(maps["reference_view"])
    depth = maps["depth"].astype(np.float32)
    if net.cfg.any_view:
        conf = maps["depth_conf"].astype(np.float32)
    else:
        conf = (maps["sky"] <= SKY_THRESHOLD).astype(np.float32)
    if world2cam is not None:
        depth = depth * np.float32(norm_scale)
        w2c = world2cam
        cam2world = np.linalg.inv(w2c)
    elif net.cam_dec is not None:
        c2w_net = _homogeneous(maps["cam2world"])
        cam2world = np.linalg.inv(c2w_net[0]) @ c2w_net   # camera 0's frame
        cam2world[0] = np.eye(4)
        w2c = np.linalg.inv(cam2world)
    else:
        cam2world = np.tile(np.eye(4), (s, 1, 1))
        w2c = cam2world.copy()
    if K_known is not None:
        K_net = K_known
    elif "intrinsics" in maps:
        K_net = maps["intrinsics"]
    else:
        f = (w / 2) / math.tan(math.radians(DEFAULT_HFOV_DEG) / 2)
        K_net = np.tile(np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]]), (s, 1, 1))
        meta["assumed_fov_deg"] = DEFAULT_HFOV_DEG
        warnings.append(f"No intrinsics given: assumed a {DEFAULT_HFOV_DEG:g}-degree horizontal field of view.")
    name = str(getattr(model, "name", ""))
    metric = name in METRIC_PRESETS and not net.cfg.any_view
    if metric:
        focal = (K_net[:, 0, 0] + K_net[:, 1, 1]) / 2
        depth = depth * (focal[:, None, None] / METRIC_FOCAL_DIVISOR).astype(np.float32)
    if nested and metric_maps is None:
        warnings.append("Known camera poses set the scale, so the nested model's metric network was not used.")
    elif nested:
        depth, conf, scale = _align_nested(depth, conf, metric_maps, K_net)
        cam2world[:, :3, 3] *= scale
        w2c = np.linalg.inv(cam2world)
        metric = True
        meta["metric_scale_factor"] = scale

    out_points = []
    for i in range(s):
        pts = unproject_depth(depth[i:i + 1], w2c[i:i + 1, :3], K_net[i:i + 1])[0]
        out_points.append(pts.astype(np.float32))
    rec = Reconstruction.from_views(
        images, cam2world, K_net, list(depth), out_points, list(conf),
        family="da3",
        model=name,
        metric_scale=bool(metric),
        warnings=warnings,
        meta={**meta, "checkpoint_notes": list(getattr(model, "checkpoint_notes", [])), "device": str(device),
              "precision": precision, "head_precision": head_precision, "frame_chunk": frame_chunk,
              "fused": bool(fused and device.type == "cuda" and net.cfg.ffn == "mlp"),
              "known_intrinsics": intrinsics is not None, "known_poses": world2cam is not None,
              "camera_normalisation_scale": norm_scale, "seconds_network": round(t_net - t0, 3),
              "seconds_total": round(time.perf_counter() - t0, 3),
              "pixel_convention": "K_net is DA3's (cx=W/2, cy=H/2) with pixel centres at integers"},
    )
    rec.validate()
    report(progress, "da3", total, total, "done")
    return rec



def load_for_da3(inputs, options, input_size: int, progress=None, cancel=None):
    """`core.pipeline.reconstruct`'s load stage for DA3: an ImageSet at `options.image_size or input_size`.
    Known cameras (options.da3) must match the inputs one to one, so with them a bad image is an error."""
    from ..io.da3_images import load_images_da3

    known = options.da3.intrinsics is not None or options.da3.world2cam is not None
    images = load_images_da3(inputs, options.image_size or input_size, options.da3.method,
                             on_error="raise" if known else options.on_bad_image, progress=progress, cancel=cancel)
    return images


def run_da3_options(model, images, options, progress=None, cancel=None,
                    descriptors: bool = False, intrinsics=None) -> Reconstruction:
    """`core.pipeline.reconstruct`'s DA3 stage: `run_da3` with a `ReconstructOptions` (known focal length in
    mm -> known intrinsics with the principal point at the image centre, unless intrinsics are given).
    descriptors: as `run_da3`'s (the chunked path's loop closures). intrinsics: (S, 3, 3) known K of these
    images in original pixels, instead of `options.da3.intrinsics` (a chunk's share of a shot's lens)."""
    from ..priors import intrinsics_from_focal_mm

    ims = list(images)
    d = options.da3
    if intrinsics is None:
        intrinsics = d.intrinsics
    if intrinsics is None and options.known_focal_mm:
        intrinsics = intrinsics_from_focal_mm(ims, options.known_focal_mm, options.sensor_width_mm)
    return run_da3(model, ims, device=options.device, precision=options.precision, intrinsics=intrinsics,
                   world2cam=d.world2cam, ref_strategy=d.ref_strategy, fused=d.fused, descriptors=descriptors,
                   progress=progress, cancel=cancel)


def run_da3_chunked(model, images, options, chunk: int | None = None, overlap: int | None = None,
                    progress=None, cancel=None, loops: bool = True, intrinsics=None) -> Reconstruction:
    """A long shot through an any-view DA3 model in overlapping chunks (`vggt_chunked.run_reconstruction_chunked`:
    the same joiner as VGGT). Each chunk is one `run_da3_options` pass (a known focal in mm applies to
    every frame). chunk None: from free GPU memory (CUDA), else `vggt_chunked.CPU_CHUNK`. loops: loop
    closures found by retrieval on the backbone's pooled frame tokens, as for VGGT (`chunked.find_loop_chunks`).
    intrinsics: None or (N, 3, 3) known K per frame in original pixels (a shot's lens, from
    `ReconstructOptions.intrinsics`), each chunk given its frames' rows.

    Refused (UnsupportedOption): per-image known cameras (`options.da3.intrinsics` / `world2cam`, which
    number photos, not a shot's frames) and monocular / metric models (no cameras to join chunks by).
    """
    from .vggt_chunked import chunk_for_device, per_image_lookup, run_reconstruction_chunked

    check_da3_shot(model, options)
    images = list(images)
    if chunk is None:
        device, precision = resolve_device_precision(options.device, options.precision)
        model.to(device)   # the weights are resident before the free memory is measured
        h, w = images[0].true_shape
        per_frame = estimate_activation_bytes(2, h, w, model.cfg.embed_dim, model.cfg.patch_size, 1, 4,
                                              4 if precision == "fp32" else 2) // 2
        chunk = chunk_for_device(device, per_frame)
    known = per_image_lookup(images, intrinsics)
    rec = run_reconstruction_chunked(
        images, lambda ims, report_chunk: run_da3_options(model, ims, options, report_chunk, cancel, loops,
                                                          known(ims)),
        chunk, overlap, progress=progress, cancel=cancel, find_loops=loops)
    rec.family, rec.model = "da3", str(getattr(model, "name", ""))
    return rec


def check_da3_shot(model, options) -> None:
    """UnsupportedOption when a shot cannot run on this DA3 model with these options (see `run_da3_chunked`);
    called before any frame is decoded."""
    from ..errors import UnsupportedOption

    if options.da3.intrinsics is not None or options.da3.world2cam is not None:
        raise UnsupportedOption("Depth Anything 3 on a shot cannot take per-image known cameras (da3.intrinsics / "
                                "da3.world2cam) yet; give a known focal length (mm) instead, or leave them unset.")
    if not getattr(getattr(model, "cfg", None), "any_view", False) or getattr(model, "cam_dec", None) is None:
        raise UnsupportedOption("This Depth Anything 3 model (monocular / metric) predicts no cameras, so it cannot "
                                "solve a shot; use an any-view model (DA3-Small/Base/Large/Giant).")
