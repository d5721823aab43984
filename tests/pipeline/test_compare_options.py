"""The side-comparison options end to end (issue #13): interval, reference, noise, entrapment_parameters.

Python (``run_analysis``), CLI (``dwi-toolkit analyze --reference adjacent``), a custom pipeline
(``reference = "adjacent"`` in the compare step) and the report (HTML table, JSON rows, CSV) on a
tiny synthetic cohort run through the real modules.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dwi_toolkit.analysis.options import AnalysisOptions
from dwi_toolkit.cli.main import main
from dwi_toolkit.errors import InputDataError
from tests.pipeline._helpers import pipeline_file


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from dwi_toolkit.sample_data import COHORT, generate_cohort

    root = tmp_path_factory.mktemp("cmp_opts")
    generate_cohort(root / "in", subjects={"sub-01": COHORT["sub-01"]}, dicom=False)
    sub = root / "in" / "sub-01"
    return root, sub


def _files(sub: Path) -> tuple[Path, Path, Path]:
    return next((sub / "dwi").glob("*_dwi.nii.gz")), sub / "rois.json", sub / "clinical.json"


def _adjacent_checks(out: Path) -> dict:
    d = json.loads((out / "report.json").read_text())
    adj = d["side_comparison_adjacent"]
    assert adj["rows"] and {r["reference"] for r in adj["rows"]} == {"adjacent"}
    assert all(r["reference_levels"] for r in adj["rows"] if r["level"] != "L1")
    assert adj["settings"]["reference"] == "adjacent"
    # the main comparison stays contralateral, one row per level (the first screen and entrapment use it)
    assert {r["reference"] for r in d["side_comparison"]["rows"]} == {"contralateral"}
    html = (out / "report.html").read_text()
    assert "Comparison with the adjacent levels" in html and "reference levels" in html
    assert "effective voxels L/R" in html and "Welch t intervals" in html
    assert "percentile bootstrap" not in html  # the default method is described as what it is
    with open(out / "side_comparison_adjacent.csv", newline="") as fh:
        assert {r["reference"] for r in csv.DictReader(fh)} == {"adjacent"}
    return d


def test_run_analysis_reference_adjacent(cohort):
    from dwi_toolkit.pipeline.analyze import run_analysis

    root, sub = cohort
    dwi, rois, clin = _files(sub)
    rep = run_analysis(dwi, rois, clin, root / "py", figures=False, reference="adjacent")
    d = _adjacent_checks(root / "py")
    # each adjacent row is the root against the mean of its neighbours on the same side
    r = next(r for r in d["side_comparison_adjacent"]["rows"] if r["level"] == "L5")
    ref_levels = r["reference_levels"].split(";")
    side = r["symptomatic_side"]
    means = {row.level: row.mean for row in rep.roi_stats.rows if row.side == side and row.parameter == "adc"}
    assert r["xs"] == pytest.approx(means["L5"])
    assert r["xc"] == pytest.approx(sum(means[lv] for lv in ref_levels) / len(ref_levels))
    assert d["provenance"]["parameters"]["reference"] == "adjacent"


def test_cli_reference_adjacent_and_interval(cohort, capsys):
    root, sub = cohort
    dwi, rois, clin = _files(sub)
    rc = main(["analyze", str(dwi), "--rois", str(rois), "--clinical", str(clin), "-o", str(root / "cli"),
               "--reference", "adjacent", "--no-figures"])
    assert rc == 0
    _adjacent_checks(root / "cli")
    rc = main(["analyze", str(dwi), "--rois", str(rois), "--clinical", str(clin), "-o", str(root / "boot"),
               "--interval", "iid-bootstrap", "--noise", "1.5", "--n-boot", "200", "--no-figures"])
    assert rc == 0
    d = json.loads((root / "boot" / "report.json").read_text())
    assert {r["interval_method"] for r in d["side_comparison"]["rows"]} == {"iid-bootstrap"}
    assert "side_comparison_adjacent" not in d
    assert "percentile bootstrap" in (root / "boot" / "report.html").read_text()
    capsys.readouterr()


def test_noise_option_given_fwhm_is_used(cohort):
    from dwi_toolkit.pipeline.analyze import run_analysis

    root, sub = cohort
    dwi, rois, clin = _files(sub)
    fixed = run_analysis(dwi, rois, clin, None, figures=False, noise="2")
    indep = run_analysis(dwi, rois, clin, None, figures=False, noise="0")
    r2, r0 = fixed.comparison.get("L5"), indep.comparison.get("L5")
    vox = fixed.roi_stats.rows[0].voxel_size_mm
    assert (r2.noise_fwhm_i_mm, r2.noise_fwhm_j_mm, r2.noise_fwhm_k_mm) == pytest.approx((2 * vox[0], 2 * vox[1], 0))
    assert r2.noise_source == "option"
    # correlated noise: fewer effective voxels than voxels, independent: as many
    assert r0.n_eff_left == pytest.approx(r0.n_left)
    assert r2.n_eff_left < r0.n_eff_left
    assert r2.difference_se > r0.difference_se


def test_pipeline_compare_step_reference_adjacent(cohort):
    from dwi_toolkit.pipeline.runner import run_pipeline

    root, _ = cohort
    spec = pipeline_file(root / "p.toml", 'step = "roi_stats"',
                         'step = "compare"\nreference = "adjacent"\nn_boot = 200',
                         'step = "assess"\nentrapment_parameters = "adc"', 'step = "report"\nfigures = false',
                         plugins=False)
    run_pipeline(root / "in", root / "pipe", pipeline=spec)
    out = next((root / "pipe").rglob("report.json")).parent
    _adjacent_checks(out)


def test_auto_reference_adds_adjacent_for_bilateral(cohort, tmp_path):
    from dwi_toolkit.pipeline.analyze import run_analysis

    _, sub = cohort
    dwi, rois, _ = _files(sub)
    (tmp_path / "c.json").write_text(json.dumps({"radicular_side": "bilateral", "suspected_levels": ["L5"]}))
    rep = run_analysis(dwi, rois, tmp_path / "c.json", None, figures=False, reference="auto")
    sec = next(s for s in rep.sections if s.key == "side_comparison_adjacent")
    assert any("automatically" in n for n in sec.data["notes"])
    rep = run_analysis(dwi, rois, None, None, figures=False, reference="auto", symptomatic_side="left")
    assert not any(s.key == "side_comparison_adjacent" for s in rep.sections)


def test_option_validation():
    assert AnalysisOptions(noise="METADATA").noise == "metadata"
    assert AnalysisOptions(noise=1.5).noise == "1.5"
    for bad in ({"noise": "smooth"}, {"noise": "-1"}, {"reference": "both"}, {"interval": "bca"},
                {"entrapment_parameters": " , "}):
        with pytest.raises(InputDataError):
            AnalysisOptions(**bad)
    assert AnalysisOptions(entrapment_parameters="combined").entrapment_parameter_list == "combined"


def test_combined_entrapment_shows_components_and_holm(rng):
    """The report's entrapment table lists the components and the Holm p of a combined assessment."""
    from dwi_toolkit.analysis.compare import compare_sides
    from dwi_toolkit.clinical.entrapment import assess_entrapment
    from dwi_toolkit.reporting.report import Report, make_provenance
    from tests.clinical.test_entrapment import _adc_fa, _clin

    cmp = compare_sides(_adc_fa(rng, fa_alt={("L5", "left"): 0.22}), symptomatic_side="left")
    ent = assess_entrapment(cmp, _clin(levels=["L5"]), parameter="combined")
    rep = Report(provenance=make_provenance(), acquisition={}, comparison=cmp, entrapment=ent)
    html = rep.to_html()
    lv = ent.get("L5")
    table = html[html.index("Per-level classes"):]
    assert "Holm p" in table and "components" in table
    assert "fa: rel_diff_pct" in table and "Holm p &lt; 0.001" in table
    d = rep.to_dict()
    row = next(r for r in d["entrapment"]["levels"] if r["level"] == "L5")
    assert row["p_holm"] == pytest.approx(lv.p_holm) and "fa:" in row["components"]
