# Two commands matter: `make demo` (the main job) and `make test`. Both build .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-output

.PHONY: demo test soak venv lint bench lock clean

$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; scenesift needs Python 3.11 (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m scenesift.demo --out $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the layers contract in pyproject.toml: no upward import, no cycle
	bash scripts/install-browser.sh
	@# Label Studio installs in the background while the suite runs; its test fixture waits for
	@# it (the script holds a lock) and is skipped, saying why, only if the install fails.
	{ bash scripts/install-labelstudio.sh || echo "install-labelstudio failed: the Label Studio tests will be skipped"; } &
	$(BIN)/python -m pytest

# The kill -9 soak: three times the kill points of the crash test in make test.
soak: $(STAMP)
	$(BIN)/python -m pytest -m soak tests/test_crash.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_synth.py

# Re-resolve the pins from pyproject.toml (torch stays on the CPU build).
lock:
	rm -rf .lockenv && $(PYTHON) -m venv .lockenv
	.lockenv/bin/pip install --quiet torch==2.13.0 -e '.[dev,ray,onnx]'
	{ echo "# Exact pins for every install (make venv). torch is pinned to the CPU build 2.13.0: an"; \
	  echo "# unpinned torch pulls several GB of CUDA packages. Regenerate with \`make lock\`."; \
	  .lockenv/bin/pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu/torch==\1/'; } > requirements.lock
	rm -rf .lockenv

clean:
	rm -rf $(VENV) .labelstudio-venv $(DEMO_DIR) .pytest_cache .ruff_cache
