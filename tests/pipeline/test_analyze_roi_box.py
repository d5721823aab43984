"""Without tractography, analyze fits the tensor only in the ROIs' bounding box (issue 21)."""

import numpy as np

from dwi_toolkit.analysis.options import AnalysisOptions
from dwi_toolkit.phantom import make_lumbar_phantom
from dwi_toolkit.pipeline.analyze import _fit_and_measure, _roi_box, roi_masks
from dwi_toolkit.roi.sample import sample_rois


def test_box_fit_gives_the_whole_image_roi_statistics():
    ph = make_lumbar_phantom(shape=(64, 56, 40), voxel_size=(2.5, 2.5, 5.0), n_directions=12, bvals=(0, 800),
                             snr=60, seed=5)
    rois = sample_rois(ph)
    pairs = roi_masks(rois, ph.series.spatial_shape, ph.series.affine)
    box = _roi_box(pairs, ph.series)
    assert box is not None  # the roots occupy a small part of this image
    masks = [m for _, m in pairs]
    inside = np.zeros(ph.series.spatial_shape, bool)
    inside[box] = True
    assert all(not (m & ~inside).any() for m in masks)  # every ROI voxel is in the box
    opts = AnalysisOptions(figures=False)
    _, boxed, _, dti_boxed, _ = _fit_and_measure(ph.series, rois, opts, pairs)
    _, whole, kept, dti_whole, _ = _fit_and_measure(ph.series, rois, opts.replace(track=True), pairs)
    assert dti_boxed and dti_whole and kept is not None  # tracking keeps the whole-image fit
    assert len(boxed.rows) == len(whole.rows)
    for a, b in zip(boxed.rows, whole.rows):
        assert (a.level, a.side, a.parameter, a.n_voxels) == (b.level, b.side, b.parameter, b.n_voxels)
        # the same voxels fitted voxel by voxel: equal up to floating-point round-off
        np.testing.assert_allclose([a.mean, a.median, a.sd], [b.mean, b.median, b.sd], rtol=1e-10)
