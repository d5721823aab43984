"""The curved-root phantom: geometry, along-root truth (Miyagi 2015 pattern) and noise-free tensor."""

from __future__ import annotations

import numpy as np
import pytest

from dwi_toolkit.phantom_roots import GRADIENT_LENGTH_MM, PLATEAU_FA, RootLesion, make_root_phantom, root_truth_profile


def test_truth_profile_gradient_then_plateau():
    d = np.array([0.0, 7.5, 15.0, 30.0])
    t = root_truth_profile("S1", "right", d)
    assert t["fa"][0] < t["fa"][1] < t["fa"][2] == t["fa"][3] == PLATEAU_FA
    assert t["adc"][0] > t["adc"][1] > t["adc"][2] == t["adc"][3]
    np.testing.assert_allclose((t["ad"] + 2 * t["rd"]) / 3, t["md"])  # MD = (λ1 + 2 λ⊥) / 3
    assert GRADIENT_LENGTH_MM == 15.0
    # proximal ADC higher caudally, S1 > L5 > L4 (Miyagi 2015)
    assert root_truth_profile("S1", "left", [0.0])["adc"][0] > root_truth_profile("L5", "left", [0.0])["adc"][0] \
        > root_truth_profile("L4", "left", [0.0])["adc"][0]


def test_lesion_changes_only_its_root_and_stretch():
    les = RootLesion("L5", "left", center_mm=25.0, length_mm=8.0, fa_factor=0.65, adc_factor=1.3)
    d = np.array([10.0, 25.0, 40.0])
    t = root_truth_profile("L5", "left", d, les)
    ref = root_truth_profile("L5", "left", d)
    np.testing.assert_allclose(t["fa"] / ref["fa"], [1.0, 0.65, 1.0])
    np.testing.assert_allclose(t["adc"] / ref["adc"], [1.0, 1.3, 1.0])
    np.testing.assert_allclose(root_truth_profile("L5", "right", d, les)["fa"], ref["fa"])


@pytest.mark.parametrize("geometry", [{}, {"grid_rotation_deg": (15, 0, 10)}, {"rotation_deg": (0, 8, 12)}])
def test_noise_free_tensor_fit_recovers_voxel_truth(geometry):
    from dwi_toolkit.models.dti import fit_dti

    ph = make_root_phantom(levels=("L4",), voxel_size=3.0, n_directions=12, snr=None, **geometry)
    assert ph.series.n_volumes == 14 and set(ph.series.bvals) == {0.0, 800.0}
    fit = fit_dti(ph.series, mask=ph.body_mask)
    root = ph.root_labels > 0
    np.testing.assert_allclose(fit.fa[root], ph.fa_true[root], atol=1e-4)
    np.testing.assert_allclose(fit.md[root], ph.md_true[root], rtol=1e-4)
    # principal direction of root voxels follows the true centre-line direction
    from dwi_toolkit.tracts.tracking import project_to_line

    line = ph.centerlines[("L4", "left")]
    ijk = np.argwhere(ph.root_labels == 1)
    pts = ijk @ ph.series.affine[:3, :3].T + ph.series.affine[:3, 3]
    s, dist = project_to_line(pts, line)
    assert dist.max() <= ph.params["root_radius_mm"] + 1e-6
    arc = np.r_[0, np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))]
    k = np.clip(np.searchsorted(arc, s), 1, len(line) - 1)
    tangent = line[k] - line[k - 1]
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    v1 = fit.principal_direction_ras()[tuple(ijk.T)]
    assert np.median(np.abs((v1 * tangent).sum(1))) > 0.99


def test_truth_records_are_tidy():
    ph = make_root_phantom(levels=("L3",), voxel_size=4.0, n_directions=12, snr=None)
    recs = ph.truth_records(step_mm=5.0)
    assert {r["parameter"] for r in recs} == {"fa", "adc", "md", "ad", "rd"}
    assert {(r["level"], r["side"]) for r in recs} == {("L3", "left"), ("L3", "right")}
