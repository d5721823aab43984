"""run_analysis and `dwi-toolkit analyze`, end to end on a synthetic subject.

The steps owned by other branches (fit_adc, load_rois, roi_stats, load_clinical,
assess_indication) are replaced here by small, honest stand-ins installed in ``sys.modules``
that follow the contracts in BRIEF.md, so this test checks the orchestration and the files
written. An end-to-end test on the real modules and the lumbar phantom belongs next to them.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dwi_toolkit.cli.main import main
from tests.analysis._standin import make_row, table
from tests.reporting._synthetic import synthetic_subject


def _fake_fit_adc(series, *, method="wls", b_range=None, mask=None, **_):
    bv, tr = series.trace()
    use = np.ones(bv.shape, bool)
    if b_range is not None:
        use = (bv >= b_range[0]) & (bv <= b_range[1])
    b = bv[use]
    y = np.log(np.clip(tr[..., use].astype(float), 1e-6, None)).reshape(-1, b.size)
    A = np.c_[np.ones_like(b), -b]
    coef, *_ = np.linalg.lstsq(A, y.T, rcond=None)
    adc = coef[1].reshape(series.spatial_shape)
    status = np.where(adc > 0, 0, 3).astype(np.uint8)
    return SimpleNamespace(adc=np.where(status == 0, adc, np.nan), s0=np.exp(coef[0]).reshape(adc.shape),
                           status=status, affine=series.affine, bvals_used=b, method=method,
                           b0_threshold=series.b0_threshold)


class _FakeRoi(SimpleNamespace):
    def mask(self, shape, affine):
        m = np.zeros(shape, bool)
        x0, x1, y0, y1, z0, z1 = self.box
        m[x0:x1, y0:y1, z0:z1] = True
        return m


def _fake_load_rois(path):
    return [_FakeRoi(**r) for r in json.loads(Path(path).read_text())]


def _fake_roi_stats(fit, rois, **_):
    rows = []
    for r in rois:
        m = r.mask(fit.adc.shape, fit.affine) & (fit.status == 0)
        rows.append(make_row(r.level, r.side, fit.adc[m], segment=r.segment))
    return table(*rows)


@pytest.fixture
def subject(tmp_path, monkeypatch):
    fakes = {
        "dwi_toolkit.models.adc": {"fit_adc": _fake_fit_adc, "STATUS_CODES": {
            0: "ok", 1: "outside mask", 2: "invalid signal", 3: "negative ADC", 4: "not converged"}},
        "dwi_toolkit.io.rois": {"load_rois": _fake_load_rois},
        "dwi_toolkit.analysis.roi_stats": {"roi_stats": _fake_roi_stats},
        "dwi_toolkit.io.clinical": {"load_clinical": lambda p: SimpleNamespace(**json.loads(Path(p).read_text()))},
        "dwi_toolkit.clinical.indication": {"assess_indication": lambda c: {
            "classification": "appropriate", "decisive_rules": ["R-DISC-6W"]}},
    }
    for name, attrs in fakes.items():
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)
    series, _, masks, _ = synthetic_subject(seed=7)
    series.save(tmp_path / "dwi.nii.gz")
    rois = []
    for label, m in masks:
        lv, side, seg = label.split()
        idx = np.argwhere(m)
        lo, hi = idx.min(0), idx.max(0) + 1
        rois.append({"level": lv, "side": side, "segment": seg,
                     "box": [int(lo[0]), int(hi[0]), int(lo[1]), int(hi[1]), int(lo[2]), int(hi[2])]})
    (tmp_path / "rois.json").write_text(json.dumps(rois))
    (tmp_path / "clinical.json").write_text(json.dumps(
        {"radicular_side": "left", "suspected_levels": ["L5"], "subject_id": "sub-07"}))
    return tmp_path


def test_run_analysis_finds_altered_root(subject):
    from dwi_toolkit.pipeline.analyze import run_analysis

    rep = run_analysis(subject / "dwi.nii.gz", subject / "rois.json", subject / "clinical.json",
                       subject / "out", b_min=0, b_max=800, n_boot=300)
    assert rep.comparison.symptomatic_side == "left"  # from clinical.radicular_side
    assert rep.entrapment.get("L5").classification == "concordant"
    assert rep.entrapment.get("L4").classification == "no_asymmetry"
    assert rep.subject == "sub-07"
    d = json.loads((subject / "out" / "report.json").read_text())
    assert d["provenance"]["parameters"]["symptomatic_side_source"] == "clinical.radicular_side"
    assert {f["role"] for f in d["provenance"]["inputs"]} >= {"dwi", "dwi.bval", "dwi.bvec", "rois", "clinical"}
    assert len(d["figures"]) == 3


def test_cli_analyze(subject, capsys):
    rc = main(["analyze", str(subject / "dwi.nii.gz"), "--rois", str(subject / "rois.json"),
               "--clinical", str(subject / "clinical.json"), "-o", str(subject / "cli"),
               "--threshold-pct", "15", "--n-boot", "300", "--no-figures"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "L5" in out and "concordant" in out and "report.html" in out
    d = json.loads((subject / "cli" / "report.json").read_text())
    assert d["entrapment"]["threshold_pct"] == 15.0
    assert d["provenance"]["command"].startswith("dwi-toolkit analyze")


def test_cli_side_override_and_bad_options(subject, capsys):
    rc = main(["analyze", str(subject / "dwi.nii.gz"), "--rois", str(subject / "rois.json"),
               "-o", str(subject / "o2"), "--symptomatic-side", "right", "--n-boot", "200",
               "--no-figures"])
    assert rc == 0
    d = json.loads((subject / "o2" / "report.json").read_text())
    assert d["side_comparison"]["symptomatic_side"] == "right"
    assert d["indication"] is None
    rc = main(["analyze", str(subject / "dwi.nii.gz"), "--rois", str(subject / "rois.json"),
               "-o", str(subject / "o3"), "--b-min", "800", "--b-max", "400"])
    assert rc == 2
    assert "b_min" in capsys.readouterr().err


def test_bilateral_symptoms_give_absolute_asymmetry_only(subject):
    from dwi_toolkit.pipeline.analyze import run_analysis

    (subject / "clinical.json").write_text(json.dumps({"radicular_side": "bilateral",
                                                       "suspected_levels": ["L5"]}))
    rep = run_analysis(subject / "dwi.nii.gz", subject / "rois.json", subject / "clinical.json",
                       None, n_boot=200, figures=False)
    assert rep.comparison.symptomatic_side is None
    assert any("bilateral" in n.lower() for n in rep.comparison.notes)
    assert {lv.classification for lv in rep.entrapment.levels} == {"indeterminate"}
    assert rep.comparison.get("L5").abs_asymmetry_index_pct > 10
