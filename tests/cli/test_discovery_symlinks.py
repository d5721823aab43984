"""`run` follows symlinked subject, dwi/ and DICOM folders, and stops at symlink loops (issue #17)."""

from __future__ import annotations

import logging
import os
import shutil

import pytest

from dwi_toolkit.cli.main import main
from dwi_toolkit.pipeline.layout import discover, input_checksums

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


@pytest.fixture(scope="module")
def linked_cohort(tmp_path_factory):
    """sub-01: NIfTI whose dwi/ is a symlink; sub-02: DICOM whose dicom/ is a symlink; sub-03: a
    symlinked subject folder. The real folders live in a storage folder outside the cohort."""
    from dwi_toolkit.sample_data import COHORT, generate_cohort

    tmp = tmp_path_factory.mktemp("linked")
    store = tmp / "store"
    generate_cohort(store, subjects={"sub-01": COHORT["sub-01"], "sub-02": COHORT["sub-02"],
                                     "sub-03": COHORT["sub-03"]}, shape=(20, 16, 10))
    root = tmp / "cohort"
    root.mkdir()
    for name, inner in (("sub-01", "dwi"), ("sub-02", "dicom")):
        (root / name).mkdir()
        for item in (store / name).iterdir():
            if item.name == inner:
                os.symlink(item, root / name / inner, target_is_directory=True)  # linked data folder
            else:
                shutil.copy2(item, root / name / item.name)
    os.symlink(store / "sub-03", root / "sub-03", target_is_directory=True)  # linked subject folder
    return root


def test_symlinked_dwi_and_dicom_folders_are_found(linked_cohort):
    subjects = {s.key: s for s in discover(linked_cohort).subjects}
    assert sorted(subjects) == ["sub-01", "sub-02", "sub-03"]
    assert all(s.problem is None for s in subjects.values()), subjects
    assert subjects["sub-01"].kind == "nifti" and subjects["sub-01"].dwi.name == "sub-01_dwi.nii.gz"
    assert subjects["sub-01"].bvals is not None
    assert subjects["sub-02"].kind == "dicom" and subjects["sub-02"].dwi == linked_cohort / "sub-02" / "dicom"
    sums = input_checksums(subjects["sub-02"])  # the DICOM files behind the link are hashed
    assert sums["dwi"]["n_files"] == len(list((linked_cohort / "sub-02" / "dicom").iterdir())) > 0


def test_symlink_loop_is_detected(linked_cohort, tmp_path, caplog):
    root = tmp_path / "loop"
    shutil.copytree(linked_cohort / "sub-01", root / "sub-01", symlinks=True)
    os.symlink(root / "sub-01", root / "sub-01" / "dwi_loop", target_is_directory=True)  # sub-01/dwi_loop -> sub-01
    with caplog.at_level(logging.WARNING, logger="dwi_toolkit.pipeline.layout"):
        (s,) = discover(root).subjects
    assert s.problem is None and s.dwi.name == "sub-01_dwi.nii.gz"
    assert "dwi_loop" not in str(s.dwi)
    assert any("symlink loop" in r.getMessage() and "dwi_loop" in r.getMessage() for r in caplog.records)


def test_run_dry_run_plans_every_linked_subject(linked_cohort, tmp_path, capsys):
    assert main(["run", str(linked_cohort), "-o", str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 to run" in out and "will fail" not in out and "no DWI found" not in out
    assert "dicom/ (DICOM)" in out
