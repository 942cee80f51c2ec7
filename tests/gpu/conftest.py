"""GPU tier: every test here is marked `gpu` and skipped without CUDA.

Run with `make test-gpu` (system python3 with torch + CUDA; no venv, no pip, no bpy needed). `make test`
deselects the marker (pyproject addopts `-m "not gpu"`).
"""

import pytest


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    skip = pytest.mark.skip(reason="GPU tier: no CUDA device")
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.gpu)
            if not cuda:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _strict_fp32():
    """fp32 means fp32 here: TF32 matmuls/convolutions would blur the parity bounds (restored after)."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
