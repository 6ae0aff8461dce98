# The README's two commands: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export FLASK_APP := monitorapp.cli:app_for_cli

.PHONY: run test install install-dev migrate lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

migrate: install
	$(BIN)/flask db upgrade

## Start web, worker and scheduler on the embedded defaults (or DATABASE_URL/REDIS_URL).
run: migrate
	$(BIN)/flask dev

## Run the whole test suite (on DATABASE_URL/REDIS_URL when set, else the embedded defaults).
test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check monitorapp tests bench

bench: install-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) instance .pytest_cache
