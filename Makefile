# dwi_toolkit — set-up contract: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_OUT ?= demo_output
PYTEST_ARGS ?=

.PHONY: help venv demo demo-cohort test test-fast browser-deps bench sample-data docs clean

help:
	@echo "make demo   - create .venv, install, run the pipeline on sample_data/ -> $(DEMO_OUT)/"
	@echo "make demo-cohort - generate the sample cohort and run 'dwi-toolkit run' on it -> $(DEMO_OUT)/cohort/"
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
		--b-range 100 - -o $(DEMO_OUT)/sub-01
	@echo "Demo finished: open $(DEMO_OUT)/sub-01/report.html"
	$(MAKE) demo-cohort

# The sample cohort (5 synthetic subjects, 2 as DICOM, 1 deliberately broken) is generated, not
# committed; the run exits 1 because of the broken subject, which is the point of the demo.
demo-cohort: $(STAMP)
	rm -rf $(DEMO_OUT)/cohort_input
	$(BIN)/python -m dwi_toolkit.sample_data --cohort $(DEMO_OUT)/cohort_input
	$(BIN)/dwi-toolkit run $(DEMO_OUT)/cohort_input -o $(DEMO_OUT)/cohort --jobs 2 || test $$? -eq 1
	@echo "Cohort demo finished: open $(DEMO_OUT)/cohort/index.html (sub-05 fails on purpose: no b-values)"


test: $(STAMP) browser-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Headless Chromium and pdftotext for tests/reporting/test_browser.py. Installed with apt only when
# missing and only as root on a machine with apt-get; quiet and never fatal (without them those
# tests are skipped with the reason). Instant when both are already installed.
browser-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v pdftotext >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils) \
	      >/dev/null 2>&1 || echo "note: chromium/poppler-utils not installed; browser tests will be skipped"; \
	  fi; \
	fi

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
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache build *.egg-info docs/_build docs/_autosummary
