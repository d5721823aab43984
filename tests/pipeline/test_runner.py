"""The batch runner: same results serial / pool / Dask, failures isolated, resumable, inputs untouched."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest

from dwi_toolkit.errors import PipelineError
from dwi_toolkit.pipeline.runner import LOCK, PROVENANCE, run_pipeline
from tests.conftest import REPO
from tests.pipeline._helpers import leftovers, manifest, pipeline_file, tiny_cohort, tree_hash


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    tiny_cohort(root / "in", n_good=3, broken=True)
    return root / "in"


def _adc(out, key):
    return np.asanyarray(nib.load(out / key / "dwi" / f"{key}_ADC.nii.gz").dataobj)


def test_serial_run_broken_subject_reported_others_succeed(cohort, tmp_path):
    before = tree_hash(cohort)
    events = []
    res = run_pipeline(cohort, tmp_path / "out", pipeline=pipeline_file(tmp_path / "p.toml"), progress=events.append)
    assert tree_hash(cohort) == before  # inputs byte-identical, nothing added
    st = {r.key: r.status for r in res.results}
    assert st == {"sub-01": "done", "sub-02": "done", "sub-03": "done", "sub-04": "failed"}
    assert res.exit_code == 1
    bad = res.failed[0]
    assert bad.error_type == "GradientError" and ".bval" in bad.reason and bad.reason.startswith("load:")
    out = tmp_path / "out"
    m = manifest(out)
    assert m["subjects"]["sub-04"]["status"] == "failed" and m["subjects"]["sub-04"]["log"] == "logs/sub-04.log"
    assert "Traceback" in (out / "logs" / "sub-04.log").read_text()
    assert not (out / "sub-04").exists()
    for key in ("sub-01", "sub-02", "sub-03"):
        e = m["subjects"][key]
        assert e["status"] == "done" and e["pipeline_hash"] == res.pipeline.hash and e["duration_s"] > 0
        assert set(e["inputs"]) >= {"dwi", "dwi:bval", "dwi:bvec", "rois", "clinical"}
        assert all(len(v["sha256"]) == 64 and not v["path"].startswith("/") for v in e["inputs"].values())
        prov = json.loads((out / key / PROVENANCE).read_text())
        assert prov["pipeline"]["hash"] == res.pipeline.hash and prov["software"]["version"]
        assert prov["pipeline"]["config"]["steps"][1]["method"] == "wls"
        # the ADC map is the fit of the input, recomputed independently here
        assert np.isfinite(_adc(out, key)).sum() > 50
    assert m["runs"][-1]["status"] == "completed" and m["runs"][-1]["counts"]["failed"] == 1
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative" and desc["GeneratedBy"][0]["Name"] == "dwi_toolkit"
    assert "pipeline hash" in (out / "pipeline.toml").read_text()
    assert leftovers(out) == []
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds.count("subject") == 4 and "step" in kinds
    assert events[-1].completed == events[-1].total == 4


def test_adc_map_matches_a_direct_fit(cohort, tmp_path):
    from dwi_toolkit.core.masks import signal_mask
    from dwi_toolkit.io.loading import load_dwi
    from dwi_toolkit.models.adc import fit_adc

    run_pipeline(cohort, tmp_path / "out", pipeline=pipeline_file(tmp_path / "p.toml"), participant_labels=["01"])
    s = load_dwi(cohort / "sub-01" / "dwi" / "sub-01_dwi.nii.gz")
    direct = fit_adc(s, method="wls", mask=signal_mask(s.mean_b0())).adc.astype(np.float32)
    np.testing.assert_array_equal(_adc(tmp_path / "out", "sub-01"), direct)


def _outputs(out):
    return {k: _adc(out, k) for k in ("sub-01", "sub-02", "sub-03")}


def test_parallel_run_gives_the_serial_results(cohort, tmp_path):
    p = pipeline_file(tmp_path / "p.toml")
    serial = run_pipeline(cohort, tmp_path / "s", pipeline=p)
    par = run_pipeline(cohort, tmp_path / "p", pipeline=p, jobs=2)
    assert {r.key: r.status for r in serial.results} == {r.key: r.status for r in par.results}
    a, b = _outputs(tmp_path / "s"), _outputs(tmp_path / "p")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    ms, mp = manifest(tmp_path / "s"), manifest(tmp_path / "p")
    for k in ms["subjects"]:
        assert ms["subjects"][k]["inputs"] == mp["subjects"][k]["inputs"]
        assert ms["subjects"][k]["products"] == mp["subjects"][k]["products"]
    assert mp["runs"][-1]["jobs"] == 2


def test_dask_run_gives_the_serial_results(cohort, tmp_path):
    distributed = pytest.importorskip("distributed")
    p = pipeline_file(tmp_path / "p.toml")
    serial = run_pipeline(cohort, tmp_path / "s", pipeline=p)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        res = run_pipeline(cohort, tmp_path / "d", pipeline=p, scheduler=cluster.scheduler_address)
    assert {r.key: r.status for r in serial.results} == {r.key: r.status for r in res.results}
    a, b = _outputs(tmp_path / "s"), _outputs(tmp_path / "d")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert manifest(tmp_path / "d")["runs"][-1]["scheduler"].startswith(("tcp://", "inproc://"))


@pytest.mark.slow
def test_dask_worker_processes(cohort, tmp_path):
    distributed = pytest.importorskip("distributed")
    p = pipeline_file(tmp_path / "p.toml", 'step = "fail_for"\nsubject = "sub-02"')
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        res = run_pipeline(cohort, tmp_path / "d", pipeline=p, scheduler=cluster.scheduler_address)
    st = {r.key: r.status for r in res.results}
    assert st == {"sub-01": "done", "sub-02": "failed", "sub-03": "done", "sub-04": "failed"}
    assert "sub-02: bad input" in res.failed[0].reason + res.failed[1].reason


def test_rerun_skips_unchanged_and_redoes_changed(cohort, tmp_path):
    p = pipeline_file(tmp_path / "p.toml")
    out = tmp_path / "out"
    run_pipeline(cohort, out, pipeline=p)
    first = {k: (out / k / PROVENANCE).read_text() for k in ("sub-01", "sub-02", "sub-03")}
    again = run_pipeline(cohort, out, pipeline=p)
    st = {r.key: r.status for r in again.results}
    assert st == {"sub-01": "skipped", "sub-02": "skipped", "sub-03": "skipped", "sub-04": "failed"}
    assert {k: (out / k / PROVENANCE).read_text() for k in first} == first  # untouched
    assert manifest(out)["subjects"]["sub-01"]["status"] == "done"
    # change one subject's input (in a copy: inputs are never modified by us)
    import shutil

    copy = tmp_path / "in2"
    shutil.copytree(cohort, copy)
    (copy / "sub-02" / "clinical.json").write_text((copy / "sub-02" / "clinical.json").read_text() + " ")
    third = run_pipeline(copy, out, pipeline=p)
    st = {r.key: r.status for r in third.results}
    assert st["sub-02"] == "done" and st["sub-01"] == st["sub-03"] == "skipped"
    assert [pl.reason for pl in third.plan if pl.subject.key == "sub-02"] == ["inputs changed"]
    # a pipeline change redoes everything; --force too
    p2 = pipeline_file(tmp_path / "p2.toml", name="other")
    p2.write_text(p2.read_text().replace('method = "wls"', 'method = "ols"'))
    assert {r.status for r in run_pipeline(copy, out, pipeline=p2).results} == {"done", "failed"}
    assert {r.status for r in run_pipeline(copy, out, pipeline=p2, force=True).results} == {"done", "failed"}


def test_interrupted_run_resumes_without_redoing_or_partial_outputs(cohort, tmp_path):
    marker = tmp_path / "STOP"
    marker.write_text("")
    p = pipeline_file(tmp_path / "p.toml", f'step = "tripwire"\nsubject = "sub-02"\nmarker = "{marker}"')
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cohort, out, pipeline=p)
    assert (out / "sub-01" / PROVENANCE).is_file()
    assert not (out / "sub-02").exists() and not (out / "sub-03").exists()  # nothing half-written
    assert leftovers(out) == [] and not (out / LOCK).exists()
    m = manifest(out)
    assert m["runs"][-1]["status"] == "interrupted" and set(m["subjects"]) == {"sub-01"}
    done_before = (out / "sub-01" / PROVENANCE).read_text()
    marker.unlink()
    res = run_pipeline(cohort, out, pipeline=p)
    st = {r.key: r.status for r in res.results}
    assert st == {"sub-01": "skipped", "sub-02": "done", "sub-03": "done", "sub-04": "failed"}
    assert (out / "sub-01" / PROVENANCE).read_text() == done_before
    assert leftovers(out) == []


def test_killed_process_then_rerun(cohort, tmp_path):
    """SIGKILL a real `dwi-toolkit run` in the middle of a subject, then run again."""
    marker = tmp_path / "BLOCK"
    marker.write_text("")
    p = pipeline_file(tmp_path / "p.toml", f'step = "block"\nsubject = "sub-03"\nmarker = "{marker}"')
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dwi_toolkit", "run", str(cohort), "-o", str(out), "--pipeline", str(p)]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:  # wait until sub-03 is being computed (its temp folder exists)
            if any(q.name.startswith(".sub-03.") for q in out.glob(".sub-03.*")):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the run never reached sub-03")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert leftovers(out) != []  # the killed run left its temporary folder ...
    assert not (out / "sub-03").exists()  # ... but no half-written subject in place
    assert (out / "sub-01" / PROVENANCE).is_file() and (out / "sub-02" / PROVENANCE).is_file()
    marker.unlink()
    res = run_pipeline(cohort, out, pipeline=p)  # stale lock of the dead process is taken over
    st = {r.key: r.status for r in res.results}
    assert st == {"sub-01": "skipped", "sub-02": "skipped", "sub-03": "done", "sub-04": "failed"}
    assert leftovers(out) == []


def test_failure_inside_a_step_keeps_no_partial_output(cohort, tmp_path):
    p = pipeline_file(tmp_path / "p.toml", 'step = "fail_for"\nsubject = "sub-03"\nmessage = "corrupt ROI"')
    res = run_pipeline(cohort, tmp_path / "out", pipeline=p, jobs=2)
    st = {r.key: r.status for r in res.results}
    assert st == {"sub-01": "done", "sub-02": "done", "sub-03": "failed", "sub-04": "failed"}
    r3 = next(r for r in res.results if r.key == "sub-03")
    assert r3.reason == "fail_for: InputDataError: sub-03: corrupt ROI"
    assert not (tmp_path / "out" / "sub-03").exists() and leftovers(tmp_path / "out") == []


def test_dry_run_writes_nothing(cohort, tmp_path):
    res = run_pipeline(cohort, tmp_path / "out", pipeline=pipeline_file(tmp_path / "p.toml"), dry_run=True)
    assert [p.action for p in res.plan] == ["run"] * 4 and res.results == []
    assert not (tmp_path / "out").exists()


def test_output_inside_input_is_refused(cohort, tmp_path):
    with pytest.raises(PipelineError, match="inside the input"):
        run_pipeline(cohort, cohort / "out", pipeline=pipeline_file(tmp_path / "p.toml"))
    assert not (cohort / "out").exists()


def test_a_live_lock_stops_a_second_run(cohort, tmp_path):
    import socket

    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK).write_text(f"{os.getpid()} {socket.gethostname()}\n")
    with pytest.raises(PipelineError, match="another dwi-toolkit run"):
        run_pipeline(cohort, out, pipeline=pipeline_file(tmp_path / "p.toml"))


def test_interrupt_in_a_worker_process_stops_the_pool_run_cleanly(cohort, tmp_path):
    marker = tmp_path / "STOP"
    marker.write_text("")
    p = pipeline_file(tmp_path / "p.toml", f'step = "tripwire"\nsubject = "sub-02"\nmarker = "{marker}"')
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(cohort, out, pipeline=p, jobs=2)
    assert not (out / "sub-02").exists() and leftovers(out) == [] and not (out / LOCK).exists()
    assert manifest(out)["runs"][-1]["status"] == "interrupted"
    finished = {k for k in ("sub-01", "sub-03") if (out / k / PROVENANCE).is_file()}
    marker.unlink()
    res = run_pipeline(cohort, out, pipeline=p, jobs=2)
    st = {r.key: r.status for r in res.results}
    assert st["sub-02"] == "done" and st["sub-04"] == "failed"
    assert {k for k in ("sub-01", "sub-03") if st[k] == "skipped"} == finished
    assert leftovers(out) == []
