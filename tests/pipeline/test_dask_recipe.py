"""docs/dask.md's local-cluster recipe runs as a plain script (issue 21), with worker processes."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.pipeline._helpers import manifest


def _recipe() -> str:
    text = (REPO / "docs" / "dask.md").read_text()
    section = text[text.index("## 2. Try it on one machine first"):text.index("## 3. A real cluster")]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_recipe_has_the_main_guard_and_one_thread_per_process():
    code = _recipe()
    assert 'if __name__ == "__main__":' in code
    assert "processes=True" in code and "threads_per_worker=1" in code


@pytest.mark.slow
def test_recipe_runs_as_a_script(tmp_path):
    pytest.importorskip("distributed")
    from dwi_toolkit.sample_data import COHORT, generate_cohort

    # the sample grid (the default pipeline's ROI statistics need it; the tiny test grid is too coarse)
    generate_cohort(tmp_path / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-03")}, dicom=False)
    code = _recipe().replace('"/data/study_out"', repr(str(tmp_path / "out"))).replace(
        '"/data/study"', repr(str(tmp_path / "in")))
    script = tmp_path / "run_dask.py"
    script.write_text(code)
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "'done': 2" in res.stdout
    m = manifest(tmp_path / "out")
    assert {k: v["status"] for k, v in m["subjects"].items()} == {"sub-01": "done", "sub-03": "done"}
    assert m["runs"][-1]["scheduler"].startswith("tcp://")  # worker processes, not in-process threads


def test_threaded_workers_are_warned_about(tmp_path, caplog):
    distributed = pytest.importorskip("distributed")
    from dwi_toolkit.pipeline.runner import _dask_slots

    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        with caplog.at_level("WARNING", logger="dwi_toolkit.pipeline.runner"):
            assert _dask_slots(client) == 2
    assert "one thread per worker process" in caplog.text
