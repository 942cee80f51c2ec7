"""`PairPredictions`: what the pairwise networks (DUSt3R / MASt3R) say about each directed pair.

Edge e = (i, j): `pts_i[e]` is view i's pointmap and `pts_j[e]` view j's pointmap, *both in camera
i's frame* (OpenCV axes), each pixel at network resolution of its own view. Confidences are the
networks' `1 + exp(x)` (>= 1). Tensors may live on any device; lists allow views of different shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PairPredictions:
    edges: np.ndarray                      # (E, 2) int64, directed (i, j)
    image_shapes: list[tuple[int, int]]    # per image (H, W) at network resolution
    pts_i: list                            # E x Tensor (H_i, W_i, 3)
    pts_j: list                            # E x Tensor (H_j, W_j, 3)
    conf_i: list                           # E x Tensor (H_i, W_i)
    conf_j: list                           # E x Tensor (H_j, W_j)
    desc_i: list | None = None             # E x Tensor (H_i, W_i, D), unit-norm (MASt3R only)
    desc_j: list | None = None
    desc_conf_i: list | None = None        # E x Tensor (H_i, W_i) (MASt3R only)
    desc_conf_j: list | None = None

    @property
    def n_images(self) -> int:
        return len(self.image_shapes)

    @property
    def n_edges(self) -> int:
        return int(len(self.edges))
