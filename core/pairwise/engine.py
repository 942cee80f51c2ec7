"""Pair inference engine for DUSt3R / MASt3R: encode every image once, decode pairs in batches.

    engine = PairInference(model, device="cuda", precision="auto")
    enc = engine.encode(images)                  # images: list of (H, W, 3) uint8, or (N, 3, H, W) in [-1, 1]
    desc = engine.global_descriptors(enc)        # (N, C_enc) float32, unit norm (retrieval scene graph)
    preds = engine.run_pairs(enc, edges)         # core.predictions.PairPredictions

The encoder output of an image does not depend on its partner, so it is computed once per image and
reused by every pair (the reference re-encodes both views of every pair). Pairs whose two views have the
same shapes are decoded together in batches sized to the free GPU memory; on CUDA out-of-memory the
batch is halved and retried.

Outputs are written batch by batch straight into per-shape-group buffers (`predictions.PairStorage`), so
the aligner groups them without a copy and no batch tensor outlives its batch. Storage dtype: float16
when the network runs in bf16/fp16 (its outputs carry no more precision than that; half the bytes of
float32), float32 when it runs in fp32; on the compute device unless `out_device` says otherwise (e.g.
pinned host memory when the predictions would not fit on the GPU).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from ..devices import resolve_device_precision
from ..errors import CancelToken, PointmapError, check_cancel
from ..progress import ProgressFn, report
from .memory import ENCODE_BYTES_PER_PIXEL, cuda_free_bytes, pair_bytes_per_pixel
from .predictions import PairPredictions, PairStorage

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class EncodedImages:
    """Encoder output of every image, kept on the compute device.

    tokens[i]: (S_i, C_enc) tokens of image i after enc_norm, S_i = H_i/16 * W_i/16 (row-major patches).
    shapes[i]: (H_i, W_i) at network resolution.
    """

    tokens: list
    shapes: list

    def __len__(self) -> int:
        return len(self.tokens)


def _is_oom(err: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", RuntimeError)
    return isinstance(err, oom) or "out of memory" in str(err).lower()


class PairInference:
    """Runs a DUSt3R / MASt3R network (`core.models.build_model`) over many image pairs.

    device:    torch device (default: CUDA if available, else CPU); the model is moved there.
    precision: "auto" (bf16 on CUDA if supported, else fp16; fp32 on CPU), "fp32", "bf16" or "fp16".
               With bf16/fp16 the model's weights are cast to that dtype in place (half the memory) and
               the network runs in it natively (LayerNorm and softmax accumulate in float32 inside their
               kernels); the last head layer and all post-processing run in float32.
    max_batch: upper bound on pairs (and images) per batch; default 16 on CUDA, 1 on CPU.
    """

    def __init__(self, model: torch.nn.Module, device=None, precision: str = "auto", max_batch: int | None = None):
        self.device, self.precision = resolve_device_precision(device, precision)
        self.dtype = _DTYPES[self.precision]
        # On the CPU batching buys little throughput, and one pair per batch keeps Cancel responsive
        # (cancel is checked between batches; a full-size pair takes seconds there).
        self.max_batch = int(max_batch) if max_batch else (16 if self.device.type == "cuda" else 1)
        if self.max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        model = model.to(self.device, self.dtype).eval()
        if self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)  # DPT convs: cuDNN's fast layout
        self.model = model
        self._nonfinite = None   # (device bool) set by run_pairs, read by outputs_finite

    # -- helpers ----------------------------------------------------------------------------------

    def _memory_batch(self, pixels: int, per_pixel: int) -> int:
        """Largest batch whose estimated activations fit in ~60% of the free device memory (≤ max_batch)."""
        if self.device.type != "cuda":
            return self.max_batch

        free = cuda_free_bytes(self.device, headroom=0.4)
        return int(max(1, min(self.max_batch, free // max(1, pixels * per_pixel))))

    def _run_chunks(self, items: list, batch: int, fn, stage: str, progress, cancel, done: int, total: int) -> int:
        """Calls fn(chunk) over consecutive chunks of `items`, halving `batch` on CUDA OOM."""
        start = 0
        while start < len(items):
            check_cancel(cancel)
            chunk = items[start:start + batch]
            try:
                fn(chunk)
            except Exception as err:  # noqa: BLE001 - only OOM is handled, everything else re-raised
                if not _is_oom(err) or self.device.type != "cuda":
                    raise
                torch.cuda.empty_cache()
                if batch == 1:
                    raise PointmapError(
                        f"Out of GPU memory on {self.device} in stage '{stage}' even with a batch of one; "
                        "use smaller images or the CPU.") from err
                batch = max(1, batch // 2)
                continue
            start += len(chunk)
            done += len(chunk)
            report(progress, stage, done, total)
        return done

    def _images_to_device(self, images) -> list[torch.Tensor]:
        """Per image (3, H, W) float32 in [-1, 1] on the device; uint8 normalised as (u8/255 - 0.5)/0.5."""
        if isinstance(images, torch.Tensor):
            if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
                raise ValueError("a tensor of images must be (N, 3, H, W) float, normalised to [-1, 1]")
            return list(images.to(self.device, torch.float32).unbind(0))
        out = []
        for k, img in enumerate(images):
            t = torch.as_tensor(np.asarray(img)) if not isinstance(img, torch.Tensor) else img
            if t.is_floating_point() and t.ndim == 3 and t.shape[0] == 3:  # already normalised (3, H, W)
                out.append(t.to(self.device, torch.float32))
                continue
            if t.dtype != torch.uint8 or t.ndim != 3 or t.shape[2] != 3:
                raise ValueError(f"image {k}: expected an (H, W, 3) uint8 array, got {tuple(t.shape)} {t.dtype}")
            # The same float32 operations as ToTensor + Normalize(0.5, 0.5), hence bit-identical.
            t = t.to(self.device).permute(2, 0, 1).float().div(255).sub(0.5).div(0.5)
            out.append(t)
        return out

    # -- public API -------------------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, images, progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> EncodedImages:
        """Encode each image once. images: list of (H, W, 3) uint8 arrays or (3, H, W) float tensors in
        [-1, 1] (shapes may differ), or an (N, 3, H, W) float tensor in [-1, 1]; H and W multiples of 16."""
        imgs = self._images_to_device(images)
        for k, t in enumerate(imgs):
            try:
                self.model.grid(t.shape[-2:])
            except ValueError as err:
                raise PointmapError(f"Image {k}: {err}.") from err
        tokens: list = [None] * len(imgs)
        by_shape: OrderedDict = OrderedDict()
        for k, t in enumerate(imgs):
            by_shape.setdefault(tuple(t.shape[-2:]), []).append(k)

        def run(chunk):
            batch = torch.stack([imgs[k] for k in chunk]).to(self.dtype)
            if self.device.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            out = self.model.encode(batch)
            for k, tok in zip(chunk, out, strict=True):
                tokens[k] = tok

        done = 0
        report(progress, "encode", 0, max(1, len(imgs)))
        for shape, idx in by_shape.items():
            batch = self._memory_batch(shape[0] * shape[1], ENCODE_BYTES_PER_PIXEL)
            done = self._run_chunks(idx, batch, run, "encode", progress, cancel, done, len(imgs))
        return EncodedImages(tokens=tokens, shapes=[tuple(int(s) for s in t.shape[-2:]) for t in imgs])

    @torch.inference_mode()
    def global_descriptors(self, encoded: EncodedImages) -> torch.Tensor:
        """(N, C_enc) float32 unit-norm image descriptors: mean of each image's encoder tokens."""
        pooled = torch.stack([t.float().mean(dim=0) for t in encoded.tokens])
        return torch.nn.functional.normalize(pooled, dim=-1)

    @property
    def storage_dtype(self) -> torch.dtype:
        """dtype `run_pairs` stores predictions in by default (float16 unless the network runs in fp32)."""
        return torch.float32 if self.dtype == torch.float32 else torch.float16

    def outputs_finite(self) -> bool:
        """False when the last `run_pairs` produced a NaN / infinite pointmap or confidence (broken
        weights); checked on the network's float32 outputs, before storage clamps them."""
        return self._nonfinite is None or not bool(self._nonfinite)

    def run_pairs(self, encoded: EncodedImages, edges, progress: ProgressFn | None = None,
                  cancel: CancelToken | None = None, out_device=None, out_dtype=None) -> PairPredictions:
        """Decode every directed edge (i, j) → PairPredictions (view i's and view j's pointmaps in i's frame).

        edges: (E, 2) integer array-like. out_device: where the outputs are stored (default: the compute
        device; host storage is pinned when CUDA is available). out_dtype: storage dtype (default
        `storage_dtype`). Pointmaps / confidences are views into one `PairStorage` buffer per image shape.
        """
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        n = len(encoded)
        if len(edges) and (edges.min() < 0 or edges.max() >= n):
            raise ValueError(f"edge indices must lie in [0, {n}), got {edges.min()}..{edges.max()}")
        out_device = torch.device(out_device) if out_device is not None else self.device
        out_dtype = out_dtype or self.storage_dtype
        model = self.model
        mast3r = model.desc_dim is not None
        # Allocated outside inference mode: the aligner differentiates through views of these buffers,
        # which inference tensors forbid (in-place writes from inference mode are allowed).
        store = PairStorage(edges, encoded.shapes, out_dtype, out_device,
                            pin_memory=out_device.type == "cpu" and self.device.type == "cuda")
        desc_fields = ["desc_i", "desc_j", "desc_conf_i", "desc_conf_j"] if mast3r else []
        out = {f: [None] * len(edges) for f in desc_fields}
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        groups: OrderedDict = OrderedDict()
        for e, (i, j) in enumerate(edges):
            groups.setdefault((encoded.shapes[i], encoded.shapes[j]), []).append(e)

        def run(chunk):
            i_idx, j_idx = edges[chunk, 0], edges[chunk, 1]
            size1, size2 = encoded.shapes[i_idx[0]], encoded.shapes[j_idx[0]]
            f1 = torch.stack([encoded.tokens[i] for i in i_idx])
            f2 = torch.stack([encoded.tokens[j] for j in j_idx])
            dec1, dec2 = model.decode(f1, model.grid(size1), f2, model.grid(size2))
            res1, res2 = model.predict(dec1, size1, dec2, size2, fp32_last=self.dtype != torch.float32)
            for r in (res1, res2):   # one flag on the device: no host sync per batch
                self._nonfinite |= ~(torch.isfinite(r["pts3d"]).all() & torch.isfinite(r["conf"]).all())
            store.write("i", chunk, res1["pts3d"], res1["conf"], non_blocking=True)
            store.write("j", chunk, res2["pts3d"], res2["conf"], non_blocking=True)
            if mast3r:
                pairs = dict(desc_i=res1["desc"], desc_j=res2["desc"],
                             desc_conf_i=res1["desc_conf"], desc_conf_j=res2["desc_conf"])
                for f, t in pairs.items():
                    t = t.to(out_device, out_dtype)
                    for b, e in enumerate(chunk):
                        out[f][e] = t[b]

        total = max(1, len(edges))
        report(progress, "pairs", 0, total)
        done = 0
        with torch.inference_mode():
            for (s1, s2), idx in groups.items():
                batch = self._memory_batch((s1[0] * s1[1] + s2[0] * s2[1]) // 2, pair_bytes_per_pixel(self.dtype))
                done = self._run_chunks(idx, batch, run, "pairs", progress, cancel, done, total)
        store.synchronize()
        return PairPredictions(edges, list(store.shapes), store, **{f: out[f] for f in desc_fields})


def infer_pairs(model: torch.nn.Module, images, edges, progress: ProgressFn | None = None,
                cancel: CancelToken | None = None, **kwargs) -> PairPredictions:
    """One-call form: PairInference(model, **kwargs).encode(images) then run_pairs(edges)."""
    engine = PairInference(model, **kwargs)
    encoded = engine.encode(images, progress=progress, cancel=cancel)
    return engine.run_pairs(encoded, edges, progress=progress, cancel=cancel)
