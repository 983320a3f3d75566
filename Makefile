# ScriptViT lab — `make demo`, `make test`, `make lab`.
# Each target creates .venv (if missing) and installs the package with its dev tools.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint test-py test-notebooks strip lab clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade -q pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: install
	$(PY) -m scriptvit_lib demo

lint: install
	$(PY) -m ruff check scriptvit_lib tests bench examples
	$(PY) -m ruff format --check scriptvit_lib tests bench examples

# SCRIPTVIT_FAST=1 shrinks data, models and steps in the notebooks (their `parameters` cells).
test-py: install
	SCRIPTVIT_FAST=1 $(PY) -m pytest tests -q -ra

test-notebooks: install
	SCRIPTVIT_FAST=1 $(PY) -m pytest --nbval-lax --nbval-current-env notebooks -q -p no:cacheprovider

# Strip outputs from every notebook before committing (tests/test_packaging.py checks it).
strip: install
	$(VENV)/bin/nbstripout notebooks/*.ipynb

test: lint test-py test-notebooks

lab: install
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf notebooks/_out .pytest_cache .ruff_cache
