"""Rich display: every main object has a short ``repr`` and a well-formed, informative ``_repr_html_``
that never shows patient identifiers (issue 8)."""

from __future__ import annotations

import base64
import html.parser

import numpy as np
import pytest

import dwi_toolkit as dt
from dwi_toolkit.phantom import make_lumbar_phantom

VOID = {"br", "img", "hr", "meta", "input", "link", "col", "wbr", "source", "area", "base", "embed", "param",
        "track"}
PHI = ("Synthetic^Patient", "SYN001", "Doe^Jane", "PAT-4711")


class _Checker(html.parser.HTMLParser):
    """Collects text, tags and images; fails on unbalanced or misnested elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.images: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(obj, *facts: str, max_chars: int = 60_000, thumbnail: bool = False) -> str:
    """Assert ``_repr_html_`` is balanced HTML with a table, the facts, no PHI; return its text."""
    out = obj._repr_html_()
    assert isinstance(out, str) and 0 < len(out) <= max_chars, len(out)
    p = _Checker()
    p.feed(out)
    p.close()
    assert not p.errors, p.errors
    assert not p.stack, f"unclosed elements {p.stack}"
    assert "table" in p.tags
    text = " ".join(" ".join(p.text).split())
    for fact in facts:
        assert fact in text, f"{fact!r} missing from {type(obj).__name__}._repr_html_: {text[:400]}"
    for ident in PHI:
        assert ident not in out
    if thumbnail:
        assert p.images, "no thumbnail"
        src = p.images[0]
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 40_000
    return text


def check_repr(obj, *facts: str, max_chars: int = 300) -> str:
    r = repr(obj)
    assert r.startswith(type(obj).__name__ + "("), r
    assert len(r) <= max_chars and "\n" not in r, r
    for fact in facts:
        assert fact in r, f"{fact!r} missing from {r}"
    for ident in PHI:
        assert ident not in r
    return r


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def subject():
    ph = make_lumbar_phantom(seed=3,
                             altered={("L5", "left"): 1.7e-3})
    series = dt.DWISeries(ph.series.data, ph.series.affine, ph.series.bvals, ph.series.bvecs,
                          meta={**ph.series.meta, "Manufacturer": "Phantom"})
    fit = dt.fit_adc(series, method="wls")
    from dwi_toolkit.roi.sample import rois_from_centerlines

    rois = rois_from_centerlines(ph.centerlines, radius_mm=2.5)
    stats = dt.roi_stats(fit, rois)
    cmp = dt.compare_sides(stats, symptomatic_side="left", n_boot=200)
    clinical = {"schema": "dwi_toolkit.clinical", "schema_version": "1.0", "radicular_pain": True,
                "radicular_side": "left", "suspected_levels": ["L5"], "pain_duration_weeks": 10,
                "conservative_treatment_weeks": 8, "suspected_condition": "disc_herniation",
                "red_flags": [], "cauda_equina_signs": [], "surgery_considered": True}
    ind = dt.assess_indication(clinical)
    ent = dt.assess_entrapment(cmp, clinical, indication=ind)
    return dict(phantom=ph, series=series, fit=fit, rois=rois, stats=stats, cmp=cmp, ind=ind, ent=ent,
                clinical=clinical)


# ------------------------------------------------------------------------------ core and models
def test_dwiseries(subject):
    s = subject["series"]
    check_repr(s, "shape=(72, 56, 48, ", "orientation=")
    text = check_html(s, "DWISeries", str(s.shape), "b0 threshold", "50 s/mm²", "Phantom")
    assert "800" in text  # the highest shell


def test_dwiseries_never_shows_patient_identifiers():
    s = dt.DWISeries(np.ones((2, 2, 2, 2)), np.eye(4), [0, 800], [[0, 0, 0], [1, 0, 0]],
                     meta={"PatientName": "Doe^Jane", "PatientID": "PAT-4711", "Manufacturer": "Siemens"})
    check_repr(s)
    check_html(s, "Siemens")


def test_parameter_map_with_thumbnail(subject):
    m = subject["fit"].map("adc")
    check_repr(m, "name='adc'", "unit='mm^2/s'")
    text = check_html(m, "ParameterMap", "adc", "mm^2/s", str(m.shape), "×10⁻³ mm²/s", thumbnail=True)
    med = float(np.nanmedian(m.data)) * 1e3
    assert f"{med:.4g}" in text  # median shown in display units


def test_parameter_map_all_nan_has_no_thumbnail():
    m = dt.ParameterMap(np.full((3, 3, 2), np.nan), np.eye(4), "fa", "")
    text = check_html(m, "fa", "0 / 18")
    assert "median" not in text and "<img" not in m._repr_html_()


def test_adc_fit(subject):
    fit = subject["fit"]
    check_repr(fit, "method='wls'", f"fitted={int((fit.status == 0).sum())}/")
    med = np.median(fit.adc[fit.status == 0]) * 1e3
    check_html(fit, "ADCFit", "wls", "0, 100, 400, 800", f"{med:.3f}", thumbnail=True)


def test_ivim_fit():
    from dwi_toolkit.models.ivim import ivim_signal

    b = np.array([0, 10, 20, 50, 100, 200, 400, 600, 800.0])
    sig = ivim_signal(b, 1000.0, np.full((4, 4, 2), 0.1), np.full((4, 4, 2), 1.0e-3), np.full((4, 4, 2), 20e-3))
    fit = dt.fit_ivim(dt.DWISeries(sig, np.eye(4), b, np.zeros((b.size, 3))), method="segmented")
    check_repr(fit, "method='segmented'", "ok_voxels=")
    ok = fit.status == 0
    d, f = np.median(fit.d[ok]) * 1e3, np.median(fit.f[ok])
    assert abs(d - 1.0) < 0.02 and abs(f - 0.1) < 0.01  # the displayed numbers are the true ones
    check_html(fit, "IVIMFit", "segmented", "median D (×10⁻³ mm²/s)", f"{d:.3f}", f"{f:.3f}", thumbnail=True)


def test_dti_fit():
    pytest.importorskip("dipy")
    rng = np.random.default_rng(0)
    dirs = rng.standard_normal((12, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    b = np.r_[0.0, np.full(12, 800.0)]
    g = np.vstack([[0, 0, 0], dirs])
    evals = np.array([1.7e-3, 0.3e-3, 0.3e-3])  # tensor along x
    fa = np.sqrt(0.5 * ((evals[0] - evals[1]) ** 2 + (evals[1] - evals[2]) ** 2 + (evals[2] - evals[0]) ** 2)
                 / np.sum(evals ** 2))
    q = np.einsum("ni,i,ni->n", g, evals, g)
    sig = np.broadcast_to(1000.0 * np.exp(-b * q), (3, 3, 2, b.size)).copy()
    fit = dt.fit_dti(dt.DWISeries(sig, np.eye(4), b, g))
    check_repr(fit, "ok_voxels=18")
    check_html(fit, "DTIFit", "median FA", f"{fa:.3f}", f"{evals.mean() * 1e3:.3f}", thumbnail=True)


# ------------------------------------------------------------------------------ ROIs and analysis
def test_root_roi_and_roi_set(subject):
    rois = subject["rois"]
    roi = rois.get("L5", "left")
    check_repr(roi, "L5_left_ganglion")
    check_html(roi, "RootROI L5_left_ganglion", "L5", "left (patient's)", "ganglion", "RAS+ mm")
    check_repr(rois, f"{len(rois)} ROIs", max_chars=600)
    check_html(rois, "RoiSet", "L5", "S1", "ganglion")


def test_roi_stats_table(subject):
    stats = subject["stats"]
    check_repr(stats, max_chars=600)
    check_html(stats, "L5", "left", "adc")


def test_side_comparison(subject):
    cmp = subject["cmp"]
    check_repr(cmp, "symptomatic_side='left'")
    row = cmp.get("L5")
    check_html(cmp, "L5", "left")
    assert row.rel_diff_pct > 10  # the altered root is visible in the object the table shows


def test_assessments(subject):
    ind, ent = subject["ind"], subject["ent"]
    check_repr(ind, f"classification='{ind.classification}'")
    check_html(ind, ind.classification, *ind.decisive_rules)
    check_repr(ent, "side='left'", "threshold_pct=10")
    check_html(ent, "L5", ent.get("L5").classification)


def test_report(subject):
    from dwi_toolkit.reporting.report import build_report

    rep = build_report(series=subject["series"], fit=subject["fit"], stats=subject["stats"],
                       comparison=subject["cmp"], indication=subject["ind"], entrapment=subject["ent"],
                       subject="demo-01", figures=False)
    check_repr(rep, "subject='demo-01'", "dwi_toolkit.report/1")
    check_html(rep, "Research use only", "L5", max_chars=400_000)


# ------------------------------------------------------------------------------ I/O and pipeline
def test_dicom_series_info(tmp_path):
    pytest.importorskip("pydicom")
    from dwi_toolkit.io.dicom import find_dwi_series
    from dwi_toolkit.io.dicom._synthetic import write_series

    write_series(tmp_path / "d")  # carries PatientName/PatientID, which must not appear
    (info,) = find_dwi_series(tmp_path / "d")
    check_repr(info, "role='dwi'", "n_volumes=4", max_chars=400)
    check_html(info, "DICOM series", "dwi", "0, 1000", "HFS")


def test_pipeline_objects(tmp_path):
    from dwi_toolkit.pipeline.cohort import CohortSummary, indication_shares
    from dwi_toolkit.pipeline.runner import SubjectResult, run_pipeline
    from dwi_toolkit.pipeline.spec import load_pipeline

    spec = load_pipeline("default")
    check_repr(spec, "name='default'", "adc", "report")
    check_html(spec, "PipelineSpec", "default", spec.hash[:12], "wls")

    for i in (1, 2):
        d = tmp_path / "in" / f"sub-0{i}" / "dwi"
        d.mkdir(parents=True)
        (d / f"sub-0{i}_dwi.nii.gz").write_bytes(b"")
    plan = run_pipeline(tmp_path / "in", tmp_path / "out", pipeline="adc-only", dry_run=True)
    check_repr(plan, "pipeline='adc-only'", "subjects=2", "dry_run=True")
    check_html(plan, "RunResult", "adc-only", "sub-01", "sub-02", "dry run")
    check_repr(plan.plan[0], "'sub-01'", "action='run'")
    check_repr(plan.dataset.subjects[0], "'sub-01'", "kind='nifti'", "'dwi'")
    check_repr(plan.dataset, "subjects=2")
    check_html(plan.dataset, "sub-01, sub-02")

    failed = SubjectResult(key="sub-02", status="failed", duration_s=0.12, reason="load: no .bval file")
    check_repr(failed, "status='failed'", "no .bval file")
    check_html(failed, "sub-02", "failed", "no .bval file")

    summary = CohortSummary(
        out_dir=tmp_path / "out", subject_rows=[
            {"subject": "sub-01", "status": "done", "indication": "appropriate", "entrapment": "L5 ganglion: concordant"},
            {"subject": "sub-02", "status": "failed", "reason": "load: no .bval file"}],
        indication=indication_shares(["appropriate"]), side_differences={"L5": [25.0]},
        side_difference_measure="rel_diff_pct")
    check_repr(summary, "subjects=2", "done=1", "failed=1", "'L5'")
    check_html(summary, "CohortSummary", "appropriate", "1 (100 %)", "L5 +25.0", "concordant", "no .bval file")


def test_thumbnail_png_decodes_to_the_slice():
    """The hand-written PNG encoder round-trips through an independent decoder (matplotlib)."""
    import io

    from matplotlib import image as mpimg

    from dwi_toolkit.core._display import png_gray

    img = (np.arange(35).reshape(5, 7) * 7).astype(np.uint8)
    back = mpimg.imread(io.BytesIO(png_gray(img)), format="png")
    np.testing.assert_array_equal(np.round(back * 255).astype(np.uint8), img)


def test_no_repr_is_the_dataclass_default():
    """The objects above define their own short repr, not the field dump of @dataclass."""
    from dwi_toolkit.pipeline.cohort import CohortSummary
    from dwi_toolkit.pipeline.layout import Dataset
    from dwi_toolkit.pipeline.runner import RunResult, SubjectResult
    from dwi_toolkit.pipeline.spec import PipelineSpec

    for cls in (dt.DWISeries, dt.ParameterMap, dt.ADCFit, dt.IVIMFit, dt.DTIFit, dt.RootROI, dt.RoiSet,
                dt.Report, RunResult, SubjectResult, CohortSummary, Dataset, PipelineSpec):
        assert "__repr__" in vars(cls) and "_repr_html_" in vars(cls), cls.__name__
        # @dataclass's generated __repr__ is wrapped by dataclasses.py (or lives in "<string>")
        src = cls.__repr__.__code__.co_filename
        assert src.endswith(".py") and not src.endswith("dataclasses.py"), f"{cls.__name__} uses the dataclass repr"
