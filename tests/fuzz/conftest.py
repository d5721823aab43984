"""Fuzz-suite fixtures: the mutators and the case runner of ``benchmarks/fuzz_runner.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "benchmarks" / "fuzz_runner.py"


def _load_runner():
    spec = importlib.util.spec_from_file_location("dwi_fuzz_runner", RUNNER)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the file executes
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def fuzz_runner():
    """The ``benchmarks/fuzz_runner.py`` module (mutators, :func:`run_case`)."""
    return _load_runner()


@pytest.fixture(scope="session")
def fuzzers(fuzz_runner, tmp_path_factory):
    """Every fuzzer, built once per session in a temporary folder."""
    return fuzz_runner.make_fuzzers(tmp_path_factory.mktemp("fuzz"))


def large_run_selected(config) -> bool:
    """True when the run selects slow tests explicitly (``-m slow``)."""
    return "slow" in (config.getoption("-m") or "") and "not slow" not in (config.getoption("-m") or "")
