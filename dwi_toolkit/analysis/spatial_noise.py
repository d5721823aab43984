"""Spatial noise correlation: estimate it, and the effective number of independent voxels.

Reconstructed DWI voxels are not independent: zero-filling/interpolation (in-plane matrix often
doubled), partial Fourier and k-space filtering correlate the noise of neighbouring voxels over
2–3 voxels. An ROI mean over ``n`` correlated voxels then varies more than ``σ²/n`` and an
interval that treats voxels as independent is too narrow.

The correlation is modelled as Gaussian and separable along the voxel axes, the model of SPM's
smoothness estimation and AFNI's ``3dFWHMx`` (Forman et al. 1995, Magn Reson Med 33:636; Kiebel
et al. 1999, NeuroImage 10:756)::

    ρ(d) = exp(−2 ln 2 · Σ_k d_k² / f_k²)

with ``d_k`` the distance along voxel axis ``k`` and ``f_k`` the FWHM (in voxels) of the Gaussian
kernel that would turn white noise into the observed noise. ``f_k = 0`` is independent noise;
the lag-1 correlation is ``ρ₁ = exp(−2 ln 2 / f²)`` (so ``f = sqrt(−2 ln 2 / ln ρ₁)``, Forman's
formula).

Three sources of the FWHM:

- :func:`estimate_from_rois` — a centring-corrected moment estimate from the ROI voxel values
  and their voxel positions, each ROI with its own mean (what :func:`~dwi_toolkit.analysis.compare.
  compare_sides` does by default: the estimate comes from the data being compared), with its
  sampling variance;
- :func:`estimate_fwhm` — Forman's per-axis estimator on a residual or background image (e.g. the
  fit residuals of every b-volume, AFNI ``3dFWHMx -classic``);
- :func:`fwhm_from_matrix` — from the acquisition and reconstruction matrices (BIDS
  ``AcquisitionMatrixPE``/``ReconMatrixPE``): zero-filling by a factor ``r`` gives sinc-correlated
  noise with ``ρ₁ = sinc(1/r)``, turned into the Gaussian FWHM with the same ``ρ₁``.

:func:`roi_variance` turns an FWHM into the variance of an ROI mean for the ROI's exact voxel
layout: ``Var(mean) = σ² · 1ᵀR1 / n²``, the effective number of independent voxels
``n_eff = n² / 1ᵀR1``, ``σ²`` estimated without bias from the within-ROI sum of squares
(``E[SS] = σ² (n − 1ᵀR1/n)``) and its degrees of freedom by Satterthwaite's approximation
(``df = tr(CR)² / tr((CR)²)``, ``C`` the centring matrix), lowered for the sampling variance of an
estimated FWHM (``RoiVariance.df_total``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..errors import InputDataError

__all__ = [
    "NoiseCorrelation",
    "RoiVariance",
    "estimate_from_rois",
    "estimate_fwhm",
    "fwhm_from_matrix",
    "noise_from_metadata",
    "roi_variance",
]

logger = logging.getLogger(__name__)

_TWO_LN2 = 2.0 * math.log(2.0)
#: Largest lag-1 correlation searched by the moment estimate (FWHM ≈ 6.8 voxels).
_RHO_MAX = 0.97
#: ROI voxels used per ROI by the moment estimate (larger ROIs are truncated in storage order).
_MAX_VOXELS = 400


def _fwhm_from_rho(rho: float) -> float:
    """Gaussian FWHM (voxels) with lag-1 correlation `rho` (Forman et al. 1995)."""
    if not math.isfinite(rho) or rho <= 1e-12:
        return 0.0
    rho = min(rho, 0.999999)
    return math.sqrt(-_TWO_LN2 / math.log(rho))


def _rho_from_fwhm(f: float) -> float:
    return 0.0 if f <= 1e-6 else math.exp(-_TWO_LN2 / (f * f))


@dataclass(frozen=True)
class NoiseCorrelation:
    """Spatial noise correlation as a Gaussian FWHM per voxel axis.

    Attributes
    ----------
    fwhm_vox : tuple of 3 float
        FWHM along voxel axes i, j, k, in voxels (0 = independent; NaN = unknown).
    voxel_size_mm : tuple of 3 float
        Voxel size along i, j, k in mm (for :attr:`fwhm_mm`).
    source : str
        ``"roi-moments"``, ``"residual-forman"``, ``"matrix"``, ``"given"`` or ``"unknown"``.
    n_values : int
        Voxel values the estimate rests on (0 when not estimated from data).
    fwhm_var_vox : tuple of 3 float
        Sampling variance of each FWHM (voxels²); 0 for a given (known) FWHM, NaN when it could
        not be assessed. :func:`roi_variance` carries it into the degrees of freedom.

    Examples
    --------
    >>> nc = NoiseCorrelation.from_fwhm((2.0, 2.0, 0.0), (0.8, 0.8, 4.0))
    >>> nc.fwhm_mm, round(nc.lag1_correlation[0], 3)
    ((1.6, 1.6, 0.0), 0.707)
    """

    fwhm_vox: tuple[float, float, float]
    voxel_size_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    source: str = "given"
    n_values: int = 0
    fwhm_var_vox: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def from_fwhm(cls, fwhm_vox: Sequence[float], voxel_size_mm: Sequence[float] = (1.0, 1.0, 1.0),
                  source: str = "given") -> NoiseCorrelation:
        """From FWHM values in voxels (one per axis i, j, k) and the voxel size in mm.

        Examples
        --------
        >>> NoiseCorrelation.from_fwhm([1.5, 1.5, 0]).fwhm_vox
        (1.5, 1.5, 0.0)
        """
        f = tuple(float(x) for x in fwhm_vox)
        v = tuple(float(x) for x in voxel_size_mm)
        if len(f) != 3 or len(v) != 3 or any(x < 0 for x in f if math.isfinite(x)):
            raise InputDataError(f"fwhm_vox and voxel_size_mm need 3 non-negative values, got {f}, {v}.")
        return cls(f, v, source)  # type: ignore[arg-type]

    @classmethod
    def independent(cls) -> NoiseCorrelation:
        """Independent voxels (FWHM 0 on every axis): the classical assumption, stated.

        Examples
        --------
        >>> NoiseCorrelation.independent().fwhm_vox
        (0.0, 0.0, 0.0)
        """
        return cls((0.0, 0.0, 0.0), source="given")

    @property
    def known(self) -> bool:
        """True when every axis has a finite FWHM."""
        return all(math.isfinite(x) for x in self.fwhm_vox)

    @property
    def fwhm_mm(self) -> tuple[float, float, float]:
        """FWHM per axis in mm."""
        return tuple(round(f * v, 6) for f, v in zip(self.fwhm_vox, self.voxel_size_mm))  # type: ignore[return-value]

    @property
    def lag1_correlation(self) -> tuple[float, float, float]:
        """Correlation of neighbouring voxels along each axis."""
        return tuple(_rho_from_fwhm(f) if math.isfinite(f) else math.nan for f in self.fwhm_vox)  # type: ignore[return-value]


@dataclass(frozen=True)
class RoiVariance:
    """Mean, its variance and the effective voxel count of one ROI (see :func:`roi_variance`).

    Examples
    --------
    >>> rv = roi_variance(np.array([1.0, 2.0, 3.0, 4.0]), np.zeros((4, 3)) + np.arange(4)[:, None] * [1, 0, 0],
    ...                   NoiseCorrelation.independent())
    >>> rv.n_eff, round(rv.se ** 2, 4), rv.df
    (4.0, 0.4167, 3.0)
    """

    mean: float
    se: float
    n: int
    n_eff: float
    df: float
    sd: float
    var_grad: tuple[float, float, float] = (0.0, 0.0, 0.0)
    fwhm_var: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def df_total(self) -> float:
        """Degrees of freedom of ``se²`` counting the FWHM's sampling variance too.

        ``Var(se²) ≈ 2 se⁴/df + Σ_k (∂se²/∂f_k)² Var(f_k)`` and ``df = 2 se⁴ / Var(se²)``
        (Satterthwaite 1946).
        """
        extra = sum(g * g * v for g, v in zip(self.var_grad, self.fwhm_var) if math.isfinite(v))
        if not (self.df > 0 and math.isfinite(self.se)) or extra <= 0:
            return self.df
        return 2.0 * self.se ** 4 / (2.0 * self.se ** 4 / self.df + extra)


def _sq_dists(coords: NDArray) -> NDArray:
    """(3, n, n) squared voxel distances per axis."""
    c = np.asarray(coords, dtype=float)
    return (c.T[:, :, None] - c.T[:, None, :]) ** 2


def _corr(d2: NDArray, fwhm: Sequence[float]) -> NDArray:
    expo = np.zeros(d2.shape[1:])
    for k, f in enumerate(fwhm):
        if f <= 1e-6:
            expo = expo + np.where(d2[k] > 0, np.inf, 0.0)
        else:
            expo = expo + _TWO_LN2 * d2[k] / (f * f)
    return np.exp(-expo)


def roi_variance(values: ArrayLike, coords: ArrayLike | None, noise: NoiseCorrelation) -> RoiVariance:
    """Variance of an ROI mean under spatially correlated noise.

    Parameters
    ----------
    values : array_like of shape (n,)
        Voxel values (any unit; the result is in the same unit).
    coords : array_like of shape (n, 3) or None
        Voxel indices (i, j, k) of the values. None, or an unknown FWHM, treats voxels as
        independent (``n_eff = n``).
    noise : NoiseCorrelation
        The correlation model.

    Returns
    -------
    RoiVariance
        ``se`` (standard error of the mean, in the values' unit), ``n_eff`` = n²/1ᵀR1, ``df``
        (Satterthwaite degrees of freedom of the variance estimate given the FWHM), ``sd`` (σ,
        bias-corrected), ``var_grad`` (∂se²/∂FWHM per axis, unit² per voxel) and ``fwhm_var``
        (the model's ``fwhm_var_vox``), from which ``df_total`` also counts the uncertainty of an
        estimated FWHM.

    Examples
    --------
    Four voxels in a row with FWHM 2 voxels (ρ₁ = 0.71) carry about two voxels' worth of
    information:

    >>> rv = roi_variance([1.0, 1.2, 0.9, 1.1], [[i, 0, 0] for i in range(4)],
    ...                   NoiseCorrelation.from_fwhm([2, 0, 0]))
    >>> round(rv.n_eff, 2), round(rv.df, 2)
    (1.71, 1.75)
    """
    v = np.asarray(values, dtype=float).reshape(-1)
    n = v.size
    if n == 0:
        return RoiVariance(math.nan, math.nan, 0, 0.0, 0.0, math.nan)
    mean = float(v.mean())
    ss = float(np.sum((v - mean) ** 2))
    d2 = None
    if coords is None or not noise.known or n == 1:
        q, tr_m2 = float(n), float(n - 1)
    else:
        d2 = _sq_dists(np.asarray(coords, dtype=float))
        r = _corr(d2, noise.fwhm_vox)
        q = float(r.sum())
        m = r - r.mean(axis=0, keepdims=True) - r.mean(axis=1, keepdims=True) + r.mean()
        tr_m2 = float(np.sum(m * m))
    tr_m = n - q / n
    if n < 2 or tr_m <= 1e-9:
        return RoiVariance(mean, math.nan, n, n * n / q, 0.0, math.nan)
    sigma2 = ss / tr_m
    df = tr_m * tr_m / tr_m2 if tr_m2 > 0 else 0.0
    se2 = sigma2 * q / (n * n)
    grad = (0.0, 0.0, 0.0) if d2 is None else _se2_gradient(ss, n, d2, noise)
    return RoiVariance(mean, math.sqrt(se2), n, n * n / q, df, math.sqrt(sigma2), grad,
                       noise.fwhm_var_vox if d2 is not None else (0.0, 0.0, 0.0))


def _se2_gradient(ss: float, n: int, d2: NDArray, noise: NoiseCorrelation) -> tuple[float, float, float]:
    """∂se²/∂f_k of ``se² = SS / (n (n²/1ᵀR1 − 1))`` per axis: a secant over ± one SD of the
    FWHM estimate (the FWHM → ρ map is flat near 0, where a tangent would read 0)."""
    def se2(f: Sequence[float]) -> float:
        q = float(_corr(d2, f).sum())
        return ss / (n * (n * n / q - 1.0)) if n * n / q > 1.0 + 1e-9 else math.inf

    out = [0.0, 0.0, 0.0]
    for k, (f, v) in enumerate(zip(noise.fwhm_vox, noise.fwhm_var_vox)):
        if not (math.isfinite(v) and v > 0) or not np.any(d2[k] > 0):
            continue
        step = max(math.sqrt(v), 0.05)
        lo, hi = list(noise.fwhm_vox), list(noise.fwhm_vox)
        lo[k], hi[k] = max(f - step, 0.0), f + step
        a, b = se2(lo), se2(hi)
        out[k] = (b - a) / (hi[k] - lo[k]) if math.isfinite(a) and math.isfinite(b) else 0.0
    return tuple(out)  # type: ignore[return-value]


@dataclass
class _Group:
    """One ROI for the moment estimate, reduced to its displacement classes.

    ``d2`` holds the distinct squared displacements (per axis) over all ordered voxel pairs, ``count``
    how many pairs have each, ``weight[a]`` the same pairs weighted by how many neighbour pairs
    along axis ``a`` their first voxel belongs to; ``n_pairs[a]`` counts the neighbour pairs and
    ``obs[a]`` sums the products of the centred values over them. Every model quantity the
    estimate needs is a sum over these classes (a few hundred), not over all n² pairs.
    """

    n: int
    ss: float
    d2: NDArray
    count: NDArray
    weight: NDArray
    n_pairs: NDArray
    obs: NDArray

    @classmethod
    def make(cls, values: NDArray, coords: NDArray, scale: float = 1.0) -> _Group:
        sq = _sq_dists(coords)
        n = values.size
        e = (values - values.mean()) / scale
        nbr = [(sq[a] == 1.0) & (sq[(a + 1) % 3] == 0) & (sq[(a + 2) % 3] == 0) for a in range(3)]
        flat = np.rint(sq.reshape(3, -1)).astype(np.int64)
        base = int(flat.max()) + 1
        keys, inverse = np.unique((flat[0] * base + flat[1]) * base + flat[2], return_inverse=True)
        d2 = np.stack([keys // (base * base), (keys // base) % base, keys % base]).astype(float)
        count = np.bincount(inverse, minlength=keys.size).astype(float)
        rows = np.repeat(np.arange(n), n)
        weight = np.stack([np.bincount(inverse, weights=m.sum(axis=1)[rows], minlength=keys.size) for m in nbr])
        n_pairs = np.array([m.sum() / 2.0 for m in nbr])
        obs = np.array([float(e @ m @ e) / 2.0 for m in nbr])
        return cls(n, float(e @ e), d2, count, weight, n_pairs, obs)

    def expected(self, log_rho: NDArray) -> NDArray:
        """The neighbour-pair sums per axis predicted from this ROI's sum of squares by the model.

        With ``C`` the centring matrix, ``E[(Cy)(Cy)ᵀ] = σ² CRC`` and ``E[SS] = σ² tr(CRC)``, so
        the neighbour pairs along axis ``a`` sum to ``SS · Σ_pairs (CRC)_pq / tr(CRC)`` in
        expectation, with ``Σ_pairs (CRC)_pq = P_a ρ_a − Σ_pairs (r̄_p + r̄_q) + P_a 1ᵀR1/n²`` and
        ``tr(CRC) = n − 1ᵀR1/n`` (``r̄`` the row means of ``R``, ``P_a`` the number of pairs).
        """
        r = np.exp(log_rho @ self.d2)
        total = float(self.count @ r)
        rho = np.exp(log_rho)
        crc_pairs = self.n_pairs * rho - (self.weight @ r) / self.n + self.n_pairs * total / self.n ** 2
        return self.ss * crc_pairs / (self.n - total / self.n)


def _log_rho(rhos: Sequence[float]) -> NDArray:
    return np.log(np.clip(np.asarray(rhos, dtype=float), 1e-12, None))


def _moment_rho(groups: list[_Group], axes: list[int], max_sweeps: int = 50) -> tuple[list[float], list[float]]:
    """Centring-corrected moment estimate of the lag-1 correlation per axis, and its variance.

    Per axis ``a`` the sum ``T_a`` of products of the ROI-centred values over the neighbour pairs
    along ``a`` is matched to its prediction from each ROI's sum of squares under the model
    (:meth:`_Group.expected`), one axis at a time with the others held, sweeping until the
    estimates settle (the axes interact through the centring in small ROIs). The
    variance of each estimate is the sandwich ``G/(G−1) · Σ_g (T_g − M_g)² / (Σ_g ∂M_g/∂ρ)²`` over
    the ``G`` ROIs (independent samples of the noise; ``G/(G−1)`` the usual small-sample factor).

    Examples
    --------
    Two 3-voxel rows whose values alternate: anti-correlated neighbours, so ρ = 0:

    >>> c = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], float)
    >>> g = [_Group.make(np.array([1.0, -1.0, 1.0]), c), _Group.make(np.array([-1.0, 1.0, -1.0]), c)]
    >>> _moment_rho(g, [0])[0]
    [0.0, 0.0, 0.0]
    """
    from scipy.optimize import brentq

    rho = [0.0, 0.0, 0.0]
    var = [0.0, 0.0, 0.0]
    obs = sum(g.obs for g in groups)
    for _ in range(max_sweeps if len(axes) > 1 else 1):
        before = list(rho)
        for a in axes:
            def gap(x: float, a: int = a) -> float:
                lr = _log_rho([x if k == a else rho[k] for k in range(3)])
                return float(sum(g.expected(lr)[a] for g in groups) - obs[a])

            lo, hi = gap(0.0), gap(_RHO_MAX)
            rho[a] = 0.0 if lo >= 0 else _RHO_MAX if hi <= 0 else float(brentq(gap, 0.0, _RHO_MAX, xtol=1e-5))
        if max(abs(x - y) for x, y in zip(rho, before)) < 1e-4:
            break
    g_n = len(groups)
    lr = _log_rho(rho)
    m = np.array([g.expected(lr) for g in groups])
    resid = np.sum((np.array([g.obs for g in groups]) - m) ** 2, axis=0)
    for a in axes:
        h = 1e-3 if rho[a] < _RHO_MAX - 1e-3 else -1e-3
        lr_h = _log_rho([rho[k] + (h if k == a else 0.0) for k in range(3)])
        slope = float(sum(g.expected(lr_h)[a] for g in groups) - m[:, a].sum())
        var[a] = g_n / (g_n - 1) * float(resid[a]) * h * h / (slope * slope) if slope != 0 and g_n > 1 else math.nan
    return rho, var


def estimate_from_rois(rois: Sequence[tuple[ArrayLike, ArrayLike]],
                       voxel_size_mm: Sequence[float] = (1.0, 1.0, 1.0)) -> NoiseCorrelation:
    """Moment estimate of the noise FWHM per voxel axis from ROI values and their positions.

    Every ROI keeps its own mean (so true side differences do not bias the estimate) and its own
    variance; the FWHM is shared. Axes along which no ROI has two voxels get FWHM 0 (they do not
    affect any ROI's effective size).

    Parameters
    ----------
    rois : sequence of (values (n,), coords (n, 3)) pairs
        Voxel values and voxel indices of each ROI; ROIs with fewer than 3 voxels are skipped.
    voxel_size_mm : sequence of 3 float
        Voxel size along i, j, k in mm.

    Returns
    -------
    NoiseCorrelation
        ``source="roi-moments"``; FWHM NaN when there are no usable ROIs; ``fwhm_var_vox`` the
        sampling variance of each FWHM (voxels², sandwich over the ROIs; used in the degrees of
        freedom of :func:`roi_variance`).

    Notes
    -----
    The estimating equation, per axis: the sum of products of the ROI-centred values over the
    neighbour pairs along that axis equals its expectation under the Gaussian model *with the
    same centring*, ``Σ_g SS_g Σ_pairs (CRC)_pq / tr(CRC)`` (``C`` the centring matrix, ``SS_g``
    the ROI's sum of squares; ROIs weighted by their variance). Matching the expectation of the
    centred statistic removes the low bias of a plain neighbour correlation (each ROI's own mean
    soaks up part of the correlated noise, about ``1/n_eff`` of ``ρ``), and matching sums (not
    per-ROI ratios) avoids the ratio bias of ROIs standardised by their own variance. A Gaussian
    likelihood (REML) is not used: the ADC of a low-SNR scan is a nonlinear function of Gaussian
    noise, whose correlation mixes ``ρ`` with narrower components (Hermite expansion, ``ρᵏ``),
    and the likelihood, dominated by short distances, then reads the FWHM too small for the
    variance of an ROI mean (about 2.7 instead of 3.0 voxels at SNR 10; ``docs/report.md``
    §2.2a).
    Tissue structure inside an ROI (partial volume, gradients) is read as correlated noise, so
    on real data the estimate errs towards wider intervals. The search is bounded at a lag-1
    correlation of 0.97 (FWHM ≈ 6.8 voxels).

    Examples
    --------
    >>> from scipy.ndimage import gaussian_filter
    >>> rng = np.random.default_rng(0)
    >>> field = gaussian_filter(rng.normal(size=(60, 60, 4)), sigma=(2.5 / 2.3548, 2.5 / 2.3548, 0))
    >>> rois = [(field[x:x + 6, y:y + 6, :].ravel(), np.argwhere(np.ones((6, 6, 4), bool)))
    ...         for x in range(0, 54, 9) for y in range(0, 54, 9)]
    >>> est = estimate_from_rois(rois)
    >>> [round(f, 1) for f in est.fwhm_vox[:2]], round(est.lag1_correlation[2], 2)   # truth 2.5, 2.5; 0
    ([2.4, 2.5], 0.01)
    """
    kept = []
    for values, coords in rois:
        y = np.asarray(values, dtype=float).reshape(-1)[:_MAX_VOXELS]
        c = np.asarray(coords, dtype=float).reshape(-1, 3)[:_MAX_VOXELS]
        ok = np.isfinite(y)
        if ok.sum() >= 3 and np.std(y[ok]) > 0:
            kept.append((y[ok], c[ok]))
    scale = float(np.sqrt(np.mean([np.var(y) for y, _ in kept]))) if kept else 1.0
    groups = [_Group.make(y, c, scale) for y, c in kept]
    n_values = sum(y.size for y, _ in kept)
    vs = tuple(float(x) for x in voxel_size_mm)
    if not groups:
        return NoiseCorrelation((math.nan,) * 3, vs, "unknown", 0)  # type: ignore[arg-type]
    axes = [a for a in range(3) if any(g.n_pairs[a] > 0 for g in groups)]
    fwhm = [0.0, 0.0, 0.0]
    fvar = [0.0, 0.0, 0.0]
    if axes:
        rho, rvar = _moment_rho(groups, axes)
        for a in axes:
            fwhm[a] = round(_fwhm_from_rho(rho[a]), 4)
            fvar[a] = float(_fwhm_var(rho[a], rvar[a]))
    logger.debug("ROI moment noise FWHM %s voxels (variance %s) from %d values in %d ROIs",
                 fwhm, fvar, n_values, len(groups))
    return NoiseCorrelation(tuple(fwhm), vs, "roi-moments", n_values, tuple(fvar))  # type: ignore[arg-type]


def _fwhm_var(rho: float, rho_var: float) -> float:
    """Delta-method variance of the FWHM from that of ρ₁ (a one-sided step where ρ₁ is 0); NaN
    when ρ₁'s variance is unknown (a single ROI)."""
    if not math.isfinite(rho_var):
        return math.nan
    sd = math.sqrt(rho_var)
    lo, hi = max(rho - sd, 0.0), min(rho + sd, _RHO_MAX)
    if hi <= lo:
        return 0.0
    return ((_fwhm_from_rho(hi) - _fwhm_from_rho(lo)) / (hi - lo)) ** 2 * rho_var


def estimate_fwhm(image: ArrayLike, mask: ArrayLike | None = None,
                  voxel_size_mm: Sequence[float] = (1.0, 1.0, 1.0)) -> NoiseCorrelation:
    """Forman's per-axis FWHM of a noise image (residuals or background), AFNI ``3dFWHMx -classic``.

    ``f_k = sqrt(−2 ln 2 / ln(1 − var(Δ_k) / (2 var)))`` with ``Δ_k`` the difference of
    neighbouring voxels along axis ``k`` (both inside the mask), pooled over volumes
    (Forman et al. 1995, Magn Reson Med 33:636).

    Parameters
    ----------
    image : array_like of shape (X, Y, Z) or (X, Y, Z, N)
        Zero-mean noise: fit residuals (one volume per DWI volume) or a signal-free background.
        Each volume is de-meaned inside the mask.
    mask : array_like of bool, shape (X, Y, Z), optional
        Voxels to use (default all finite voxels).
    voxel_size_mm : sequence of 3 float

    Returns
    -------
    NoiseCorrelation
        ``source="residual-forman"``.

    Examples
    --------
    >>> from scipy.ndimage import gaussian_filter
    >>> rng = np.random.default_rng(1)
    >>> noise = gaussian_filter(rng.normal(size=(80, 80, 6)), sigma=(1.5 / 2.3548, 1.5 / 2.3548, 0))
    >>> [round(f, 1) for f in estimate_fwhm(noise).fwhm_vox]
    [1.4, 1.4, 0.0]
    """
    img = np.asarray(image, dtype=float)
    if img.ndim == 3:
        img = img[..., None]
    if img.ndim != 4:
        raise InputDataError(f"estimate_fwhm needs a 3-D or 4-D image, got shape {img.shape}.")
    m = np.ones(img.shape[:3], bool) if mask is None else np.asarray(mask, bool)
    if m.shape != img.shape[:3]:
        raise InputDataError(f"mask shape {m.shape} differs from the image shape {img.shape[:3]}.")
    m = m & np.all(np.isfinite(img), axis=3)
    if m.sum() < 10:
        raise InputDataError("estimate_fwhm needs at least 10 finite voxels in the mask.")
    img = np.where(m[..., None], img - np.nanmean(img[m], axis=0), 0.0)
    var = float(np.mean(img[m] ** 2)) * m.sum() / max(m.sum() - 1, 1)
    fwhm = []
    for k in range(3):
        sl0 = [slice(None)] * 3
        sl1 = [slice(None)] * 3
        sl0[k], sl1[k] = slice(0, -1), slice(1, None)
        both = m[tuple(sl0)] & m[tuple(sl1)]
        if not both.any():
            fwhm.append(0.0)
            continue
        diff = (img[tuple(sl1)] - img[tuple(sl0)])[both]
        fwhm.append(round(_fwhm_from_rho(1.0 - float(np.mean(diff ** 2)) / (2.0 * var)), 4))
    return NoiseCorrelation(tuple(fwhm), tuple(float(v) for v in voxel_size_mm),  # type: ignore[arg-type]
                            "residual-forman", int(m.sum() * img.shape[3]))


def fwhm_from_matrix(acquisition_matrix: float, recon_matrix: float) -> float:
    """Gaussian-equivalent noise FWHM (reconstructed voxels) of zero-filled reconstruction.

    Zero-filling from ``acquisition_matrix`` to ``recon_matrix`` samples along one axis gives
    noise correlated as ``sinc(d · acq / recon)``; the Gaussian FWHM with the same neighbour
    correlation ``ρ₁ = sinc(acq / recon)`` is returned (0 without zero-filling). Partial Fourier
    and k-space filters add correlation this does not know about: prefer a data estimate.

    Parameters
    ----------
    acquisition_matrix, recon_matrix : float
        Acquired and reconstructed samples along the axis (BIDS ``AcquisitionMatrixPE`` and
        ``ReconMatrixPE`` for the phase-encoding axis).

    Returns
    -------
    float
        FWHM in reconstructed voxels.

    Examples
    --------
    In-plane resolution doubled by zero-filling (acquired 80, reconstructed 160):

    >>> round(fwhm_from_matrix(80, 160), 2)
    1.75
    >>> fwhm_from_matrix(160, 160)
    0.0
    """
    a, r = float(acquisition_matrix), float(recon_matrix)
    if not (a > 0 and r > 0):
        raise InputDataError(f"matrix sizes must be positive, got {acquisition_matrix!r}, {recon_matrix!r}.")
    if r <= a:
        return 0.0
    x = a / r
    return round(_fwhm_from_rho(math.sin(math.pi * x) / (math.pi * x)), 4)


def noise_from_metadata(meta: Mapping[str, Any],
                        voxel_size_mm: Sequence[float] = (1.0, 1.0, 1.0)) -> NoiseCorrelation | None:
    """Noise FWHM along the phase-encoding axis from BIDS sidecar keys, or None.

    Uses ``AcquisitionMatrixPE``, ``ReconMatrixPE`` and ``PhaseEncodingDirection`` (``i``/``j``/
    ``k``, sign ignored); the other axes get FWHM 0 (unknown from metadata; state it).

    Examples
    --------
    >>> nc = noise_from_metadata({"AcquisitionMatrixPE": 96, "ReconMatrixPE": 192,
    ...                           "PhaseEncodingDirection": "j-"}, (0.9, 0.9, 4.0))
    >>> nc.fwhm_vox[1], nc.source
    (1.7521, 'matrix')
    >>> noise_from_metadata({}) is None
    True
    """
    acq, rec = meta.get("AcquisitionMatrixPE"), meta.get("ReconMatrixPE")
    ped = str(meta.get("PhaseEncodingDirection", "") or "")[:1]
    if acq is None or rec is None or ped not in ("i", "j", "k"):
        return None
    fwhm = [0.0, 0.0, 0.0]
    fwhm["ijk".index(ped)] = fwhm_from_matrix(acq, rec)
    return NoiseCorrelation(tuple(fwhm), tuple(float(v) for v in voxel_size_mm), "matrix", 0)  # type: ignore[arg-type]
