"""RootROI / RoiSet / shapes: validation, name normalisation, immutability."""

from __future__ import annotations

import numpy as np
import pytest

from dwi_toolkit.errors import RoiError
from dwi_toolkit.roi.model import (
    LEVELS, Polygon, RootROI, RoiSet, Sphere, Tube, VoxelMask, normalize_level, normalize_segment,
    normalize_side, parse_roi_name, shape_from_dict,
)


@pytest.mark.parametrize("raw, expected", [("L5", "L5"), ("l5", "L5"), ("L-5", "L5"), (" s1 ", "S1"), ("L 1", "L1")])
def test_level_spellings(raw, expected):
    assert normalize_level(raw) == expected


@pytest.mark.parametrize("raw, expected", [("L", "left"), ("lt", "left"), ("Left", "left"), ("LEFT", "left"),
                                           ("R", "right"), ("rt", "right"), ("Right", "right"), ("dx", "right")])
def test_side_spellings(raw, expected):
    assert normalize_side(raw) == expected


@pytest.mark.parametrize("raw, expected", [(None, "ganglion"), ("DRG", "ganglion"), ("foraminal", "ganglion"),
                                           ("pre-ganglionic", "preganglionic"), ("intraspinal", "preganglionic"),
                                           ("Post", "postganglionic"), ("extraforaminal", "postganglionic")])
def test_segment_spellings(raw, expected):
    assert normalize_segment(raw) == expected


@pytest.mark.parametrize("bad, func, fragment", [("L6", normalize_level, "L1, L2"), ("T12", normalize_level, "S1"),
                                                 ("middle", normalize_side, "left"), ("axon", normalize_segment, "ganglion")])
def test_unknown_names_are_clear_errors(bad, func, fragment):
    with pytest.raises(RoiError, match=fragment):
        func(bad)


def test_parse_names_any_order():
    assert parse_roi_name("L5_left_ganglion") == ("L5", "left", "ganglion")
    assert parse_roi_name("right-L4-preganglionic") == ("L4", "right", "preganglionic")
    assert parse_roi_name("S1 Lt dorsal root ganglion") == ("S1", "left", "ganglion")
    with pytest.raises(RoiError, match="lacks a side"):
        parse_roi_name("L5 ganglion")
    with pytest.raises(RoiError, match="cannot understand"):
        parse_roi_name("L5 left banana")


def test_root_roi_normalises_and_is_frozen():
    roi = RootROI("l4", "Rt", "post", Sphere([1, 2, 3], 2), notes="x", distance_mm=12)
    assert roi.key == ("L4", "right", "postganglionic")
    assert roi.name == "L4_right_postganglionic"
    with pytest.raises(AttributeError):
        roi.level = "L5"  # type: ignore[misc]
    with pytest.raises(ValueError):  # arrays are read-only
        roi.shape.center[0] = 5
    assert RootROI.from_dict(roi.to_dict()) == roi


def test_root_roi_needs_shape():
    with pytest.raises(RoiError, match="needs a shape"):
        RootROI("L5", "left")


@pytest.mark.parametrize("make, fragment", [
    (lambda: Sphere([0, 0, 0], 0), "radius_mm"),
    (lambda: Sphere([0, 0], 1), "shape"),
    (lambda: Tube(np.zeros((0, 3)), 1), "at least 1"),
    (lambda: Polygon([[0, 0, 0], [1, 0, 0], [2, 0, 0]]), "collinear"),
    (lambda: Polygon([[0, 0, 0], [4, 0, 0], [4, 4, 3], [0, 4, 0]]), "one slice plane"),
    (lambda: VoxelMask(np.zeros((2, 2, 2), bool), np.eye(4)), "empty"),
    (lambda: Sphere([np.nan, 0, 0], 1), "NaN"),
])
def test_invalid_shapes(make, fragment):
    with pytest.raises(RoiError, match=fragment):
        make()


def test_shape_dict_round_trip():
    m = np.zeros((4, 4, 3), bool)
    m[1:3, 2, 1] = True
    shapes = [Sphere([1.5, -2, 3], 2.5), Tube([[0, 0, 0], [1, 2, 3], [4, 4, 4]], 1.5),
              Polygon([[0, 0, 1], [3, 0, 1], [3, 3, 1]], 2.0), VoxelMask(m, np.diag([2, 2, 4, 1.0]))]
    for s in shapes:
        assert shape_from_dict(s.to_dict()) == s
    with pytest.raises(RoiError, match="unknown ROI shape type"):
        shape_from_dict({"type": "cube"})
    with pytest.raises(RoiError, match="lacks the field 'radius_mm'"):
        shape_from_dict({"type": "sphere", "center": [0, 0, 0]})


def test_tube_contains_matches_brute_force(rng):
    pts = np.array([[0, 0, 0], [5, 1, 2], [7, 6, 3.0]])
    tube = Tube(pts, 1.2)
    q = rng.uniform(-3, 10, size=(3000, 3))
    # independent truth: dense sampling of the polyline
    dense = np.concatenate([a + np.linspace(0, 1, 400)[:, None] * (b - a) for a, b in zip(pts[:-1], pts[1:])])
    dmin = np.sqrt(((q[:, None] - dense[None]) ** 2).sum(-1)).min(1)
    clear = np.abs(dmin - 1.2) > 0.02
    assert np.array_equal(tube.contains(q)[clear], (dmin <= 1.2)[clear])


def test_transformed_reflection_preserves_shapes():
    refl = np.diag([-1.0, 1, 1, 1])
    s = Sphere([10, 2, 3], 2)
    assert s.transformed(refl) == Sphere([-10, 2, 3], 2)
    t = Tube([[1, 0, 0], [2, 0, 0]], 1).transformed(refl)
    np.testing.assert_array_equal(t.points[:, 0], [-1, -2])


def test_roiset_lookup_add_remove():
    a = RootROI("L5", "left", "ganglion", Sphere([-20, 0, 0], 3))
    b = RootROI("L5", "left", "post", Sphere([-25, 0, 0], 3))
    c = RootROI("S1", "right", shape=Sphere([20, 0, -20], 3))
    s = RoiSet([a, b])
    assert s.get("L5", "lt", "DRG") is a
    assert s.get("S1", "right") is None
    with pytest.raises(RoiError, match="several segments"):
        s.get("L5", "left")
    s2 = s.add(c)
    assert len(s) == 2 and len(s2) == 3  # immutable
    assert s2["S1_right_ganglion"] is c and "S1_right" in s2
    with pytest.raises(RoiError, match="two ROIs for L5_left_ganglion"):
        s2.add(a)
    moved = a.replace(shape=Sphere([-21, 0, 0], 3))
    assert s2.replace(moved).get("L5", "left", "ganglion") == moved
    assert s2.remove("L5", "left").names == ["S1_right_ganglion"]
    with pytest.raises(RoiError, match="no ROI for L3"):
        s2.remove("L3", "left")
    assert [r.level for r in RoiSet([c, a]).sorted()] == ["L5", "S1"]
    html = s2._repr_html_()
    assert "<table" in html and "postganglionic" in html
    assert all(lv in LEVELS for lv in (r.level for r in s2))
