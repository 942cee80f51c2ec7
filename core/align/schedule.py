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


# The refinement of a shot (`for_shot`). Its averaging start is already at the drift floor (pair-rotation noise
# averaged over the whole graph), and on synthetic shots of 60–300 frames the pixel objective's optimum lies a
# little above it: the default schedule's 0.003 rad first steps random-walk the weakly held, smooth modes of a
# long chain (rotation error 0.295 → 0.38° mean at 120 frames, focal 0.0003 → 0.27 %), and its early stop at a
# relative 1e-5 never fires, so 200 steps over every pixel ran (~136 s of 2-core CPU at 300 frames). A shot's
# views each sit in ~16 observations, so a few hundred pixels per observation pin its few parameters.
SHOT_LR = 3e-4               # polishing steps (rad, log units, scene units): a tenth of the default
SHOT_COARSE_SAMPLES = 128    # pixels per observation, coarse stage
SHOT_FINE_SAMPLES = 384      # ... fine stage
SHOT_TOLERANCE = 2e-3        # stop a stage once 10 steps lower the loss by less than 0.2 %


def for_shot(opt: AlignOptions) -> AlignOptions:
    """`opt` with the shot schedule (constants above) where it still has the generic default.

    Values a caller set keep theirs, so an explicit `lr` or `tolerance` still decides.
    """
    default = AlignOptions()
    shot = {"lr": SHOT_LR, "coarse_samples": SHOT_COARSE_SAMPLES, "fine_samples": SHOT_FINE_SAMPLES,
            "tolerance": SHOT_TOLERANCE}
    return dataclasses.replace(opt, **{k: v for k, v in shot.items() if getattr(opt, k) == getattr(default, k)})


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
