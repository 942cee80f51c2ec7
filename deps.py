"""Runtime dependencies the extension does not ship: PyTorch & co., and where they get installed.

Blender bundles Python and numpy but not torch/torchvision/timm/OpenCV. They are pip-installed with
`--target` into the extension's *user* directory (never Blender's own site-packages), and that
directory is appended to `sys.path` at register time. Appended, not prepended, so the numpy that
Blender already imported keeps priority over any copy pip pulled in.

No bpy here: the Blender side passes in the directories, so this module is testable with plain pytest.
"""

from __future__ import annotations

import collections
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field

REQUIRED = ("torch", "torchvision", "timm", "safetensors", "cv2", "mcubes")
# pip distribution of each required import name, where they differ. OpenCV: Depth Anything 3's
# preprocessing is defined by cv2.resize's uint8 rounding (core/io/da3_images.py); headless = no GUI libs.
# PyMCubes: marching cubes for fused meshes (core/meshing/extract.py).
PIP_NAMES = {"cv2": "opencv-python-headless", "mcubes": "PyMCubes"}
# Installed with them but not required to run: PyAV decodes movie files for the Python API / CLI
# (inside Blender, Blender's own movie-clip decoding is used).
ALSO_INSTALLED = ("av",)
CPU_INDEX_URL = "https://download.pytorch.org/whl/cpu"
PYPI_INDEX_URL = "https://pypi.org/simple"


def add_site_dir(path: str) -> bool:
    """Make packages installed under `path` importable (appended to sys.path). True if newly added."""
    if not path or path in sys.path:
        return False
    os.makedirs(path, exist_ok=True)
    sys.path.append(path)
    importlib.invalidate_caches()
    return True


def remove_site_dir(path: str) -> None:
    """Undo `add_site_dir` (modules already imported stay imported: Python cannot unload torch)."""
    while path in sys.path:
        sys.path.remove(path)


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(PIP_NAMES.get(name, name))
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


@dataclass
class DepStatus:
    """Which required packages can be imported, without importing them (find_spec is cheap).

    versions: package -> version string, or None when it cannot be found.
    device:   what torch sees ("CUDA: NVIDIA H100", "Apple MPS", "CPU only"), or "" when not probed.
    """

    versions: dict[str, str | None] = field(default_factory=dict)
    device: str = ""
    error: str = ""

    @property
    def missing(self) -> list[str]:
        return [k for k, v in self.versions.items() if v is None]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.error


def check(probe_device: bool = False) -> DepStatus:
    """Find the required packages; with `probe_device`, import torch and ask which devices it sees.

    Importing torch takes seconds the first time, so the UI only probes on request or when torch is
    already loaded.
    """
    importlib.invalidate_caches()
    status = DepStatus()
    for name in REQUIRED:
        status.versions[name] = _version(PIP_NAMES.get(name, name)) if importlib.util.find_spec(name) is not None else None
    if status.versions.get("torch") and (probe_device or "torch" in sys.modules):
        try:
            status.device = describe_devices()
        except Exception as err:  # a broken torch install: show why instead of crashing the panel
            status.error = f"torch is installed but fails to import: {err}"
    return status


def describe_devices() -> str:
    """Human summary of the accelerators torch can use."""
    import torch

    if torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        return "CUDA: " + ", ".join(names)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "Apple MPS"
    return "CPU only (no CUDA or MPS device visible)"


def pip_install_command(target: str, variant: str = "CPU", python: str | None = None) -> list[str]:
    """The pip command installing torch, torchvision, timm, safetensors, OpenCV and PyMCubes into `target`.

    variant "CPU" takes the PyTorch CPU wheels (small, work everywhere); "CUDA" takes PyPI's default
    wheels (CUDA on Linux/Windows, MPS-capable on macOS). numpy is pinned to the running version so pip
    does not put a second, incompatible numpy next to Blender's.
    """
    if variant not in ("CPU", "CUDA"):
        raise ValueError(f"unknown PyTorch variant {variant!r}; expected 'CPU' or 'CUDA'")
    cmd = [python or sys.executable, "-m", "pip", "install", "--upgrade", "--no-input",
           "--disable-pip-version-check", "--target", target]
    if variant == "CPU":
        cmd += ["--index-url", CPU_INDEX_URL, "--extra-index-url", PYPI_INDEX_URL]
    cmd += [PIP_NAMES.get(name, name) for name in REQUIRED]
    try:
        cmd.append(f"numpy=={importlib.metadata.version('numpy')}")
    except importlib.metadata.PackageNotFoundError:
        pass
    return cmd


class PipJob:
    """A pip subprocess whose output is collected by a reader thread.

    `lines` keeps the last `keep` lines for the preferences box; `log` keeps everything for the text
    datablock. Poll `returncode` (None while running) from the main thread.
    """

    def __init__(self, cmd: list[str], keep: int = 12):
        self.cmd = list(cmd)
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self.log: list[str] = []
        self.returncode: int | None = None
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        env = dict(os.environ, PYTHONNOUSERSITE="1", PIP_NO_INPUT="1")
        try:
            self._proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True, bufsize=1, env=env)
        except OSError as err:
            self._add(f"Could not start pip ({self.cmd[0]}): {err}")
            self.returncode = -1
            return
        self._thread = threading.Thread(target=self._read, name="pointmap-pip", daemon=True)
        self._thread.start()

    def _add(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)
            self.log.append(line)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._add(line.rstrip())
        self.returncode = self._proc.wait()
        self._add(f"pip finished with exit code {self.returncode}")

    def snapshot(self) -> tuple[list[str], list[str]]:
        """(last lines, full log) copied under the lock."""
        with self._lock:
            return list(self.lines), list(self.log)

    @property
    def running(self) -> bool:
        return self._proc is not None and self.returncode is None

    def cancel(self) -> None:
        if self._proc is not None and self.returncode is None:
            self._proc.terminate()

    def wait(self, timeout: float | None = None) -> int | None:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.returncode
