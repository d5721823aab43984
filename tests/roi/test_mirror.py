"""Mid-sagittal plane estimation and mirroring on a synthetic volume with a known plane."""

from __future__ import annotations

import numpy as np
import pytest

from dwi_toolkit.errors import RoiError
from dwi_toolkit.roi.mirror import (
    Plane, estimate_midsagittal_plane, level_ranges_from_rois, mirror_roi, mirror_rois,
    plane_from_points, snap_to_bright,
)
from dwi_toolkit.roi.model import Polygon, RootROI, RoiSet, Sphere, Tube

from tests.roi.synthetic import make_volume


def test_plane_reflection_matrix_matches_reflect(rng):
    pl = Plane(rng.normal(size=3), rng.normal(size=3))
    pts = rng.normal(size=(20, 3)) * 10
    m = pl.reflection_matrix()
    np.testing.assert_allclose(pts @ m[:3, :3].T + m[:3, 3], pl.reflect(pts), atol=1e-12)
    np.testing.assert_allclose(pl.reflect(pl.reflect(pts)), pts, atol=1e-12)  # involution
    np.testing.assert_allclose(pl.signed_distance(pl.reflect(pts)), -pl.signed_distance(pts), atol=1e-12)
    np.testing.assert_allclose(Plane.from_dict(pl.to_dict()).normal, pl.normal, rtol=1e-14)


def test_plane_from_points():
    pl = plane_from_points([[2.0, -20, 5], [2.0 + np.tan(np.radians(10)) * 40, 20, 5]])
    np.testing.assert_allclose(abs(pl.normal @ [np.cos(np.radians(10)), -np.sin(np.radians(10)), 0]), 1, atol=1e-9)
    three = plane_from_points([[0, 0, 0], [0, 10, 0], [0, 0, 10], [0, 10, 10]])
    np.testing.assert_allclose(three.normal, [1, 0, 0], atol=1e-12)
    with pytest.raises(RoiError):
        plane_from_points([[0, 0, 0]])
    with pytest.raises(RoiError, match="S-I axis"):
        plane_from_points([[0, 0, 0], [0, 0, 10]])


@pytest.mark.parametrize("yaw, shift", [(0.0, 0.0), (9.0, 3.7), (-6.0, -2.2)])
def test_estimated_plane_recovers_truth(yaw, shift):
    vol, aff, p_true, n_true, _ = make_volume(yaw_deg=yaw, shift_x=shift, noise=0.03, seed=1)
    pl = estimate_midsagittal_plane(vol, aff)
    angle = np.degrees(np.arccos(min(1.0, abs(pl.normal @ n_true))))
    assert angle < 1.0
    assert abs(pl.signed_distance(p_true)[0]) < 0.5  # mm
    assert pl.score > 0.8 and pl.method == "mirror similarity"


def test_mirror_lands_on_contralateral_root_and_snaps():
    vol, aff, p_true, n_true, roots = make_volume(yaw_deg=7.0, shift_x=2.5, noise=0.03, seed=2)
    a, b = roots["left"]
    roi = RootROI("L5", "left", "ganglion", Sphere(a + 0.5 * (b - a), 2.0))
    truth_right = roots["right"][0] + 0.5 * (roots["right"][1] - roots["right"][0])
    pl = estimate_midsagittal_plane(vol, aff)
    twin = mirror_roi(roi, pl)
    assert twin.key == ("L5", "right", "ganglion") and "mirrored from L5_left_ganglion" in twin.notes
    assert np.linalg.norm(twin.shape.center - truth_right) < 1.5  # within one voxel (1.5 mm)
    # a deliberately poor plane (3 mm off) is rescued by snapping to the bright root
    bad = Plane(pl.point + 1.5 * pl.normal, pl.normal)
    off = mirror_roi(roi, bad)
    snapped = mirror_roi(roi, bad, snap_to=(vol, aff), search_radius_mm=4.0)
    ra, rb = roots["right"]
    def dist_to_root(c):
        t = np.clip((c - ra) @ (rb - ra) / ((rb - ra) @ (rb - ra)), 0, 1)
        return np.linalg.norm(c - (ra + t * (rb - ra)))
    assert dist_to_root(off.shape.center) > 2.0
    assert dist_to_root(snapped.shape.center) < 0.75
    assert "snapped" in snapped.notes


def test_mirror_other_shapes_and_sets():
    pl = Plane([0, 0, 0], [1, 0, 0])
    rois = RoiSet([
        RootROI("L4", "left", shape=Tube([[-5, 0, 0], [-20, 5, -10]], 2)),
        RootROI("L4", "right", "post", Polygon([[5, 0, 0], [9, 0, 0], [9, 4, 0]])),
        RootROI("L5", "right", shape=Sphere([20, 0, -20], 2)),
        RootROI("L5", "left", shape=Sphere([-21, 0, -20], 2)),
    ])
    out = mirror_rois(rois, pl)
    assert out.names == rois.names + ["L4_right_ganglion", "L4_left_postganglionic"]
    np.testing.assert_array_equal(out.get("L4", "right", "ganglion").shape.points[:, 0], [5, 20])
    assert out.get("L5", "left") == rois.get("L5", "left")  # existing twins untouched
    assert out.meta["midsagittal_plane"]["normal"] == [1.0, 0.0, 0.0]
    # per-level planes and overwrite
    planes = {"L5": Plane([1, 0, 0], [1, 0, 0]), "L4": pl}
    ow = mirror_rois(rois, planes, overwrite=True)
    assert ow.get("L5", "left").shape.center[0] == -18.0  # mirrored from the right (first in order)
    assert level_ranges_from_rois(rois, margin_mm=5)["L5"] == (-25.0, -15.0)


def test_per_level_planes():
    vol, aff, p_true, n_true, _ = make_volume(yaw_deg=5.0, noise=0.02, seed=3)
    planes = estimate_midsagittal_plane(vol, aff, per_level={"L4": (0, 40), "L5": (-40, 0)})
    assert set(planes) == {"L4", "L5"}
    for lv, pl in planes.items():
        assert pl.level == lv
        assert np.degrees(np.arccos(min(1, abs(pl.normal @ n_true)))) < 1.5
        assert abs(pl.signed_distance(p_true)[0]) < 0.75


def test_snap_returns_offset_within_radius():
    vol, aff, _, _, roots = make_volume(noise=0.0)
    a, b = roots["right"]
    c = a + 0.5 * (b - a)
    roi = RootROI("L5", "right", shape=Sphere(c + [2.0, 0, 0], 2.0))
    moved, off = snap_to_bright(roi, (vol, aff), search_radius_mm=3.0)
    assert np.linalg.norm(off) <= 3.0 + 1e-9
    assert np.linalg.norm(moved.shape.center - c) < np.linalg.norm(roi.shape.center - c)
