# bindwatch: the habits a new engineer expects.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Every install comes from a lock: exact versions, each file checked against its hash.
INSTALL := $(PY) -m pip install --quiet --require-hashes
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev
# One resolution for every platform and Python from 3.11 up; the header names `make lock`.
COMPILE := $(PY) -m uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--upgrade --custom-compile-command "make lock"

.PHONY: run test lint format bench notebook lock clean

$(RUNTIME): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(INSTALL) -r requirements.lock
	@touch $@

$(DEV): requirements-dev.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(INSTALL) -r requirements-dev.lock
	@touch $@

# The console with a watcher beside it; `make run WATCH=0` serves it without one.
WATCH ?= 1
run: $(RUNTIME)
	BINDWATCH_WATCH=$(WATCH) $(PY) -m streamlit run server.py

test: $(DEV)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(DEV)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(DEV)
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(DEV)
	$(PY) -m bench

# JupyterLab on loopback over notebooks/, its kernels importing lib from this checkout;
# e.g. `make notebook NOTEBOOK_ARGS=--ServerApp.port=8889`.
NOTEBOOK_ARGS ?=
notebook: $(DEV)
	PYTHONPATH=$(CURDIR) $(PY) -m jupyter lab --ServerApp.ip=127.0.0.1 --no-browser \
		--ServerApp.root_dir=$(CURDIR)/notebooks $(NOTEBOOK_ARGS)

# Re-resolve both locks from requirements*.txt, taking the newest versions their bounds allow;
# the dev lock keeps every runtime pin of requirements.lock.
lock: $(DEV)
	$(COMPILE) requirements.txt -o requirements.lock
	$(COMPILE) requirements-dev.txt -c requirements.lock -o requirements-dev.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
