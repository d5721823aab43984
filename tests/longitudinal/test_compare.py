"""Repeat-scan comparison (issue 22): registration, ROIs carried over, smallest real change."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dwi_toolkit.analysis.repeatability import RepeatabilityTable
from dwi_toolkit.cli.main import main
from dwi_toolkit.errors import InputDataError
from dwi_toolkit.longitudinal import Registration, carry_rois, compare_sessions, register_sessions
from dwi_toolkit.phantom_sessions import make_second_site, make_session_pair
from dwi_toolkit.roi.sample import sample_rois

GRID = {"shape": (48, 38, 40), "voxel_size": (3, 3, 5)}


def _known(pair) -> Registration:
    return Registration(pair.transform, "rigid")


def _root_error_mm(matrix, pair) -> float:
    pts = np.c_[np.array([c.mean(0) for c in pair.baseline.centerlines.values()]), np.ones(12)]
    return float(np.linalg.norm((pts @ matrix.T - pts @ pair.transform.T)[:, :3], axis=1).max())


def test_change_found_on_the_right_root_and_side_with_exact_alignment():
    inside = total = 0
    for seed in range(3):
        pair = make_session_pair(rotation_deg=(6, -5, 6), translation_mm=(6, -5, 5), seed=10 + 2 * seed, **GRID)
        cmp = compare_sessions(pair.baseline.series, pair.follow_up.series, sample_rois(pair.baseline, kind="tube"),
                               registration=_known(pair))
        biggest = max(cmp.rows, key=lambda r: abs(r["change"]))
        assert (biggest["level"], biggest["side"], biggest["real_change"]) == ("L4", "right", True)
        assert biggest["change_pct"] == pytest.approx(15.0, abs=5.0)
        assert biggest["change_low"] > 0
        others = [r for r in cmp.rows if (r["level"], r["side"]) != ("L4", "right")]
        inside += sum(not r["real_change"] for r in others)
        total += len(others)
    assert inside / total >= 0.9  # 95 % expected per root; 33 roots here


@pytest.mark.slow
def test_registration_recovers_a_moderate_motion_within_a_voxel():
    pair = make_session_pair(rotation_deg=(0, 0, 6), translation_mm=(5, -3, 0), noise=False, **GRID)
    reg = register_sessions(pair.baseline.series, pair.follow_up.series, level_iters=(300, 100, 30))
    assert _root_error_mm(reg.matrix, pair) < 3.0
    assert reg.rotation_deg == pytest.approx(6.0, abs=1.5)


def test_carry_rois_moves_every_shape():
    pair = make_session_pair(noise=False, **GRID)
    rois = sample_rois(pair.baseline)
    moved = carry_rois(rois, pair.transform)
    for a, b in zip(rois, moved):
        assert np.allclose(b.shape.center, pair.transform[:3, :3] @ a.shape.center + pair.transform[:3, 3])
        assert b.name == a.name


def test_retest_sources_set_the_smallest_real_change():
    pair = make_session_pair(seed=5, **GRID)
    rois = sample_rois(pair.baseline, kind="tube")
    args = (pair.baseline.series, pair.follow_up.series, rois)
    cv = compare_sessions(*args, registration=_known(pair), retest=0.05)
    r = cv.rows[0]
    assert r["sdc_source"] == "test-retest"
    assert r["sdc"] == pytest.approx(1.96 * np.sqrt(2) * 0.05 * r["baseline_mean"])
    table = RepeatabilityTable([{"level": "L4", "side": "right", "sdc": 1e-3}], by=("level", "side"))
    big = compare_sessions(*args, registration=_known(pair), retest=table)
    l4r = next(x for x in big.rows if (x["level"], x["side"]) == ("L4", "right"))
    assert l4r["sdc"] == 1e-3 and not l4r["real_change"]  # a 15 % change is inside a 1e-3 mm²/s SDC
    assert next(x for x in big.rows if x["level"] == "L1")["sdc_source"] == "noise"  # not in the table
    assert set(cv.smallest_real_change()) == {"L1", "L2", "L3", "L4", "L5", "S1"}


def test_figure_html_and_files(tmp_path):
    pair = make_session_pair(seed=6, **GRID)
    cmp = compare_sessions(pair.baseline.series, pair.follow_up.series, sample_rois(pair.baseline, kind="tube"),
                           registration=_known(pair))
    fig = cmp.figure()
    assert len(fig.axes) >= 4
    page = cmp.to_html()
    assert "L4" in page and "data:image/png;base64," in page
    paths = cmp.save(tmp_path)
    data = json.loads(paths["json"].read_text())
    assert data["real_changes"] and data["real_changes"][0].startswith("L4 right")
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    assert "L4 right" in repr(cmp)


def test_no_rois_is_refused():
    pair = make_session_pair(noise=False, **GRID)
    with pytest.raises(InputDataError, match="at least one ROI"):
        compare_sessions(pair.baseline.series, pair.follow_up.series, [], registration=_known(pair))


def test_second_site_scales_root_adc():
    ph = make_second_site(adc_scale=1.08, **GRID)
    assert ph.root_adc[("L5", "left")] == pytest.approx(1.08 * 1.32e-3)
    assert ph.sigma == pytest.approx(500 / 25.0)


@pytest.mark.slow
def test_cli(tmp_path, capsys, monkeypatch):
    import functools

    from dwi_toolkit.io.nifti import save_dwi
    from dwi_toolkit.longitudinal import compare as compare_mod

    # fewer optimiser iterations keep the test fast; the full registration is tested above
    monkeypatch.setattr(compare_mod, "register_sessions",
                        functools.partial(compare_mod.register_sessions, level_iters=(100, 30)))
    pair = make_session_pair(rotation_deg=(0, 0, 4), translation_mm=(3, 0, 0), seed=8, **GRID)
    save_dwi(pair.baseline.series, tmp_path / "base.nii.gz")
    save_dwi(pair.follow_up.series, tmp_path / "follow.nii.gz")
    sample_rois(pair.baseline, kind="tube").save(tmp_path / "rois.json")
    code = main(["longitudinal", str(tmp_path / "base.nii.gz"), str(tmp_path / "follow.nii.gz"),
                 "--rois", str(tmp_path / "rois.json"), "-o", str(tmp_path / "out"), "--retest-cv", "0.04"])
    assert code == 0
    out = capsys.readouterr().out
    assert "REAL L4 right" in out
    assert (tmp_path / "out" / "longitudinal.html").exists()


def test_cli_refuses_missing_inputs(tmp_path, capsys):
    code = main(["longitudinal", str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz"), "--rois",
                 str(tmp_path / "r.json"), "-o", str(tmp_path / "out")])
    assert code == 2 and "error" in capsys.readouterr().err
