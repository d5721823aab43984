"""ROI montage: returns a Figure, picks the slices crossing ROIs, colours ROI pixels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from dwi_toolkit.core.image import ParameterMap
from dwi_toolkit.errors import InputDataError
from dwi_toolkit.reporting.roi_figures import orientation_labels, roi_montage, view_axis
from dwi_toolkit.roi.masks import rasterize
from dwi_toolkit.roi.model import RootROI, RoiSet, Sphere

AFF = np.array([[1.5, 0, 0, -24.0], [0, 1.5, 0, -24.0], [0, 0, 4.0, -16.0], [0, 0, 0, 1]])


def test_montage_panels_and_overlay(tmp_path):
    vol = np.random.default_rng(0).random((32, 32, 8))
    rois = RoiSet([RootROI("L5", "left", shape=Sphere([-10, 0, 0], 3)),
                   RootROI("L5", "right", shape=Sphere([10, 0, 8], 3))])
    expected = sorted({int(k) for r in rois for k in np.nonzero(rasterize(r, vol.shape, AFF))[2]})
    fig = roi_montage(vol, AFF, rois, title="t")
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [f"axial slice {k}" for k in expected]
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"L5 left ganglion", "L5 right ganglion", "R", "L", "A", "P"} <= texts
    fig.savefig(tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 1000
    sag = roi_montage(ParameterMap(vol * 1e-3, AFF, "adc", "mm^2/s"), rois=rois, view="sagittal", slices=[5, 6])
    assert [ax.get_title() for ax in sag.axes if ax.get_title()] == ["sagittal slice 5", "sagittal slice 6"]
    with pytest.raises(InputDataError, match="outside"):
        roi_montage(vol, AFF, rois, slices=[99])


def test_view_axis_and_labels_for_lps_sagittal_grid():
    # sagittal acquisition: voxel axis 2 runs along x (R->L), axis 0 along y (A->P)
    aff = np.array([[0, 0, -2.0, 0], [-1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])
    assert view_axis(aff, "sagittal") == 2 and view_axis(aff, "axial") == 1
    assert orientation_labels(aff, 2) == ("A", "P", "I", "S")
