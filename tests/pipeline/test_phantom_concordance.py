"""On the lumbar phantom with a known altered root, the altered level/side is concordant and the
symmetric roots are not (issue 5, "How it is checked").

Needs the phantom generator and fit_adc (other branches); skipped until they are merged. ROI
statistics are computed here directly from the phantom's root labels (the RoiStats fields of the
contract), so the test does not depend on the ROI file format.
"""

from __future__ import annotations

import numpy as np
import pytest

from dwi_toolkit.analysis.compare import compare_sides
from dwi_toolkit.clinical.entrapment import assess_entrapment
from tests.analysis._standin import make_row, table

phantom = pytest.importorskip("dwi_toolkit.phantom", reason="phantom generator not merged yet")
adc_mod = pytest.importorskip("dwi_toolkit.models.adc", reason="fit_adc not merged yet")


@pytest.fixture(scope="module")
def phantom_result():
    ph = phantom.make_lumbar_phantom(altered={("L5", "left"): 1.6e-3}, seed=0)
    fit = adc_mod.fit_adc(ph.series, method="wls")
    rows = []
    for label, (level, side) in ph.root_table.items():
        m = (np.asarray(ph.root_labels) == label) & (np.asarray(fit.status) == 0)
        rows.append(make_row(level, side, np.asarray(fit.adc)[m]))
    return ph, fit, table(*rows)


def test_altered_root_concordant_symmetric_roots_not(phantom_result):
    ph, fit, stats = phantom_result
    cmp = compare_sides(stats, symptomatic_side="left", n_boot=1000)
    ent = assess_entrapment(cmp, {"radicular_side": "left", "suspected_levels": ["L5"]})
    assert ent.get("L5").classification == "concordant"
    assert ent.get("L5").direction == "higher"
    for lv in ent.levels:
        if lv.level != "L5":
            assert lv.classification != "concordant", (lv.level, lv.reasons, lv.statement)
    # the measured relative difference is close to the truth built into the phantom
    true_rel = 100 * (ph.root_adc[("L5", "left")] - ph.root_adc[("L5", "right")]) / ph.root_adc[("L5", "right")]
    assert cmp.get("L5").rel_diff_pct == pytest.approx(true_rel, abs=max(5.0, 0.25 * abs(true_rel)))


def test_phantom_report_renders(phantom_result, tmp_path):
    from dwi_toolkit.reporting.report import build_report

    ph, fit, stats = phantom_result
    cmp = compare_sides(stats, symptomatic_side="left", n_boot=300)
    ent = assess_entrapment(cmp, {"radicular_side": "left", "suspected_levels": ["L5"]})
    masks = [(f"{lv} {side}", np.asarray(ph.root_labels) == lab) for lab, (lv, side) in ph.root_table.items()]
    rep = build_report(series=ph.series, fit=fit, roi_masks=masks, stats=stats, comparison=cmp,
                       entrapment=ent, subject="phantom")
    rep.save(tmp_path)
    assert (tmp_path / "report.html").stat().st_size > 10_000
    # the QC SNR estimate recovers the phantom's b=0 root SNR (make_lumbar_phantom default 40)
    snrs = [p["snr"]["value"] for p in rep.qc["snr"]["per_roi"]]
    assert np.median(snrs) == pytest.approx(40.0, rel=0.2)
