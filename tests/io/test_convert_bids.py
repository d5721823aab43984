"""``dwi-toolkit convert --bids`` on synthetic DICOM: the layout, the dataset files and the validator."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pydicom")

from dwi_toolkit.cli.main import main  # noqa: E402
from dwi_toolkit.io.dicom._synthetic import write_series  # noqa: E402
from dwi_toolkit.io.loading import load_dwi  # noqa: E402

_EXE = shutil.which("bids-validator-deno") or shutil.which("bids-validator-deno", path=str(Path(sys.executable).parent))


def _errors(folder: Path) -> list[tuple]:
    run = subprocess.run([_EXE, str(folder), "--format", "json"], capture_output=True, text=True, timeout=300)
    return [(i["code"], i.get("location")) for i in json.loads(run.stdout)["issues"]["issues"]
            if i["severity"] == "error"]


def test_bids_layout_sessions_and_participants(tmp_path):
    write_series(tmp_path / "in", bvals=(0, 500, 1000), bvecs_lps=((0, 0, 0), (1, 0, 0), (0, 0.6, 0.8)))
    out = tmp_path / "bids"
    assert main(["convert", str(tmp_path / "in"), "-o", str(out), "--bids", "--subject", "01", "--session", "pre"]) == 0
    assert main(["convert", str(tmp_path / "in"), "-o", str(out), "--bids", "--subject", "sub-02"]) == 0
    dwi = out / "sub-01" / "ses-pre" / "dwi"
    assert sorted(p.name for p in dwi.iterdir()) == [f"sub-01_ses-pre_dwi.{e}" for e in ("bval", "bvec", "json",
                                                                                           "nii.gz")]
    assert (out / "sub-02" / "dwi" / "sub-02_dwi.nii.gz").is_file()
    assert (out / "participants.tsv").read_text().split() == ["participant_id", "sub-01", "sub-02"]
    desc = json.loads((out / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "raw" and desc["BIDSVersion"]
    back, direct = load_dwi(dwi / "sub-01_ses-pre_dwi.nii.gz"), load_dwi(tmp_path / "in")
    np.testing.assert_array_equal(np.asarray(back.data), np.asarray(direct.data))
    np.testing.assert_allclose(back.bvals, [0, 500, 1000])
    side = json.loads((dwi / "sub-01_ses-pre_dwi.json").read_text())
    assert "PatientName" not in side and side["EchoTime"] == 0.08
    if _EXE is not None:
        assert _errors(out) == []


def test_bids_needs_subject_and_flat_layout_is_default(tmp_path, capsys):
    write_series(tmp_path / "in")
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--bids"]) == 2
    assert "--subject" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--subject", "01"]) == 2
    assert "--bids" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "flat")]) == 0
    assert sorted(p.suffix for p in (tmp_path / "flat").iterdir()) == [".bval", ".bvec", ".gz", ".json"]


def test_header_as_dcm2niix_writes_it(tmp_path):
    nib = pytest.importorskip("nibabel")
    write_series(tmp_path / "in", bvals=(0, 800))
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "b"), "--bids", "--subject", "01"]) == 0
    img = nib.load(tmp_path / "b" / "sub-01" / "dwi" / "sub-01_dwi.nii.gz")
    side = json.loads((tmp_path / "b" / "sub-01" / "dwi" / "sub-01_dwi.json").read_text())
    h = img.header
    assert (int(h["qform_code"]), int(h["sform_code"])) == (1, 1)
    np.testing.assert_allclose(img.get_qform(), img.get_sform(), atol=1e-6)
    assert float(h["pixdim"][4]) == pytest.approx(side["RepetitionTime"])
    assert h.get_xyzt_units() == ("mm", "sec")
    assert h["descrip"].item().decode().startswith(f"TE={side['EchoTime'] * 1000:.2g}")
