"""`PairPredictions`: what the pairwise networks (DUSt3R / MASt3R) say about each directed pair.

Edge e = (i, j) yields two *observations*: view i's pointmap and view j's pointmap, *both in camera
i's frame* (OpenCV axes), each pixel at network resolution of its own view. Confidences are the
networks' `1 + exp(x)` (>= 1).

Storage: `PairStorage` holds one (M, H, W, 3) pointmap and one (M, H, W) confidence buffer per image
shape (float16 by default), rows in `observation_rows` order. These buffers *are* the predictions: the
inference engine writes into them batch by batch and the aligner groups them without a copy; the
per-edge accessors (`pts_i[e]`, ...) are views of one row. The buffers may live in (pinned) host
memory while the alignment runs on the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import PointmapError


def observation_rows(edges: np.ndarray, shapes) -> dict:
    """{(H, W): [(edge, view, own), ...]}: the buffer rows of each image shape (shapes sorted; per shape
    first every edge's first view, then every edge's second view, by edge index)."""
    out = {}
    for shape in sorted(set(shapes)):
        rows = [(e, int(i), True) for e, (i, _) in enumerate(edges) if shapes[i] == shape]
        rows += [(e, int(j), False) for e, (_, j) in enumerate(edges) if shapes[j] == shape]
        if rows:
            out[shape] = rows
    return out


def pinned_empty(*size: int, dtype) -> torch.Tensor:
    """An uninitialised host tensor, page-locked for fast asynchronous copies to and from the GPU.

    Ordinary host memory registered with CUDA (unregistered when the tensor is collected), not torch's
    pinned-memory cache: that rounds each block up to a power of two and keeps it after use, so the
    23 GiB pointmap buffer of a 1,000-frame shot would pin 32 GiB, and a 3,000-frame shot's 69 GiB would
    pin 128 GiB. Where registering fails the tensor stays pageable (copies are then synchronous).
    """
    import weakref

    t = torch.empty(*size, dtype=dtype)
    nbytes = t.numel() * t.element_size()
    if nbytes == 0 or not torch.cuda.is_available():
        return t
    cudart = torch.cuda.cudart()
    if int(cudart.cudaHostRegister(t.data_ptr(), nbytes, 0)) != 0:
        _clear_cuda_error()
        return t
    weakref.finalize(t, _unregister, t.data_ptr())
    return t


def _unregister(ptr: int) -> None:
    """Unpin host memory once no copy into or out of it can still be running (a cancelled run may
    drop its buffers with asynchronous copies in flight)."""
    torch.cuda.synchronize()
    torch.cuda.cudart().cudaHostUnregister(ptr)


def _clear_cuda_error() -> None:
    """Reset the CUDA runtime's last error after a failed call whose failure is handled (otherwise torch's
    next kernel-launch check would report it); best effort through the runtime torch has loaded."""
    import ctypes

    for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so"):
        try:
            ctypes.CDLL(name).cudaGetLastError()
            return
        except (OSError, AttributeError):
            continue


class PairStorage:
    """Per-image-shape buffers of pair predictions (see the module doc).

    buffers[(H, W)] = (pts (M, H, W, 3), conf (M, H, W)) in `dtype` on `device`; row_i[e] / row_j[e]: the
    row of edge e's first / second view in the buffers of that view's shape. `pin_memory` pins host
    buffers so copies to and from the GPU run at full speed (only when CUDA is available).
    """

    def __init__(self, edges, shapes, dtype=None, device="cpu", pin_memory: bool = False):
        self.edges = np.asarray(edges, np.int64).reshape(-1, 2)
        self.shapes = [tuple(int(x) for x in s) for s in shapes]
        n = len(self.shapes)
        bad = np.flatnonzero(((self.edges < 0) | (self.edges >= n)).any(axis=1))
        if len(bad):
            e = int(bad[0])
            raise PointmapError(f"Pair predictions: edge {e} {tuple(self.edges[e])} refers to an image beyond "
                                f"the {n} that exist.")
        self.dtype = dtype or torch.float16
        self.device = torch.device(device)
        pin = pin_memory and self.device.type == "cpu" and torch.cuda.is_available()
        self.row_i = np.zeros(len(self.edges), np.int64)
        self.row_j = np.zeros(len(self.edges), np.int64)
        self.buffers: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self._pending = False   # asynchronous GPU -> pinned host copies not yet waited for
        for shape, rows in observation_rows(self.edges, self.shapes).items():
            for r, (e, _, own) in enumerate(rows):
                (self.row_i if own else self.row_j)[e] = r
            m = len(rows)
            alloc = pinned_empty if pin else (lambda *size, dtype: torch.empty(*size, dtype=dtype, device=self.device))
            self.buffers[shape] = (alloc(m, *shape, 3, dtype=self.dtype), alloc(m, *shape, dtype=self.dtype))

    @property
    def nbytes(self) -> int:
        return sum(p.numel() * p.element_size() + c.numel() * c.element_size() for p, c in self.buffers.values())

    def write(self, side: str, edge_ids, pts: torch.Tensor, conf: torch.Tensor, non_blocking: bool = False) -> None:
        """Store a batch: side "i" or "j"; edge_ids (B,) edges whose `side` views share one shape;
        pts (B, H, W, 3), conf (B, H, W) (any float dtype / device; values beyond the storage dtype's
        range are clamped so a float16 store never turns a large value into infinity).
        non_blocking: a batch on the GPU going to pinned host buffers is copied asynchronously; the
        caller must then call `synchronize` before anything reads the buffers on the host."""
        edge_ids = np.asarray(edge_ids, np.int64)
        k = self.edges[edge_ids[0], 0 if side == "i" else 1]
        buf_p, buf_c = self.buffers[self.shapes[k]]
        rows = (self.row_i if side == "i" else self.row_j)[edge_ids]
        lim = torch.finfo(self.dtype).max
        # Clamp and cast where the batch is (on the GPU: half the bytes cross to host storage).
        pts = pts.clamp(-lim, lim).to(self.dtype)
        conf = conf.clamp(-lim, lim).to(self.dtype)
        r0 = int(rows[0])
        if np.array_equal(rows, np.arange(r0, r0 + len(rows))):
            # Consecutive rows (the engine's batches): one direct copy per field; into pinned host memory
            # from the GPU it is an asynchronous DMA (`synchronize` before the host reads the buffers).
            async_copy = non_blocking and buf_p.is_pinned() and pts.device.type == "cuda"
            buf_p[r0:r0 + len(rows)].copy_(pts, non_blocking=async_copy)
            buf_c[r0:r0 + len(rows)].copy_(conf, non_blocking=async_copy)
            self._pending |= async_copy
            return
        idx = torch.as_tensor(rows, device=buf_p.device)
        buf_p.index_copy_(0, idx, pts.to(buf_p.device))
        buf_c.index_copy_(0, idx, conf.to(buf_c.device))

    def synchronize(self) -> None:
        """Wait for asynchronous copies into pinned host buffers (`write`) before the host reads them."""
        if self._pending:
            torch.cuda.synchronize()
            self._pending = False

    def row(self, side: str, e: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Edge e's `side` ("i" / "j") observation: views (H, W, 3) and (H, W) of its buffer row."""
        k = self.edges[e, 0 if side == "i" else 1]
        p, c = self.buffers[self.shapes[k]]
        r = (self.row_i if side == "i" else self.row_j)[e]
        return p[r], c[r]


