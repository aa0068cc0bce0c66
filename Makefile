# vaxcred — the two commands a fresh machine needs: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
PYTEST_WORKERS ?= 2

.PHONY: demo test lint typecheck unit bench bench-hostile bench-pipeline fuzz vectors clean sysdeps install

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

## demo: key chain, one passport + QR + border check; then the national pipeline on 10,000 synthetic people (PEOPLE=…)
demo: $(STAMP)
	$(BIN)/python -m vaxcred.demo --out demo-out --people $(or $(PEOPLE),10000)

sysdeps:
	bash scripts/ensure_system_deps.sh

## test: install everything the tests need (Debian packages too, when missing) and run the whole suite
test: sysdeps $(STAMP)
	$(BIN)/ruff check vaxcred tests scripts benchmarks
	$(BIN)/ruff format --check vaxcred tests scripts benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

lint: $(STAMP)
	$(BIN)/ruff check vaxcred tests scripts benchmarks
	$(BIN)/ruff format --check vaxcred tests scripts benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: one process, one core: raw cryptography vs vaxcred vs pycose vs python-cwt
bench: $(STAMP)
	taskset -c 0 $(BIN)/python -m benchmarks.bench_core

## bench-hostile: worst-case time and memory of hostile inputs (text and images) through verify()
bench-hostile: $(STAMP)
	taskset -c 0 $(BIN)/python -m benchmarks.bench_hostile

## bench-pipeline: the national pipeline end to end on generated people (PEOPLE=…, BACKEND=sqlite|postgresql|both)
bench-pipeline: PEOPLE ?= 10000,100000,1000000
bench-pipeline: BACKEND ?= sqlite
bench-pipeline: sysdeps $(STAMP)
	PEOPLE=$(PEOPLE) BACKEND=$(BACKEND) $(BIN)/python -m benchmarks.bench_pipeline

## vectors: regenerate test_vectors/ deterministically (fixed keys and clock)
vectors: $(STAMP)
	$(BIN)/python scripts/make_test_vectors.py

## fuzz: longer hypothesis runs than make test
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q -m slow tests

clean:
	rm -rf $(VENV) demo-out .mypy_cache .pytest_cache .ruff_cache .hypothesis
