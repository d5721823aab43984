"""The scanner-ADC QC check end to end on a synthetic case: a scanner map stored as 10⁻⁶ mm²/s integers
(as Siemens writes it) on another voxel order is scaled, resampled to the DWI grid and compared in
the ROIs; a map 25 % above our ADC raises the flag with the measured difference, a faithful one does not."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dwi_toolkit.io.loading import load_analysis_mask, load_dwi
from dwi_toolkit.models.adc import fit_adc
from dwi_toolkit.pipeline.analyze import run_analysis

ROOT = Path(__file__).resolve().parents[2]
SUB = ROOT / "sample_data" / "sub-01"
DWI = SUB / "dwi" / "sub-01_dwi.nii.gz"


@pytest.fixture(scope="module")
def ours():
    series = load_dwi(DWI)
    fit = fit_adc(series, b_range=(100.0, float(series.bvals.max())), mask=load_analysis_mask("auto", series))
    adc = np.where(np.asarray(fit.status) == 0, np.asarray(fit.adc, float), 0.0)
    return series, adc


def _scanner_nifti(path: Path, adc: np.ndarray, affine: np.ndarray, factor: float) -> Path:
    """Scanner-style map: integers of 10⁻⁶ mm²/s, stored with the x axis reversed (same world)."""
    flip = np.diag([-1.0, 1.0, 1.0, 1.0])
    flip[0, 3] = adc.shape[0] - 1
    data = np.rint(adc[::-1] * factor * 1e6).astype(np.int16)
    nib.save(nib.Nifti1Image(data, affine @ flip), str(path))
    return path


def _run(tmp_path: Path, scanner: Path) -> dict:
    out = tmp_path / scanner.stem.split(".")[0]
    run_analysis(DWI, SUB / "rois" / "sub-01_rois.json", SUB / "clinical.json", out, b_min=100,
                 figures=False, n_boot=200, scanner_adc=scanner)
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_scanner_map_25_percent_high_is_flagged_with_its_value(ours, tmp_path):
    series, adc = ours
    rep = _run(tmp_path, _scanner_nifti(tmp_path / "high.nii.gz", adc, series.affine, 1.25))
    sc = rep["qc"]["scanner_adc"]
    assert sc["found"] and sc["source"] == "path" and sc["resampled"] and sc["judged_on"] == "ROIs"
    flag = [f for f in rep["qc"]["flags"] if f["code"] == "scanner_adc"]
    assert len(flag) == 1 and flag[0]["subject"] == "ROIs"
    # (ours − 1.25·ours) / (1.25·ours) = −20 %, up to the integer rounding of the stored map
    assert flag[0]["measured"] == pytest.approx(20.0, abs=0.2) and flag[0]["limit"] == 10.0
    assert flag[0]["unit"] == "%" and flag[0]["advice"]
    by = {a["region"]: a for a in sc["agreement"]}
    assert by["all ROIs"]["median_scanner_adc"] == pytest.approx(1.25 * by["all ROIs"]["median_adc"], rel=2e-3)
    assert 0.5e-3 < by["all ROIs"]["median_adc"] < 3e-3                # mm²/s: the 1e-6 scale was applied


def test_faithful_scanner_map_agrees_and_is_not_flagged(ours, tmp_path):
    series, adc = ours
    rep = _run(tmp_path, _scanner_nifti(tmp_path / "same.nii.gz", adc, series.affine, 1.0))
    assert not [f for f in rep["qc"]["flags"] if f["code"] == "scanner_adc"]
    for a in rep["qc"]["scanner_adc"]["agreement"]:
        if a["n_voxels"]:
            assert abs(a["median_rel_diff_pct"]) < 0.2, a       # the voxel flip was undone exactly


def test_scanner_adc_none_and_missing_path(tmp_path):
    from dwi_toolkit.errors import InputDataError

    out = tmp_path / "none"
    run_analysis(DWI, SUB / "rois" / "sub-01_rois.json", None, out, b_min=100, figures=False, n_boot=100,
                 symptomatic_side="left", scanner_adc="none")
    qc = json.loads((out / "report.json").read_text(encoding="utf-8"))["qc"]
    assert qc["scanner_adc"]["found"] is False and "agreement" not in qc["scanner_adc"]
    with pytest.raises(InputDataError, match="does not exist"):
        run_analysis(DWI, SUB / "rois" / "sub-01_rois.json", None, None, figures=False, n_boot=100,
                     symptomatic_side="left", scanner_adc=tmp_path / "nope.nii.gz")


def test_ge_style_adc_series_is_found_beside_the_dwi(tmp_path):
    """GE stores its ADC map as DERIVED\\SECONDARY\\PROCESSED named 'Apparent Diffusion Coefficient
    (mm2/s)' (no ADC in ImageType): it is recognised as the scanner ADC of the DWI in the next folder."""
    from dwi_toolkit.io.dicom import find_dwi_series
    from dwi_toolkit.io.dicom._synthetic import write_series
    from dwi_toolkit.io.scanner_adc import scanner_adc_on_grid

    write_series(tmp_path / "dwi")
    write_series(tmp_path / "adc", series_uid="1.2.826.0.1.3680043.8.498.9", series_number=5,
                 description="Apparent Diffusion Coefficient (mm2/s)", bvals=(0,), bvecs_lps=((0, 0, 0),),
                 image_type=("DERIVED", "SECONDARY", "PROCESSED"))
    assert [s.role for s in find_dwi_series(tmp_path / "adc")] == ["adc"]
    series = load_dwi(tmp_path / "dwi")
    m, info = scanner_adc_on_grid("auto", tmp_path / "dwi", series.spatial_shape, series.affine)
    assert info["found"] and info["description"].startswith("#5 ") and m.shape == series.spatial_shape
