"""Faults during a cohort run: a disk that fills up mid-write, a read-only output folder, a
killed worker process. Nothing partial is left looking complete, the manifest says what
happened, and a rerun resumes."""

from __future__ import annotations

import errno
import json
import os
import tempfile

import pytest

from dwi_toolkit.errors import PipelineError
from dwi_toolkit.pipeline.runner import run_pipeline

from tests.pipeline._helpers import pipeline_file, tiny_cohort


@pytest.fixture
def cohort(tmp_path):
    tiny_cohort(tmp_path / "in", n_good=3, broken=False)
    return tmp_path / "in"


@pytest.fixture
def adc(tmp_path):
    """load + ADC only (the tiny grid is too coarse for the ROI steps)."""
    return pipeline_file(tmp_path / "adc.toml", plugins=False)


def _complete(out, key):
    return (out / key / "provenance.json").is_file()


def test_disk_full_mid_write_loses_nothing_and_rerun_resumes(cohort, adc, tmp_path, monkeypatch):
    real_replace = os.replace

    def full_disk(src, dst, *a, **k):  # the atomic writer's final rename fails for sub-02's ADC map
        if "sub-02" in str(dst) and str(dst).endswith(".nii.gz"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", full_disk)
    res = run_pipeline(cohort, tmp_path / "out", pipeline=adc, jobs=1, cohort=False)
    monkeypatch.setattr(os, "replace", real_replace)
    out = tmp_path / "out"
    assert res.counts == {"done": 2, "skipped": 0, "failed": 1}
    assert not (out / "sub-02").exists() and _complete(out, "sub-01") and _complete(out, "sub-03")
    # hidden files left over from interrupted atomic writes (the lock and the BIDS .bidsignore are ours)
    leftovers = [p.name for p in out.rglob("*")
                 if p.name.startswith(".") and p.name not in (".dwi_toolkit.lock", ".bidsignore")]
    assert leftovers == []
    entry = json.loads((out / "manifest.json").read_text())["subjects"]["sub-02"]
    assert entry["status"] == "failed" and "No space left" in entry["reason"]
    again = run_pipeline(cohort, out, pipeline=adc, jobs=1, cohort=False)
    assert again.counts == {"done": 1, "skipped": 2, "failed": 0} and _complete(out, "sub-02")


def test_read_only_output_folder_is_refused_up_front(cohort, adc, tmp_path, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    if os.geteuid() != 0:
        out.chmod(0o555)
    else:  # root ignores permissions: make the file system refuse instead
        def ro(*a, **k):
            raise OSError(errno.EROFS, "Read-only file system")
        monkeypatch.setattr(tempfile, "mkstemp", ro)
    try:
        with pytest.raises(PipelineError, match="cannot write in the output folder"):
            run_pipeline(cohort, out, pipeline=adc, jobs=1)
    finally:
        out.chmod(0o755)
    assert list(out.iterdir()) == []


def test_killed_run_is_recorded_and_resumed(cohort, adc, tmp_path):
    out = tmp_path / "out"
    run_pipeline(cohort, out, pipeline=adc, jobs=1, cohort=False)
    man = json.loads((out / "manifest.json").read_text())
    man["runs"][-1]["status"] = "running"  # as a run killed mid-way leaves it
    (out / "manifest.json").write_text(json.dumps(man))
    (out / ".sub-01.abc123").mkdir()  # its half-written temporary subject folder
    (out / ".sub-01.abc123" / "adc.nii.gz").write_bytes(b"partial")
    run_pipeline(cohort, out, pipeline=adc, jobs=1, cohort=False)
    man = json.loads((out / "manifest.json").read_text())
    assert [r["status"] for r in man["runs"]] == ["killed", "completed"]
    assert not (out / ".sub-01.abc123").exists()


@pytest.mark.slow
def test_killed_worker_process(cohort, tmp_path):
    marker = tmp_path / "kill"
    marker.write_text("x")
    spec = pipeline_file(tmp_path / "p.toml", f'step = "kill_worker"\nsubject = "sub-02"\nmarker = "{marker}"')
    spec.write_text(spec.read_text().replace("tests.pipeline._plugin_steps", "tests.fuzz._fault_steps"))
    out = tmp_path / "out"
    res = run_pipeline(cohort, out, pipeline=spec, jobs=2, cohort=False)
    assert res.counts == {"done": 2, "skipped": 0, "failed": 1}
    failed = res.failed[0]
    assert failed.key == "sub-02" and failed.error_type == "WorkerDied"
    assert not (out / "sub-02").exists()
    assert json.loads((out / "manifest.json").read_text())["subjects"]["sub-02"]["error_type"] == "WorkerDied"
    marker.unlink()
    again = run_pipeline(cohort, out, pipeline=spec, jobs=2, cohort=False)
    assert again.counts == {"done": 1, "skipped": 2, "failed": 0}
