"""Which device and numeric precision a run uses: one rule for every backend."""

from __future__ import annotations

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device_precision(device, precision: str = "auto"):
    """(torch.device, "fp32" | "bf16" | "fp16") for the user's choices.

    device None → CUDA when available, else the CPU. precision "auto" → bf16 on CUDA GPUs that support it,
    fp16 on older CUDA GPUs, fp32 elsewhere (the CPU, Apple MPS).
    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    return device, precision


def release_cached(device) -> None:
    """Hand the CUDA caching allocator's unused blocks back to the device (nothing elsewhere).

    Called between the stages of a long run whose working sets differ in shape (pair inference, the
    alignment's initialisation, each refinement stage, the depth solve): cached blocks of one stage rarely
    fit the next one's tensors, and blocks freed on another stream or in a finished CUDA graph's private
    pool cannot be reused at all until released, so without this the memory a process takes from the GPU
    grows to the sum of its stages. Costs one device synchronisation.
    """
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def cuda_allocator_limit(device) -> int | None:
    """Bytes the caching allocator may reserve on a CUDA device when the process set a cap
    (`torch.cuda.set_per_process_memory_fraction`), else None."""
    import torch

    get = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    if get is None:
        return None
    index = torch.device(device).index
    if index is None:   # get_per_process_memory_fraction needs an index; plain "cuda" means the current device
        index = torch.cuda.current_device()
    frac = float(get(index))
    if frac >= 1.0:
        return None
    return int(frac * torch.cuda.get_device_properties(index).total_memory)
