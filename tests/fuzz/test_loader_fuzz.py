"""Mutated inputs of every format: each public loader gives a valid result or its own error.

Each case (see ``benchmarks/fuzz_runner.py``) asserts: a :class:`DwiToolkitError` or a valid
result, no answer slower than the time limit, nothing written or changed in the input folder.
The default run keeps a small fixed budget per format (derandomised, so CI is reproducible);
``-m slow`` runs a larger one. ``python benchmarks/fuzz_runner.py --cases 20000`` is the
documented large run (docs/robustness.md).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import large_run_selected

FORMATS = ["dicom_ge", "dicom_classic", "dicom_mosaic", "dicom_enhanced", "nifti", "gradients", "roi_json",
           "slicer", "labelmap", "clinical", "pipeline_toml"]
#: examples per format in the default run (the whole fuzz suite stays well under a minute)
BUDGET = {"dicom_ge": 40, "dicom_classic": 30, "dicom_mosaic": 25, "dicom_enhanced": 25}
TIME_LIMIT_S = 20.0


def _check(fuzzers, fuzz_runner, fmt: str, seed: int) -> str:
    if fmt not in fuzzers:
        pytest.skip(f"{fmt}: the real GE series is not in the shared test data (set DWI_TOOLKIT_SHARED)")
    fz = fuzzers[fmt]
    try:
        func = fz.case(random.Random(f"{fmt}:{seed}"))
        out = fuzz_runner.run_case(func, fz.dir, timeout=TIME_LIMIT_S)
    finally:
        fz.reset()
    assert out.kind in ("ok", "own"), f"{fmt} seed {seed}: {out.kind}: {out.detail}"
    assert out.seconds < TIME_LIMIT_S
    return out.kind


def _fuzz(fmt: str, n: int):
    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(seed=st.integers(0, 2**31 - 1))
    def run(fuzzers, fuzz_runner, seed):
        _check(fuzzers, fuzz_runner, fmt, seed)
    return run


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_inputs_give_own_errors(fmt, fuzzers, fuzz_runner):
    marks = [m for m in ("dicom_ge",) if fmt == m]
    if marks and fmt not in fuzzers:
        pytest.skip("shared GE series absent")
    _fuzz(fmt, BUDGET.get(fmt, 20))(fuzzers, fuzz_runner)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_inputs_large_run(fmt, fuzzers, fuzz_runner, request):
    if not large_run_selected(request.config):
        pytest.skip("the larger fuzz run: select it with -m slow")
    _fuzz(fmt, 400)(fuzzers, fuzz_runner)


def test_fuzzer_finds_what_it_should(fuzzers, fuzz_runner):
    """The mutators really damage inputs: a good share of cases end in our own error."""
    kinds = [_check(fuzzers, fuzz_runner, "nifti", s) for s in range(30)]
    assert 5 <= kinds.count("own") <= 28 and "ok" in kinds


def test_run_case_counts_foreign_exceptions_and_input_changes(fuzz_runner, tmp_path):
    (tmp_path / "a.txt").write_text("x")

    def foreign():
        raise KeyError("boom")

    def writes():
        (tmp_path / "b.txt").write_text("y")

    assert fuzz_runner.run_case(foreign, tmp_path).kind == "crash"
    assert fuzz_runner.run_case(writes, tmp_path).detail == "the input folder changed"
    assert fuzz_runner.run_case(lambda: None, tmp_path, timeout=5).kind == "ok"
