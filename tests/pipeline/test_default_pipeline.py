"""End to end on the sample cohort with the real analysis steps (skipped until the ROI, clinical,
report and DICOM parts are merged): the altered roots come out concordant where they are
suspected, the control does not, the broken subject is reported, and the composed `default`
pipeline agrees with the single `analyze` step."""

from __future__ import annotations

import csv
import json

import pytest

for _mod in ("dwi_toolkit.pipeline.analyze", "dwi_toolkit.analysis.compare", "dwi_toolkit.analysis.roi_stats",
             "dwi_toolkit.io.rois", "dwi_toolkit.io.clinical", "dwi_toolkit.reporting.report",
             "dwi_toolkit.clinical.entrapment", "dwi_toolkit.roi.sample"):
    pytest.importorskip(_mod, reason=f"{_mod} is not merged into this build yet")

from dwi_toolkit.pipeline.runner import run_pipeline  # noqa: E402
from dwi_toolkit.sample_data import generate_cohort  # noqa: E402
from tests.pipeline._helpers import tree_hash  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from dwi_toolkit.errors import DicomError
    from dwi_toolkit.io.loading import load_dwi

    root = tmp_path_factory.mktemp("sample_cohort")
    generate_cohort(root / "in")
    try:
        load_dwi(root / "in" / "sub-02" / "dicom")
    except DicomError as err:
        pytest.skip(f"DICOM loading not available: {err}")
    return root


def _classes(out, key):
    doc = json.loads((out / key / "report" / "report.json").read_text())
    return {lv["level"]: lv["classification"] for lv in doc["entrapment"]["levels"]}, doc


def test_default_pipeline_on_the_sample_cohort(cohort):
    before = tree_hash(cohort / "in")
    res = run_pipeline(cohort / "in", cohort / "out", pipeline="default", jobs=2)
    assert tree_hash(cohort / "in") == before
    st = {r.key: r.status for r in res.results}
    assert st == {"sub-01": "done", "sub-02": "done", "sub-03": "done", "sub-04": "done", "sub-05": "failed"}
    assert "GradientError" in res.failed[0].reason
    out = cohort / "out"
    c1, _ = _classes(out, "sub-01")
    assert c1["L5"] == "concordant"  # left L5 altered, symptoms left L5 (NIfTI)
    c2, _ = _classes(out, "sub-02")
    assert c2["S1"] == "concordant"  # right S1 altered, symptoms right S1 (DICOM)
    c3, _ = _classes(out, "sub-03")
    assert "concordant" not in c3.values()  # symmetric control
    c4, _ = _classes(out, "sub-04")
    assert c4["L4"] == "discordant"  # asymmetry at a level that was not suspected (DICOM)
    for key in ("sub-01", "sub-02", "sub-03", "sub-04"):
        assert (out / key / "dwi" / f"{key}_ADC.nii.gz").is_file()
        assert (out / key / "report" / "report.html").is_file()
    with open(out / "group" / "cohort_roi_stats.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["subject"] for r in rows} == {"sub-01", "sub-02", "sub-03", "sub-04"}
    assert len(rows) == 4 * 12
    summary = json.loads((out / "group" / "cohort_summary.json").read_text())
    assert summary["indication"]["n_assessed"] == 4
    page = (out / "index.html").read_text()
    assert all(f'href="{k}/report/report.html"' in page for k in ("sub-01", "sub-02", "sub-03", "sub-04"))


def test_analyze_step_agrees_with_the_composed_default(cohort, tmp_path):
    p = tmp_path / "analyze.toml"
    p.write_text('schema = "dwi_toolkit.pipeline/1"\nname = "analyze"\n[[steps]]\nstep = "analyze"\n'
                 "figures = false\n")
    res = run_pipeline(cohort / "in", tmp_path / "out", pipeline=p, participant_labels=["01"])
    assert res.exit_code == 0
    a, doc_a = _classes(tmp_path / "out", "sub-01")
    b, doc_b = _classes(cohort / "out", "sub-01") if (cohort / "out" / "sub-01").exists() else (None, None)
    if b is None:
        pytest.skip("run test_default_pipeline_on_the_sample_cohort first")
    assert a == b
    ra = {(r["level"], r["segment"]): r["rel_diff_pct"] for r in doc_a["side_comparison"]["rows"]}
    rb = {(r["level"], r["segment"]): r["rel_diff_pct"] for r in doc_b["side_comparison"]["rows"]}
    assert ra == pytest.approx(rb, rel=1e-9)


def test_high_b_pipeline_uses_b_200_and_above(cohort, tmp_path):
    res = run_pipeline(cohort / "in", tmp_path / "out", pipeline="high-b", participant_labels=["01"])
    assert res.exit_code == 0
    fit = json.loads((tmp_path / "out" / "sub-01" / "dwi" / "sub-01_ADC.json").read_text())
    assert fit["FitSummary"]["bvals_used"] == [400.0, 800.0] and fit["SkullStripped"] is False
    c1, _ = _classes(tmp_path / "out", "sub-01")
    assert c1["L5"] == "concordant"