class EdgeRows(Sequence):
    """Read-only per-edge access to one field of a `PairStorage`: `rows[e]` is a view, never a copy."""

    def __init__(self, storage: PairStorage, side: str, conf: bool):
        self._storage, self._side, self._conf = storage, side, int(conf)

    def __len__(self) -> int:
        return len(self._storage.edges)

    def __getitem__(self, e):
        if isinstance(e, slice):
            return [self[k] for k in range(*e.indices(len(self)))]
        if not -len(self) <= e < len(self):
            raise IndexError(e)
        return self._storage.row(self._side, e % len(self))[self._conf]


@dataclass
class PairPredictions:
    """The predictions of every directed edge, in `storage`'s per-shape buffers.

    edges (E, 2) int64 directed (i, j); image_shapes: per image (H, W) at network resolution. MASt3R also
    gives per-edge descriptors desc_i[e] (H_i, W_i, D) unit-norm and desc_conf_i[e] (H_i, W_i) (and _j).
    """

    edges: np.ndarray
    image_shapes: list[tuple[int, int]]
    storage: PairStorage
    desc_i: list | None = None
    desc_j: list | None = None
    desc_conf_i: list | None = None
    desc_conf_j: list | None = None

    @classmethod
    def from_tensors(cls, edges, image_shapes, pts_i, pts_j, conf_i, conf_j, dtype=None, device=None,
                     pin_memory: bool = False, **desc) -> PairPredictions:
        """Copy per-edge tensors (pts_i[e] (H_i, W_i, 3), conf_i[e] (H_i, W_i), likewise _j) into storage;
        dtype / device default to those of pts_i[0]."""
        dtype = dtype or pts_i[0].dtype
        device = device if device is not None else pts_i[0].device
        store = PairStorage(edges, image_shapes, dtype, device, pin_memory)
        for e in range(len(store.edges)):
            store.write("i", [e], pts_i[e][None], conf_i[e][None])
            store.write("j", [e], pts_j[e][None], conf_j[e][None])
        return cls(store.edges, list(store.shapes), store, **desc)

    def converted(self, dtype=None, device=None, pin_memory: bool = False) -> PairPredictions:
        """A copy in another storage dtype (default float16) / device (default the same)."""
        return PairPredictions.from_tensors(
            self.edges, self.image_shapes, self.pts_i, self.pts_j, self.conf_i, self.conf_j,
            dtype or torch.float16, device if device is not None else self.storage.device, pin_memory,
            desc_i=self.desc_i, desc_j=self.desc_j, desc_conf_i=self.desc_conf_i, desc_conf_j=self.desc_conf_j)

    @property
    def pts_i(self) -> EdgeRows:
        return EdgeRows(self.storage, "i", conf=False)

    @property
    def pts_j(self) -> EdgeRows:
        return EdgeRows(self.storage, "j", conf=False)

    @property
    def conf_i(self) -> EdgeRows:
        return EdgeRows(self.storage, "i", conf=True)

    @property
    def conf_j(self) -> EdgeRows:
        return EdgeRows(self.storage, "j", conf=True)

    @property
    def n_images(self) -> int:
        return len(self.image_shapes)

    @property
    def n_edges(self) -> int:
        return int(len(self.edges))
