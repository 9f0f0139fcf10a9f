# One entry point per job; each target creates .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint dist fuzz mutate bench bench-compare soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/syncd demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The sdist and the wheel (with the systemd units and the example configuration) in dist/.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

# The fuzz tests with many more examples than `make test` runs (tests/conftest.py, profile fuzz).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest tests/test_fuzz.py -p no:cacheprovider --timeout=3600 $(FUZZ_ARGS)

# Mutation testing of the pure core (syncd/core) with the core's own unit tests ([tool.mutmut]
# in pyproject.toml), from scratch each time; then tests/mutation_report.py's table per module,
# failing on a survivor not listed in tests/mutation-equivalents.md. Not part of `make test`.
# mutmut lives in a venv of its own (pyproject.toml's extra "mutate" says why).
MUTATE_CHILDREN ?= 2
MUTATE_VENV := .venv-mutate
MUTATE_STAMP := $(MUTATE_VENV)/.installed

$(MUTATE_STAMP): pyproject.toml
	test -x $(MUTATE_VENV)/bin/python || $(PYTHON) -m venv $(MUTATE_VENV)
	$(MUTATE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MUTATE_VENV)/bin/python -m pip install --quiet -e '.[dev,mutate]'
	touch $(MUTATE_STAMP)

mutate: $(MUTATE_STAMP)
	rm -rf mutants
	mkdir mutants
	@start=$$(date +%s); \
	HYPOTHESIS_PROFILE=mutate $(MUTATE_VENV)/bin/mutmut run --max-children $(MUTATE_CHILDREN) \
	  > mutants/run.log 2>&1 || { tail -c 3000 mutants/run.log; exit 1; }; \
	echo "mutmut run: $$(( $$(date +%s) - start )) s, log in mutants/run.log"
	$(MUTATE_VENV)/bin/python tests/mutation_report.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

bench-compare: $(STAMP)
	$(BIN)/python -m benchmarks.compare $(COMPARE_ARGS)

# 300 cycles 2 s apart over 2,000 users by default: ~12 minutes.
soak: $(STAMP)
	$(BIN)/python -m benchmarks.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(MUTATE_VENV) .pytest_cache .mypy_cache .ruff_cache dist build mutants
