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
def _cpu_threads():
    # Tests are sized for 2-core CI machines.
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
