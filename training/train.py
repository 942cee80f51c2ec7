"""Train the demo network on generated scenes; resumable across short GPU stretches.

    python -m pointmap.training.train --rundir training/runs/demo224 --max-minutes 8 [--resume CKPT_DIR]
    torchrun --nproc_per_node=4 -m pointmap.training.train ...      (several GPUs, DistributedDataParallel)

Every batch is rendered on the fly from scene seeds derived from (global step, rank, micro-batch, index), so a resumed
run continues with new scenes and no dataset lives on disk. Evaluation scenes use seeds from
`scenes.EVAL_SEED_BASE` and the `scenes.EVAL` style (other objects, textures and lights), never trained on.

Frames: `--aspects 1:1 4:3 16:9 3:4 9:16` (optionally `4:3=2`: a weight) trains on whole frames of those
aspects, each the shape the photo loader gives such a photo at `--size` (`cameras.aspect_shape`: 4:3 ->
224x160, 16:9 -> 224x112, portraits turned), one shape per step drawn from (seed, step) alone, so every DDP
rank renders the same shape and one batch stays one tensor. The field of view (`--fov-deg`) is the long
side's. Default `1:1`: square frames only, as versions 0-2 were trained. A run with any other aspect is
recorded as `input_crop: "whole"` in its settings, and `export.py` then writes `"pointmap_crop": "whole"`
into config.json, so the loader feeds such a model whole photos at 224 instead of their central square.
The held-out `eval_regr` stays on 224x224 squares at 40-80 degrees (comparable across versions);
`--eval-aspects 4:3` adds `eval_regr_224x160` etc. on the same held-out seeds in those frames.

Checkpoints (`<out>/ckpt/`): model weights in float32 split into parts of < 16 MiB (what the lent GPU machine
can hand back), the step, and the run's settings. The AdamW moments are not in it (they would triple the
size); after a resume they are rebuilt during a short re-warm-up of the learning rate, unless `--optim-state`
names a file that holds the resumed step's moments (a machine that stayed warm between stretches). The loss curve is appended to
`<run>/log.jsonl` (one JSON object per logged step).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ..core.models import build_model
from .cameras import aspect_shape, draw_shape, parse_aspect
from .config import DEMO_CLASS, DEMO_CONFIG
from .data import make_pairs_batch
from .draw_ahead import DrawAhead
from .loss import conf_regression_loss
from .render import compile_kernels
from .scenes import EVAL, EVAL_SEED_BASE

PART_BYTES = 14 * 2**20


def save_checkpoint(model: torch.nn.Module, step: int, settings: dict, folder: Path) -> None:
    """Weights (float32, split into parts under PART_BYTES) + step.json. Written to a temp name, then renamed."""
    folder.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    sd = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    parts, cur, size = [], {}, 0
    for k, v in sd.items():
        nbytes = v.numel() * 4
        if cur and size + nbytes > PART_BYTES:
            parts.append(cur)
            cur, size = {}, 0
        cur[k] = v
        size += nbytes
    parts.append(cur)
    for old in folder.glob("part*.safetensors"):
        old.unlink()
    for i, part in enumerate(parts):
        tmp = folder / f"part{i}.safetensors.tmp"
        save_file(part, str(tmp))
        tmp.rename(folder / f"part{i}.safetensors")
    (folder / "step.json").write_text(json.dumps({"step": step, "settings": settings, "parts": len(parts)}))


def load_checkpoint_parts(folder: Path) -> tuple[dict, int]:
    """(float32 state_dict, step) from a checkpoint folder, or from an exported (float16) demo-model folder."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if not (folder / "step.json").is_file() and (folder / "model.safetensors").is_file():
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            step = int((f.metadata() or {}).get("training_step", 0))
        return {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}, step
    meta = json.loads((folder / "step.json").read_text())
    sd = {}
    for i in range(meta["parts"]):
        sd.update(load_file(str(folder / f"part{i}.safetensors")))
    return sd, int(meta["step"])


def new_model(device, config: dict | None = None) -> torch.nn.Module:
    """A freshly initialised DUSt3R of `config` (default: the demo architecture)."""
    model = build_model(DEMO_CLASS, dict(config or DEMO_CONFIG))
    # The reference initialises linear layers with xavier_uniform and LayerNorms to (1, 0).
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.LayerNorm):
            torch.nn.init.ones_(m.weight)
            torch.nn.init.zeros_(m.bias)
    return model.to(device)


