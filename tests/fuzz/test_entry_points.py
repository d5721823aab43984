"""Every command and public loader on damaged inputs: one clear line, exit 2, no traceback
unless ``--debug``; implausible header sizes refused before any allocation."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest

from dwi_toolkit.cli.main import main
from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.errors import ClinicalDataError, DwiToolkitError, InputDataError, PipelineError, RoiError
from dwi_toolkit.io import load_dwi
from dwi_toolkit.io.nifti import save_dwi


@pytest.fixture
def truncated(tmp_path):
    """A .nii.gz cut short (an interrupted copy), with intact .bval/.bvec, ROIs and clinical.json."""
    b = np.array([0.0, 800.0, 800.0, 800.0])
    s = DWISeries(np.full((8, 8, 3, 4), 500.0, np.float32) * np.exp(-b * 1e-3).astype(np.float32),
                  np.diag([2.0, 2.0, 4.0, 1.0]), b, [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    save_dwi(s, tmp_path / "dwi.nii.gz")
    raw = (tmp_path / "dwi.nii.gz").read_bytes()
    (tmp_path / "dwi.nii.gz").write_bytes(raw[: len(raw) * 2 // 3])
    (tmp_path / "rois.json").write_text(json.dumps({"schema": "dwi_toolkit.rois/1", "rois": []}))
    return tmp_path / "dwi.nii.gz"


COMMANDS = [
    ["info"], ["adc"], ["ivim"], ["dti"], ["analyze", "--rois", "{d}/rois.json"],
    ["track", "--rois", "{d}/rois.json"], ["roi", "stats", "--rois", "{d}/rois.json"],
    ["roi", "show", "--rois", "{d}/rois.json"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c[:2]))
def test_truncated_nifti_one_line_exit_2(cmd, truncated, tmp_path, capsys):
    args = [a.format(d=tmp_path) for a in cmd]
    pos = 2 if args[0] == "roi" else 1
    argv = args[:pos] + [str(truncated)] + args[pos:]
    if args[0] != "info":
        argv += ["-o", str(tmp_path / "out")]
    before = truncated.read_bytes()
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "truncated" in err[0] and "dwi.nii.gz" in err[0], err
    assert "Traceback" not in "\n".join(err)
    assert truncated.read_bytes() == before
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.nii*"))


def test_debug_shows_the_original_exception(truncated):
    with pytest.raises(InputDataError) as info:
        main(["info", str(truncated), "--debug"])
    assert isinstance(info.value.__cause__, (EOFError, OSError)) or info.value.__cause__ is not None


def _nifti_header_with_dims(path, dims):
    import nibabel as nib

    img = nib.Nifti1Image(np.zeros((2, 2, 2, 2), np.float32), np.eye(4))
    nib.save(img, str(path))
    raw = bytearray(path.read_bytes())
    struct.pack_into("<8h", raw, 40, len(dims), *dims, *([1] * (7 - len(dims))))
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("gz", [False, True])
def test_huge_dimensions_refused_before_allocating(tmp_path, gz):
    p = tmp_path / "huge.nii"
    _nifti_header_with_dims(p, [32767, 32767, 32767, 100])
    (tmp_path / "huge.bval").write_text("0\n")
    (tmp_path / "huge.bvec").write_text("0\n0\n0\n")
    if gz:
        p.with_suffix(".nii.gz").write_bytes(gzip.compress(p.read_bytes()))
        p.unlink()
        p = p.with_suffix(".nii.gz")
    with pytest.raises(InputDataError, match="declares an image of shape"):
        load_dwi(p)


def test_nan_inf_voxels_load_and_are_reported(tmp_path, caplog):
    b = np.array([0.0, 800.0])
    data = np.full((3, 3, 2, 2), 100.0, np.float32)
    data[0, 0, 0, 1], data[1, 1, 1, 0] = np.nan, np.inf
    save_dwi(DWISeries(data, np.eye(4), b, [[0, 0, 0], [1, 0, 0]]), tmp_path / "d.nii.gz")
    s = load_dwi(tmp_path / "d.nii.gz")
    assert s.shape == (3, 3, 2, 2) and "NaN/inf" in caplog.text


@pytest.mark.parametrize("text,err", [
    (b"\xff\xfe\x00garbage", ClinicalDataError), (b"[" * 100000, ClinicalDataError),
    (b'{"radicular_side": ["left", {"x": 1e999}]}', ClinicalDataError), (b"", ClinicalDataError),
])
def test_clinical_garbage(tmp_path, text, err):
    from dwi_toolkit.io.clinical import load_clinical

    (tmp_path / "clinical.json").write_bytes(text)
    with pytest.raises(err):
        load_clinical(tmp_path / "clinical.json")


@pytest.mark.parametrize("text", [b"\x00\x01", b"[" * 100000, b'{"schema": "dwi_toolkit.rois/1", "rois": [{"level": []}]}',
                                  b'{"markups": [{"type": "Fiducial", "controlPoints": [{"position": "x"}]}]}'])
def test_roi_garbage(tmp_path, text):
    from dwi_toolkit.io.rois import load_rois

    (tmp_path / "rois.json").write_bytes(text)
    with pytest.raises((RoiError, InputDataError)):
        load_rois(tmp_path / "rois.json")


@pytest.mark.parametrize("text", [b"schema = \x00", b"[[steps]]\nstep = 1e999", b"schema = 'x'\n" * 3, b"\xff"])
def test_pipeline_toml_garbage(tmp_path, text):
    from dwi_toolkit.pipeline.spec import load_pipeline

    (tmp_path / "p.toml").write_bytes(text)
    with pytest.raises(PipelineError):
        load_pipeline(tmp_path / "p.toml")


@pytest.mark.parametrize("bval", [b"0 nan", b"0 800\n0", b"\xff\xfe", b"0 1e999", b""])
def test_bval_garbage(tmp_path, bval):
    b = np.array([0.0, 800.0])
    save_dwi(DWISeries(np.full((2, 2, 1, 2), 100.0), np.eye(4), b, [[0, 0, 0], [1, 0, 0]]), tmp_path / "d.nii")
    (tmp_path / "d.bval").write_bytes(bval)
    with pytest.raises(DwiToolkitError):
        load_dwi(tmp_path / "d.nii")
