"""run_analysis adds FA/MD comparisons when the acquisition allows a tensor (issue 7)."""

import pytest

from dwi_toolkit.errors import FitError
from dwi_toolkit.io.rois import save_rois
from dwi_toolkit.phantom import make_lumbar_phantom
from dwi_toolkit.pipeline.analyze import run_analysis
from dwi_toolkit.roi.sample import sample_rois


def _write(tmp_path, **kw):
    ph = make_lumbar_phantom(shape=(56, 48, 40), voxel_size=(2.5, 2.5, 5.0), **kw)
    ph.series.save(tmp_path / "dwi.nii.gz")
    save_rois(sample_rois(ph), tmp_path / "rois.json")
    return ph


def test_fa_compared_when_dti_possible(tmp_path):
    _write(tmp_path, n_directions=12, bvals=(0, 800), root_fa=0.32, altered_fa={("L5", "left"): 0.20},
           snr=80, seed=3)
    rep = run_analysis(tmp_path / "dwi.nii.gz", tmp_path / "rois.json", None, tmp_path / "out",
                       symptomatic_side="left", n_boot=300)
    params = {r.parameter for r in rep.comparison.rows}
    assert {"adc", "fa", "md"} <= params
    l5_fa = next(r for r in rep.comparison.rows if r.level == "L5" and r.parameter == "fa")
    l4_fa = next(r for r in rep.comparison.rows if r.level == "L4" and r.parameter == "fa")
    assert l5_fa.rel_diff_pct < -15  # lower FA on the altered (symptomatic) root
    assert abs(l4_fa.rel_diff_pct) < 10
    assert "side_comparison_fa" in {f.name for f in rep.figures}
    html = (tmp_path / "out" / "report.html").read_text()
    assert "side_comparison_fa" in html


def test_no_dti_on_three_direction_data(tmp_path):
    _write(tmp_path, n_directions=3, snr=60)
    rep = run_analysis(tmp_path / "dwi.nii.gz", tmp_path / "rois.json", None, None,
                       symptomatic_side="left", n_boot=100, figures=False)
    assert {r.parameter for r in rep.comparison.rows} == {"adc"}
    with pytest.raises(FitError, match="six non-collinear"):
        run_analysis(tmp_path / "dwi.nii.gz", tmp_path / "rois.json", None, None,
                     symptomatic_side="left", n_boot=100, figures=False, dti=True)


def test_csf_threshold_excludes_contaminated_voxels(tmp_path):
    """A root ROI grown into the CSF: with a CSF threshold those voxels are excluded and
    counted, and the root mean moves back towards the true root ADC (dwi_toolkit References §1.6)."""
    from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere

    ph = _write(tmp_path, n_directions=3, noise=False)
    # a sphere at the start of the left L3 root, reaching into the thecal sac (CSF, 3.0e-3)
    start = ph.centerlines[("L3", "left")][0]
    RoiSet([RootROI("L3", "left", shape=Sphere(start, 6.0)),
            RootROI("L3", "right", shape=Sphere(ph.centerlines[("L3", "right")][0], 6.0))]).save(tmp_path / "big.json")
    plain = run_analysis(tmp_path / "dwi.nii.gz", tmp_path / "big.json", None, None, symptomatic_side="left",
                         n_boot=100, figures=False)
    clean = run_analysis(tmp_path / "dwi.nii.gz", tmp_path / "big.json", None, None, symptomatic_side="left",
                         n_boot=100, figures=False, csf_threshold=2.5e-3)
    row_plain = plain.roi_stats.get("L3", "left", parameter="adc")
    row_clean = clean.roi_stats.get("L3", "left", parameter="adc")
    assert row_clean.n_excluded_csf > 0 and row_plain.n_excluded_csf == 0
    assert row_clean.mean < row_plain.mean
    assert row_clean.mean < 2.0e-3
