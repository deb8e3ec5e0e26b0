# Set-up and test entry points. Both targets create .venv and install the
# project with its development extras on first use.

PYTHON ?= python3
VENV ?= .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: install serve test fleet clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Create .venv with the project and its development extras, and nothing else.
install: $(STAMP)

## Run the server on 127.0.0.1:8080 over ./var/csdp.sqlite3 with demo data.
serve: $(STAMP)
	$(VENV)/bin/csdp serve --demo

## Run the whole test suite.
test: $(STAMP)
	$(VENV)/bin/python -m pytest

## Run the fleet simulator with its default scenario.
fleet: $(STAMP)
	$(VENV)/bin/python -m simulators.fleet --seed 1

clean:
	rm -rf $(VENV) var .pytest_cache
