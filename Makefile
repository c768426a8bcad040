# Two commands do everything: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit flower bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/robustfl demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy src

unit: $(STAMP)
	$(BIN)/pytest -n auto -q

test: lint typecheck unit

# The Flower integration in its own environment: flwr pins older typer/rich than the default install.
FLOWER := .venv-flower
$(FLOWER)/.installed: pyproject.toml
	$(PYTHON) -m venv $(FLOWER)
	$(FLOWER)/bin/python -m pip install -q --upgrade pip
	$(FLOWER)/bin/python -m pip install -q torch==2.13.0
	$(FLOWER)/bin/python -m pip install -q -e '.[dev,flower]'
	touch $(FLOWER)/.installed

flower: $(FLOWER)/.installed
	$(FLOWER)/bin/pytest -q tests/integrations

bench: $(STAMP)
	$(BIN)/python benchmarks/aggregators.py

clean:
	rm -rf $(VENV) $(FLOWER) build dist *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
