"""Identifiers typed into free-text DICOM fields are scrubbed from sidecars, reports and file names."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dwi_toolkit.cli.main import main
from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.io import load_dwi
from dwi_toolkit.io._scrub import MASK, header_identifiers, safe_filename, scrub_meta, scrub_text
from dwi_toolkit.io.dicom_write import write_dicom_series


@pytest.mark.parametrize("text,names,ids,gone", [
    ("DWI SMITH john", ["smith", "john"], [], ["SMITH", "john"]),
    ("DWI 20240301", [], [], ["20240301"]),
    ("dwi 2024-03-01 / 01.03.2024 / 3/31/2024 / 1 Mar 2024 / 01MAR24", [], [], ["2024", "Mar", "MAR"]),
    ("ep2d MRN1234567 and 987654", [], [], ["1234567", "987654"]),
    ("dwi for pat AB123 study", [], ["AB123"], ["AB123"]),
    ("Smithson DWI", ["smith"], [], []),  # whole words only: 'Smithson' is not 'Smith'
])
def test_scrub_text(text, names, ids, gone):
    out = scrub_text(text, names=names, identifiers=ids)
    for g in gone:
        assert g not in out, out
    assert (MASK in out) == bool(gone)


@pytest.mark.parametrize("keep", ["ep2d_diff_b50_800_1400", "DWI 3x3x4mm TE68 b800", "RESOLVE 12 dir", "L4-S1 axial"])
def test_acquisition_terms_are_kept(keep):
    assert scrub_text(keep) == keep


def test_placeholders_are_not_names():
    assert header_identifiers({"PatientName": "Anonymous^Patient", "PatientID": "12"}) == ([], [])
    assert scrub_meta({"ProtocolName": "phantom DWI"}, {"PatientName": "Phantom"}) == {"ProtocolName": "phantom DWI"}


def test_safe_filename_has_no_identifier():
    name = safe_filename("DWI Jane DOE 1980-02-03 ID 55512345", names=["jane", "doe"])
    assert "Jane" not in name and "DOE" not in name and "1980" not in name and "55512345" not in name
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


@pytest.fixture
def typed_series(tmp_path):
    b = np.array([0.0, 800.0])
    s = DWISeries(np.full((4, 3, 2, 2), 100.0) * np.exp(-b * 1e-3), np.diag([2.0, 2.0, 4.0, 1.0]), b,
                  [[0, 0, 0], [0, 0, 1]])
    write_dicom_series(s, tmp_path / "dicom", series_number=5, description="DWI Garcia 2024-03-01 A7654321",
                       patient_name="GARCIA^MARIA", patient_id="A7654321")
    return tmp_path / "dicom"


def test_dicom_meta_and_convert_file_names_are_scrubbed(typed_series, tmp_path, capsys):
    meta = load_dwi(typed_series).meta
    assert meta["SeriesDescription"] == f"DWI {MASK} {MASK} {MASK}"
    assert main(["convert", str(typed_series), "-o", str(tmp_path / "out")]) == 0
    files = [p.name for p in (tmp_path / "out").iterdir()]
    text = " ".join(files) + (tmp_path / "out" / next(f for f in files if f.endswith(".json"))).read_text()
    for ident in ("Garcia", "GARCIA", "MARIA", "2024", "7654321"):
        assert ident not in text and ident not in capsys.readouterr().out


def test_keep_phi_keeps_the_text(typed_series):
    meta = load_dwi(typed_series, keep_phi=True).meta
    assert meta["SeriesDescription"] == "DWI Garcia 2024-03-01 A7654321"


def test_nifti_sidecar_free_text_is_scrubbed(tmp_path):
    b = np.array([0.0, 800.0])
    s = DWISeries(np.full((2, 2, 1, 2), 100.0), np.eye(4), b, [[0, 0, 0], [1, 0, 0]],
                  meta={"SeriesDescription": "DWI 20240301"})
    s.save(tmp_path / "d.nii.gz")
    side = json.loads((tmp_path / "d.json").read_text())
    side["PatientName"] = "Lee^Ann"
    side["ProtocolName"] = "lumbar Lee"
    (tmp_path / "d.json").write_text(json.dumps(side))
    meta = load_dwi(tmp_path / "d.nii.gz").meta
    assert meta["SeriesDescription"] == f"DWI {MASK}" and meta["ProtocolName"] == f"lumbar {MASK}"
    assert "PatientName" not in meta

def test_acquisition_words_in_a_test_name_are_not_masked():
    """A phantom named 'Rorden, C^DTI Test' (the shared Siemens B15 header) keeps 'DTI' in its description."""
    from dwi_toolkit.io._scrub import header_identifiers, scrub_text

    names, ids = header_identifiers({"PatientName": "Rorden, C^DTI Test", "PatientID": "RordenLab"})
    assert "dti" not in names and "rorden" in names
    out = scrub_text("ep2d_DTI_20_dir_AP Rorden", names=names, identifiers=ids)
    assert out == "ep2d_DTI_20_dir_AP [scrubbed]"
