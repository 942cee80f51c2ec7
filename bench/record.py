"""Stamp a benchmark result with what is needed to trace it: commit, GPU, torch version and the exact command.

Every bench script passes its result dict through `stamp` before printing or writing it, so each file in
`bench/results/` says which code, which card, which torch and which command line produced it. Run the
scripts as `python bench/<script>.py ...` (bench/ is then on sys.path and `from record import stamp` works).
"""

from __future__ import annotations

import datetime
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def commit() -> str:
    """HEAD's hash, with "+dirty" when tracked files differ from it; "unknown" outside a git checkout.

    `$POINTMAP_COMMIT` wins when set: a copy of the working tree sent to another machine (the lent GPU
    machine) can carry a stale .git, so the sender names the commit it sent.
    """
    import os

    if os.environ.get("POINTMAP_COMMIT"):
        return os.environ["POINTMAP_COMMIT"]
    head = _git("rev-parse", "HEAD")
    if head is None:
        return "unknown"
    return head + ("+dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def gpu_name() -> str:
    """The CUDA device's name, or "none (CPU)" when torch or CUDA is absent (torch is imported lazily)."""
    try:
        import torch
    except ImportError:
        return "none (CPU)"
    return torch.cuda.get_device_name() if torch.cuda.is_available() else "none (CPU)"


def torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def command() -> str:
    """The command line as it was typed (interpreter and its flags included), shell-quoted."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return shlex.join(argv)


def stamp(result: dict) -> dict:
    """`result` with a "record" entry added (commit, gpu, torch, python, command, UTC time); returns it."""
    result["record"] = {
        "commit": commit(),
        "gpu": gpu_name(),
        "torch": torch_version(),
        "python": platform.python_version(),
        "command": command(),
        "utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    return result
