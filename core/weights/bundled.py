"""The demo network that ships inside the package (`weights/pointmap-demo-224/`), usable with no download.

It is a small DUSt3R trained only on scenes our own generator renders (`training/`, model card beside the
weights). It is what a run uses when no checkpoint was chosen and the default official one is not downloaded,
and the registry-like name `demo` selects it anywhere (`--checkpoint demo`).
"""

from __future__ import annotations

from pathlib import Path

DEMO_NAME = "demo"
DEMO_LABEL = ("pointmap demo model — trained on synthetic scenes; for real photos download DUSt3R, VGGT or "
              "Depth Anything 3")
_DEMO_DIR = Path(__file__).resolve().parents[2] / "weights" / "pointmap-demo-224"


def demo_path() -> Path:
    """Folder of the bundled demo model (config.json + model.safetensors)."""
    return _DEMO_DIR


def demo_available() -> bool:
    return (_DEMO_DIR / "model.safetensors").is_file() and (_DEMO_DIR / "config.json").is_file()


def is_demo(path: str | Path) -> bool:
    """True when `path` is the bundled demo model's folder (or a file in it)."""
    try:
        p = Path(path).expanduser().resolve()
    except (OSError, RuntimeError):
        return False
    return p == _DEMO_DIR or p.parent == _DEMO_DIR
