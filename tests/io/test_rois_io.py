"""ROI files: dwi_toolkit JSON, 3D Slicer markups, label maps (+ TSV / ITK-SNAP)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from dwi_toolkit.errors import InputDataError, RoiError
from dwi_toolkit.io.rois import (
    SCHEMA, format_itksnap_labels, load_rois, read_itksnap_labels, rois_to_slicer, save_rois,
)
from dwi_toolkit.roi.masks import rasterize
from dwi_toolkit.roi.model import Polygon, RootROI, RoiSet, Sphere, Tube, VoxelMask

AFFINE = np.array([[1.5, 0, 0, -36.0], [0, 1.5, 0, -30.0], [0, 0, 4.0, -20.0], [0, 0, 0, 1]])
SHAPE = (48, 40, 12)


@pytest.fixture
def rois():
    return RoiSet([
        RootROI("L4", "left", "ganglion", Sphere([-20.2, 1.1, 0.3], 3.0), notes="first", distance_mm=9.5),
        RootROI("L4", "right", "postganglionic", Tube([[18.0, 0, -4], [23, 3, 4], [26, 6, 12]], 2.0)),
        RootROI("L5", "left", "preganglionic", Polygon([[-10, -5, 8.0], [-4, -5, 8.0], [-5, 2, 8.0], [-11, 1, 8.0]])),
    ])


def _masks(rs):
    return {r.name: rasterize(r, SHAPE, AFFINE) for r in rs}


def test_json_round_trip_exact(tmp_path, rois):
    p = save_rois(rois, tmp_path / "rois.json", reference=(SHAPE, AFFINE))
    doc = json.loads(p.read_text())
    assert doc["schema"] == SCHEMA and doc["coordinate_system"] == "RAS+"
    assert doc["units"]["coordinates"] == "mm" and doc["reference"]["shape"] == list(SHAPE)
    back = load_rois(p)
    assert back == rois
    assert back.get("L4", "left").notes == "first" and back.get("L4", "left").distance_mm == 9.5


def test_json_lps_frame_is_converted(tmp_path):
    doc = {"schema": SCHEMA, "coordinate_system": "LPS", "rois": [
        {"level": "L5", "side": "right", "shape": {"type": "sphere", "center": [-20, 4, 7], "radius_mm": 2}}]}
    (tmp_path / "lps.json").write_text(json.dumps(doc))
    roi = load_rois(tmp_path / "lps.json")[0]
    np.testing.assert_array_equal(roi.shape.center, [20, -4, 7])


@pytest.mark.parametrize("frame", ["LPS", "RAS"])
def test_slicer_round_trip_same_voxels(tmp_path, rois, frame):
    p = save_rois(rois, tmp_path / "rois.mrk.json", coordinate_system=frame)
    doc = json.loads(p.read_text())
    assert {m["type"] for m in doc["markups"]} == {"Fiducial", "Curve", "ClosedCurve"}
    assert all(m["coordinateSystem"] == frame for m in doc["markups"])
    fid = next(m for m in doc["markups"] if m["type"] == "Fiducial")
    pos = fid["controlPoints"][0]["position"]
    expected = [20.2, -1.1, 0.3] if frame == "LPS" else [-20.2, 1.1, 0.3]
    np.testing.assert_allclose(pos, expected)
    back = load_rois(p)
    assert back.names == rois.names
    for name, m in _masks(rois).items():
        assert np.array_equal(_masks(back)[name], m)
    assert back.get("L4", "left").shape.radius_mm == 3.0 and back.get("L4", "left").notes == "first"
    # and back to our JSON: still the same voxels
    q = save_rois(back, tmp_path / "again.json")
    for name, m in _masks(rois).items():
        assert np.array_equal(_masks(load_rois(q))[name], m)


def test_slicer_hand_written_file(tmp_path):
    """A point list as Slicer writes it by hand: LPS, labels in free form, no radius."""
    doc = {"@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
                      "Resources/Schema/markups-schema-v1.0.0.json#",
           "markups": [{"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": [
               {"label": "L5 lt DRG", "position": [22.0, -3.0, 10.0]},
               {"label": "L5 rt DRG", "position": [-22.0, -3.0, 10.0], "positionStatus": "defined"},
               {"label": "S1 left", "position": [0, 0, 0], "positionStatus": "undefined"}]},
               {"type": "Angle", "coordinateSystem": "LPS", "controlPoints": [{"label": "A", "position": [0, 0, 0]}]}]}
    (tmp_path / "h.mrk.json").write_text(json.dumps(doc))
    rs = load_rois(tmp_path / "h.mrk.json", default_radius_mm=2.5)
    assert rs.names == ["L5_left_ganglion", "L5_right_ganglion"]
    np.testing.assert_array_equal(rs[0].shape.center, [-22, 3, 10])  # left = negative x in RAS
    assert rs[0].shape.radius_mm == 2.5
    doc["markups"][0]["controlPoints"][0]["label"] = "F-1"
    (tmp_path / "bad.mrk.json").write_text(json.dumps(doc))
    with pytest.raises(RoiError, match="does not name a nerve root"):
        load_rois(tmp_path / "bad.mrk.json")


def test_voxel_mask_cannot_go_to_slicer():
    m = np.zeros(SHAPE, bool)
    m[3, 3, 3] = True
    with pytest.raises(RoiError, match="label map"):
        rois_to_slicer(RoiSet([RootROI("L5", "left", shape=VoxelMask(m, AFFINE))]))


def test_label_map_round_trip_same_voxels(tmp_path, rois):
    p = save_rois(rois, tmp_path / "sub-01_desc-roots_dseg.nii.gz", reference=(SHAPE, AFFINE), itksnap=True)
    tsv = (tmp_path / "sub-01_desc-roots_dseg.tsv").read_text().splitlines()
    assert tsv[0].split("\t")[:2] == ["index", "name"] and tsv[1].split("\t")[:2] == ["1", "L4_left_ganglion"]
    img = nib.load(str(p))
    np.testing.assert_allclose(img.affine, AFFINE)
    back = load_rois(p)
    assert back.names == rois.names and all(isinstance(r.shape, VoxelMask) for r in back)
    for name, m in _masks(rois).items():
        assert np.array_equal(_masks(back)[name], m)
    # label map -> JSON -> same voxels again
    q = save_rois(back, tmp_path / "from_labels.json")
    again = load_rois(q)
    for name, m in _masks(rois).items():
        assert np.array_equal(_masks(again)[name], m)
    # and the voxel-mask set can be written as a label map without a reference
    p2 = save_rois(again, tmp_path / "again_dseg.nii.gz")
    assert np.array_equal(np.asanyarray(nib.load(str(p2)).dataobj), np.asanyarray(img.dataobj))


def test_itksnap_label_description_import(tmp_path, rois):
    p = save_rois(rois, tmp_path / "seg.nii.gz", reference=(SHAPE, AFFINE))
    (tmp_path / "seg.tsv").unlink()
    names = {1: "L4 lt ganglion", 2: "L4 Right post", 3: "L5-L-pre"}
    (tmp_path / "snap_labels.txt").write_text(format_itksnap_labels(names))
    assert read_itksnap_labels((tmp_path / "snap_labels.txt").read_text()) == names
    back = load_rois(p, labels=tmp_path / "snap_labels.txt")
    assert back.names == rois.names
    with pytest.raises(RoiError, match="no label table"):
        load_rois(p)


def test_errors(tmp_path, rois):
    with pytest.raises(InputDataError, match="not found"):
        load_rois(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(RoiError, match="unknown ROI format"):
        load_rois(tmp_path / "x.json")
    (tmp_path / "v2.json").write_text(json.dumps({"schema": "dwi_toolkit.rois/2", "rois": []}))
    with pytest.raises(RoiError, match="not supported"):
        load_rois(tmp_path / "v2.json")
    bad = {"schema": SCHEMA, "rois": [{"level": "L7", "side": "left", "shape": {"type": "sphere", "center": [0, 0, 0], "radius_mm": 1}}]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(RoiError, match="ROI #1: unknown nerve-root level 'L7'"):
        load_rois(tmp_path / "bad.json")
    with pytest.raises(RoiError, match="reference="):
        save_rois(rois, tmp_path / "x_dseg.nii.gz")
    with pytest.raises(RoiError, match="outside the image"):
        save_rois(RoiSet([RootROI("L5", "left", shape=Sphere([900, 0, 0], 2))]), tmp_path / "o.nii.gz",
                  reference=(SHAPE, AFFINE))
    with pytest.raises(RoiError, match="cannot tell the ROI format"):
        save_rois(rois, tmp_path / "rois.xml")
    empty = nib.Nifti1Image(np.zeros(SHAPE, np.int16), AFFINE)
    nib.save(empty, str(tmp_path / "empty.nii.gz"))
    (tmp_path / "empty.tsv").write_text("index\tname\n1\tL5_left_ganglion\n")
    with pytest.raises(RoiError, match="empty"):
        load_rois(tmp_path / "empty.nii.gz")


def test_roiset_save_method_dispatches(tmp_path, rois):
    rois.save(tmp_path / "a.json")
    rois.save(tmp_path / "a.mrk.json")
    assert load_rois(tmp_path / "a.json") == rois
    assert load_rois(tmp_path / "a.mrk.json").names == rois.names
