"""The report in a real browser (headless Chromium): no console errors, no external requests, the
first screen answers at 1280 px, the A4 print keeps every column, and the montage labels do not
overlap.

Artefacts (screenshot, A4 PDF, the measured layout) are written to ``test-artifacts/browser/``
(git-ignored). Needs ``chromium`` and ``pdftotext`` (Debian: ``apt-get install chromium
poppler-utils``; ``make test`` installs them when run as root with apt); skipped with that reason
when absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.reporting import _browser as B
from tests.reporting._browser import needs_browser

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data" / "sub-01"


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """(report folder, what run_analysis gave build_report) for the sample subject."""
    out = tmp_path_factory.mktemp("browser_report")
    seen = B.run_with_spies(SAMPLE / "dwi" / "sub-01_dwi.nii.gz", SAMPLE / "rois" / "sub-01_rois.json",
                            clinical_path=SAMPLE / "clinical.json", out_dir=out, b_min=100)
    B.artefact_dir("")
    return out, seen


@pytest.fixture(scope="module")
def report_dir(analysed):
    return analysed[0]


@needs_browser
@pytest.mark.slow
def test_page_opens_without_console_errors_or_requests(report_dir):
    B.check_self_contained_and_quiet(report_dir / "report.html", B.ARTIFACTS / "report_1280.png")


@needs_browser
@pytest.mark.slow
def test_first_screen_fits_1280_and_no_table_is_clipped(report_dir, tmp_path):
    layout = B.measure_layout(report_dir / "report.html", tmp_path, B.ARTIFACTS / "layout_1280.json")
    B.check_first_screen(layout)


@needs_browser
@pytest.mark.slow
def test_a4_pdf_keeps_every_column_and_folded_content(report_dir):
    text, page1 = B.print_pdf(report_dir / "report.html", B.ARTIFACTS / "report_A4.pdf")
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    assert "<details>" in page               # the sample has folded sections: print must open them
    B.check_print_keeps_columns_and_details(page, text)
    # the per-level results are all on the first printed page, with the result in words
    for level in ("L1", "L2", "L3", "L4", "L5", "S1"):
        assert f"{level}ganglion" in page1
    assert "asymmetryonthesymptomaticside" in page1 and "no_asymmetry" not in text


def test_sample_report_words_numbers_flags_and_montage(analysed):
    """No code word or unrounded number in the page; the QC flags match the fractions recomputed from
    the fit status and the ROI masks; the sample's montage labels do not overlap."""
    report_dir, seen = analysed
    B.check_words_and_numbers((report_dir / "report.html").read_text(encoding="utf-8"))
    rep = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    B.check_qc_flags(rep, np.asarray(seen["fit"].status), seen["roi_masks"])
    n, overlaps = B.montage_label_overlaps(seen["montage"])
    assert n == len(seen["roi_masks"]) and not overlaps, overlaps


def test_montage_labels_do_not_overlap():
    """Labels of ROIs crowded at the midline on every slice get boxes that never overlap."""
    from matplotlib.text import Text

    from dwi_toolkit.reporting.figures import adc_montage

    adc = np.full((40, 30, 6), 1.2e-3)
    rois = []
    for z in range(6):
        for side, x0 in (("left", 17), ("right", 20)):
            m = np.zeros(adc.shape, bool)
            m[x0:x0 + 2, 14:16, z] = True
            rois.append((f"L{z % 5 + 1} {side} ganglion", m))
    fig = adc_montage((adc, np.diag([2.0, 2.0, 4.0, 1.0])), rois=rois)
    n, overlaps = B.montage_label_overlaps(fig)
    assert n == len(rois) and not overlaps
    labels = [t for ax in fig.axes for t in ax.texts if t.get_gid() == "roi-label"]
    # ≥ 9 pt at print size: a 3-panel row printed 180 mm wide
    width_in = fig.get_size_inches()[0]
    assert min(t.get_fontsize() for t in labels) * (180 / 25.4) / width_in >= 9


@needs_browser
@pytest.mark.slow
def test_report_with_tractography_in_the_browser(tmp_path):
    """``analyze --track`` on the curved-root phantom (L4 and L5, a lesion on L5 left): the page with
    its tractography section passes the same checks — quiet, first screen, no clipped table, every
    column in print, no code word or machine-precision number."""
    from dwi_toolkit.cli.main import main
    from dwi_toolkit.io.rois import save_rois
    from dwi_toolkit.phantom_roots import RootLesion, make_root_phantom
    from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere

    ph = make_root_phantom(levels=("L4", "L5"), voxel_size=2.5, n_directions=12, snr=30,
                           lesion=RootLesion("L5", "left"))
    ph.series.save(tmp_path / "dwi.nii.gz")
    save_rois(RoiSet([RootROI(lv, sd, shape=Sphere(p, 2.0)) for (lv, sd), p in ph.seeds.items()]),
              tmp_path / "rois.json")
    (tmp_path / "clinical.json").write_text(json.dumps({"radicular_side": "left", "suspected_levels": ["L5"]}))
    out = tmp_path / "rep"
    assert main(["analyze", str(tmp_path / "dwi.nii.gz"), "--rois", str(tmp_path / "rois.json"), "--clinical",
                 str(tmp_path / "clinical.json"), "-o", str(out), "--track", "--n-boot", "200"]) == 0
    html = out / "report.html"
    art = B.artefact_dir("tractography")
    B.check_self_contained_and_quiet(html, art / "report_1280.png")
    B.check_first_screen(B.measure_layout(html, tmp_path, art / "layout_1280.json"))
    page = html.read_text(encoding="utf-8")
    text, _ = B.print_pdf(html, art / "report_a4.pdf")
    B.check_print_keeps_columns_and_details(page, text)
    B.check_words_and_numbers(page)
    assert "Root tractography and along-root profiles" in page and "smallest difference it could report" in page
