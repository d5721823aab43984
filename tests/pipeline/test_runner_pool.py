"""The local pool's start-up (issue 21): warm workers from a preloading fork server, largest subjects first."""

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from types import SimpleNamespace

import pytest

from dwi_toolkit.pipeline import runner


#: evaluated in a worker (a builtin is picklable by name, a function of this test module may not be)
_LOADED = ("('matplotlib.figure' in __import__('sys').modules, 'dwi_toolkit.pipeline.steps' in "
           "__import__('sys').modules, __import__('os').environ.get('OPENBLAS_NUM_THREADS'))")


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here")
def test_pool_workers_start_with_the_subject_modules_imported(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    ctx = runner._pool_context()
    assert ctx.get_start_method() == "forkserver"
    assert "OPENBLAS_NUM_THREADS" not in os.environ  # set for the server only, not left in this process
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as ex:
        mpl, steps, blas = ex.submit(eval, _LOADED).result(timeout=120)
    # nothing imported them in the worker before this task: the fork server did
    assert mpl and steps
    assert blas in ("1", None)  # one BLAS thread where the server started with our default


def test_largest_inputs_run_first():
    tasks = [SimpleNamespace(inputs={"dwi": {"size_bytes": n}}, name=n) for n in (10, 300, 0, 50)]
    tasks.append(SimpleNamespace(inputs={}, name=-1))  # a DICOM folder without a size still runs
    assert [t.name for t in runner._lpt(tasks)] == [300, 50, 10, 0, -1]


def test_preload_worker_imports_what_a_subject_needs():
    done = runner.preload_worker()
    assert "dwi_toolkit.pipeline.steps" in done and "numpy" in done
    assert set(done) <= set(runner.WORKER_PRELOAD)
