"""VGGT single-pass backend: preprocessed images -> `Reconstruction`.

Conventions of the result (see core/reconstruction.py):
* cam2world[i] is the inverse of VGGT's camera-from-world extrinsic, re-expressed so camera 0 is
  exactly the identity (VGGT is trained to put the world at camera 0, but nothing enforces it).
* Pixel convention: VGGT's unprojection uses integer pixel indices (u = column, v = row) with
  principal point (W/2, H/2). Our convention puts pixel (u, v)'s centre at (u, v), so VGGT's K is
  our K_net unchanged; its principal point lies half a pixel right of/below the geometric image
  centre ((W−1)/2, (H−1)/2), which is what the network's depth-to-ray relation assumes. Depth-based
  points are unprojected with exactly this K_net, so they reproject onto their own pixel centres.
  K = net_to_orig @ K_net undoes the resize/crop/pad of preprocessing.
* points="depth" (default, recommended by the VGGT authors): world points from the depth head and
  the cameras, with the depth confidence. points="head": the point head's world points (moved into
  camera 0's frame) with their own confidence. Padding pixels (pad mode) get confidence 0.

Memory/speed: the aggregator runs in bf16 on GPUs that support it (its weights are cast in place,
so the residual stream, attention and MLPs all stay in bf16, no float32 round trips); fp16 GPUs use
fp16 autocast; CPU runs float32. The camera head always runs in float32; the DPT heads run with bf16
weights in CUDA bf16 mode (head_precision="auto"; ~1.6x faster, relative error vs float32 heads on the
same tokens about 1e-2, see bench/sections_vggt.py) and float32 otherwise (convolutions may use TF32
on GPU). `fused=True` runs each transformer block's non-attention work as torch.compile'd fused
kernels (models/vggt/blocks.py); it compiles once (~1 min) per process and pays for repeated or long
runs only, so it is opt-in. Only the aggregator layers the heads read are kept, in the aggregator's dtype, and the DPT
heads run `frame_chunk` frames at a time, their outputs moved to host memory chunk by chunk. On
CUDA the activation memory is estimated first and `VGGTMemoryError` is raised when it cannot fit
(no silent chunked fallback: overlapping chunks aligned by a similarity would change the result).
"""

from __future__ import annotations

import time

import numpy as np

from ..devices import resolve_device_precision
from ..errors import InputError, PointmapError, check_cancel
from ..pairwise.memory import cuda_free_bytes
from ..progress import report
from ..reconstruction import Reconstruction


class VGGTMemoryError(PointmapError):
    """The requested frames cannot fit in the device memory."""


def estimate_activation_bytes(n_frames: int, height: int, width: int, embed_dim: int = 1024,
                              patch: int = 14, n_special: int = 5, n_kept: int = 4, act_bytes: int = 2,
                              frame_chunk: int = 8) -> int:
    """Rough peak activation memory (bytes) of one VGGT forward, weights excluded.

    Aggregator: kept layers (n_kept x 2C per token) plus ~14 C-sized working tensors per token
    (residual, norm, qkv, q/k after norm and RoPE, attention out, 4C MLP hidden and its GELU).
    DPT head: ~600 float32 values per output pixel per frame of a chunk (fusion features at half
    resolution, 128-channel full-resolution maps) -- measured on the 1B model.
    """
    tokens = n_frames * (n_special + (height // patch) * (width // patch))
    aggregator = tokens * embed_dim * act_bytes * (2 * n_kept + 14)
    heads = min(frame_chunk, n_frames) * height * width * 4 * 600
    outputs = n_frames * height * width * 4 * 8
    return int(aggregator + heads + outputs)


def check_fits(device, need: int, what: str, error: type[PointmapError]) -> None:
    """Raise `error` when `need` bytes exceed the free memory of a CUDA `device` (no check elsewhere)."""
    import torch

    if device.type != "cuda":
        return
    free = cuda_free_bytes(device, headroom=0.0)
    if need > free:
        gib = 1024 ** 3
        raise error(f"{what} needs about {need / gib:.1f} GiB of GPU memory but only {free / gib:.1f} GiB are "
                    f"free on {torch.cuda.get_device_name(device)}; use fewer frames (or a lower precision).")


def _check_memory(device, n_frames, h, w, model, precision, frame_chunk) -> None:
    if device.type != "cuda":
        return
    need = estimate_activation_bytes(n_frames, h, w, model.config["embed_dim"], model.aggregator.patch_size,
                                     model.aggregator.patch_start_idx, len(model.head_layers),
                                     4 if precision == "fp32" else 2, frame_chunk)
    check_fits(device, need, f"VGGT on {n_frames} frames of {w}x{h}", VGGTMemoryError)


# SDPA kernel choices of `fast_attention`: "cudnn" prefers cuDNN, then flash, memory-efficient, math;
# "flash" / "efficient" / "cudnn-only" allow that one kernel only (an ineligible shape raises instead of
# silently falling back, which is what a measurement wants); "default" leaves torch's own priority.
SDPA_CHOICES = ("cudnn", "flash", "efficient", "cudnn-only", "default")


def fast_attention(device, backend: str = "cudnn"):
    """Context choosing the SDPA kernels on CUDA (`SDPA_CHOICES`; "cudnn": cuDNN attention first, the
    fastest kernel for VGGT's 200k-token global attention on H100/H200); a no-op elsewhere or on older torch."""
    import contextlib

    if backend not in SDPA_CHOICES:
        raise ValueError(f"unknown SDPA backend {backend!r}; choose one of {', '.join(SDPA_CHOICES)}")
    if getattr(device, "type", device) != "cuda" or backend == "default":
        return contextlib.nullcontext()
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        if backend != "cudnn":
            only = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                    "cudnn-only": SDPBackend.CUDNN_ATTENTION}[backend]
            return sdpa_kernel([only])
        order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                 SDPBackend.MATH]
        return keeping_sdpa_priority(sdpa_kernel(order, set_priority=True))
    except (ImportError, TypeError, AttributeError):
        return contextlib.nullcontext()


