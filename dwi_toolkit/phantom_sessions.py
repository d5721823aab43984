"""Phantoms for trust across scans: repeat sessions, a second site and wrong gradient tables.

Built on :func:`dwi_toolkit.phantom.make_lumbar_phantom` (same analytic anatomy, known truth):

- :func:`make_session_pair` — a baseline and a follow-up of the same subject, the follow-up moved
  and rotated in the scanner and with chosen root ADC changes; the true baseline → follow-up
  world transform is returned, so registration can be checked against it.
- :func:`make_second_site` — the same subject imaged at another site: every root ADC scaled (a
  scanner bias, e.g. several % between scanners, Moore et al. 2025; gradient non-linearity,
  Malyarenko et al. 2013) and another noise level.
- :func:`make_gradient_error_phantom` — a DTI phantom (anisotropic roots) whose stored b-vector
  table has an axis flipped or permuted, while the signal was simulated with the true table.
- :func:`simulate_site_table` — a cohort ROI table (one row per subject × root, long format like
  ``cohort_roi_stats.csv``) with site offsets and a disease effect, for harmonisation tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .core.affines import rotation_matrix
from .core.image import DWISeries
from .phantom import LEVELS, NORMAL_ROOT_ADC, SIDES, LumbarPhantom, make_lumbar_phantom

__all__ = [
    "GRADIENT_ERRORS",
    "SessionPair",
    "GradientErrorPhantom",
    "make_session_pair",
    "make_second_site",
    "make_gradient_error_phantom",
    "simulate_site_table",
]

#: Signed axis permutations that corrupt a table (``stored = P @ true``), by name.
GRADIENT_ERRORS: dict[str, NDArray[np.float64]] = {
    "xyz flip x": np.diag([-1.0, 1.0, 1.0]),
    "xyz flip y": np.diag([1.0, -1.0, 1.0]),
    "xyz flip z": np.diag([1.0, 1.0, -1.0]),
    "yxz": np.eye(3)[[1, 0, 2]],
    "xzy": np.eye(3)[[0, 2, 1]],
    "zyx": np.eye(3)[[2, 1, 0]],
    "yzx": np.eye(3)[[1, 2, 0]],
    "zxy": np.eye(3)[[2, 0, 1]],
}


@dataclass(frozen=True, eq=False)
class SessionPair:
    """Two sessions of one synthetic subject.

    Attributes
    ----------
    baseline, follow_up : LumbarPhantom
    changes : dict
        (level, side) → relative ADC change applied at follow-up (e.g. 0.15 = +15 %).
    transform : ndarray of shape (4, 4)
        True world transform baseline RAS+ mm → follow-up RAS+ mm (what a registration of the
        follow-up to the baseline must find, in dipy's static → moving convention).

    Examples
    --------
    >>> pair = make_session_pair(shape=(30, 24, 30), voxel_size=(3, 3, 5), rotation_deg=(0, 0, 5), noise=False)
    >>> pair.transform.shape, pair.changes
    ((4, 4), {('L4', 'right'): 0.15})
    """

    baseline: LumbarPhantom
    follow_up: LumbarPhantom
    changes: dict
    transform: np.ndarray = field(repr=False)


def make_session_pair(
    *,
    rotation_deg: ArrayLike = (4.0, -3.0, 6.0),
    translation_mm: ArrayLike = (5.0, -4.0, 6.0),
    changes: dict | None = None,
    seed: int = 0,
    **phantom_kwargs: Any,
) -> SessionPair:
    """A baseline and a moved follow-up with known root ADC changes.

    Parameters
    ----------
    rotation_deg, translation_mm : optional
        Patient pose at follow-up (degrees about x, y, z; mm), relative to the baseline pose.
    changes : dict, optional
        (level, side) → relative ADC change; default ``{("L4", "right"): 0.15}``.
    seed : int, optional
        Noise seed of the baseline (the follow-up uses ``seed + 1``).
    **phantom_kwargs
        Passed to :func:`~dwi_toolkit.phantom.make_lumbar_phantom` for both sessions (shape,
        voxel_size, bvals, snr, altered, noise, ...).

    Returns
    -------
    SessionPair

    Examples
    --------
    >>> pair = make_session_pair(shape=(30, 24, 30), voxel_size=(3, 3, 5), noise=False)
    >>> a, b = pair.baseline.root_adc[("L4", "right")], pair.follow_up.root_adc[("L4", "right")]
    >>> round(b / a - 1, 3)
    0.15
    """
    changes = {("L4", "right"): 0.15} if changes is None else dict(changes)
    altered = phantom_kwargs.pop("altered", {})
    for bad in ("rotation_deg", "translation_mm", "root_adc", "seed"):
        phantom_kwargs.pop(bad, None)
    base_adc = {(lev, side): NORMAL_ROOT_ADC[lev] for lev in LEVELS for side in SIDES}
    base_adc.update({(k[0], k[1]): float(v) for k, v in altered.items()})
    follow_adc = {k: v * (1.0 + float(changes.get(k, 0.0))) for k, v in base_adc.items()}
    baseline = make_lumbar_phantom(root_adc=base_adc, altered={}, seed=seed, **phantom_kwargs)
    follow = make_lumbar_phantom(root_adc=follow_adc, altered={}, seed=seed + 1, rotation_deg=rotation_deg,
                                 translation_mm=translation_mm, **phantom_kwargs)
    t = np.eye(4)
    t[:3, :3] = rotation_matrix(rotation_deg)
    t[:3, 3] = np.asarray(translation_mm, dtype=float)
    return SessionPair(baseline=baseline, follow_up=follow, changes=changes, transform=t)


def make_second_site(*, adc_scale: float = 1.06, snr: float = 25.0, seed: int = 7,
                     **phantom_kwargs: Any) -> LumbarPhantom:
    """The same synthetic subject imaged at another site: root ADCs scaled, other noise.

    Parameters
    ----------
    adc_scale : float, optional
        Multiplicative site bias of every root ADC (default +6 %).
    snr : float, optional
        b=0 root SNR at this site.
    seed : int, optional
        Noise seed.
    **phantom_kwargs
        Passed to :func:`~dwi_toolkit.phantom.make_lumbar_phantom`.

    Returns
    -------
    LumbarPhantom
        ``params["site_adc_scale"]`` records the bias.

    Examples
    --------
    >>> ph = make_second_site(adc_scale=1.1, shape=(30, 24, 30), voxel_size=(3, 3, 5), noise=False)
    >>> round(ph.root_adc[("L1", "left")] / 1.25e-3, 3), ph.params["site_adc_scale"]
    (1.1, 1.1)
    """
    altered = phantom_kwargs.pop("altered", {})
    adc = {(lev, side): NORMAL_ROOT_ADC[lev] for lev in LEVELS for side in SIDES}
    adc.update({(k[0], k[1]): float(v) for k, v in altered.items()})
    ph = make_lumbar_phantom(root_adc={k: v * adc_scale for k, v in adc.items()}, altered={}, snr=snr,
                             seed=seed, **phantom_kwargs)
    ph.params["site_adc_scale"] = float(adc_scale)
    return ph


@dataclass(frozen=True, eq=False)
class GradientErrorPhantom:
    """A DTI phantom whose stored b-vectors are wrong.

    Attributes
    ----------
    phantom : LumbarPhantom
        The phantom simulated with the true table.
    series : DWISeries
        The same data with the corrupted table ``stored = P @ true``.
    true_bvecs : ndarray of shape (N, 3)
    error : str or None
        Name in :data:`GRADIENT_ERRORS` (``None``: the table is correct).

    Examples
    --------
    >>> ph = make_gradient_error_phantom("xyz flip y", shape=(20, 16, 20), voxel_size=(4, 4, 6), noise=False)
    >>> bool(np.allclose(ph.series.bvecs[:, 1], -ph.true_bvecs[:, 1]))
    True
    """

    phantom: LumbarPhantom
    series: DWISeries
    true_bvecs: np.ndarray = field(repr=False)
    error: str | None


def make_gradient_error_phantom(
    error: str | None,
    *,
    root_fa: float = 0.45,
    n_directions: int = 30,
    bvals: ArrayLike = (0, 800),
    snr: float = 40.0,
    **phantom_kwargs: Any,
) -> GradientErrorPhantom:
    """A DTI phantom (anisotropic roots) with a flipped or permuted stored gradient table.

    Parameters
    ----------
    error : str or None
        A key of :data:`GRADIENT_ERRORS` (e.g. ``"xyz flip x"``, ``"yxz"``), or ``None`` for a
        correct table.
    root_fa : float, optional
        FA of the roots (the only anisotropic tissue).
    n_directions : int, optional
        Directions per non-zero shell.
    bvals : sequence of float, optional
        s/mm².
    snr : float, optional
        b=0 root SNR.
    **phantom_kwargs
        Passed to :func:`~dwi_toolkit.phantom.make_lumbar_phantom` (shape, voxel_size,
        grid_rotation_deg for oblique or sagittal grids, seed, noise, ...).

    Returns
    -------
    GradientErrorPhantom

    Examples
    --------
    >>> ph = make_gradient_error_phantom("yxz", shape=(20, 16, 20), voxel_size=(4, 4, 6), noise=False)
    >>> ph.error, bool(np.allclose(ph.series.bvecs[:, 0], ph.true_bvecs[:, 1]))
    ('yxz', True)
    """
    if error is not None and error not in GRADIENT_ERRORS:
        from .errors import InputDataError

        raise InputDataError(f"unknown gradient error {error!r}; choose one of {sorted(GRADIENT_ERRORS)} or None.")
    ph = make_lumbar_phantom(root_fa=root_fa, n_directions=n_directions, bvals=bvals, snr=snr, **phantom_kwargs)
    true = ph.series.bvecs.copy()
    stored = true if error is None else true @ GRADIENT_ERRORS[error].T
    return GradientErrorPhantom(phantom=ph, series=ph.series.replace(bvecs=stored), true_bvecs=true, error=error)


def simulate_site_table(
    *,
    sites: dict[str, int] | None = None,
    site_offsets: dict[str, float] | None = None,
    site_scales: dict[str, float] | None = None,
    disease_effect: float = 0.25e-3,
    disease_fraction: float = 0.5,
    between_subject_sd: float = 0.06e-3,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """A long-format cohort ROI table (mean ADC per subject × level × side) with site effects.

    Every subject has a normal ADC per root (:data:`dwi_toolkit.phantom.NORMAL_ROOT_ADC` plus a
    subject effect and noise); patients (``group == "patient"``) have `disease_effect` added on the
    left L5 root. Each site adds its offset (mm²/s) and multiplies the noise by its scale.

    Parameters
    ----------
    sites : dict, optional
        Site name → number of subjects (default ``{"A": 20, "B": 20, "C": 20}``).
    site_offsets : dict, optional
        Site → additive ADC offset in mm²/s (default A 0, B +0.12e-3, C −0.10e-3: about +9 % and −7 %).
    site_scales : dict, optional
        Site → multiplier of the measurement noise SD (default 1, 1.5, 0.8).
    disease_effect : float, optional
        mm²/s added to the left L5 root of patients.
    disease_fraction : float, optional
        Share of patients at every site.
    between_subject_sd : float, optional
        mm²/s.
    seed : int, optional

    Returns
    -------
    list of dict
        Columns subject, session, site, group, level, side, segment, parameter, unit, mean.

    Examples
    --------
    >>> rows = simulate_site_table(sites={"A": 3, "B": 3})
    >>> len(rows), sorted(rows[0])[:4]
    (72, ['group', 'level', 'mean', 'parameter'])
    """
    sites = {"A": 20, "B": 20, "C": 20} if sites is None else sites
    offsets = {"A": 0.0, "B": 0.12e-3, "C": -0.10e-3} if site_offsets is None else site_offsets
    scales = {"A": 1.0, "B": 1.5, "C": 0.8} if site_scales is None else site_scales
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    n = 0
    for site, count in sites.items():
        n_pat = int(round(disease_fraction * count))
        for i in range(count):
            n += 1
            group = "patient" if i < n_pat else "control"
            subj_eff = rng.normal(0.0, between_subject_sd)
            for lev in LEVELS:
                for side in SIDES:
                    v = NORMAL_ROOT_ADC[lev] + subj_eff + rng.normal(0.0, 0.04e-3 * scales.get(site, 1.0))
                    v += offsets.get(site, 0.0)
                    if group == "patient" and (lev, side) == ("L5", "left"):
                        v += disease_effect
                    rows.append({"subject": f"sub-{n:03d}", "session": "", "site": site, "group": group,
                                 "level": lev, "side": side, "segment": "ganglion", "parameter": "adc",
                                 "unit": "mm^2/s", "mean": float(v)})
    return rows
