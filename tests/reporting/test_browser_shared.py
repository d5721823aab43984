"""Every shared real series analysed as a new user would, and its report checked in headless Chromium.

The series are not lumbar (brain, cervical cord), so a new user places the ROIs in a file: here
two levels of left/right sphere pairs on the body, symmetric about its centre, written as an ROI
JSON next to a minimal clinical.json (left radicular pain, suspected L5). ``run_analysis`` (what
``dwi-toolkit analyze`` calls) writes the report; the checks of :mod:`tests.reporting._browser`
then run on it: no request or console error (screenshot), every level's row on the first
1280 × 800 screen, an A4 PDF that keeps every column and the folded content, no code word or
unrounded number, no overlapping montage labels, and QC flags that match the fractions
recomputed here from the fit status and the ROI masks. Artefacts go to
``test-artifacts/browser/<series>/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import shared_path
from tests.reporting import _browser as B

pytestmark = [pytest.mark.needs_shared_data, pytest.mark.slow, B.needs_browser]

#: name → (path parts under shared/testdata, gradient files beside a NIfTI)
SERIES = {
    "canon_classic": ("dicom", "canon_galan_v61_dti_axial_classic_gz", "dicom", "cl_3000_DTI_PA-ortho"),
    "canon_enhanced": ("dicom", "canon_galan_v61_dti_axial_classic_gz", "dicom", "enh_3000_DTI_PA-ortho"),
    "ge_mr29": ("dicom", "ge_mr29_dwi_tensor_r2", "dicom"),
    "philips_r571": ("dicom", "philips_r571_dwi_classic_gz", "dicom"),
    "siemens_b15_mosaic": ("dicom", "siemens_b15_mosaic_ep2d_dti_subset", "dicom"),
    "siemens_b17_mosaic": ("dicom", "siemens_b17_mosaic_header_only_nibabel", "dicom"),
    "siemens_xa30_enhanced": ("dicom", "siemens_xa30_enhanced_dwi_with_scanner_adc", "dicom"),
    "uih_r002": ("dicom", "uih_r002_dti_dir16_pa", "dicom"),
    "sct_cervical_nifti": ("nifti", "sct_testing_data_dmri_cervical_cord", "dmri.nii.gz"),
}


def place_rois(series, path: Path) -> None:
    """Two levels (L4, L5) of left/right ganglion spheres on the body, as a user would place them.

    On the slices at 1/4 and 3/4 of the body's extent, each pair sits a quarter of the body's
    width either side of its centre; the side is read from the RAS+ x of the centre (+x = right).
    """
    from dwi_toolkit.io.loading import load_analysis_mask
    from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere

    body = load_analysis_mask("auto", series)
    zs = np.nonzero(body.any(axis=(0, 1)))[0]
    picks = [zs[len(zs) // 4], zs[3 * len(zs) // 4]] if len(zs) > 2 else list(zs[:2])
    A = series.affine
    vox = np.sqrt((A[:3, :3] ** 2).sum(axis=0))
    radius = round(max(2.0 * float(vox[:2].max()), 0.6 * float(vox[2])), 2)
    rois = []
    for level, z in zip(("L4", "L5"), picks):
        ij = np.argwhere(body[:, :, z])
        ci, cj = ij.mean(axis=0)
        half = (ij[:, 0].max() - ij[:, 0].min()) / 4
        x_mid = (A @ np.r_[ci, cj, z, 1.0])[0]
        for i in (ci - half, ci + half):
            w = A @ np.r_[i, cj, z, 1.0]
            rois.append(RootROI(level, "right" if w[0] > x_mid else "left", "ganglion", Sphere(w[:3], radius)))
    RoiSet(rois).save(path)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """name → (report folder, what run_analysis gave build_report plus the montage figure); once per series."""
    from dwi_toolkit.io.loading import load_dwi

    done: dict = {}

    def get(name: str):
        if name in done:
            return done[name]
        path = shared_path(*SERIES[name])
        grads = {"bvals": path.parent / "bvals.txt", "bvecs": path.parent / "bvecs.txt"} if path.suffix == ".gz" else {}
        work = tmp_path_factory.mktemp(name)
        place_rois(load_dwi(path, **grads), work / "rois.json")
        (work / "clinical.json").write_text(json.dumps({
            "schema": "dwi_toolkit.clinical", "schema_version": "1.0", "subject_id": name.replace("_", "-"),
            "radicular_pain": True, "radicular_side": "left", "suspected_levels": ["L5"]}), encoding="utf-8")
        seen = B.run_with_spies(path, work / "rois.json", work / "clinical.json", work / "report", **grads)
        done[name] = (work / "report", seen)
        return done[name]

    return get


@pytest.mark.parametrize("name", list(SERIES))
def test_shared_series_report_in_browser(name, analysed, tmp_path):
    out, seen = analysed(name)
    art = B.artefact_dir(name)
    page_file = out / "report.html"
    page = page_file.read_text(encoding="utf-8")
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))

    B.check_self_contained_and_quiet(page_file, art / "report_1280.png")
    B.check_first_screen(B.measure_layout(page_file, tmp_path, art / "layout_1280.json"))
    text, page1 = B.print_pdf(page_file, art / "report_A4.pdf")
    B.check_print_keeps_columns_and_details(page, text)
    for level in sorted({r["level"] for r in report["side_comparison"]["rows"]}):
        assert f"{level}ganglion" in page1, f"{level} not on the first printed page"
    B.check_words_and_numbers(page)
    B.check_qc_flags(report, np.asarray(seen["fit"].status), seen["roi_masks"])
    n, overlaps = B.montage_label_overlaps(seen["montage"])
    assert n == len(seen["roi_masks"]) and not overlaps, overlaps
    (art / "qc_flags.json").write_text(json.dumps(report["qc"]["flags"], indent=1, ensure_ascii=False),
                                       encoding="utf-8")


def test_zeroed_pixels_say_why_nothing_was_measured(analysed):
    """The B17 header-only files have their pixels zeroed: the report's first flag says so."""
    out, _ = analysed("siemens_b17_mosaic")
    flags = json.loads((out / "report.json").read_text(encoding="utf-8"))["qc"]["flags"]
    assert flags[0]["code"] == "no_signal" and flags[0]["severity"] == "error"
    page = (out / "report.html").read_text(encoding="utf-8")
    summary = page[page.index('id="summary"'):page.index("<nav>")]
    assert "holds no signal" in summary


