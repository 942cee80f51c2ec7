"""Issue #9.5: the GPU tier collects here, is deselected by `make test`'s options, and imports no bpy."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pytest(*args: str) -> subprocess.CompletedProcess:
    # bpy is made unimportable: the GPU machine has none, so the tier must not need it.
    code = "import sys; sys.modules['bpy'] = None; import pytest; sys.exit(pytest.main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args, "-p", "no:cacheprovider"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_gpu_tier_collects_without_bpy_and_is_not_in_the_default_run():
    gpu = _pytest("-m", "gpu", "tests/gpu", "--collect-only", "-q")
    assert gpu.returncode == 0, gpu.stdout + gpu.stderr
    collected = [line for line in gpu.stdout.splitlines() if "::" in line]
    names = " ".join(collected)
    assert len(collected) >= 10 and "cuda_graph" in names and "compiled_vggt" in names and "offloaded" in names
    default = _pytest("tests/gpu", "--collect-only", "-q")     # pyproject's -m 'not gpu'
    assert default.returncode == 5 and "deselected" in default.stdout, default.stdout
