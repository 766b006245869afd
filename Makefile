# techbridge — the user's two commands are `make demo` and `make test`.
# Both build the virtual environment (.venv) themselves.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint typecheck proto messages venv bench bench-quick clean help

help:
	@echo "make demo    start a hub and four centre nodes on loopback, sync, show HQ's view"
	@echo "make test    lint, type-check and run the whole test suite"
	@echo "make test-fast  lint, type-check and the unit and store tests (pytest -m 'not slow')"
	@echo "make proto   regenerate techbridge/v1 from proto/"
	@echo "make messages  extract the console's messages and update its catalogues (console/locale)"
	@echo "make bench   print sync and verification figures (make bench-quick: smaller)"

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m cli.demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

proto: $(STAMP)
	$(PY) scripts/genproto.py

# The console's messages: extract them (babel.cfg) and update each catalogue from them.
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k N_ -k t --no-location --sort-output --omit-header -w 120 -o console/locale/messages.pot .
	$(VENV)/bin/pybabel update -i console/locale/messages.pot -d console/locale --no-fuzzy-matching --ignore-obsolete -w 120

bench: $(STAMP)
	$(PY) bench/run.py --n 5000
	$(PY) bench/processes.py --n 10000 --samples 200

bench-quick: $(STAMP)
	$(PY) bench/run.py --n 500
	$(PY) bench/processes.py --n 1000 --samples 30

clean:
	rm -rf $(VENV) demo-data .pytest_cache .mypy_cache .ruff_cache
