# Two entry points that set themselves up on a fresh machine:
#   make test   - create .venv if missing, install pointmap[dev] (torch, timm, bpy 5.0.1, ...), run all tests
#   make demo   - same set-up, then reconstruct samples/photos headless into out/demo.blend
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pointmap-installed

.PHONY: test demo lint bench

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP) lint
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) -m pointmap.demo samples/photos out/demo.blend
