"""Keep triton's bundled LLVM out of processes that already run another LLVM.

`import timm` imports torchvision, which imports `torch._dynamo`, which imports triton (the CUDA wheels
of torch ship it). Triton's native module carries its own LLVM; loading it into a process where a
system `libLLVM` is already mapped — Blender on Linux with Mesa's llvmpipe or radeonsi drivers, or any
OpenGL/EGL rendering through Mesa — crashes the whole process with a segmentation fault.

pointmap needs no triton on its default paths (SDPA attention, CUDA graphs, eager kernels), so when a
system LLVM is present we make `import triton` fail cleanly instead; torch then reports triton as
unavailable and only the opt-in `torch.compile` paths (VGGT `fused=True`) are affected.
"""

from __future__ import annotations

import sys

_reason: str | None = None


def _system_llvm_loaded() -> str | None:
    """Path of a libLLVM shared library mapped into this process (Linux), else None."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                if "libLLVM" in line and "triton" not in line:
                    return line.split()[-1]
    except OSError:   # not Linux: no /proc, and no Mesa LLVM clash known there
        return None
    return None


def guard_triton() -> str | None:
    """Block `import triton` if it would crash this process; returns why it was blocked (or None).

    Call before anything imports timm / torchvision / torch._dynamo. Does nothing if triton is already
    imported (it then loaded before the other LLVM, which is safe) or no system LLVM is mapped.
    """
    global _reason
    if _reason is not None or "triton" in sys.modules:
        return _reason
    lib = _system_llvm_loaded()
    if lib is not None:
        sys.modules["triton"] = None   # `import triton` now raises ImportError; torch treats it as absent
        _reason = f"triton disabled: {lib} is already loaded in this process and triton's LLVM would crash it"
    return _reason


def triton_blocked() -> str | None:
    """Why triton was blocked in this process, or None."""
    return _reason