def test_repeated_volumes_say_there_is_no_diffusion_weighting(analysed):
    """The GE MR29 test export repeats one image for all 7 volumes: the report says no ADC is a measurement."""
    out, _ = analysed("ge_mr29")
    flags = json.loads((out / "report.json").read_text(encoding="utf-8"))["qc"]["flags"]
    codes = [f["code"] for f in flags]
    assert "no_attenuation" in codes and flags[codes.index("no_attenuation")]["severity"] == "error"
    assert "no_attenuation" not in [f["code"] for f in json.loads(
        (analysed("philips_r571")[0] / "report.json").read_text(encoding="utf-8"))["qc"]["flags"]]


def test_scanner_adc_found_beside_the_xa30_dwi_and_agrees(analysed):
    """The XA30 folder holds the scanner's ADC series (ImageType ADC, 10⁻⁶ mm²/s integers) next to the
    DWI: it is found, scaled to mm²/s and agrees with our ADC (b = 0 and 2500 s/mm² in both)."""
    out, seen = analysed("siemens_xa30_enhanced")
    qc = json.loads((out / "report.json").read_text(encoding="utf-8"))["qc"]
    sc = qc["scanner_adc"]
    assert sc["found"] and sc["source"] == "auto" and "ADC" in sc["description"] and not sc["resampled"]
    by = {a["region"]: a for a in sc["agreement"]}
    assert by["all ROIs"]["n_voxels"] == sum(int(m.sum()) for _, m in seen["roi_masks"])
    # independent check: the scanner map read straight from its DICOM files, scaled by 1e-6
    from dwi_toolkit.io.dicom import load_scanner_adc

    theirs = load_scanner_adc(shared_path(*SERIES["siemens_xa30_enhanced"])).data
    assert 3e-4 < by["body"]["median_scanner_adc"] < 3e-3
    assert by["body"]["median_scanner_adc"] == pytest.approx(float(np.median(theirs[seen["fit"].status == 0][
        np.isfinite(np.asarray(seen["fit"].adc)[seen["fit"].status == 0]) & (theirs[seen["fit"].status == 0] > 0)])),
        rel=1e-6)
    assert abs(by["all ROIs"]["median_rel_diff_pct"]) < 1.0 and abs(by["body"]["median_rel_diff_pct"]) < 1.0
    assert not [f for f in qc["flags"] if f["code"] == "scanner_adc"]


def test_folder_with_both_canon_exports_names_each_folder():
    """Classic and enhanced exports of one series share its UID: the error names both folders to choose from."""
    from dwi_toolkit.errors import DicomError
    from dwi_toolkit.io.loading import load_dwi

    top = shared_path("dicom", "canon_galan_v61_dti_axial_classic_gz", "dicom")
    with pytest.raises(DicomError) as err:
        load_dwi(top)
    msg = str(err.value)
    assert "share a SeriesInstanceUID" in msg and "--backend" not in msg
    assert str(top / "cl_3000_DTI_PA-ortho") in msg and str(top / "enh_3000_DTI_PA-ortho") in msg
