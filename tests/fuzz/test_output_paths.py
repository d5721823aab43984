"""Output folders can never land in the inputs, symlinks included; the manifest notes
subjects whose data lives outside the input folder."""

from __future__ import annotations

import json
import os

import pytest

from dwi_toolkit.errors import PipelineError
from dwi_toolkit.pipeline.runner import run_pipeline
from dwi_toolkit.sample_data import COHORT, generate_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """in/sub-01 (real folder), in/sub-02 -> elsewhere/sub-02 (symlink), in/outlink -> outside/."""
    tmp = tmp_path_factory.mktemp("paths")
    generate_cohort(tmp / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-02")}, dicom=False)
    (tmp / "elsewhere").mkdir()
    os.rename(tmp / "in" / "sub-02", tmp / "elsewhere" / "sub-02")
    os.symlink(tmp / "elsewhere" / "sub-02", tmp / "in" / "sub-02")
    (tmp / "outside").mkdir()
    os.symlink(tmp / "outside", tmp / "in" / "outlink")
    os.symlink(tmp / "elsewhere" / "sub-02", tmp / "alias")  # outside the input, but it *is* sub-02's data
    return tmp


def _tree(folder):
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("rel", ["in/sub-02/out", "in/outlink", "in/outlink/deeper", "in/sub-01/out", "in/out",
                                 "in/sub-02/../sub-01/x", "alias/out", "alias"])
def test_output_inside_an_input_is_refused_before_writing(cohort, rel):
    before = _tree(cohort / "elsewhere"), _tree(cohort / "in"), _tree(cohort / "outside")
    with pytest.raises(PipelineError, match="inside"):
        run_pipeline(cohort / "in", cohort / rel, pipeline="adc-only", jobs=1)
    assert (_tree(cohort / "elsewhere"), _tree(cohort / "in"), _tree(cohort / "outside")) == before


def test_output_outside_is_accepted_and_external_subject_recorded(cohort, tmp_path):
    before = _tree(cohort / "elsewhere")
    res = run_pipeline(cohort / "in", tmp_path / "out", pipeline="adc-only", jobs=1, cohort=False)
    assert res.counts["done"] == 2
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["subjects"]["sub-02"].get("data_outside_input") is True
    assert "data_outside_input" not in manifest["subjects"]["sub-01"]
    assert _tree(cohort / "elsewhere") == before


def test_own_output_is_never_a_subject(tmp_path):
    generate_cohort(tmp_path / "in", subjects={"sub-01": COHORT["sub-01"]}, dicom=False)
    run_pipeline(tmp_path / "in", tmp_path / "out", pipeline="adc-only", jobs=1, cohort=False)
    os.symlink(tmp_path / "out", tmp_path / "in" / "results")  # a previous output linked into the input
    res = run_pipeline(tmp_path / "in", tmp_path / "out2", pipeline="adc-only", jobs=1, dry_run=True)
    assert [p.subject.key for p in res.plan] == ["sub-01"]
    # and the run writing *to* the linked folder does not treat it as a subject either
    res = run_pipeline(tmp_path / "in", tmp_path / "out", pipeline="adc-only", jobs=1, dry_run=True)
    assert [p.subject.key for p in res.plan] == ["sub-01"]
