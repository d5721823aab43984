"""Cohort summary: tables, indication shares, side-difference figure, self-contained index."""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser

import pytest

from dwi_toolkit.pipeline.cohort import build_cohort, indication_shares
from dwi_toolkit.pipeline.runner import run_pipeline
from tests.pipeline._helpers import pipeline_file, tiny_cohort

CLIN = {
    "sub-01": {"factor": 1.25, "indication": "appropriate"},
    "sub-02": {"factor": 1.0, "indication": "inappropriate"},
    "sub-03": {"factor": 0.9, "indication": "appropriate"},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    tiny_cohort(root / "in", n_good=3, broken=True, clinical=CLIN)
    p = pipeline_file(root / "p.toml", 'step = "fake_report"')
    res = run_pipeline(root / "in", root / "out", pipeline=p)
    return res


def _csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_cohort_tables(run):
    out = run.out_dir
    assert run.cohort is not None
    reports = {k: json.loads((out / k / "report" / "report.json").read_text()) for k in CLIN}
    rows = _csv(out / "group" / "cohort_roi_stats.csv")
    # one row per subject x level x side x parameter, with the subject's own values
    assert len(rows) == sum(len(r["roi_stats"]["rows"]) for r in reports.values()) == 3 * 3 * 2
    for r in rows:
        src = next(x for x in reports[r["subject"]]["roi_stats"]["rows"]
                   if (x["level"], x["side"]) == (r["level"], r["side"]))
        assert float(r["mean"]) == pytest.approx(src["mean"], rel=1e-12)
    cmp = _csv(out / "group" / "cohort_side_comparison.csv")
    assert len(cmp) == 9 and {r["subject"] for r in cmp} == set(CLIN)
    subj = {r["key"]: r for r in _csv(out / "group" / "cohort_subjects.csv")}
    assert subj["sub-04"]["status"] == "failed" and ".bval" in subj["sub-04"]["reason"]
    assert subj["sub-02"]["indication"] == "inappropriate" and subj["sub-01"]["decisive_rules"] == "R-TEST"


def test_indication_shares_and_side_differences(run):
    out = run.out_dir
    doc = json.loads((out / "group" / "cohort_summary.json").read_text())
    ind = doc["indication"]
    assert ind["counts"] == {"appropriate": 2, "uncertain": 0, "inappropriate": 1}
    assert ind["shares_pct"]["appropriate"] == pytest.approx(200 / 3)
    sd = doc["side_differences"]
    assert sd["measure"] == "rel_diff_pct" and sorted(sd["values_by_level"]) == ["L4", "L5", "S1"]
    # the fake reports scale the left side by the subject's factor: rel_diff = 100 (factor - 1)
    assert sorted(sd["values_by_level"]["L5"]) == pytest.approx(sorted(100 * (c["factor"] - 1) for c in CLIN.values()))
    assert (out / "group" / "side_differences.png").read_bytes()[:4] == b"\x89PNG"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.srcs, self.scripts = [], [], 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a":
            self.hrefs.append(a["href"])
        if tag == "img":
            self.srcs.append(a["src"])
        if tag == "script":
            self.scripts += 1


def test_index_is_self_contained_and_links_every_report(run):
    out = run.out_dir
    page = (out / "index.html").read_text()
    p = _Links()
    p.feed(page)
    assert p.scripts == 0 and "Content-Security-Policy" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert all(s.startswith("data:image/png;base64,") for s in p.srcs) and len(p.srcs) == 1
    reports = [h for h in p.hrefs if h.endswith("report.html")]
    assert sorted(reports) == [f"{k}/report/report.html" for k in sorted(CLIN)]
    for h in p.hrefs:
        assert (out / h).is_file(), h
    assert "sub-04" in page and "GradientError" in page


def test_rebuild_from_manifest_and_adc_only_fallback(tmp_path):
    tiny_cohort(tmp_path / "in", n_good=2, broken=False)
    res = run_pipeline(tmp_path / "in", tmp_path / "out", pipeline=pipeline_file(tmp_path / "p.toml"), cohort=False)
    assert res.cohort is None and not (tmp_path / "out" / "index.html").exists()
    summary = build_cohort(tmp_path / "out")
    assert summary.roi_rows == [] and summary.indication["n_not_assessed"] == 2
    assert [r["report"] for r in summary.subject_rows] == [
        f"sub-0{i}/dwi/sub-0{i}_ADC.json" for i in (1, 2)]
    assert (tmp_path / "out" / "index.html").is_file()


def test_indication_shares_doctest_values():
    d = indication_shares(["uncertain", None, None])
    assert d["counts"]["uncertain"] == 1 and d["shares_pct"]["uncertain"] == 100.0 and d["n_not_assessed"] == 2
    assert indication_shares([])["shares_pct"]["appropriate"] is None


def test_left_right_asymmetry_from_roi_csv_without_report(tmp_path):
    tiny_cohort(tmp_path / "in", n_good=2, broken=False)
    p = pipeline_file(tmp_path / "p.toml", 'step = "fake_roi_csv"\nleft = 1.5e-3\nright = 1.2e-3')
    res = run_pipeline(tmp_path / "in", tmp_path / "out", pipeline=p)
    s = res.cohort
    assert len(s.roi_rows) == 4 and s.side_difference_measure == "lr_asymmetry_index_pct"
    expected = 100 * (1.5e-3 - 1.2e-3) / ((1.5e-3 + 1.2e-3) / 2)
    assert s.side_differences["L5"] == pytest.approx([expected, expected])
    rows = _csv(tmp_path / "out" / "group" / "cohort_side_comparison.csv")
    assert [float(r["lr_asymmetry_index_pct"]) for r in rows] == pytest.approx([expected] * 2)


def test_other_models_roi_stats_join_the_cohort_table(tmp_path):
    tiny_cohort(tmp_path / "in", n_good=1, broken=False)
    p = pipeline_file(tmp_path / "p.toml", 'step = "fake_roi_csv"',
                      'step = "fake_roi_csv"\nid = "ivim"\nparameter = "d"\nproduct = "ivim_roi_stats_csv"')
    res = run_pipeline(tmp_path / "in", tmp_path / "out", pipeline=p)
    rows = _csv(tmp_path / "out" / "group" / "cohort_roi_stats.csv")
    assert sorted((r["parameter"], r["side"]) for r in rows) == [("adc", "left"), ("adc", "right"),
                                                                 ("d", "left"), ("d", "right")]
    assert res.cohort.side_difference_measure == "lr_asymmetry_index_pct"