def keeping_sdpa_priority(inner):
    """`inner` (an sdpa_kernel context), with torch's global SDPA priority order put back exactly as it was
    on exit. On the GPU machine (torch 2.11) a reference benchmarked after our runs once found cuDNN first:
    an order set for us must not decide another add-on's (or a benchmarked reference's) attention later."""
    import contextlib

    import torch

    get = getattr(torch._C, "_get_sdp_priority_order", None)
    put = getattr(torch._C, "_set_sdp_priority_order", None)
    if get is None or put is None:
        return inner

    @contextlib.contextmanager
    def keep():
        before = list(get())
        try:
            with inner:
                yield
        finally:
            put(before)

    return keep()


def check_common_shape(images, label: str, patch: int, loader: str) -> tuple[int, int]:
    """(H, W) shared by all `images` (LoadedImages), a multiple of `patch`; else InputError naming them.
    label: the model in messages ("VGGT"); loader: the function that prepares images for it."""
    if len(images) == 0:
        raise InputError(f"{label} needs at least one image.")
    first_of_shape: dict = {}
    for im in images:
        first_of_shape.setdefault(im.true_shape, im.name)
    if len(first_of_shape) != 1:
        raise InputError(f"{label} needs all images at one size after preprocessing; got "
                         + ", ".join(f"{w}x{h} ({name})" for (h, w), name in sorted(first_of_shape.items())) + ".")
    h, w = next(iter(first_of_shape))
    if h % patch or w % patch:
        raise InputError(f"{label} needs image sizes in multiples of {patch} pixels; got {w}x{h} "
                         f"(load the photos with {loader}).")
    return h, w


def _images_tensor(images):
    from ..io.images import VGGT_PATCH, to_tensor_vggt

    check_common_shape(images, "VGGT", VGGT_PATCH, "core.images.load_images_vggt")
    return to_tensor_vggt(list(images))


def _camera_matrices(pose_enc, h: int, w: int):
    """VGGT's cameras as float64 numpy: world2cam (S, 4, 4) in VGGT's world frame, cam2world (S, 4, 4)
    re-expressed in camera 0's frame (camera 0 exactly the identity), and K_net (S, 3, 3)."""
    from ..models.vggt.pose import pose_encoding_to_extri_intri

    extrinsic, intrinsic = pose_encoding_to_extri_intri(pose_enc.float(), (h, w))
    s = extrinsic.shape[0]
    world2cam = np.tile(np.eye(4), (s, 1, 1))
    world2cam[:, :3, :4] = extrinsic.double().cpu().numpy()
    r, t = world2cam[:, :3, :3], world2cam[:, :3, 3]
    cam2world = np.tile(np.eye(4), (s, 1, 1))
    cam2world[:, :3, :3] = np.transpose(r, (0, 2, 1))
    cam2world[:, :3, 3] = -np.einsum("sji,sj->si", r, t)
    cam2world = world2cam[0] @ cam2world
    cam2world[0] = np.eye(4)
    return world2cam, cam2world, intrinsic.double().cpu().numpy()


