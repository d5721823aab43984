"""The ``check_gradients`` pipeline step and ``analyze --check-gradients/--fix-gradients`` on the
flipped-table phantom (truth: the stored table is ``P @ true``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dwi_toolkit.phantom_sessions import GRADIENT_ERRORS, make_gradient_error_phantom
from dwi_toolkit.qc.gradient_check import CANDIDATES

ERROR = "xyz flip x"
GEOM = dict(shape=(30, 26, 40), voxel_size=(3, 3, 3), seed=1)


def _subject(root: Path, error: str | None, label: str = "sub-01", **geom):
    ph = make_gradient_error_phantom(error, **(geom or GEOM))
    (root / label / "dwi").mkdir(parents=True)
    ph.series.save(root / label / "dwi" / f"{label}_dwi.nii.gz")
    return ph


def _pipeline(path: Path, check: str) -> Path:
    path.write_text('schema = "dwi_toolkit.pipeline/1"\nname = "gradcheck"\n\n[[steps]]\nstep = "load"\n\n'
                    f'[[steps]]\nstep = "check_gradients"\n{check}\n\n[[steps]]\nstep = "adc"\n\n'
                    '[[steps]]\nstep = "report"\nfigures = false\n')
    return path


def _undoes(best: str, error: str) -> bool:
    """The best table maps the stored one back to the truth (up to the tensor's global sign)."""
    return bool(np.allclose(np.abs(CANDIDATES[best] @ GRADIENT_ERRORS[error]), np.eye(3)))


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("grad_in")
    _subject(root, ERROR, "sub-01")
    _subject(root, None, "sub-02")
    return root


def test_check_gradients_step_fixes_and_reports(cohort, tmp_path):
    from dwi_toolkit.pipeline.runner import run_pipeline

    out = tmp_path / "out"
    run_pipeline(cohort, out, pipeline=_pipeline(tmp_path / "p.toml", "fix = true"), cohort=False)
    bad = json.loads((out / "sub-01" / "report" / "report.json").read_text())
    assert bad["qc"]["gradient_check"].startswith("wrong")
    prov = bad["provenance"]["gradient_check"]
    assert prov["applied"] is True and prov["margin"] > 0.1 and _undoes(prov["best"], ERROR)
    assert any(f["code"] == "gradient_table" and "corrected" in f["message"] for f in bad["qc"]["flags"])
    side = json.loads((out / "sub-01" / "dwi" / "sub-01_desc-gradientcheck.json").read_text())
    assert side["status"] == "wrong" and side["applied"] is True
    good = json.loads((out / "sub-02" / "report" / "report.json").read_text())
    assert good["provenance"]["gradient_check"]["status"] == "ok"
    assert good["provenance"]["gradient_check"]["applied"] is False
    assert not any(f["code"] == "gradient_table" for f in good["qc"]["flags"])
    assert "Gradient table" in (out / "sub-01" / "report" / "report.html").read_text()


def test_check_gradients_step_can_fail_the_subject(cohort, tmp_path):
    from dwi_toolkit.pipeline.runner import run_pipeline

    out = tmp_path / "out"
    res = run_pipeline(cohort, out, pipeline=_pipeline(tmp_path / "p.toml", "fail_if_wrong = true"), cohort=False)
    man = json.loads((out / "manifest.json").read_text())["subjects"]
    assert man["sub-01"]["status"] == "failed" and man["sub-02"]["status"] == "done"
    assert "fix = true" in json.dumps(man["sub-01"]) or "fix" in str(res)


@pytest.mark.slow
def test_analyze_fix_gradients(tmp_path):
    """run_analysis applies the best table before the tensor fit: FA directions follow the truth."""
    from dwi_toolkit.io.rois import save_rois
    from dwi_toolkit.pipeline.analyze import run_analysis
    from dwi_toolkit.roi.sample import sample_rois

    ph = _subject(tmp_path, ERROR, voxel_size=(3, 3, 5), seed=1)  # the whole lumbar spine: every ROI inside
    save_rois(sample_rois(ph.phantom, kind="tube"), tmp_path / "rois.json")
    dwi = tmp_path / "sub-01" / "dwi" / "sub-01_dwi.nii.gz"
    rep = run_analysis(dwi, tmp_path / "rois.json", out_dir=tmp_path / "rep", fix_gradients=True,
                       n_boot=100, figures=False)
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert doc["provenance"]["parameters"]["fix_gradients"] is True
    assert doc["provenance"]["gradient_check"]["applied"] is True
    assert _undoes(doc["provenance"]["gradient_check"]["best"], ERROR)
    assert rep.qc["gradient_check"].startswith("wrong")
    only_check = run_analysis(dwi, tmp_path / "rois.json", check_gradients=True, n_boot=100, figures=False)
    assert only_check.provenance["gradient_check"]["applied"] is False
    assert any("--fix-gradients" in f["advice"] for f in only_check.qc["flags"] if f["code"] == "gradient_table")
