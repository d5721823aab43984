"""Report figures drawn by forked worker processes (issue 21): same PNG bytes, fallbacks, CLI start-up."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from dwi_toolkit.reporting import figure_worker as W
from dwi_toolkit.reporting.figures import adc_montage, signal_decay_figure, DecayCurve

REPO = Path(__file__).resolve().parents[2]
SUB = REPO / "sample_data" / "sub-01"
CAN_FORK = sys.platform.startswith("linux") and len(os.sched_getaffinity(0)) >= 2
needs_worker = pytest.mark.skipif(not CAN_FORK, reason="figure workers need Linux fork and 2 usable CPUs")


@pytest.fixture(autouse=True)
def _workers_on(monkeypatch):
    monkeypatch.setenv("DWI_TOOLKIT_FIGURE_PROCESS", "1")  # on even when the machine is busy (load average)


def _curve():
    return DecayCurve("L5 left", np.array([0.0, 400.0, 800.0]), np.array([1000.0, 640.0, 420.0]),
                      np.array([20.0, 15.0, 12.0]), 9, 1000.0, 1.1e-3, np.array([0.0, 400.0, 800.0]))


def _montage_inputs():
    adc = np.full((40, 40, 4), 1.1e-3)
    adc[5:9, 5:9, 1] = np.nan
    mask = np.zeros(adc.shape, bool)  # > _PACK_MIN elements: travels bit-packed
    mask[18:23, 18:23, 1:3] = True
    return adc, [("L5 left ganglion", mask)]


@needs_worker
def test_worker_pngs_equal_in_process_pngs_and_jobs_are_reused():
    adc, rois = _montage_inputs()
    here = [W.figure_job(adc_montage, adc, rois=rois, affine=np.eye(4)).png(),
            W.figure_job(signal_decay_figure, [_curve()]).png()]
    with W.background_figures() as running:
        assert running and W.worker_running()
        aff = np.eye(4)
        early = W.figure_job(adc_montage, adc, rois=rois, affine=aff)  # sent before it is needed
        late = W.figure_job(adc_montage, adc, rois=list(rois), affine=aff)  # the same objects: reused
        assert W.figure_job(adc_montage, adc.copy(), rois=rois, affine=aff) is not early  # other objects
        decay = W.figure_job(signal_decay_figure, [_curve()])
        assert late is early and early._worker is not None
        there = [late.png(), decay.png()]
    assert not W.worker_running()
    assert there == here


@needs_worker
def test_unpicklable_inputs_and_a_dead_worker_fall_back_to_drawing_here():
    lock = threading.Lock()  # cannot be pickled: the job is drawn in this process

    def fig_with_lock(curves, guard):
        return signal_decay_figure(curves)

    with W.background_figures():
        assert W.figure_job(fig_with_lock, [_curve()], lock).png()[1:4] == b"PNG"
        worker = W._ACTIVE[-1]
        os.kill(worker.pid, 9)
        os.waitpid(worker.pid, 0)
        assert W.figure_job(signal_decay_figure, [_curve()], dpi=50).png()[1:4] == b"PNG"


def test_no_worker_on_a_busy_machine_unless_forced(monkeypatch):
    monkeypatch.delenv("DWI_TOOLKIT_FIGURE_PROCESS", raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (64.0, 64.0, 64.0))
    assert not W._usable()
    monkeypatch.setenv("DWI_TOOLKIT_FIGURE_PROCESS", "1")
    assert W._usable() == CAN_FORK


def test_no_worker_when_switched_off(monkeypatch):
    monkeypatch.setenv("DWI_TOOLKIT_FIGURE_PROCESS", "0")
    with W.background_figures() as running:
        assert not running
        assert W.figure_job(signal_decay_figure, [_curve()], dpi=40).png()[1:4] == b"PNG"


@needs_worker
def test_cli_analyze_leaves_matplotlib_to_the_worker(tmp_path):
    """With figures, the analyze process itself never imports matplotlib: the workers draw."""
    args = [str(SUB / "dwi" / "sub-01_dwi.nii.gz"), "--rois", str(SUB / "rois" / "sub-01_rois.json"),
            "--clinical", str(SUB / "clinical.json"), "-o", str(tmp_path / "out"), "--n-boot", "200"]
    code = ("import sys; from dwi_toolkit.cli.main import main; "
            f"code = main(['analyze', *{args!r}]); print('MPL=' + str('matplotlib' in sys.modules)); sys.exit(code)")
    env = dict(os.environ, DWI_TOOLKIT_FIGURE_PROCESS="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env)
    assert res.returncode == 0, res.stderr
    assert "MPL=False" in res.stdout.splitlines()
    pngs = sorted(p.name for p in (tmp_path / "out" / "figures").glob("*.png"))
    assert pngs == ["adc_montage.png", "side_comparison.png", "signal_decay.png"]
    assert all((tmp_path / "out" / "figures" / p).read_bytes()[1:4] == b"PNG" for p in pngs)
