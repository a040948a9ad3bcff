# mcp-ble: `make demo` and `make test` work on a fresh clone (they create .venv themselves;
# `make test` also installs the npm and Debian tools the tests drive).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test tools lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# Tools from outside Python that tests drive (promtool, Node 22, the MCP Inspector CLI, the
# TypeScript SDK, the MCP conformance suite): .ci/install-tools says what and how.
tools:
	.ci/install-tools

demo: $(STAMP)
	$(BIN)/mcp-ble demo

test: $(STAMP) tools
	$(BIN)/ruff check .
	$(BIN)/mypy core plugins backends
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy core plugins backends

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/mcp-ble bench --quick

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache tests/clients/node_modules
