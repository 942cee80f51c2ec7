"""Shared test helpers: fixture locations (overridable by environment variables)."""

import os
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# Test-only helper modules (tests/helpers_*.py) import by plain name under --import-mode=importlib.
sys.path.insert(0, str(Path(__file__).parent))


def fixture_dir(env: str, default: Path) -> Path:
    """A fixture directory: $env if set, else the copy shipped in tests/fixtures."""
    return Path(os.environ.get(env, str(default)))


@pytest.fixture(autouse=True, scope="session")
def _user_datafiles(tmp_path_factory):
    """Blender's per-user data folder (runs saved from unsaved files, weights cache, site-packages) in a
    temporary folder: tests never write into the user's own. Blender reads the variable on every call."""
    old = os.environ.get("BLENDER_USER_DATAFILES")
    os.environ["BLENDER_USER_DATAFILES"] = str(tmp_path_factory.mktemp("user_datafiles"))
    yield
    if old is None:
        os.environ.pop("BLENDER_USER_DATAFILES", None)
    else:
        os.environ["BLENDER_USER_DATAFILES"] = old


@pytest.fixture(autouse=True, scope="session")
def _cpu_threads():
    # Tests are sized for 2-core CI machines.
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass


_SESSION: dict = {}


def pytest_sessionfinish(session, exitstatus):
    _SESSION["exitstatus"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End the process here, after pytest has reported, when the loaded bpy is a release whose module build
    crashes or deadlocks in its own static destructors at interpreter exit (blender/blender#131922; seen
    here with 4.2.0: SIGSEGV, and 4.5.15: a hang in a thread pool's condition variable, after every test had
    passed). Blender itself exits through its window manager and is not affected; 5.0.1 exits cleanly and
    keeps its normal teardown."""
    bpy = sys.modules.get("bpy")
    if bpy is None or "exitstatus" not in _SESSION or tuple(bpy.app.version) >= (5, 0, 0):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_SESSION["exitstatus"])


def tiny_checkpoint() -> str:
    """The tiny random-weight DUSt3R (linear head) of the parity fixtures: a real checkpoint for end-to-end runs.
    Found by what the set's info.json says (helpers_parity.linear_model), not by the shipped folder's name."""
    import helpers_parity

    model = helpers_parity.linear_model()
    assert model is not None, f"{helpers_parity.PARITY}: no DUSt3R model with a linear head and a model.pth"
    return str(model.folder / "model.pth")


@pytest.fixture()
def photos(tmp_path):
    """Three overlapping 64x48 crops of one random texture, as PNG files in tmp_path."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (48, 72, 3), dtype=np.uint8)
    for i in range(3):
        Image.fromarray(np.ascontiguousarray(base[:, 4 * i:4 * i + 64])).save(tmp_path / f"view{i}.png")
    return tmp_path


@pytest.fixture(scope="module")
def registered():
    """The extension registered in the bpy module for a test module (unregistered after it); yields the package."""
    pytest.importorskip("bpy")
    import pointmap

    pointmap.register()
    yield pointmap
    pointmap.unregister()
