"""ROIs on the synthetic lumbar phantom (dwi_toolkit.phantom): truth comes from the phantom."""

from __future__ import annotations

import numpy as np
import pytest

from dwi_toolkit.analysis.roi_stats import roi_stats
from dwi_toolkit.io.rois import load_rois, save_rois
from dwi_toolkit.models.adc import fit_adc
from dwi_toolkit.phantom import LEVELS, SIDES, make_lumbar_phantom
from dwi_toolkit.roi.masks import rasterize
from dwi_toolkit.roi.mirror import estimate_midsagittal_plane, mirror_roi, mirror_rois
from dwi_toolkit.roi.model import RootROI, Sphere
from dwi_toolkit.roi.sample import DEFAULT_POSITIONS, rois_from_centerlines, sample_rois

SMALL: dict = {}  # the default phantom grid: 72 x 56 x 48 voxels of 2 x 2 x 4 mm, L1-S1


def _dist_to_line(p, line):
    best = np.inf
    for a, b in zip(line[:-1], line[1:]):
        t = np.clip((p - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1)
        best = min(best, np.linalg.norm(p - (a + t * (b - a))))
    return best


@pytest.fixture(scope="module")
def clean():
    return make_lumbar_phantom(noise=False, **SMALL)


@pytest.fixture(scope="module")
def noisy():
    return make_lumbar_phantom(seed=7, snr=40, **SMALL)


def test_sample_rois_lie_inside_their_roots(clean):
    rois = sample_rois(clean, positions=DEFAULT_POSITIONS)
    assert len(rois) == len(LEVELS) * len(SIDES) * 3
    g = clean.series
    for roi in rois:
        m = rasterize(roi, g.spatial_shape, g.affine)
        assert m.sum() >= 4
        assert np.all(clean.root_mask(roi.level, roi.side)[m]), roi.name
        # and mostly in the named segment (the sphere may cross a segment boundary)
        assert clean.root_mask(roi.level, roi.side, roi.segment)[m].mean() > 0.6, roi.name


def test_roi_means_exact_on_noiseless_fit(clean):
    rois = sample_rois(clean)
    fit = fit_adc(clean.series)
    table = roi_stats(fit, rois)
    for row in table:
        true = clean.root_adc[(row.level, row.side)]
        assert row.n_excluded == 0 and row.n_voxels > 0
        np.testing.assert_allclose(row.mean, true, rtol=1e-5)
        np.testing.assert_allclose(row.sd, 0.0, atol=1e-6 * true)
    exact = roi_stats((clean.adc_true, clean.series.affine), rois, parameter="adc", unit="mm^2/s")
    for r in exact:
        np.testing.assert_allclose(r.mean, clean.root_adc[(r.level, r.side)], rtol=1e-12)
    assert table.get("L5", "left").mean > 1.2 * table.get("L5", "right").mean  # the altered root


def test_roi_means_within_noise(noisy):
    rois = sample_rois(noisy, kind="tube")
    table = roi_stats(fit_adc(noisy.series), rois, csf_threshold=2.5e-3)
    for row in table:
        true = noisy.root_adc[(row.level, row.side)]
        se = row.sd / np.sqrt(row.n_voxels)
        assert abs(row.mean - true) < 4 * se + 0.02 * true, (row.name, row.mean, true, se)
        assert row.n_excluded_csf == 0


def test_conversions_cover_the_same_voxels(clean, tmp_path):
    g = clean.series
    rois = rois_from_centerlines(clean.centerlines, radius_mm=2.0, kind="tube", tube_length_fraction=0.2,
                                 positions={"ganglion": 0.45, "postganglionic": 0.85})
    rois = rois.add(RootROI("S1", "left", "pre", Sphere(clean.segment_point("S1", "left", "preganglionic"), 2.0)))
    p = save_rois(rois, tmp_path / "rois.json")
    s = save_rois(load_rois(p), tmp_path / "rois.mrk.json")
    via_slicer = load_rois(save_rois(load_rois(s), tmp_path / "via_slicer.json"))
    lab = save_rois(load_rois(p), tmp_path / "sub-01_desc-roots_dseg.nii.gz", reference=g)
    via_labels = load_rois(save_rois(load_rois(lab), tmp_path / "via_labels.json"))
    for r in rois:
        ref = rasterize(r, g.spatial_shape, g.affine)
        assert ref.any()
        for other in (via_slicer, via_labels):
            got = rasterize(other[r.name], g.spatial_shape, g.affine)
            assert np.array_equal(got, ref), r.name


@pytest.mark.parametrize("pose", [
    dict(),
    dict(rotation_deg=(0, 0, 8), translation_mm=(3, 0, 0)),
    dict(rotation_deg=(4, 0, -7), grid_rotation_deg=(0, 0, 10), translation_mm=(-2, 1, 0)),
])
def test_mirrored_roi_lands_on_contralateral_root(pose):
    ph = make_lumbar_phantom(seed=3, **SMALL, **pose)
    s = ph.series
    plane = estimate_midsagittal_plane(s.mean_b0(), s.affine)
    p_true, n_true = ph.midsagittal_plane
    assert np.degrees(np.arccos(min(1, abs(plane.normal @ n_true)))) < 1.0
    assert abs(plane.signed_distance(p_true)[0]) < 1.0
    voxel = float(s.voxel_sizes.min())
    for level in ("L3", "L4", "L5"):
        src = RootROI(level, "left", shape=Sphere(ph.segment_point(level, "left"), 2.6))
        target = ph.segment_point(level, "right")
        plain = mirror_roi(src, plane)
        snapped = mirror_roi(src, plane, snap_to=s, search_radius_mm=2.0)
        assert np.linalg.norm(plain.shape.center - target) < voxel, (level, plain.shape.center, target)
        for twin in (plain, snapped):
            assert twin.side == "right"
            # within one voxel of the true root (snapping may slide along the root's axis)
            assert _dist_to_line(twin.shape.center, ph.centerlines[(level, "right")]) < voxel
            # and the mirrored ROI's voxels are (almost all) root voxels of the right root
            m = rasterize(twin, s.spatial_shape, s.affine)
            assert ph.root_mask(level, "right")[m].mean() > 0.8


def test_mirror_rois_records_plane(clean):
    rois = sample_rois(clean).select(side="left")
    plane = estimate_midsagittal_plane(clean.series.mean_b0(), clean.series.affine)
    out = mirror_rois(rois, plane)
    assert len(out) == 2 * len(rois)
    assert out.meta["midsagittal_plane"]["method"] == "mirror similarity"
    for r in out.select(side="right"):
        assert np.linalg.norm(r.shape.center - clean.segment_point(r.level, "right")) < 2.0
