"""Files written by 3D Slicer 5.x and ITK-SNAP themselves load as nerve-root ROIs, and
``dwi-toolkit roi convert`` writes every format it reads (issue 17).

Fixtures in ``data/interop/`` reproduce what the programs write (Slicer's
``vtkMRMLMarkupsJsonStorageNode``: markups schema 1.0.3, default node names ``OC``/``F``/``CC``
with control points ``OC-1`` …, no markup name, measurements and display properties, LPS or
RAS, an unplaced point; ITK-SNAP's label description writer: its header, right-aligned columns,
quoted labels with spaces, its default ``Label 4``–``Label 6`` entries).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dwi_toolkit.cli.main import main
from dwi_toolkit.errors import RoiError
from dwi_toolkit.io.rois import load_rois, read_itksnap_labels, save_rois

DATA = Path(__file__).parent / "data" / "interop"


def _slicer_points_ras(name: str) -> np.ndarray:
    """Control points of the first markup in RAS+ mm, converted independently of dwi_toolkit."""
    mk = json.loads((DATA / name).read_text())["markups"][0]
    pts = np.array([cp["position"] for cp in mk["controlPoints"] if cp["positionStatus"] == "defined"], float)
    return pts * ([-1, -1, 1] if mk["coordinateSystem"] == "LPS" else [1, 1, 1])


def test_slicer_curve_with_default_name_is_rejected_with_a_way_out():
    with pytest.raises(RoiError) as err:
        load_rois(DATA / "OC.mrk.json")
    msg = str(err.value)
    assert "'OC-1'" in msg and "labels={'OC': 'L5_left_ganglion'}" in msg and "--name OC=" in msg
    assert "L5_left_ganglion.mrk.json" in msg


@pytest.mark.parametrize("key", ["OC-1", "OC"])
def test_slicer_curve_named_by_user_mapping(key):
    rois = load_rois(DATA / "OC.mrk.json", labels={key: "L5 left ganglion"})
    (roi,) = list(rois)
    assert roi.name == "L5_left_ganglion" and roi.shape.kind == "tube"
    np.testing.assert_allclose(roi.shape.points, _slicer_points_ras("OC.mrk.json"))  # LPS -> RAS+


@pytest.mark.parametrize("file_name, expected", [("L5_left.mrk.json", "L5_left_ganglion"),
                                                 ("sub-01_S1_right_postganglionic.mrk.json",
                                                  "S1_right_postganglionic")])
def test_slicer_curve_named_by_its_file(tmp_path, file_name, expected):
    path = shutil.copy(DATA / "OC.mrk.json", tmp_path / file_name)
    (roi,) = list(load_rois(path))
    assert roi.name == expected
    np.testing.assert_allclose(roi.shape.points, _slicer_points_ras("OC.mrk.json"))


def test_slicer_point_list_in_ras_with_an_unplaced_point():
    rois = load_rois(DATA / "F.mrk.json", labels={"F-1": "L5_left", "F-2": "L5_right"}, default_radius_mm=2.5)
    assert rois.names == ["L5_left_ganglion", "L5_right_ganglion"]
    centres = np.array([r.shape.center for r in rois])
    np.testing.assert_allclose(centres, _slicer_points_ras("F.mrk.json"))  # RAS file: unchanged
    assert {r.shape.radius_mm for r in rois} == {2.5}
    # two points: the file name cannot name both
    with pytest.raises(RoiError, match="does not name a nerve root"):
        load_rois(DATA / "F.mrk.json", labels={"F-1": "L5_left"})


def test_slicer_closed_curve_and_cli_round_trip(tmp_path, capsys):
    out = tmp_path / "s1.json"
    assert main(["roi", "convert", str(DATA / "CC.mrk.json"), str(out), "--name", "CC=S1 right"]) == 0
    (roi,) = list(load_rois(out))
    assert roi.name == "S1_right_ganglion" and roi.shape.kind == "polygon"
    np.testing.assert_allclose(roi.shape.points, _slicer_points_ras("CC.mrk.json"))
    # and back to Slicer: a file Slicer reads, which we read back identically (named points now)
    back = tmp_path / "s1.mrk.json"
    assert main(["roi", "convert", str(out), str(back)]) == 0
    assert load_rois(back) == load_rois(out)


def _label_image(tmp_path: Path) -> tuple[Path, np.ndarray]:
    import nibabel as nib

    data = np.zeros((12, 10, 8), np.int16)
    data[2:4, 3:5, 2:4] = 1   # L5 left ganglion
    data[8:10, 3:5, 2:4] = 2  # L5 right ganglion
    data[2:4, 6:8, 5:7] = 3   # S1 left DRG
    affine = np.array([[-2.0, 0, 0, 11], [0, 2, 0, -9], [0, 0, 4, -14], [0, 0, 0, 1]])
    path = tmp_path / "seg.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path, data


def test_itksnap_label_description_as_itksnap_writes_it(tmp_path):
    table = read_itksnap_labels((DATA / "roots.label").read_text())
    assert table == {1: "L5 left ganglion", 2: "L5 right ganglion", 3: "S1 left DRG", 4: "Label 4",
                     5: "Label 5", 6: "Label 6"}
    image, data = _label_image(tmp_path)
    shutil.copy(DATA / "roots.label", tmp_path / "seg.label")
    for path in (image, tmp_path / "seg.label"):  # the image finds its table, the table its image
        rois = load_rois(path)
        assert rois.names == ["L5_left_ganglion", "L5_right_ganglion", "S1_left_ganglion"]
        np.testing.assert_array_equal(rois.get("S1", "left").shape.mask, data == 3)


@pytest.mark.parametrize("suffix", [".label", ".txt"])
def test_roi_convert_writes_itksnap(tmp_path, suffix):
    image, data = _label_image(tmp_path)
    shutil.copy(DATA / "roots.label", tmp_path / "seg.label")
    out = tmp_path / f"converted{suffix}"
    assert main(["roi", "convert", str(image), str(out)]) == 0
    text = out.read_text()
    assert text.startswith("################################################\n# ITK-SnAP Label Description File")
    assert read_itksnap_labels(text) == {1: "L5_left_ganglion", 2: "L5_right_ganglion", 3: "S1_left_ganglion"}
    assert (tmp_path / "converted.nii.gz").is_file()
    back = load_rois(out)
    for name in ("L5_left", "L5_right", "S1_left"):
        lev, side = name.split("_")
        np.testing.assert_array_equal(back.get(lev, side).shape.mask,
                                      load_rois(image).get(lev, side).shape.mask)


def test_save_rois_writes_every_format_load_rois_reads(tmp_path):
    image, _ = _label_image(tmp_path)
    shutil.copy(DATA / "roots.label", tmp_path / "seg.label")
    rois = load_rois(image)
    for name in ("a.json", "b.nii.gz", "c.label", "d.txt"):
        p = save_rois(rois, tmp_path / name)
        back = load_rois(p)
        assert back.names == rois.names, name
