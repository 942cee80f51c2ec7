"""Step budget and learning-rate schedule of the alignment refinement (pure Python, no torch).

The refinement runs two stages, coarse (few sampled pixels, large steps) then fine (more pixels, small
steps); each decays its own step size on a cosine. An early stop in the coarse stage moves on to the fine
one, whose small steps anneal the estimate, so stopping never leaves a large-step jitter.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..options import AlignOptions


def auto_steps(opt: AlignOptions, n: int) -> AlignOptions:
    """`opt` with the default step budget filled in for `n` views.

    The averaging initialisation (`global_init`) starts long shots and loops without drift, so the
    budget no longer grows with the number of views (the tree chain it replaced left a smooth error
    that Adam, one graph hop per step, needed ~4 steps per view to spread): 200 steps with the early
    stop for every N. On shots the refinement mostly polishes positions and depths; the rotations are
    already at the drift floor after the initialisation.
    """
    if opt.iterations is not None:
        return opt
    return dataclasses.replace(opt, iterations=200)


@dataclass(frozen=True)
class Stage:
    """One refinement stage: `iterations` steps on `samples` pixels per observation, lr from hi to lo."""

    name: str
    iterations: int
    samples: int
    lr_hi: float
    lr_lo: float


def stages(opt: AlignOptions) -> list[Stage]:
    """The coarse and fine stages of `opt` (iterations already filled in); a stage may have 0 steps."""
    total = max(int(opt.iterations), 1)
    n_fine = int(round(total * opt.fine_fraction)) if opt.fine_fraction > 0 else 0
    lr_mid = opt.lr * max(opt.lr_final_factor, 0.1)
    return [Stage("coarse", total - n_fine, opt.coarse_samples, opt.lr, lr_mid),
            Stage("fine", n_fine, opt.fine_samples, lr_mid, opt.lr * opt.lr_final_factor)]


def cosine_lr(it: int, stage: Stage) -> float:
    """Step size at step `it` (0-based) of `stage`: cosine from lr_hi to lr_lo."""
    frac = it / max(stage.iterations - 1, 1)
    return stage.lr_lo + (stage.lr_hi - stage.lr_lo) * 0.5 * (1 + math.cos(math.pi * frac))
