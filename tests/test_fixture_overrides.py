"""Fixture directories given by environment variables work for any set with the documented layout.

A generated alternative set (tests/helpers_altfixtures.py: other model, case, frame and weights names, other
counts) is handed to every test that reads a fixture location from the environment -- $POINTMAP_PARITY_DIR,
$POINTMAP_VGGT_PARITY_DIR, $POINTMAP_PREPROC_DIR, $POINTMAP_ALIGN_DIR, $POINTMAP_CKPT_KEYS_DIR,
$POINTMAP_VGGT_KEYS, $POINTMAP_MESH_DIR, $POINTMAP_DA3_PARITY_DIR, $POINTMAP_DA3_NESTED_DIR and
$POINTMAP_DA3_GS_DIR -- in a pytest
subprocess: all must pass, the parametrised tests must carry the new set's names and counts (so its cases really
ran), and no shipped name may appear. Empty directories fail instead of leaving the tests nothing to run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_altfixtures import make_alternative_sets, make_other_sets

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


OTHER_READERS = [  # every test reading one of the other locations (the rest of the alignment and meshing
    # modules builds its own synthetic cases, so only the fixture-reading tests are run there)
    "tests/core/align/test_align.py::test_fixture_case_accuracy",
    "tests/core/align/test_sequence.py::test_fixture_shot_reaches_drift_floor",
    "tests/core/align/test_sequence.py::test_drift_floor_of_the_example_matches_the_readme",
    "tests/core/meshing/test_meshing.py::test_cases_from_env_dir",
    "tests/core/weights/test_weights.py",
    "tests/core/weights/test_registry_download.py",
    "tests/core/models/test_da3_parity.py",
    "tests/core/models/test_da3_nested.py",
    "tests/core/models/test_da3_gs_head.py",
    "tests/core/backends/test_da3_backend.py",
    "tests/core/io/test_da3_preprocess.py",
    "tests/core/test_shot_pipeline.py::test_da3_shot_in_chunks",
]


def _pytest(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-q", *args],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=900)


def _passed(out: str) -> set[str]:
    return set(re.findall(r"^PASSED (\S+)", out, re.M))


def _count(passed: set[str], module: str, test: str) -> int:
    return sum(f"{module}::{test}[" in p for p in passed)


@pytest.mark.overrides   # ~1.5 min of CPU: run by `make test-fixtures`, not by `make test`
def test_every_reader_runs_on_a_generated_set(tmp_path):
    env = {k: str(v) for k, v in make_alternative_sets(tmp_path / "alt").items()}
    res = _pytest(env, *READERS)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    passed = _passed(out)
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


@pytest.mark.overrides   # ~2 min of CPU: run by `make test-fixtures`
def test_every_other_reader_runs_on_a_generated_set(tmp_path):
    env = {k: str(v) for k, v in make_other_sets(tmp_path / "alt").items()}
    res = _pytest(env, *OTHER_READERS)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    passed = _passed(out)
    # Names and counts from the generated set: 2 alignment cases (one a shot), 3 of 4 key lists, 1 meshing case,
    # DA3 cases trio/solo/duo_posed with 3 of 7 presets and 4 of 5 preprocessing methods, 2 nested cases.
    for test_id in ("test_align.py::test_fixture_case_accuracy[ring4]",
                    "test_align.py::test_fixture_case_accuracy[walk20]",
                    "test_sequence.py::test_fixture_shot_reaches_drift_floor[walk20]",
                    "test_meshing.py::test_cases_from_env_dir",
                    "test_weights.py::test_official_key_list_loads_strictly[keys_dpt]",
                    "test_registry_download.py::test_registry_matches_key_lists[keys_metric]",
                    "test_registry_download.py::test_registry_da3_matches_fixture_layouts",
                    "test_da3_parity.py::test_forward_parity[trio]",
                    "test_da3_parity.py::test_forward_parity[duo_posed]",
                    "test_da3_parity.py::test_full_size_keys_strict[da3nested-giant-large]",
                    "test_da3_nested.py::test_nested_forward_parity[n_trio]",
                    "test_da3_gs_head.py::test_gs_head_parity[8-gs_pair]",
                    "test_da3_backend.py::test_reconstruction_matches_network[solo]",
                    "test_da3_backend.py::test_posed_mode[duo_posed]",
                    "test_da3_backend.py::test_nested_model_gives_metres",
                    "test_da3_preprocess.py::test_single_image_bit_exact[upper_bound_crop_70__img_alpha]",
                    "test_da3_preprocess.py::test_batch_crop[batch_upper_bound_resize_504]"):
        assert any(p.endswith(test_id) for p in passed), f"{test_id} did not run and pass:\n{out[-4000:]}"
    counts = {("test_align.py", "test_fixture_case_accuracy"): 2,
              ("test_weights.py", "test_official_key_list_loads_strictly"): 3,
              ("test_registry_download.py", "test_registry_matches_key_lists"): 3,
              ("test_da3_parity.py", "test_forward_parity"): 3,
              ("test_da3_parity.py", "test_full_size_keys_strict"): 3,
              ("test_da3_nested.py", "test_nested_forward_parity"): 2,
              ("test_da3_gs_head.py", "test_gs_head_parity"): 2,
              ("test_da3_preprocess.py", "test_single_image_bit_exact"): 16}
    for (module, test), n in counts.items():
        assert _count(passed, module, test) == n, (module, test, sorted(p for p in passed if test in p))
    ran = " ".join(re.findall(r"^(?:PASSED|FAILED|ERROR) \S+", out, re.M))   # (skip reasons may name files)
    for shipped in ("example_orbit6", "example_shot60", "[multiview]", "[single]", "[posed]", "pp_a_120x75",
                    "DUSt3R_ViTLarge_BaseDecoder", "MASt3R_ViTLarge", "[da3-base]", "lower_bound_crop_70__"):
        assert shipped not in ran, f"a shipped name ran: {shipped}"


@pytest.mark.overrides
def test_empty_other_sets_fail(tmp_path):
    """Every other location, empty (or a key-list file that is not there): its presence checks fail."""
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {name: str(empty) for name in ("POINTMAP_ALIGN_DIR", "POINTMAP_CKPT_KEYS_DIR", "POINTMAP_MESH_DIR",
                                        "POINTMAP_DA3_PARITY_DIR", "POINTMAP_DA3_NESTED_DIR", "POINTMAP_DA3_GS_DIR")}
    env["POINTMAP_VGGT_KEYS"] = str(empty / "checkpoint_keys.json")
    # An empty alignment set stops the module at collection (its cases parametrise the test): a run of its own.
    res = _pytest(env, "tests/core/align/test_align.py::test_fixture_case_accuracy")
    assert res.returncode != 0 and "no alignment cases in" in res.stdout + res.stderr, res.stdout[-3000:]
    res = _pytest(env, "tests/core/weights/test_weights.py::test_key_lists_present",
                  "tests/core/weights/test_weights.py::test_vggt_key_list_loads_without_track_head",
                  "tests/core/meshing/test_meshing.py::test_cases_from_env_dir",
                  "tests/core/models/test_da3_parity.py::test_cases_present",
                  "tests/core/models/test_da3_nested.py::test_cases_present",
                  "tests/core/models/test_da3_gs_head.py::test_cases_present",
                  "tests/core/backends/test_da3_backend.py::test_the_set_has_a_multi_view_and_a_single_view_case")
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "PASSED" not in out, out[-4000:]
    for says in ("no checkpoint key lists in", "No such file", "holds no *.npz case",
                 "no parity cases in", "no nested DA3 cases in", "no DA3 Gaussian-head cases in",
                 "needs an unposed case"):
        assert says in out, f"{says!r} not in the output:\n{out[-4000:]}"
