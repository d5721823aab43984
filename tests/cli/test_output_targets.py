"""Single-subject commands refuse outputs in an input's DICOM/BIDS-subject folder or on an input
file (symlinks resolved), before writing; an unexpected exception is one line with exit code 3."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dwi_toolkit.cli.main import EXIT_CODES, main
from dwi_toolkit.errors import InputDataError
from dwi_toolkit.io._outputs import check_output_target


def _tree(folder):
    return sorted((p.relative_to(folder).as_posix(), p.read_bytes()) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def place(tmp_path):
    """dcm/ (a DICOM folder), dcm2/, rois.json, referrals.csv, a BIDS subject and symlinks to them."""
    for name in ("dcm", "dcm2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "IM0001.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\1" * 64)
    (tmp_path / "rois.json").write_text("{}")
    (tmp_path / "referrals.csv").write_text("id\n1\n")
    (tmp_path / "clinical.json").write_text("{}")
    dwi = tmp_path / "bids" / "sub-01" / "dwi"
    dwi.mkdir(parents=True)
    (tmp_path / "bids" / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.8.0"}')
    for ext in (".nii.gz", ".bval", ".bvec"):
        (dwi / f"sub-01_dwi{ext}").write_bytes(b"x")
    os.symlink(tmp_path / "dcm", tmp_path / "dcmlink")          # an input reached through a link
    os.symlink(tmp_path / "dcm", tmp_path / "outlink")          # an output that is a link into an input
    os.symlink(tmp_path / "rois.json", tmp_path / "roislink.json")
    return tmp_path


REFUSED = {
    "convert": ["convert", "{d}/dcm", "-o", "{d}/dcm/nifti"],
    "convert-link": ["convert", "{d}/dcmlink", "-o", "{d}/dcm/nifti"],
    "adc": ["adc", "{d}/dcm", "-o", "{d}/outlink"],
    "adc-dicom-file": ["adc", "{d}/dcm/IM0001.dcm", "-o", "{d}/dcm"],
    "ivim": ["ivim", "{d}/dcm", "-o", "{d}/dcmlink/ivim"],
    "dti": ["dti", "{d}/dcm", "-o", "{d}/dcm"],
    "analyze": ["analyze", "{d}/dcm", "--rois", "{d}/rois.json", "-o", "{d}/dcm/a"],
    "analyze-bids": ["analyze", "{d}/bids/sub-01/dwi/sub-01_dwi.nii.gz", "--rois", "{d}/rois.json",
                     "-o", "{d}/bids/sub-01/derived"],
    "track": ["track", "{d}/dcm", "--rois", "{d}/rois.json", "-o", "{d}/dcm/t"],
    "check-gradients": ["check-gradients", "{d}/dcm", "-o", "{d}/dcmlink"],
    "longitudinal": ["longitudinal", "{d}/dcm", "{d}/dcm2", "--rois", "{d}/rois.json", "-o", "{d}/dcm2/l"],
    "roi-stats": ["roi", "stats", "{d}/dcm", "--rois", "{d}/rois.json", "-o", "{d}/dcm/t.csv"],
    "roi-convert-same": ["roi", "convert", "{d}/rois.json", "{d}/roislink.json"],
    "roi-mirror-same": ["roi", "mirror", "{d}/dcm", "--rois", "{d}/roislink.json", "-o", "{d}/rois.json"],
    "indication-audit": ["indication", "--audit", "{d}/referrals.csv", "-o", "{d}/referrals.csv"],
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_output_in_an_input_is_refused_before_writing(place, case, capsys):
    before = _tree(place)
    argv = [a.format(d=place) for a in REFUSED[case]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error:" in err and ("inside" in err or "is the input file" in err) and "Traceback" not in err
    assert _tree(place) == before  # inputs byte-identical, nothing new written


def test_rules(place):
    d = place
    nifti = d / "bids" / "sub-01" / "dwi" / "sub-01_dwi.nii.gz"
    assert check_output_target(d / "bids" / "derivatives" / "dwi_toolkit", [nifti]).name == "dwi_toolkit"
    assert check_output_target(d / "elsewhere", [d / "dcmlink", d / "rois.json"]) == (d / "elsewhere").resolve()
    plain = d / "plain"
    plain.mkdir()
    (plain / "dwi.nii.gz").write_bytes(b"x")
    assert check_output_target(plain, [plain / "dwi.nii.gz"]) == plain.resolve()  # beside a plain NIfTI: allowed
    for out in (plain / "dwi.nii.gz", d / "bids" / "sub-01", d / "outlink" / "x"):
        with pytest.raises(InputDataError):
            check_output_target(out, [plain / "dwi.nii.gz", nifti, d / "dcm"])


def test_writing_beside_a_nifti_never_replaces_it(tmp_path, capsys):
    """``adc adc.nii.gz -o .``: allowed folder, but the fit's adc.nii.gz would replace the input."""
    from dwi_toolkit.core.image import DWISeries
    from dwi_toolkit.io.nifti import save_dwi

    bvals = np.array([0.0, 500.0, 1000.0])
    data = np.stack([1000 * np.exp(-b * 1e-3) * np.ones((4, 4, 2)) for b in bvals], axis=-1)
    bvecs = np.array([[0, 0, 0], [1, 0, 0], [1, 0, 0]], float)
    save_dwi(DWISeries(data, np.eye(4), bvals, bvecs), tmp_path / "adc.nii.gz")
    before = _tree(tmp_path)
    assert main(["adc", str(tmp_path / "adc.nii.gz"), "-o", str(tmp_path), "--no-figures", "--mask", "none"]) == 2
    assert "refusing to overwrite the input file" in capsys.readouterr().err
    assert {n for n, _ in _tree(tmp_path)} >= {n for n, _ in before}
    assert [x for x in _tree(tmp_path) if x[0] in dict(before)] == before  # inputs byte-identical
    assert main(["adc", str(tmp_path / "adc.nii.gz"), "-o", str(tmp_path / "fit"), "--no-figures",
                 "--mask", "none"]) == 0
    assert (tmp_path / "fit" / "adc.nii.gz").is_file()


def test_unexpected_exception_is_one_line_exit_3(tmp_path, monkeypatch, capsys):
    from dwi_toolkit.cli.commands import info

    def broken(args):
        raise ZeroDivisionError("division by zero in the analysis")

    monkeypatch.setattr(info, "run", broken)
    (tmp_path / "x.nii.gz").write_bytes(b"x")
    assert main(["info", str(tmp_path / "x.nii.gz")]) == 3
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == ["dwi-toolkit info: internal error: ZeroDivisionError: division by zero in the "
                                "analysis — please report it with --debug output"]
    assert 3 in EXIT_CODES
    with pytest.raises(ZeroDivisionError):
        main(["info", str(tmp_path / "x.nii.gz"), "--debug"])
