"""Root tractography and along-root profiles against the curved-root phantom's analytic truth."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from dwi_toolkit.models.dti import fit_dti
from dwi_toolkit.phantom_roots import RootLesion, make_root_phantom
from dwi_toolkit.roi.model import RootROI, RoiSet, Sphere
from dwi_toolkit.tracts import along_root_profiles, compare_profiles, find_lesions, track_roots
from dwi_toolkit.tracts.tracking import project_to_line

GEOMETRIES = {
    "straight": {},
    "oblique_slices": {"grid_rotation_deg": (15.0, 0.0, 10.0)},
    "patient_rotated": {"rotation_deg": (0.0, 8.0, 12.0)},
}
VOX = 2.0


@functools.lru_cache(maxsize=8)  # the same phantom/fit/tracking serves several tests (read-only)
def _run(levels=("L5",), lesion=None, seed=0, **geometry):
    ph = make_root_phantom(levels=levels, voxel_size=VOX, n_directions=20, snr=25, lesion=lesion, seed=seed,
                           **geometry)
    fit = fit_dti(ph.series, mask=ph.body_mask)
    seeds = RoiSet([RootROI(lv, sd, shape=Sphere(p, 0.5)) for (lv, sd), p in ph.seeds.items()])  # one point per root
    tracts = track_roots(fit, seeds, mask=ph.body_mask)
    return ph, fit, tracts


@pytest.fixture(scope="module", params=list(GEOMETRIES))
def tracked(request):
    return _run(**GEOMETRIES[request.param])


def test_every_root_tracked_and_centerline_within_one_voxel(tracked):
    ph, _, tracts = tracked
    assert sorted(tracts.keys()) == sorted(ph.roots)
    for b in tracts:
        assert b.n_kept >= 20, b.rejected
        _, dist = project_to_line(b.centerline, ph.centerlines[(b.level, b.side)])
        assert np.sqrt(np.mean(dist**2)) < VOX  # RMS distance to the true centre-line < 1 voxel
        # the core covers the root from near the junction to near its distal end
        s, _ = project_to_line(b.centerline[[0, -1]], ph.centerlines[(b.level, b.side)])
        assert s[0] < 4.0 and s[1] > ph.length_mm(b.level, b.side) - 4.0
        # streamlines run proximal -> distal: first point closer to the junction
        j = ph.junctions[(b.level, b.side)]
        assert all(np.linalg.norm(sl[0] - j) < np.linalg.norm(sl[-1] - j) for sl in b.streamlines)


def test_distance_origin_is_the_dural_junction(tracked):
    ph, _, tracts = tracked
    for b in tracts:
        assert b.origin_source == "dural junction (CSF)"
        k = int(np.argmin(np.abs(b.distance_mm)))  # centre-line point at 0 mm
        assert np.linalg.norm(b.centerline[k] - ph.junctions[(b.level, b.side)]) < 1.5 * VOX


def _node_errors(ph, tracts, prof) -> dict:
    """|value / truth − 1| at every node a profile reports, the truth taken at the node's position
    (projected on the true centre-line), so a node is judged on the tissue it sampled."""
    out: dict = {}
    for p in prof:
        ok = np.isfinite(p.value)
        pts = tracts.get(p.level, p.side).points(p.distance_mm[ok])
        truth = ph.truth_at(p.level, p.side, pts)[p.parameter]
        out.setdefault(p.parameter, []).append(np.abs(p.value[ok] / truth - 1))
    return {k: np.concatenate(v) for k, v in out.items()}


def test_profiles_match_truth_node_by_node(tracked):
    """SNR 25, b = 800 s/mm², 20 directions, 2 mm voxels, one seed point per root.

    Extent: every node the profile reports — from where its kernel holds root voxels on both
    sides (3–8 mm past the dural junction) to the distal end of the root (± 3 mm).
    MD, ADC, AD and RD are within 5 % at every node. FA is within 5 % at 90 % of the nodes and
    12 % at every node: a voxel's FA has an 11–18 % SD at this SNR (FA 0.40–0.27) and a node
    averages 20–35 voxels, so single nodes reach 2–3 × 2–3.5 %; the kernel-weighted mean tensor and
    oracles that know the root voxels and their true positions do no better
    (docs/tractography.md, "What limits FA"; ``benchmarks/bench_tracts.py --node-accuracy``).
    """
    ph, fit, tracts = tracked
    prof = along_root_profiles(tracts, fit, parameters=["fa", "adc", "md", "ad", "rd"], n_boot=50)
    err = _node_errors(ph, tracts, prof)
    for par in ("adc", "md", "ad", "rd"):
        assert err[par].max() <= 0.05, (par, err[par].max())
    assert np.percentile(err["fa"], 90) <= 0.05 and err["fa"].max() <= 0.12, err["fa"].max()
    for p in prof:
        ok = np.isfinite(p.value)
        assert ok.all()  # no gaps inside the extent on these phantoms
        assert 0.0 < p.distance_mm[0] <= 10.0 and p.distance_mm[-1] >= ph.length_mm(p.level, p.side) - 4.0
        lo, hi = p.ci()
        assert np.all(lo <= p.value + 1e-12) and np.all(hi >= p.value - 1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_profiles_at_snr_20(geometry):
    """SNR 20 (the issue's lower bound), two noise seeds: MD, ADC and AD within 5 % at every node,
    RD within 7 % (the kernel's rounding of the 15 mm corner, 3.5–3.8 % without noise, plus noise),
    FA within 8 % at 90 % of the nodes (per-profile 90th percentiles reach 6–8 %) and 13 % at every
    node (docs/tractography.md: largest 6.9–10.9 % over 6 seeds): the FA criterion is not met at
    SNR 20."""
    errs = []
    for seed in (0, 1):
        ph = make_root_phantom(levels=("L5",), voxel_size=VOX, n_directions=20, snr=20, seed=seed,
                               **GEOMETRIES[geometry])
        fit = fit_dti(ph.series, mask=ph.body_mask)
        tracts = track_roots(fit, ph.seeds, mask=ph.body_mask)
        errs.append(_node_errors(ph, tracts, along_root_profiles(tracts, fit, n_boot=10)))
    err = {p: np.concatenate([e[p] for e in errs]) for p in errs[0]}
    assert max(err[p].max() for p in ("adc", "md", "ad")) <= 0.05, {k: float(e.max()) for k, e in err.items()}
    assert err["rd"].max() <= 0.07 and np.percentile(err["fa"], 90) <= 0.08 and err["fa"].max() <= 0.13


def test_profile_estimator_bias_is_small_without_noise():
    """Noise-free, all three geometries: what is left is the estimator's own error (the corners of
    the along-root gradient rounded by the kernel, the core's discretisation): every node of every
    parameter within 4 %."""
    for geometry in GEOMETRIES.values():
        ph = make_root_phantom(levels=("L5",), voxel_size=VOX, n_directions=20, snr=None, **geometry)
        fit = fit_dti(ph.series, mask=ph.body_mask)
        tracts = track_roots(fit, ph.seeds, mask=ph.body_mask)
        err = _node_errors(ph, tracts, along_root_profiles(tracts, fit, n_boot=10))
        assert max(e.max() for e in err.values()) <= 0.04, {k: round(float(e.max()), 3) for k, e in err.items()}


def test_streamline_sampling_is_kept_for_comparison_with_afq(tracked):
    ph, fit, tracts = tracked
    prof = along_root_profiles(tracts, fit, parameters=["fa", "md"], n_boot=20, sampling="streamlines")
    assert prof.meta["sampling"] == "streamlines"
    err = _node_errors(ph, tracts, prof)
    assert np.median(err["md"]) < 0.05 and np.median(err["fa"]) < 0.08


def test_tube_rois_cover_the_root(tracked):
    ph, fit, tracts = tracked
    from dwi_toolkit.analysis.roi_stats import roi_stats

    rows = roi_stats(fit.map("md"), tracts.rois(radius_mm=2.0))
    for r in rows:
        lab = 1 + ph.roots.index((r.level, r.side))
        # the tube's voxels are mostly root voxels of the right root
        from dwi_toolkit.roi.masks import roi_mask

        m = roi_mask(tracts.rois(radius_mm=2.0).get(r.level, r.side), fit.shape, fit.affine)
        assert (ph.root_labels[m] == lab).mean() > 0.8
        assert r.n_voxels > 10


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_focal_lesion_found_on_the_right_root_side_and_position(geometry):
    lesion = RootLesion("L5", "left", center_mm=25.0, length_mm=8.0)
    ph, fit, tracts = _run(lesion=lesion, **GEOMETRIES[geometry])
    found = find_lesions(compare_profiles(along_root_profiles(tracts, fit, parameters=["fa", "adc"])))
    assert len(found) == 1
    assert (found[0]["level"], found[0]["side"]) == ("L5", "left")
    assert abs(found[0]["distance_mm"] - lesion.center_mm) <= 5.0


@pytest.mark.parametrize("seed", [0, 1])
def test_no_lesion_reported_on_lesion_free_phantom(seed):
    _, fit, tracts = _run(seed=seed)
    assert find_lesions(compare_profiles(along_root_profiles(tracts, fit, parameters=["fa", "adc"]))) == []


def test_implausible_streamlines_are_rejected_and_counted():
    ph, fit, _ = _run()
    # a seed in the muscle far from any root: whatever is tracked is short or off the body
    from dwi_toolkit.tracts import TrackingParams

    far = {("L5", "left"): ph.seeds[("L5", "left")], ("L5", "right"): ph.seeds[("L5", "left")]}  # right seeded on the left root
    tr = track_roots(fit, far, mask=ph.body_mask, params=TrackingParams(seeds_per_root=20),
                     midsagittal_plane=ph.midsagittal_plane)
    right = tr.get("L5", "right")
    assert right.n_kept == 0 and right.rejected["crosses_midline"] == right.n_tracked
    assert tr.get("L5", "left").n_kept > 10


def test_probabilistic_tracking_follows_the_root():
    from dwi_toolkit.tracts import TrackingParams

    ph, fit, _ = _run()
    tr = track_roots(fit, ph.seeds, mask=ph.body_mask, params=TrackingParams(method="prob", seeds_per_root=30))
    for b in tr:
        _, dist = project_to_line(b.centerline, ph.centerlines[(b.level, b.side)])
        assert b.n_kept > 5 and np.sqrt(np.mean(dist**2)) < VOX


def test_matches_dipy_by_hand():
    """Our deterministic tracking (dipy.tracking.tracker.eudx_tracking) gives the same streamlines
    as dipy's older LocalTracking + PeaksAndMetrics run by hand on the same tensor, and emits no
    deprecation warning (that interface is deprecated in dipy 1.12)."""
    import warnings

    from dipy.data import default_sphere
    from dipy.direction.peaks import PeaksAndMetrics
    from dipy.tracking.local_tracking import LocalTracking
    from dipy.tracking.stopping_criterion import ThresholdStoppingCriterion

    from dwi_toolkit.tracts.tracking import TrackingParams, _direction_model, _run_dipy, _seed_points

    ph, fit, _ = _run()
    valid = ph.body_mask & np.isfinite(fit.fa)
    fa = np.where(valid, np.nan_to_num(fit.fa), 0.0)
    lin = fit.affine[:3, :3] / np.linalg.norm(fit.affine[:3, :3], axis=0)
    d = np.nan_to_num(fit.principal_direction_ras() @ lin)
    pam = PeaksAndMetrics()
    pam.sphere, pam.peak_dirs, pam.peak_values = default_sphere, d[..., None, :].copy(), fa[..., None].copy()
    pam.qa = pam.peak_values
    pam.peak_indices = np.argmax(np.abs(d.reshape(-1, 3) @ default_sphere.vertices.T), 1).reshape(fa.shape + (1,)).astype(np.int32)
    pam.ang_thr, pam.qa_thr, pam.total_weight = 40.0, 0.2, 0.5
    seeds = np.vstack([_seed_points(p.reshape(1, 3), TrackingParams(), np.random.default_rng(3)) for p in ph.seeds.values()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = list(LocalTracking(pam, ThresholdStoppingCriterion(fa, 0.2), seeds, fit.affine, step_size=0.5,
                                 return_all=True, maxlen=240))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        ours = _run_dipy(_direction_model(fit, TrackingParams(), valid), fa, seeds, fit.affine, TrackingParams())
        track_roots(fit, ph.seeds, mask=ph.body_mask, params=TrackingParams(method="prob", seeds_per_root=5))
    assert len(ours) == len(ref) == len(seeds)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.slow
def test_full_size_twelve_roots_within_budget():
    import time

    t0 = time.perf_counter()
    ph, fit, tracts = _run(levels=("L1", "L2", "L3", "L4", "L5", "S1"))
    prof = along_root_profiles(tracts, fit, parameters=["fa", "adc", "md", "ad", "rd"])
    compare_profiles(prof)
    elapsed = time.perf_counter() - t0
    assert len(tracts) == 12 and all(b.n_kept > 10 for b in tracts)
    for b in tracts:
        _, dist = project_to_line(b.centerline, ph.centerlines[(b.level, b.side)])
        assert np.sqrt(np.mean(dist**2)) < VOX
    assert elapsed < 60  # ≤ 30 s measured on one core (docs/benchmarks.md); slack for shared CI machines


def test_leaves_body_means_outside_the_body_not_grazing_the_mask():
    """A tight mask (the signal mask keeps only root and CSF on this small field of view) used to
    reject half the streamlines as 'leaves body' for points a fraction of a voxel past its edge,
    where the trilinear tracker legitimately stops; only a true exit counts now."""
    from dwi_toolkit.core.masks import signal_mask
    from dwi_toolkit.tracts import TrackingParams
    from dwi_toolkit.tracts.tracking import REJECT_REASONS, _reject, body_reach

    ph, fit, _ = _run()
    tight = signal_mask(ph.series.mean_b0())
    assert tight.sum() < 0.2 * tight.size and tight[ph.labels == 1].mean() < 0.05  # muscle is outside this mask
    tr = track_roots(fit, ph.seeds, mask=tight)
    assert all(b.rejected["leaves_body"] == 0 and b.n_kept == b.n_tracked for b in tr), tr.summary()
    # a streamline running 4 voxels beyond the mask is rejected; one grazing it by half a voxel is not
    body = np.zeros((20, 20, 20), bool)
    body[5:15, 5:15, 5:15] = True
    line = np.stack([np.full(41, 10.0), np.full(41, 10.0), np.linspace(6.0, 26.0, 41)], axis=1)  # x, y = 10 (right half)
    graze = np.stack([np.full(41, 15.4), np.full(41, 10.0), np.linspace(5.0, 14.5, 41)], axis=1)  # 0.4 voxel past x = 14
    plane = (np.array([0.0, 0, 0]), np.array([1.0, 0, 0]))
    kept, counts = _reject([line, graze], "right", plane, body_reach(body), np.eye(4), TrackingParams(min_length_mm=5))
    assert set(counts) == set(REJECT_REASONS)
    assert counts["leaves_body"] == 1 and len(kept) == 1 and kept[0][0, 0] == 15.4
