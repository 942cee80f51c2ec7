"""Draw the coming batches' scenes and cameras in worker processes while the GPU renders and trains.

Drawing a batch (`data.draw_views`: 48 scenes and their cameras, many small CPU tensor operations) takes
tens of milliseconds of Python on the training process's own thread, where the GPU waits for it. It is a pure
function of the seeds, so workers can draw the next micro-batches ahead; the training step then only renders
(GPU) and trains. The batches are the very ones the process would have drawn itself.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor

from .data import Drawn, draw_views


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


class DrawAhead:
    """`get(k)` returns micro-batch k's `Drawn`, k = 0, 1, 2, ... in order; `plan(k)` gives its
    (seeds, frame (H, W)) and `draw_args` the rest of `draw_views`' arguments. Keeps `depth` batches in flight
    on `workers` spawned processes (spawned, not forked: the parent holds CUDA)."""

    def __init__(self, workers: int, plan: Callable[[int], tuple[list[int], tuple[int, int]]],
                 depth: int | None = None, **draw_args):
        self.plan = plan
        self.draw_args = draw_args
        self.depth = depth or 2 * workers
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_one_thread)
        self.pending: dict[int, Future] = {}

    def get(self, k: int) -> Drawn:
        for j in range(k, k + self.depth):
            if j not in self.pending:
                seeds, frame = self.plan(j)
                self.pending[j] = self.pool.submit(draw_views, seeds, 2, frame, **self.draw_args)
        return self.pending.pop(k).result()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
