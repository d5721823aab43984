# dwi_toolkit — set-up contract: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo_output
PYTEST_ARGS ?=

.PHONY: help venv demo test test-fast bench sample-data docs clean

help:
	@echo "make demo   - create .venv, install, run the pipeline on sample_data/ -> $(DEMO_OUT)/"
	@echo "make test   - create .venv, install with test extras, run the whole test suite"
	@echo "make test-fast - the suite without tests marked slow"
	@echo "make docs   - build the documentation site (offline, warnings are errors) -> docs/_build/html"
	@echo "make bench  - run the benchmarks (installs the bench extras) -> docs/benchmarks.md figures"
	@echo "make sample-data - regenerate sample_data/ from its deterministic generator"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/dwi-toolkit info sample_data/sub-01/dwi/sub-01_dwi.nii.gz
	$(BIN)/dwi-toolkit analyze sample_data/sub-01/dwi/sub-01_dwi.nii.gz \
		--rois sample_data/sub-01/rois/sub-01_rois.json \
		--clinical sample_data/sub-01/clinical.json \
		--b-min 100 -o $(DEMO_OUT)/sub-01
	@echo "Demo finished: open $(DEMO_OUT)/sub-01/report.html"


test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html
	@echo "Documentation: docs/_build/html/index.html"

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python benchmarks/run_all.py

sample-data: $(STAMP)
	$(BIN)/python -m dwi_toolkit.sample_data sample_data

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache build *.egg-info
