"""Fixture directories given by environment variables work for any set with the documented layout.

A generated alternative set (tests/helpers_altfixtures.py: other model, case, frame and weights names, other
counts) is handed to every test module that reads $POINTMAP_PARITY_DIR, $POINTMAP_VGGT_PARITY_DIR or
$POINTMAP_PREPROC_DIR, in a pytest subprocess: all must pass, the parametrised tests must carry the new set's
names (so its cases really ran), and no shipped name may appear. An empty directory fails the parity tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_altfixtures import make_alternative_sets

ROOT = Path(__file__).resolve().parents[1]
READERS = [  # every module reading one of the three directories (tests/gpu: collected, skipped without CUDA)
    "tests/core/models/test_parity_croco.py",
    "tests/core/pairwise/test_inference.py",
    "tests/core/weights/test_weights.py",
    "tests/core/weights/test_registry_download.py",
    "tests/core/io/test_images.py",
    "tests/core/models/test_vggt_parity.py",
    "tests/core/backends/test_vggt.py",
    "tests/core/backends/test_chunked.py::test_vggt_chunked_with_the_tiny_model",
    "tests/core/test_pipeline.py::test_vggt_backend_end_to_end",
    "tests/core/test_pipeline.py::test_vggt_refuses_pairwise_only_options",
]


def _pytest(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q", *args],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=900)


@pytest.mark.overrides   # ~1.5 min of CPU: run by `make test-fixtures`, not by `make test`
def test_every_reader_runs_on_a_generated_set(tmp_path):
    env = {k: str(v) for k, v in make_alternative_sets(tmp_path / "alt").items()}
    res = _pytest(env, *READERS)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    passed = set(re.findall(r"^PASSED (\S+)", out, re.M))
    for test_id in ("test_parity_croco.py::test_outputs_and_intermediates[lin_alpha-first_only]",
                    "test_parity_croco.py::test_outputs_and_intermediates[m3_beta-batched_two]",
                    "test_parity_croco.py::test_outputs_and_intermediates[m3_beta-each_one]",
                    "test_parity_croco.py::test_recipe_equals_pth[lin_alpha]",
                    "test_inference.py::test_engine_matches_reference_outputs[first_only]",
                    "test_vggt_parity.py::test_forward_parity[pt-three_views]",
                    "test_vggt_parity.py::test_forward_parity[safetensors-two_by_two]",
                    "test_images.py::test_dust3r_preprocessing_bit_exact[photo_two_s512.npz]"):
        assert any(p.endswith(test_id) for p in passed), f"{test_id} did not run and pass:\n{out[-4000:]}"
    # Counts from the set: 2 models x 3 cases, 2 VGGT cases x 2 weight files, 6 preprocessing cases.
    assert sum("test_outputs_and_intermediates[" in p for p in passed) == 6
    assert sum("test_forward_parity[" in p for p in passed) == 4
    assert sum("test_dust3r_preprocessing_bit_exact[" in p for p in passed) == 6
    for shipped in ("dust3r_tiny_linear", "mast3r_tiny", "dust3r_tiny_dpt", "-pair]", "-mixed]", "-main]",
                    "single]", "land_640x480"):
        assert shipped not in out, f"a shipped name ran: {shipped}"


def test_an_empty_set_fails_instead_of_running_nothing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _pytest({"POINTMAP_PARITY_DIR": str(empty)}, "tests/core/models/test_parity_croco.py",
                  "-k", "holds_cases")
    assert res.returncode == 1 and "no model folder" in res.stdout, res.stdout[-3000:]
