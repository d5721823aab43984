"""What a reader sees: QC flags at the top, words instead of codes, numbers rounded by quantity."""

from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest

from dwi_toolkit.analysis.compare import compare_sides
from dwi_toolkit.clinical.entrapment import assess_entrapment
from dwi_toolkit.reporting import presentation as P
from dwi_toolkit.reporting.report import build_report
from tests.reporting._synthetic import synthetic_subject


def _visible_text(page: str) -> str:
    page = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    page = re.sub(r'src="data:[^"]*"', "", page)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.fixture(scope="module")
def swapped():
    """The synthetic subject with the L4 labels swapped: 'left' drawn on the patient's right."""
    series, fit, masks, stats = synthetic_subject()
    relabel = {"L4 left ganglion": "L4 right ganglion", "L4 right ganglion": "L4 left ganglion"}
    masks = [(relabel.get(lab, lab), m) for lab, m in masks]
    cmp = compare_sides(stats, symptomatic_side="left", n_boot=200)
    ent = assess_entrapment(cmp, {"radicular_side": "left", "suspected_levels": ["L5"]})
    rep = build_report(series=series, fit=fit, roi_masks=masks, stats=stats, comparison=cmp,
                       entrapment=ent, figures=False, parameters={"mask": "auto"})
    return rep, masks, series


def test_side_mismatch_flag_in_json_and_first_screen(swapped):
    rep, masks, series = swapped
    flags = json.loads(rep.to_json())["qc"]["flags"]
    mism = {f["subject"]: f for f in flags if f["code"] == "side_mismatch"}
    assert set(mism) == {"L4 left ganglion", "L4 right ganglion"}
    # measured = ROI centre x − image-centre x (RAS+ mm), computed independently
    m = dict(masks)["L4 left ganglion"]
    x = (series.affine @ np.r_[np.argwhere(m).mean(0), 1])[0]
    x0 = (series.affine @ np.r_[(np.array(m.shape) - 1) / 2, 1])[0]
    assert mism["L4 left ganglion"]["measured"] == pytest.approx(round(x - x0, 1))
    assert all(f["limit"] is not None and f["advice"] for f in flags)
    page = rep.to_html()
    summary = page[page.index('id="summary"'):page.index("<nav>")]
    assert "labelled left but its centre lies" in html.unescape(summary)
    assert "side_mismatch" not in _visible_text(page)              # the code stays in report.json


def test_no_code_words_or_unrounded_numbers_in_html(swapped):
    rep, _, _ = swapped
    text = _visible_text(rep.to_html())
    codes = set(re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b(?!\.csv)", text)) - {"dwi_toolkit"}
    assert not codes, codes
    assert not re.findall(r"\d\.\d{5,}", text)                     # no machine-precision floats
    assert "mm^2" not in text and "s/mm^2" not in text and "a.u.." not in text
    assert "Fits ran inside the analysis mask: the body" in text


def test_presentation_rounding_rules():
    assert P.fmt(1.2345e-3, "mm^2/s") == "1.23"
    assert P.fmt(95.99999999999999, "mm^3") == "96.0"
    assert P.fmt(12.345, "%", signed=True) == "+12.3"
    assert P.with_unit(None, "s/mm^2") == "–"
    assert P.with_unit(1.3e-3, "mm^2/s") == "1.30 ×10⁻³ mm²/s"
    assert P.with_unit(800, "s/mm^2") == "800 s/mm²"


def test_volume_has_no_float_artefacts():
    from dwi_toolkit.analysis.roi_stats import roi_stats
    from dwi_toolkit.core.image import ParameterMap
    from dwi_toolkit.roi.model import RootROI, Sphere

    aff = np.diag([1.2, 1.2, 1.2, 1.0])
    t = roi_stats(ParameterMap(np.full((12, 12, 12), 1.2e-3), aff, "adc", "mm^2/s"),
                  [RootROI("L5", "left", shape=Sphere([6, 6, 6], 3.0))])
    row = t.rows[0]
    assert row.volume_mm3 == round(row.n_voxels * 1.2 ** 3, 6)
    assert len(repr(row.volume_mm3)) <= 12
    text = str(t)
    assert "×10⁻³ mm²/s" in text and "1.20" in text and f"{row.volume_mm3:.1f}" in text


def test_aligned_str_of_comparison_and_assessment():
    _, _, _, stats = synthetic_subject()
    cmp = compare_sides(stats, symptomatic_side="left", n_boot=200)
    ent = assess_entrapment(cmp, {"radicular_side": "left", "suspected_levels": ["L5"]})
    s = P.comparison_str(cmp)
    lines = s.splitlines()
    assert lines[1].startswith("level") and len(lines) == 2 + len(cmp.rows)
    # aligned: every row's "difference" column starts where the header's does
    col = lines[1].index("difference")
    l5 = next(r for r in cmp.rows if r.level == "L5")
    row_line = next(ln for ln in lines[2:] if ln.startswith("L5"))
    assert row_line[col:].lstrip().startswith(P.fmt(l5.rel_diff_pct, "%", signed=True))
    e = P.entrapment_str(ent)
    assert "asymmetry on the symptomatic side" in e and "concordant" not in e
    csv_text = P.comparison_to_csv(cmp)
    assert csv_text.splitlines()[0].split(",")[:3] == ["level", "segment", "parameter"]


def test_first_screen_shows_detectable_difference_when_present():
    import dataclasses
    from types import SimpleNamespace as NS

    from dwi_toolkit.analysis.compare import SideComparisonRow

    # the field the first screen reads is the one compare_sides fills
    assert "detectable_pct" in {f.name for f in dataclasses.fields(SideComparisonRow)}

    from dwi_toolkit.reporting.first_screen import glance_table_html

    def row(level, det):
        return NS(level=level, segment="ganglion", parameter="adc", unit="mm^2/s", value_left=1.6e-3,
                  value_right=1.3e-3, left_ci_low=1.5e-3, left_ci_high=1.7e-3, right_ci_low=1.2e-3,
                  right_ci_high=1.4e-3, rel_diff_pct=23.08, rel_diff_pct_ci_low=12.0, rel_diff_pct_ci_high=34.9,
                  n_left=12, n_right=11, flags=(), detectable_pct=det)

    ent = NS(parameter="adc", threshold_pct=10.0,
             levels=[NS(level="L5", segment="ganglion", classification="concordant")])
    page = glance_table_html(NS(rows=[row("L5", 7.96), row("S1", None)], symptomatic_side="left"), ent)
    assert "Smallest detectable, %" in page and ">8.0<" in page
    assert 'class="num beyond"' in page                         # whole interval beyond +10 %
    assert "asymmetry on the symptomatic side" in page and "concordant<" not in page
    without = glance_table_html(NS(rows=[row("L5", None)], symptomatic_side="left"), ent)
    assert "detectable" not in without
