"""Which initialisation starts the refinement: averaging over all edges (default) or the spanning-tree chain.

Kept apart from `init` (the tree chain and the shared view groups) and `global_init` (averaging), which
imports `init`, so neither has to import the other back.
"""

from __future__ import annotations

import numpy as np
import torch

from .global_init import initialise_global
from .init import InitResult, ViewGroup, initialise_tree


def initialise(groups: list[ViewGroup], edges: np.ndarray, n: int, min_conf: float, pp: torch.Tensor,
               focal_group: torch.Tensor, n_focal: int, method: str = "average") -> InitResult:
    """Initial cameras, edge similarities and focals.

    method: "average" (default): rotation / scale / position averaging over all edges
    (`global_init.initialise_global`, no drift on long shots); "tree": the spanning-tree chain below.
    """
    if method == "tree":
        return initialise_tree(groups, edges, n, min_conf, pp, focal_group, n_focal)
    return initialise_global(groups, edges, n, min_conf, pp, focal_group, n_focal)
