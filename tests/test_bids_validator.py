"""The bundled sample is a valid BIDS dataset for the official BIDS validator (bids-validator-deno).

The validator is in the ``test`` extra (a Deno bundle; the ``deno`` wheel ships the runtime); the tests
skip with a reason when the executable is absent.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dwi_toolkit.sample_data import generate

_EXE = shutil.which("bids-validator-deno") or shutil.which("bids-validator-deno", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(_EXE is None, reason="the official BIDS validator is not installed "
                                                      "(pip install bids-validator-deno, in the test extra)")


def validate(folder: Path) -> list[dict]:
    """Issues reported by the official validator (offline, JSON output)."""
    run = subprocess.run([_EXE, str(folder), "--format", "json"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "NO_COLOR": "1"})
    assert run.stdout, f"validator gave no output (exit {run.returncode}): {run.stderr[-2000:]}"
    return json.loads(run.stdout)["issues"]["issues"]


def errors(issues: list[dict]) -> list[tuple]:
    return [(i["code"], i.get("location")) for i in issues if i["severity"] == "error"]


def test_shipped_sample_data_is_valid_bids(sample_dir):
    issues = validate(sample_dir)
    assert errors(issues) == []
    # the DWI itself is recognised as BIDS data (not silently ignored by .bidsignore)
    assert any(i.get("location") == "/sub-01/dwi/sub-01_dwi.nii.gz" for i in issues)


def test_validator_catches_what_the_sample_provides(tmp_path):
    """Without its top-level files the same subject is rejected: the test above is not vacuous."""
    out = generate(tmp_path / "ds")
    for name in ("dataset_description.json", ".bidsignore"):
        (out / name).unlink()
    codes = {code for code, _ in errors(validate(out))}
    assert {"MISSING_DATASET_DESCRIPTION", "NOT_INCLUDED"} <= codes


# ------------------------------------------------------------------------------ pipeline derivatives
def _ivim_dti_subject(folder: Path) -> None:
    """A tiny isotropic IVIM subject with 6 directions per shell: every model step can fit it."""
    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.io.nifti import save_dwi

    dirs = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], float)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    shells = [50.0, 200.0, 400.0, 800.0]
    bvals = np.r_[0.0, np.repeat(shells, 6)]
    bvecs = np.vstack([[0, 0, 0], np.tile(dirs, (len(shells), 1))])
    sig = 1000.0 * (0.9 * np.exp(-bvals * 1.2e-3) + 0.1 * np.exp(-bvals * 2e-2))
    body = np.ones((5, 4, 3, 1))
    body[0] = 0.0
    save_dwi(DWISeries(sig * body, np.diag([-2.0, 2.0, 4.0, 1.0]), bvals, bvecs), folder / "dwi.nii.gz")


def test_pipeline_derivatives_are_valid_bids(tmp_path):
    """The default pipeline (maps, ROI statistics, reports, cohort) and the ADC/IVIM/DTI maps: 0 errors."""
    from dwi_toolkit.pipeline.runner import run_pipeline
    from dwi_toolkit.sample_data import COHORT, generate_cohort

    generate_cohort(tmp_path / "in", subjects={k: COHORT[k] for k in ("sub-01", "sub-05")}, dicom=False)
    (tmp_path / "default.toml").write_text(
        'schema = "dwi_toolkit.pipeline/1"\nname = "default-fast"\n[[steps]]\nstep = "load"\n[[steps]]\n'
        'step = "adc"\n[[steps]]\nstep = "roi_stats"\n[[steps]]\nstep = "compare"\nn_boot = 200\n'
        '[[steps]]\nstep = "assess"\n[[steps]]\nstep = "report"\nfigures = false\n')
    res = run_pipeline(tmp_path / "in", tmp_path / "out", pipeline=tmp_path / "default.toml")
    assert res.counts == {"done": 1, "skipped": 0, "failed": 1}  # sub-05 is broken on purpose: logs/ too
    _ivim_dti_subject(tmp_path / "in2" / "s1")
    p = tmp_path / "models.toml"
    p.write_text('schema = "dwi_toolkit.pipeline/1"\nname = "models"\n[[steps]]\nstep = "load"\n'
                 '[[steps]]\nstep = "adc"\n[[steps]]\nstep = "ivim"\n[[steps]]\nstep = "dti"\n')
    assert run_pipeline(tmp_path / "in2", tmp_path / "out2", pipeline=p).exit_code == 0
    for out in (tmp_path / "out", tmp_path / "out2"):
        issues = validate(out)
        assert errors(issues) == [], out.name
        assert {i["code"] for i in issues if i["severity"] == "warning"} <= {"TOO_FEW_AUTHORS", "README_FILE_MISSING"}
    dwi = tmp_path / "out2" / "sub-s1" / "dwi"
    for name in ("sub-s1_ADC", "sub-s1_S0map", "sub-s1_desc-dti_FA", "sub-s1_desc-dti_ADC", "sub-s1_desc-ivim_S0map",
                 "sub-s1_desc-adcfit_dseg", "sub-s1_desc-dtifit_dseg", "sub-s1_desc-ivimfit_dseg"):
        side = json.loads((dwi / f"{name}.json").read_text())
        assert side["SkullStripped"] is False and (dwi / f"{name}.nii.gz").is_file(), name
    assert (dwi / "sub-s1_model-ivim_param-dstar_dwimap.nii.gz").is_file()
    table = (tmp_path / "out" / "sub-01" / "dwi" / "sub-01_desc-roistats.tsv").read_text().splitlines()
    assert table[0].split("\t")[:4] == ["level", "side", "segment", "parameter"]


def test_validator_rejects_the_same_derivatives_without_bidsignore(tmp_path):
    """The 0 above is not vacuous: without the shipped .bidsignore the non-BIDS files are errors."""
    from dwi_toolkit.pipeline.runner import run_pipeline
    from dwi_toolkit.sample_data import COHORT, generate_cohort

    generate_cohort(tmp_path / "in", subjects={"sub-01": COHORT["sub-01"]}, dicom=False)
    run_pipeline(tmp_path / "in", tmp_path / "out", pipeline="adc-only", cohort=False)
    (tmp_path / "out" / ".bidsignore").unlink()
    locations = {loc for code, loc in errors(validate(tmp_path / "out")) if code == "NOT_INCLUDED"}
    assert "/sub-01/dwi/sub-01_desc-roistats.tsv" in locations
    assert "/sub-01/dwi/sub-01_ADC.nii.gz" not in locations  # a BIDS name: never an error
