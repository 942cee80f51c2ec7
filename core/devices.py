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