def run_vggt(model, images, device=None, precision: str = "auto", points: str = "depth", frame_chunk: int = 8,
             progress=None, cancel=None, fused: bool = False,
             head_precision: str = "auto", finish_later: bool = False, descriptors: bool = False,
             intrinsics=None):
    """Reconstruct `images` (list of core.images.LoadedImage / ImageSet, one shape) with a VGGT model.

    model:      a `pointmap.core.models.vggt.VGGT` (moved to `device`; in bf16 mode its aggregator is
                cast to bf16 in place, and on CUDA its DPT heads too unless head_precision="fp32").
    device:     None = CUDA if available, else CPU.
    precision:  "auto" (bf16 on bf16-capable CUDA, fp16 autocast on older CUDA, fp32 on CPU), "fp32",
                "bf16", "fp16".
    points:     "depth" (unproject the depth head with the cameras) or "head" (the point head).
    frame_chunk: frames per DPT-head chunk.
    fused:      run every transformer block's non-attention work (norms, GEMM epilogues, qk-norm, RoPE,
                GELU, LayerScale, residuals) as torch.compile'd fused kernels (CUDA only; compiled once
                per process with dynamic shapes, ~1 min). Off by default.
    head_precision: "auto" (DPT heads in bf16 on CUDA when `precision` resolves to bf16, else float32), "fp32"
                or "bf16". The camera head is always float32.
    finish_later: return a zero-argument callable that does the CPU-side rest (unprojection, the
                `Reconstruction`) instead of the result, so a chunked run can do it on a worker thread
                while the GPU runs the next chunk (`chunked.run_chunked`); same result.
    descriptors: also put per-frame retrieval descriptors in `meta["frame_descriptors"]` ((S, C) float32
                unit rows: the mean of each frame's patch tokens after the first head layer's frame
                attention; the chunked runner pops them to find loop closures).
    intrinsics: None or (S, 3, 3) known K in original pixels: the result's cameras keep them and the depth
                is unprojected with them (points="depth" only); poses and depth stay the network's.
    Returns a `Reconstruction` (or the callable giving it).
    Raises InputError (bad images), VGGTMemoryError (does not fit), Cancelled.
    """
    import torch

    from ..models.vggt.blocks import set_fused

    if head_precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"head_precision must be 'auto', 'fp32' or 'bf16', not {head_precision!r}")
    if points not in ("depth", "head"):
        raise ValueError(f"points must be 'depth' or 'head', not {points!r}")
    images = list(images)
    x = _images_tensor(images)
    device, precision = resolve_device_precision(device, precision)
    s, _, h, w = x.shape
    K_known = None
    if intrinsics is not None:
        from ..priors import intrinsics_in_network_pixels

        if points != "depth":
            raise ValueError("known intrinsics are used to unproject depth: they need points='depth'")
        K_orig = np.asarray(intrinsics, dtype=np.float64).reshape(-1, 3, 3)
        if len(K_orig) != s:
            raise InputError(f"{len(K_orig)} known intrinsics given for {s} images.")
        K_known = intrinsics_in_network_pixels(images, K_orig)
    t0 = time.perf_counter()

    model.eval()
    model.to(device)
    model.aggregator.to(torch.bfloat16 if precision == "bf16" else torch.float32)
    if head_precision == "auto":
        head_precision = "bf16" if precision == "bf16" and device.type == "cuda" else "fp32"
    model.camera_head.float()
    for head in (model.depth_head, model.point_head):
        head.to(torch.bfloat16 if head_precision == "bf16" else torch.float32)
    _check_memory(device, s, h, w, model, precision, frame_chunk)

    n_chunks = -(-s // frame_chunk)
    depth_layers = model.aggregator.depth
    total = depth_layers + 1 + n_chunks * (2 if points == "head" else 1)

    def step(i: int) -> None:
        check_cancel(cancel)
        report(progress, "vggt", i + 1, total, f"aggregator layer {i + 1}/{depth_layers}")

    check_cancel(cancel)
    report(progress, "vggt", 0, total, f"{s} frames at {w}x{h}")
    with torch.inference_mode():
        x = x.to(device)[None]
        set_fused(model.aggregator, fused and device.type == "cuda")
        try:
            with torch.autocast(device.type, dtype=torch.float16, enabled=precision == "fp16"), \
                    fast_attention(device):
                layers = model.aggregator(x, keep=model.head_layers, step=step)
        finally:
            set_fused(model.aggregator, False)
        t_agg = time.perf_counter()
        desc = None
        if descriptors:
            tok = layers[model.head_layers[0]][0, :, model.aggregator.patch_start_idx:]
            tok = tok[..., : tok.shape[-1] // 2].float().mean(1)          # frame-attention half, (S, C)
            desc = torch.nn.functional.normalize(tok, dim=-1).cpu().numpy()
        pose_enc = model.camera_head(layers[-1].float())[-1][0]
        done = depth_layers + 1
        report(progress, "vggt", done, total, "cameras")
        start_idx = model.aggregator.patch_start_idx
        heads = [("depth", model.depth_head)] + ([("points", model.point_head)] if points == "head" else [])
        maps = {}
        for name, head in heads:
            preds, confs = [], []
            for a in range(0, s, frame_chunk):
                check_cancel(cancel)
                p, c = head.forward_frames(layers, h, w, start_idx, a, min(s, a + frame_chunk))
                preds.append(p[0].float().cpu())
                confs.append(c[0].float().cpu())
                done += 1
                report(progress, "vggt", done, total, f"{name} frames {a + 1}-{min(s, a + frame_chunk)}")
            maps[name] = (torch.cat(preds).numpy(), torch.cat(confs).numpy())
        del layers
    t_heads = time.perf_counter()

    world2cam, cam2world, K_net = _camera_matrices(pose_enc, h, w)
    if K_known is not None:
        K_net = K_known
    run = {"device": str(device), "precision": precision, "head_precision": head_precision,
           "fused": bool(fused and device.type == "cuda"), "frame_chunk": frame_chunk, "t0": t0, "t_agg": t_agg,
           "t_heads": t_heads, "descriptors": desc, "known_intrinsics": K_known is not None}

    def finish() -> Reconstruction:
        return _finish(images, model, maps, world2cam, cam2world, K_net, points, progress, total, run)

    return finish if finish_later else finish()


def _finish(images, model, maps, world2cam, cam2world, K_net, points, progress, total, run: dict) -> Reconstruction:
    """The CPU side of `run_vggt`: per-view points (unprojected depth or the point head's, in camera 0's
    frame), confidences (0 on padding) and the `Reconstruction`. run: device / precision facts and times."""
    from ..models.vggt.pose import unproject_depth

    s = len(images)
    depth, depth_conf = maps["depth"]
    out_points, out_conf = [], []
    for i in range(s):  # view by view: float64 points of every view at once would take GBs at 200 frames
        if points == "depth":
            pts, conf = unproject_depth(depth[i:i + 1], world2cam[i:i + 1, :3], K_net[i:i + 1])[0], depth_conf[i]
        else:
            pts, conf = maps["points"][0][i].astype(np.float64), maps["points"][1][i]
        pts = pts @ world2cam[0, :3, :3].T + world2cam[0, :3, 3]  # VGGT's world frame -> camera 0's
        conf = np.array(conf, dtype=np.float32)
        if images[i].pad_mask is not None:
            conf[images[i].pad_mask] = 0.0
        out_points.append(pts.astype(np.float32))
        out_conf.append(conf)

    rec = Reconstruction.from_views(
        images, cam2world, K_net, [depth[i, ..., 0] for i in range(s)], out_points, out_conf,
        family="vggt",
        model=str(getattr(model, "name", "")),
        meta={"checkpoint_notes": list(getattr(model, "checkpoint_notes", [])),
              "device": run["device"], "precision": run["precision"], "head_precision": run["head_precision"],
              "fused": run["fused"], "points": points, "frame_chunk": run["frame_chunk"],
              "known_intrinsics": run["known_intrinsics"],
              "seconds_aggregator": round(run["t_agg"] - run["t0"], 3),
              "seconds_heads": round(run["t_heads"] - run["t_agg"], 3),
              "seconds_total": round(time.perf_counter() - run["t0"], 3), "pixel_convention":
              "K_net is VGGT's (cx=W/2, cy=H/2) with pixel centres at integers"},
    )
    if run.get("descriptors") is not None:
        rec.meta["frame_descriptors"] = run["descriptors"]
    rec.validate()
    report(progress, "vggt", total, total, "done")
    return rec
