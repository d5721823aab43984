"""Rasterisation against brute-force truth computed on every voxel centre of the grid."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from dwi_toolkit.errors import RoiError
from dwi_toolkit.roi.masks import grid_of, label_map, rasterize, roi_mask, sample_points
from dwi_toolkit.roi.model import Polygon, RootROI, RoiSet, Sphere, Tube, VoxelMask


def _oblique_affine():
    th = np.radians(17.0)
    rot = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rot @ np.diag([1.5, 1.5, 4.0])
    a[:3, 3] = [-30.0, -25.0, -40.0]
    return a


def _world_centres(shape, affine):
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


@pytest.mark.parametrize("affine", [np.diag([1.5, 1.5, 4.0, 1.0]), _oblique_affine()])
def test_sphere_and_tube_equal_brute_force(affine):
    shape = (40, 40, 20)
    xyz = _world_centres(shape, affine).reshape(shape + (3,))
    c = xyz[20, 18, 10] + [0.3, -0.2, 0.7]
    sphere = Sphere(c, 3.3)
    truth = np.linalg.norm(xyz - c, axis=-1) <= 3.3
    assert np.array_equal(rasterize(sphere, shape, affine), truth)
    a, b = xyz[10, 10, 4], xyz[25, 22, 14]
    tube = Tube([a, b], 2.1)
    # distance to the segment by projection (independent of the implementation's chunking)
    ab = b - a
    t = np.clip(((xyz - a) @ ab) / (ab @ ab), 0, 1)
    truth = np.linalg.norm(xyz - (a + t[..., None] * ab), axis=-1) <= 2.1
    assert np.array_equal(rasterize(tube, shape, affine), truth)


def test_partial_volume_sums_to_volume():
    affine = np.diag([1.5, 1.5, 4.0, 1.0])
    f = rasterize(Sphere([30.1, 29.7, 40.3], 5.0), (40, 40, 20), affine, partial_volume=True, supersample=6)
    assert f.dtype == np.float32 and f.min() >= 0 and f.max() <= 1
    vol = f.sum() * 1.5 * 1.5 * 4.0
    np.testing.assert_allclose(vol, 4 / 3 * np.pi * 5.0**3, rtol=0.03)
    # fully interior voxels are 1, exterior 0
    assert f[20, 20, 10] == 1.0 and f[0, 0, 0] == 0.0


def test_polygon_axial_matches_path_on_its_slice():
    affine = np.diag([1.5, 1.5, 4.0, 1.0])
    z = 4.0 * 7  # slice 7
    verts = np.array([[6.1, 6.2], [30.3, 9.1], [25.2, 33.3], [9.1, 28.2], [15.2, 18.1]])
    poly = Polygon(np.column_stack([verts, np.full(5, z)]))
    m = rasterize(poly, (30, 30, 12), affine)
    assert m[..., :7].sum() == 0 and m[..., 8:].sum() == 0  # one slice only
    ii, jj = np.meshgrid(np.arange(30) * 1.5, np.arange(30) * 1.5, indexing="ij")
    truth = MplPath(verts).contains_points(np.column_stack([ii.ravel(), jj.ravel()])).reshape(30, 30)
    assert np.array_equal(m[..., 7], truth)
    # polygon thickness spans several slices when given explicitly
    thick = Polygon(poly.points, thickness_mm=12.0)
    assert set(np.unique(np.nonzero(rasterize(thick, (30, 30, 12), affine))[2])) == {6, 7, 8}


def test_voxel_mask_same_grid_exact_and_resampled():
    affine = np.diag([1.5, 1.5, 4.0, 1.0])
    m = np.zeros((20, 20, 8), bool)
    m[5:9, 6:12, 2:5] = True
    vm = VoxelMask(m, affine)
    assert np.array_equal(rasterize(vm, m.shape, affine), m)
    # to a grid with half the voxel size: every fine voxel centre inside a coarse set voxel
    fine_aff = np.diag([0.75, 0.75, 2.0, 1.0])
    fine_aff[:3, 3] = [-0.375, -0.375, -1.0]
    fine = rasterize(vm, (40, 40, 16), fine_aff)
    assert np.array_equal(fine, np.repeat(np.repeat(np.repeat(m, 2, 0), 2, 1), 2, 2))


def test_roi_mask_errors():
    affine = np.diag([1.5, 1.5, 4.0, 1.0])
    with pytest.raises(RoiError, match="outside the image grid"):
        roi_mask(RootROI("L5", "left", shape=Sphere([500, 0, 0], 3)), (20, 20, 8), affine)
    with pytest.raises(RoiError, match="covers no voxel centre"):
        roi_mask(Sphere([0.75, 0.75, 2.0], 0.5), (20, 20, 8), affine)
    f = roi_mask(Sphere([0.75, 0.75, 2.0], 0.5), (20, 20, 8), affine, partial_volume=True, supersample=8)
    assert f.sum() > 0


def test_label_map_and_overlap():
    affine = np.eye(4)
    a = RootROI("L5", "left", shape=Sphere([5, 5, 5], 2))
    b = RootROI("L5", "right", shape=Sphere([14, 5, 5], 2))
    labels, table = label_map(RoiSet([a, b]), (20, 10, 10), affine)
    assert table == {1: "L5_left_ganglion", 2: "L5_right_ganglion"}
    assert np.array_equal(labels == 1, rasterize(a, (20, 10, 10), affine))
    c = RootROI("L4", "left", shape=Sphere([6, 5, 5], 2))
    with pytest.raises(RoiError, match="overlaps L5_left_ganglion"):
        label_map([a, c], (20, 10, 10), affine)
    labels, _ = label_map([a, c], (20, 10, 10), affine, overlap="first")
    assert labels[5, 5, 5] == 1 and labels[8, 5, 5] == 2


def test_grid_of_and_sample_points():
    assert grid_of(((3, 4, 5), np.eye(4)))[0] == (3, 4, 5)
    p = sample_points(Tube([[0, 0, 0], [10, 0, 0]], 1.0), spacing_mm=0.5)
    assert np.all(np.abs(p[:, 1:]).max() <= 1.0) and p[:, 0].min() >= -1 and p[:, 0].max() <= 11
