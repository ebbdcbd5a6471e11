# `make check`: set up .venv (first run only) and run lint, type-check and tests; what CI runs.
# `make plan`:  the newcomer's main job, `release plan --all` (offline, no cloud credentials).
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: check lint typecheck test plan bench bench-release clean

check: lint typecheck test

$(BIN)/release: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

lint: $(BIN)/release
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/release
	$(BIN)/mypy

test: $(BIN)/release
	$(BIN)/pytest -q

plan: $(BIN)/release
	$(BIN)/release plan --all

bench: $(BIN)/release
	$(BIN)/python bench/plan_bench.py

bench-release: $(BIN)/release
	$(BIN)/python bench/release_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
