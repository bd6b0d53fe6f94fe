# Flare developer commands. Everything runs in .venv, made on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.flare-installed
PYPROJECTS := $(wildcard */pyproject.toml)

.PHONY: demo test bench lint system-deps clean

$(STAMP): requirements.txt requirements-dev.txt $(PYPROJECTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m uvicorn examples.example:app --host 127.0.0.1 --port 8000

system-deps:
	bash scripts/system-deps.sh

test: $(STAMP) system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	FLARE_BENCH=1 bash scripts/system-deps.sh
	$(PY) -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy flare_core/src flare_sqlite/src flare_redis/src flare_dashboard/src flare_zitadel/src fastapi_flare/src

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache .mypy_cache .ruff_cache