def lr_at(step: int, total: int, base: float, warmup: int, resume_step: int, rewarm: int) -> float:
    """Linear warm-up, cosine decay to 1 % over `total` steps; after a resume a short linear re-warm-up."""
    if step < warmup:
        f = (step + 1) / warmup
    else:
        f = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    if resume_step > 0 and step < resume_step + rewarm:
        f *= (step - resume_step + 1) / rewarm
    return base * f


def forward_pair(model, img1, img2):
    """Training forward: both images through the shared encoder, the two decoders and heads."""
    res1, res2 = model({"img": img1}, {"img": img2})
    return res1["pts3d"], res1["conf"], res2["pts3d_in_other_view"], res2["conf"]


@torch.no_grad()
def evaluate(model, device, n_pairs: int, batch: int, size=(224, 224),
             frames: list[tuple[int, int]] = ()) -> dict:
    """Mean normalised pointmap error on held-out evaluation scenes (EVAL style, EVAL seeds, 40-80 degrees):
    `eval_regr` at `size` (H, W), and `eval_regr_<W>x<H>` for each extra frame (H, W) in `frames`."""
    model.eval()
    out = {}
    for key, shape in [("eval_regr", tuple(size))] + [(f"eval_regr_{w}x{h}", (h, w)) for h, w in frames]:
        errs = []
        for start in range(0, n_pairs, batch):
            seeds = [EVAL_SEED_BASE + start + i for i in range(min(batch, n_pairs - start))]
            b = make_pairs_batch(seeds, shape, EVAL, device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                p1, c1, p2, c2 = forward_pair(model, b.img1, b.img2)
            _, info = conf_regression_loss(p1, c1, p2, c2, b.pts1, b.pts2)
            errs.append(float(info["regr"]) * len(seeds))
        out[key] = sum(errs) / n_pairs
    model.train()
    return out


def training_frames(aspects: list[str], size: int, patch: int = 16) -> tuple[list[tuple[int, int]], list[float]]:
    """`--aspects` values -> the distinct training frames (H, W) and their weights (duplicates add up)."""
    shapes: list[tuple[int, int]] = []
    weights: list[float] = []
    for text in aspects:
        aspect, weight = parse_aspect(text)
        shape = aspect_shape(aspect, size, patch)
        if shape in shapes:
            weights[shapes.index(shape)] += weight
        else:
            shapes.append(shape)
            weights.append(weight)
    return shapes, weights


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rundir", type=Path, required=True, help="run folder (log.jsonl, settings.json)")
    ap.add_argument("--ckptdir", type=Path, default=None, help="checkpoint folder to write (default RUN/ckpt)")
    ap.add_argument("--resume", type=Path, default=None, help="checkpoint folder to start from")
    ap.add_argument("--max-minutes", type=float, default=8.0, help="stop (and save) after this wall time")
    ap.add_argument("--total-steps", type=int, default=60000, help="length of the cosine schedule")
    ap.add_argument("--batch", type=int, default=48, help="pairs per GPU per micro-batch")
    ap.add_argument("--accumulate", type=int, default=1,
                    help="micro-batches per step and GPU (gradients averaged): one GPU with --accumulate 3 takes "
                         "the steps, and renders the very scenes, of 3 GPUs with 1")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--rewarm", type=int, default=300)
    ap.add_argument("--optim-state", type=Path, default=None,
                    help="file for AdamW's moments, written at the end of the stretch and loaded (with no "
                         "re-warm-up) when it holds the resumed step's; kept beside the checkpoint on a machine "
                         "that stays warm, never in the checkpoint folder (too large to hand back)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--supersample", type=int, default=2)
    ap.add_argument("--draw-workers", type=int, default=0,
                    help="processes that draw the coming micro-batches' scenes and cameras ahead (0: the training "
                         "process draws each when it needs it); the same batches either way")
    ap.add_argument("--compile-render", action="store_true",
                    help="torch.compile the renderer's per-ray work (render.compile_kernels; GPU: fused kernels, "
                         "the first batches of each frame shape pay the compilation)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--eval-pairs", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0, help="base of the training scene seeds")
    ap.add_argument("--fov-deg", type=float, nargs=2, default=[25.0, 80.0], metavar=("LO", "HI"),
                    help="field of view of the training views' long side (square views: the horizontal one), "
                         "uniform in [LO, HI]; versions 0-2 of the demo model used 40 80, which left photos "
                         "narrower than ~51 degrees (their central square crop is narrower still) with focal "
                         "lengths too short")
    ap.add_argument("--aspects", nargs="+", default=["1:1"], metavar="W:H[=WEIGHT]",
                    help="training frame aspects, one drawn per step by weight (default 1:1: squares only, as "
                         "versions 0-2); e.g. 1:1 4:3 16:9 3:4 9:16 (uniform) or 1:1 4:3=2 3:4; any aspect but 1:1 "
                         "marks the run as trained on whole frames (export writes pointmap_crop: whole)")
    ap.add_argument("--eval-aspects", nargs="*", default=[], metavar="W:H",
                    help="also report the held-out pointmap error in these frames (eval_regr_<W>x<H>); "
                         "eval_regr itself stays on squares")
    ap.add_argument("--max-steps", type=int, default=0,
                    help="stop after this many steps of this stretch (0: only --max-minutes / --total-steps)")
    ap.add_argument("--smoke", action="store_true",
                    help="a preflight of the same command in seconds (CPU or GPU): 2 steps of batch 2, no "
                         "supersampling, 2 held-out pairs, every step logged; the rest of the command (resume, "
                         "aspects, model) unchanged")
    ap.add_argument("--model-config", type=json.loads, default=None,
                    help="JSON object of constructor arguments replacing config.DEMO_CONFIG entries")
    args = ap.parse_args(argv)
    if args.smoke:
        args.batch, args.supersample, args.eval_pairs, args.log_every, args.eval_every = 2, 1, 2, 1, 2
        args.max_steps = 2
    patch = int({**DEMO_CONFIG, **(args.model_config or {})}.get("patch_size", 16))
    try:
        shapes, weights = training_frames(args.aspects, args.size, patch)
        eval_frames = [aspect_shape(parse_aspect(a)[0], args.size, patch) for a in args.eval_aspects]
    except ValueError as err:
        ap.error(str(err))

    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")     # gloo: a CPU rehearsal
        rank, world = dist.get_rank(), dist.get_world_size()
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    else:
        rank, world = 0, 1
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    torch.manual_seed(args.seed * 1000 + rank)

    if args.compile_render:
        compile_kernels()
    config = {**DEMO_CONFIG, **(args.model_config or {})}
    model = new_model(device, config)
    step = 0
    if args.resume is not None:
        sd, step = load_checkpoint_parts(args.resume)
        model.load_state_dict(sd, strict=True)
    resume_step = step
    model.mask_token.requires_grad_(False)   # CroCo's masking token: unused by DUSt3R's forward (DDP needs no
    #                                          gradient-less trainable parameters)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05,
                            fused=device.type == "cuda")
    moments_loaded = False
    if args.optim_state is not None and args.resume is not None and args.optim_state.is_file():
        try:
            state = torch.load(args.optim_state, map_location=device, weights_only=True)
        except (RuntimeError, OSError, EOFError) as err:       # a stretch killed while writing it: re-warm
            print(f"--optim-state {args.optim_state}: unreadable ({err}); re-warming instead", flush=True)
            state = {}
        if state.get("step") == step:
            opt.load_state_dict(state["optim"])
            args.rewarm, moments_loaded = 0, True
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    settings["optim_state_loaded"] = moments_loaded
    settings.update(world_size=world, device=torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                    torch=torch.__version__, config=config, class_name=DEMO_CLASS,
                    frames_hw=[list(f) for f in shapes], frame_weights=weights,
                    input_crop="square" if shapes == [(args.size, args.size)] else "whole")
    ckpt_dir = args.ckptdir or args.rundir / "ckpt"
    if rank == 0:
        args.rundir.mkdir(parents=True, exist_ok=True)
        with open(args.rundir / "settings.jsonl", "a") as f:
            f.write(json.dumps({"resumed_at": step, **settings}) + "\n")
    size = (args.size, args.size)     # the held-out evaluation's frame
    t0 = time.time()
    deadline = t0 + 60 * args.max_minutes
    log = open(args.rundir / "log.jsonl", "a") if rank == 0 else None
    # loss sums stay on the device until a record is written: a float() per micro-batch would make the host
    # wait for each backward before it prepares the next batch
    acc_loss, acc_regr, acc_n = torch.zeros((), device=device), torch.zeros((), device=device), 0
    acc_frames: dict[str, int] = {}
    n_micro = max(1, args.accumulate)

    def micro_batch(k: int) -> tuple[list[int], tuple[int, int]]:
        """Seeds and frame of this stretch's k-th micro-batch. Seeds: disjoint per (step, rank, micro-batch,
        index) and always below EVAL_SEED_BASE; micro-batch m of one GPU gets the seeds rank m would get with
        n_micro GPUs."""
        at, micro = resume_step + k // n_micro, k % n_micro
        base = args.seed * 100_000_000 + ((at * world + rank) * n_micro + micro) * args.batch
        return [base + i for i in range(args.batch)], draw_shape(shapes, weights, args.seed, at)

    t_log = time.time()
    ahead = (DrawAhead(args.draw_workers, micro_batch, fov_deg=tuple(args.fov_deg))
             if args.draw_workers > 0 else None)
    try:
        while True:
            stop = time.time() > deadline
            if distributed:                          # every rank stops at the same step
                flag = torch.tensor([stop], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                stop = bool(flag)
            if stop or step >= args.total_steps or (args.max_steps and step >= resume_step + args.max_steps):
                break
            lr = lr_at(step, args.total_steps, args.lr, args.warmup, resume_step, args.rewarm)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            for micro in range(n_micro):
                k = (step - resume_step) * n_micro + micro
                seeds, frame = micro_batch(k)            # one frame per step: every micro-batch draws the same
                b = make_pairs_batch(seeds, frame, device=device, supersample=args.supersample,
                                     fov_deg=tuple(args.fov_deg), drawn=ahead.get(k) if ahead else None)
                sync = contextlib.nullcontext() if not distributed or micro == n_micro - 1 else ddp.no_sync()
                with sync:
                    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                        p1, c1, p2, c2 = forward_pair(ddp, b.img1, b.img2)
                    loss, info = conf_regression_loss(p1, c1, p2, c2, b.pts1, b.pts2)
                    (loss / n_micro).backward()
                acc_loss += loss.detach() / n_micro
                acc_regr += info["regr"] / n_micro
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            acc_n += 1
            key = f"{frame[1]}x{frame[0]}"
            acc_frames[key] = acc_frames.get(key, 0) + 1
            if step % args.log_every == 0 and rank == 0:
                loss_mean, regr_mean = float(acc_loss) / acc_n, float(acc_regr) / acc_n     # waits for the device
                now = time.time()
                rec = {"step": step, "loss": loss_mean, "regr": regr_mean, "lr": lr,
                       "minutes": (now - t0) / 60, "pairs_seen": step * world * args.batch * n_micro,
                       "pairs_per_s": acc_n * world * args.batch * n_micro / max(now - t_log, 1e-9)}
                if len(shapes) > 1:
                    rec["frames"] = acc_frames     # steps per frame (WxH) since the last record
                acc_frames = {}
                if step % args.eval_every == 0:
                    rec.update(evaluate(model, device, args.eval_pairs, args.batch, size, eval_frames))
                log.write(json.dumps(rec) + "\n")
                log.flush()
                print(json.dumps(rec), flush=True)
                acc_loss.zero_()
                acc_regr.zero_()
                acc_n = 0
                t_log = time.time()                  # the rate leaves out evaluation and logging
    finally:                                     # the workers go even when a step fails
        if ahead is not None:
            ahead.close()
    if rank == 0:
        final = {"step": step, "final": True, "minutes": (time.time() - t0) / 60}
        final.update(evaluate(model, device, args.eval_pairs, args.batch, size, eval_frames))
        log.write(json.dumps(final) + "\n")
        log.close()
        print(json.dumps(final), flush=True)
        save_checkpoint(model, step, settings, ckpt_dir)
        if args.optim_state is not None:
            args.optim_state.parent.mkdir(parents=True, exist_ok=True)
            partial = args.optim_state.with_name(args.optim_state.name + ".partial")
            torch.save({"step": step, "optim": opt.state_dict()}, partial)
            os.replace(partial, args.optim_state)
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
