"""``dwi-toolkit convert`` on synthetic DICOM (no shared data needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pydicom")

from dwi_toolkit.cli.main import main  # noqa: E402
from dwi_toolkit.io.dicom._synthetic import write_series  # noqa: E402
from dwi_toolkit.io.loading import load_dwi  # noqa: E402


def test_convert_roundtrip(tmp_path, capsys):
    write_series(tmp_path / "in", bvals=(0, 500, 1000), bvecs_lps=((0, 0, 0), (1, 0, 0), (0, 0.6, 0.8)))
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "out")]) == 0
    nii = tmp_path / "out" / "3_synthetic_DWI.nii.gz"
    assert nii.exists()
    side = json.loads(nii.with_name("3_synthetic_DWI.json").read_text())
    assert side["EchoTime"] == 0.08 and "PatientName" not in side and "PatientID" not in side
    back = load_dwi(nii)
    direct = load_dwi(tmp_path / "in")
    np.testing.assert_array_equal(np.asarray(back.data), np.asarray(direct.data))
    np.testing.assert_allclose(back.affine, direct.affine, atol=1e-5)
    np.testing.assert_allclose(back.bvecs, direct.bvecs, atol=1e-6)
    np.testing.assert_allclose(back.bvals, [0, 500, 1000])


def test_convert_list_and_several_series(tmp_path, capsys):
    write_series(tmp_path / "in" / "a", series_uid="1.2.3.1", description="first")
    write_series(tmp_path / "in" / "b", series_uid="1.2.3.2", description="second", series_number=5)
    assert main(["convert", str(tmp_path / "in"), "--list"]) == 0
    out = capsys.readouterr().out
    assert "1.2.3.1" in out and "1.2.3.2" in out and "  role  " in out and "  dwi  " in out
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "o1")]) == 2
    assert "--series-uid" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "o2"), "--all", "--no-gzip"]) == 0
    assert sorted(p.name for p in (tmp_path / "o2").glob("*.nii")) == ["3_first.nii", "5_second.nii"]
    assert main(["convert", str(tmp_path / "in"), "-o", str(tmp_path / "o3"), "--series-uid", "1.2.3.2",
                 "--keep-phi"]) == 0
    side = json.loads((tmp_path / "o3" / "5_second.json").read_text())
    assert side["PatientID"] == "SYN001"
