"""The command line, run in-process through main([...])."""

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from dwi_toolkit.cli.main import main

from ..conftest import REPO


@pytest.fixture
def sample_dwi(sample_dir):
    return sample_dir / "sub-01" / "dwi" / "sub-01_dwi.nii.gz"


def test_help_and_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert "dwi_toolkit" in capsys.readouterr().out
    assert main([]) == 2


def test_info_text_and_json(sample_dwi, capsys):
    assert main(["info", str(sample_dwi)]) == 0
    out = capsys.readouterr().out
    assert "LAS" in out and "800" in out
    assert main(["info", str(sample_dwi), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["shape"] == [72, 56, 48, 10]
    assert [s["bval"] for s in facts["shells"]] == [0, 100, 400, 800]
    assert all(s["n_directions"] == 3 for s in facts["shells"][1:])
    assert not any(k.startswith("Patient") and k != "PatientPosition" for k in facts)


def test_adc_command_writes_maps_and_figure(sample_dwi, tmp_path, capsys):
    out = tmp_path / "adc"
    assert main(["adc", str(sample_dwi), "-o", str(out), "--method", "ols", "--b-min", "100"]) == 0
    for name in ("adc.nii.gz", "s0.nii.gz", "rsquared.nii.gz", "status.nii.gz", "adc_montage.png", "adc_fit.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "adc_fit.json").read_text())
    assert summary["bvals_used"] == [100, 400, 800]
    adc = nib.load(out / "adc.nii.gz")
    np.testing.assert_allclose(adc.affine, nib.load(sample_dwi).affine)
    assert (out / "adc_montage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.nii.gz")]) == 2
    err = capsys.readouterr().err
    assert "error: no such file" in err and "Traceback" not in err
    bad = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3, 2), np.float32), np.eye(4)), bad)
    out = tmp_path / "o"
    assert main(["adc", str(bad), "-o", str(out)]) == 2
    assert "bval" in capsys.readouterr().err
    assert not out.exists()  # nothing partial written


def test_startup_does_not_import_heavy_modules():
    code = (
        "import sys; from dwi_toolkit.cli.main import build_parser; build_parser(); "
        "import dwi_toolkit; "
        "heavy = [m for m in ('dipy', 'matplotlib', 'scipy.optimize', 'pydicom') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert res.stdout.strip() == ""


def test_python_dash_m_entry_point():
    res = subprocess.run([sys.executable, "-m", "dwi_toolkit", "--help"], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0 and "adc" in res.stdout and "info" in res.stdout
