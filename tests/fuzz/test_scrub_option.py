"""``--scrub-text/--no-scrub-text``: on by default, off with --keep-phi unless given explicitly."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dwi_toolkit.cli.main import main
from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.io import load_dwi
from dwi_toolkit.io._scrub import MASK, scrub_policy
from dwi_toolkit.io.dicom_write import write_dicom_series
from dwi_toolkit.pipeline.spec import load_pipeline

TYPED = "DWI Garcia 2024-03-01 A7654321"


@pytest.fixture
def typed_series(tmp_path):
    b = np.array([0.0, 800.0])
    s = DWISeries(np.full((4, 3, 2, 2), 100.0) * np.exp(-b * 1e-3), np.diag([2.0, 2.0, 4.0, 1.0]), b,
                  [[0, 0, 0], [0, 0, 1]])
    write_dicom_series(s, tmp_path / "dicom", series_number=5, description=TYPED,
                       patient_name="GARCIA^MARIA", patient_id="A7654321")
    return tmp_path / "dicom"


def _sidecar(folder):
    return json.loads(next(p for p in folder.iterdir() if p.suffix == ".json").read_text())


@pytest.mark.parametrize("flags,scrubbed", [([], True), (["--no-scrub-text"], False), (["--keep-phi"], False),
                                            (["--keep-phi", "--scrub-text"], True)])
def test_convert_policy(typed_series, tmp_path, flags, scrubbed):
    out = tmp_path / "out"
    assert main(["convert", str(typed_series), "-o", str(out), *flags]) == 0
    desc = _sidecar(out)["SeriesDescription"]
    assert desc == (f"DWI {MASK} {MASK} {MASK}" if scrubbed else TYPED)
    assert ("PatientName" in _sidecar(out)) == ("--keep-phi" in flags)  # attributes follow --keep-phi only


@pytest.mark.parametrize("flags,scrubbed", [([], True), (["--no-scrub-text"], False)])
def test_info_policy(typed_series, flags, scrubbed, capsys):
    assert main(["info", str(typed_series), "--json", *flags]) == 0
    desc = json.loads(capsys.readouterr().out)["SeriesDescription"]
    assert (desc == TYPED) is not scrubbed and ("Garcia" in desc) is not scrubbed


def test_loader_policy_and_context(typed_series):
    assert load_dwi(typed_series, scrub_text=False).meta["SeriesDescription"] == TYPED
    assert load_dwi(typed_series, keep_phi=True, scrub_text=True).meta["SeriesDescription"] != TYPED
    with scrub_policy(False):  # what `analyze --no-scrub-text` sets around the analysis
        assert load_dwi(typed_series).meta["SeriesDescription"] == TYPED
    assert load_dwi(typed_series).meta["SeriesDescription"] != TYPED


def test_run_option_sets_the_load_step(monkeypatch):
    from dwi_toolkit.cli.commands import run as run_cmd
    from dwi_toolkit.cli.main import build_parser

    args = build_parser().parse_args(["run", "in", "-o", "out", "--no-scrub-text"])
    spec = run_cmd._scrub_spec(args)
    assert spec.steps[0].params["scrub_text"] is False
    assert load_pipeline("default").steps[0].params["scrub_text"] is True
    assert spec.hash != load_pipeline("default").hash  # outputs differ, so the run redoes subjects
