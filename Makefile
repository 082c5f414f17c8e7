# kgsynth: `make demo` runs the main job on the embedded store; `make test` runs the suite.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= transformers,evaluate,service,ray,docs,dev

.PHONY: install demo test lint bench neo4j-start neo4j-stop clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@py=$$(scripts/find-python) || exit 1; \
	if [ ! -x $(BIN)/python ] || ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then \
	  echo "creating $(VENV) with $$py"; rm -rf $(VENV); "$$py" -m venv $(VENV) || exit 1; \
	fi
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	@touch $@

demo: install
	scripts/demo

test: install
	scripts/ensure-chromium
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check kg engine loaders tests benchmarks
	$(BIN)/ruff format --check kg engine loaders tests benchmarks
	$(BIN)/mypy

bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

neo4j-start:
	scripts/neo4j-local start

neo4j-stop:
	scripts/neo4j-local stop

clean:
	rm -rf $(VENV) .local build *.egg-info .pytest_cache .mypy_cache .ruff_cache
