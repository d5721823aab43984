"""Report figures: orientation letters, ROI overlays, decay-curve fit against the analytic model."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from dwi_toolkit.core.image import DWISeries
from dwi_toolkit.errors import InputDataError
from dwi_toolkit.reporting.figures import (
    _edge_labels,
    adc_montage,
    roi_decay_curves,
    signal_decay_figure,
)


@pytest.mark.parametrize("affine", [
    np.diag([1.5, 1.5, 4.0, 1.0]),
    np.diag([-1.5, -1.5, 4.0, 1.0]),                       # LPS-like voxel order
    np.array([[0, 0, 1.0, 0], [1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]]),  # permuted axes
])
def test_edge_labels_agree_with_nibabel(affine):
    codes = nib.aff2axcodes(affine)  # direction each voxel axis increases towards
    for axis in (0, 1):
        lo, hi = _edge_labels(affine, axis)
        assert hi == codes[axis]


def test_edge_labels_none_for_oblique():
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    aff = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    assert _edge_labels(aff, 0) is None


def test_montage_picks_roi_slices_and_draws_labels():
    adc = np.full((10, 8, 6), 1.1e-3)
    m1 = np.zeros(adc.shape, bool)
    m1[2:4, 2:4, 1] = True
    m2 = np.zeros(adc.shape, bool)
    m2[6:8, 2:4, 4] = True
    fig = adc_montage((adc, np.diag([1.5, 1.5, 4, 1])), rois=[("L5 left <g>", m1), ("L5 right", m2)])
    panels = [ax for ax in fig.axes if ax.get_title().startswith("slice")]
    assert [ax.get_title() for ax in panels] == ["slice 1", "slice 4"]
    texts = {t.get_text() for ax in panels for t in ax.texts}
    assert {"L5 left <g>", "L5 right", "L", "R", "P", "A"} <= texts
    with pytest.raises(InputDataError, match="mask has shape"):
        adc_montage(adc, rois=[("bad", np.zeros((2, 2, 2), bool))])


def test_decay_curve_fit_recovers_model_values():
    # dwi_toolkit References §1.1 anchors: S0 = 1000, ADC 1.6e-3 -> S(500) = 449.329, S(800) = 278.037
    b = np.array([0.0, 500.0, 800.0])
    sig = np.array([1000.0, 449.329, 278.037])
    data = np.broadcast_to(sig, (4, 4, 2, 3)).copy()
    series = DWISeries(data, np.eye(4), b, np.r_[[[0, 0, 0]], np.eye(3)[:2]])
    m = np.zeros((4, 4, 2), bool)
    m[:2, :2, 0] = True
    c = roi_decay_curves(series, [("root", m)])[0]
    assert c.adc == pytest.approx(1.6e-3, rel=1e-4) and c.s0 == pytest.approx(1000.0, rel=1e-4)
    assert c.n_voxels == 4
    only_high = roi_decay_curves(series, [("root", m)], b_range=(400, 1000))[0]
    assert list(only_high.b_fit) == [500.0, 800.0]
    assert only_high.adc == pytest.approx(np.log(449.329 / 278.037) / 300.0, rel=1e-6)  # trace is float32
    fig = signal_decay_figure([c, only_high])
    assert fig.axes[0].get_yscale() == "log"
