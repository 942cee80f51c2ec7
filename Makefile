# Two entry points that set themselves up on a fresh machine:
#   make test   - create .venv if missing, install pointmap[dev] (torch, timm, bpy 5.0.1, ...), run all tests
#   make demo   - same set-up, then reconstruct samples/photos headless into out/demo.blend
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pointmap-installed

.PHONY: test test-gpu test-blender test-fixtures demo lint zip

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP) lint
	$(PY) -m pytest

# The Blender-side tests (extension, scene, operators, CLI, UI) under each Blender release the manifest promises:
# one venv per release in build/blender-<v>/ holding that bpy wheel, layered over .venv (tests/blender/versions.py).
# A release that cannot be installed here is reported NOT TESTED and the target fails.
BLENDER_VERSIONS ?= 4.2.0 4.5.15 5.0.1
test-blender: $(STAMP)
	$(PY) tests/blender/versions.py --versions $(BLENDER_VERSIONS) -- $(ARGS)

# Every test that reads a fixture location from the environment (POINTMAP_PARITY_DIR, _VGGT_PARITY_DIR,
# _PREPROC_DIR, _ALIGN_DIR, _CKPT_KEYS_DIR, _VGGT_KEYS, _MESH_DIR, _DA3_PARITY_DIR, _DA3_NESTED_DIR,
# _DA3_GS_DIR), rerun on a generated set with other names and counts (tests/helpers_altfixtures.py), and on
# empty sets (which must fail).
# Minutes of CPU, so a separate target; CI (.ci/run) runs it after `make test`.
test-fixtures: $(STAMP)
	$(PY) -m pytest -m overrides tests/test_fixture_overrides.py $(ARGS)

# GPU tier (tests/gpu, marker `gpu`): runs under an interpreter that already has torch with CUDA, numpy,
# pillow, timm, safetensors and pytest -- by default the system python3, with no venv and no pip (the GPU
# machine is offline). The package is imported from this checkout through a `pointmap` link on PYTHONPATH
# (the repository root is the package). Skipped test by test without CUDA; never part of `make test`.
GPU_PY ?= python3
GPU_PATH := $(CURDIR)/build/gpu-path
test-gpu:
	mkdir -p $(GPU_PATH) && ln -sfn $(CURDIR) $(GPU_PATH)/pointmap
	PYTHONPATH=$(GPU_PATH)$${PYTHONPATH:+:$$PYTHONPATH} $(GPU_PY) -m pytest -m gpu tests/gpu -p no:cacheprovider $(ARGS)

demo: $(STAMP)
	mkdir -p out
	$(PY) -m pointmap.demo samples/photos out/demo.blend

# The extension zip for Blender (validated and built with Blender's own tool from the bpy package).
BLENDER_EXT = $(shell $(PY) -c "import bpy,os;print(os.path.join(bpy.utils.resource_path('LOCAL'),'scripts/addons_core/bl_pkg/cli/blender_ext.py'))" 2>/dev/null)
zip: $(STAMP)
	mkdir -p dist
	$(PY) $(BLENDER_EXT) validate .
	$(PY) $(BLENDER_EXT) build --source-dir . --output-dir dist
