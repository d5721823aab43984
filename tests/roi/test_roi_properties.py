"""Property tests: file round-trips are exact and reflections are involutions, for any shape."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dwi_toolkit.io.rois import rois_from_json, rois_from_slicer, rois_to_json, rois_to_slicer
from dwi_toolkit.roi.mirror import Plane
from dwi_toolkit.roi.model import LEVELS, SEGMENTS, SIDES, RootROI, RoiSet, Sphere, Tube

coord = st.floats(-150, 150, allow_nan=False, allow_infinity=False)
point = st.tuples(coord, coord, coord)
radius = st.floats(0.1, 20, allow_nan=False)


@st.composite
def roi_sets(draw):
    keys = draw(st.lists(st.tuples(st.sampled_from(LEVELS), st.sampled_from(SIDES), st.sampled_from(SEGMENTS)),
                         min_size=1, max_size=6, unique=True))
    rois = []
    for level, side, seg in keys:
        if draw(st.booleans()):
            shape = Sphere(draw(point), draw(radius))
        else:
            shape = Tube(draw(st.lists(point, min_size=1, max_size=5)), draw(radius))
        rois.append(RootROI(level, side, seg, shape, notes=draw(st.text(max_size=20))))
    return RoiSet(rois)


@settings(max_examples=40, deadline=None)
@given(roi_sets())
def test_json_and_slicer_round_trips_are_exact(rois):
    assert rois_from_json(rois_to_json(rois)) == rois
    for frame in ("LPS", "RAS"):
        back = rois_from_slicer(rois_to_slicer(rois, coordinate_system=frame))
        assert sorted(back.names) == sorted(rois.names)
        for r in rois:
            b = back[r.name]
            assert b.shape == r.shape and b.notes == r.notes


@settings(max_examples=40, deadline=None)
@given(point, point.filter(lambda p: np.linalg.norm(p) > 1e-3), roi_sets())
def test_reflection_is_an_involution(p, n, rois):
    m = Plane(p, n).reflection_matrix()
    for r in rois:
        twice = r.shape.transformed(m).transformed(m)
        a = twice.center if isinstance(twice, Sphere) else twice.points
        b = r.shape.center if isinstance(r.shape, Sphere) else r.shape.points
        np.testing.assert_allclose(a, b, atol=1e-9 * (1 + np.abs(b).max()) + 1e-9)
