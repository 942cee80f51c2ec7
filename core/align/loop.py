"""The refinement loop of global alignment: stages, early stop, progress, and CUDA-graph replay.

Each stage (see `schedule`) samples its pixels, measures the robust scale from its starting residuals,
then runs `step.robust_step` until its budget or the early stop. On CUDA a stage's whole step (loss,
backward, fused Adam) is captured once as a CUDA graph after a few warm-up steps and replayed, since a
step over a few hundred parameters is bound by kernel launches, not arithmetic; the loss is read back
only every 10 steps.

GPU memory: the warm-up steps and the capture share one side stream for the whole refinement. The caching
allocator keeps the blocks a stream freed for that stream only, so warm-ups on fresh pool streams (one per
step) each cached a whole step's working set: on a 1,000-frame shot three copies of ~15 GiB, a peak of
82 GiB reserved for 21.5 GiB ever allocated. Each stage also hands its cached blocks and its graph's
private pool back (`release_cached`) before the next one allocates, so what the process reserves follows
what the stage in progress needs.
"""

from __future__ import annotations

import torch

from ..devices import release_cached
from ..errors import check_cancel
from ..options import AlignOptions
from ..progress import report
from .schedule import cosine_lr, stages
from .step import Intrinsics, RefineParams, residuals, robust_step, sample_groups

GRAPH_WARMUP = 3   # eager steps (on a side stream) before a stage's step is captured
READBACK_EVERY = 10   # steps between loss read-backs (early stop test and progress)


def refine(state, groups, cam: Intrinsics, opt: AlignOptions, fixed_scale: bool, progress, cancel):
    """Adam on poses / edge similarities / focals of `state` (a `refine._State`, updated in place).

    Returns (steps, last loss, how the steps ran: "eager", "cuda-graph" or "eager (graph failed: ...)").
    """
    dev = state.cam_R.device
    params = RefineParams(state, cam, fixed_scale)
    graphs = dev.type == "cuda" and opt.cuda_graph
    # CUDA: fused (one kernel) and capturable, with the step size a device tensor that the graph reads.
    lr_t = torch.tensor(opt.lr, dtype=torch.float32, device=dev) if graphs else None
    adam = torch.optim.Adam(params.tensors, lr=lr_t if graphs else opt.lr, betas=(0.9, 0.9),
                            fused=dev.type == "cuda", capturable=graphs)
    plan = stages(opt)
    total = sum(s.iterations for s in plan)
    step, loss_val = 0, float("nan")
    mode = "cuda-graph" if graphs else "eager"

    def set_lr(lr: float) -> None:
        if graphs:
            lr_t.fill_(lr)
        else:
            for pg in adam.param_groups:
                pg["lr"] = lr

    # One side stream for every warm-up step and capture (see the module doc: memory).
    side = torch.cuda.Stream(dev) if graphs else None
    data = None
    for si, stage in enumerate(plan):
        if stage.iterations <= 0:
            continue
        data = None   # the previous stage's samples go before this stage's are drawn
        data = sample_groups(groups, stage.samples, opt.conf_threshold, dev)
        wsum = sum(float(s.w.sum()) for s in data)
        sigma = _robust_scale(data, cam, params, opt, first=si == 0)
        state.sigma = sigma
        release_cached(dev)   # the residual pass's temporaries: the warm-up reuses none of them
        graph = static_loss = None
        prev = None
        for it in range(stage.iterations):
            check_cancel(cancel)
            set_lr(cosine_lr(it, stage))
            if graph is not None:
                graph.replay()
                loss = static_loss
            elif graphs and it == GRAPH_WARMUP and stage.iterations - it > 2 * GRAPH_WARMUP:
                # Capture one whole step (forward, backward, Adam) and replay it. Capture does not run the step.
                try:
                    graph = torch.cuda.CUDAGraph()
                    adam.zero_grad(set_to_none=True)
                    with torch.cuda.graph(graph, stream=side):
                        static_loss = robust_step(data, cam, params, adam, sigma, wsum)
                except Exception as err:   # any capture problem: the eager step is always correct
                    graphs, graph, mode = False, None, f"eager (graph failed: {type(err).__name__}: {err})"[:300]
                    lr_now = float(lr_t)
                    for pg in adam.param_groups:
                        pg["lr"] = lr_now
                    adam.zero_grad(set_to_none=True)
                    loss = robust_step(data, cam, params, adam, sigma, wsum)
                else:
                    graph.replay()
                    loss = static_loss
            elif graphs:
                # Warm-up steps run on the side stream before capture (as CUDA-graph capture requires).
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    adam.zero_grad(set_to_none=True)
                    loss = robust_step(data, cam, params, adam, sigma, wsum)
                torch.cuda.current_stream().wait_stream(side)
            else:
                adam.zero_grad(set_to_none=True)
                loss = robust_step(data, cam, params, adam, sigma, wsum)
            step += 1
            if it % READBACK_EVERY == READBACK_EVERY - 1 or it == stage.iterations - 1:
                loss_val = float(loss)
                report(progress, "align", step, total + 1, f"{stage.name} iteration {step}, loss {loss_val:.4g}",
                       loss=loss_val)
                if opt.tolerance > 0 and prev is not None and prev - loss_val < opt.tolerance * abs(prev):
                    break
                prev = loss_val
        del graph, static_loss
        loss = None   # may be the graph's output tensor, which would keep its pool
        adam.zero_grad(set_to_none=True)
        release_cached(dev)   # the graph's private pool and the warm-ups' blocks
    del data
    with torch.no_grad():
        cam_R, cam_t, edge_s, edge_R, edge_t, focal = params.current()
    state.cam_R, state.cam_t = cam_R.double(), cam_t.double()
    state.edge_R, state.edge_t, state.edge_s = edge_R.double(), edge_t.double(), edge_s.double()
    state.focal = focal.double()
    if state.known is not None:
        state.cam_R[state.known], state.cam_t[state.known] = state.known_R, state.known_t   # exact, not float32
    return step, loss_val, mode


def _robust_scale(data, cam: Intrinsics, params: RefineParams, opt: AlignOptions, first: bool) -> float:
    """Cauchy scale of a stage from its starting residuals; on the first stage also the translation unit
    (`params.scene`, the median solved depth)."""
    with torch.no_grad():
        parts = residuals(data, cam, params.current())
        allr = torch.cat([e2[(s.w > 0) & ok].sqrt() for s, (e2, ok, _) in zip(data, parts, strict=True)])
        med = float(allr.median()) if allr.numel() else 0.01
        if first:
            deps = torch.cat([dp[dp > 0] for _, _, dp in parts])
            if deps.numel():
                params.scene.copy_(deps.median().clamp_min(1e-12))
    return opt.robust_scale or min(max(2.0 * med, 1e-3), 0.3)
