"""Mono-exponential ADC fits, vectorised over voxels.

Model (dwi_toolkit References §1.1): ``S(b) = S0 · exp(−b · ADC)`` with b in s/mm² and ADC in mm²/s.

By default the fit runs on the **trace** signal: volumes are grouped into b-value shells and each
shell is reduced to the geometric mean of its directions (what scanners store as TRACEW), so the
trace ADC equals the mean of the directional ADCs. Shells are found from the b-values themselves
(:func:`dwi_toolkit.core.gradients.find_shells` tolerances, not the b0 threshold, so b=50 never
merges with b=0); each shell's b-value is the mean of its members' b-values (Philips' 0–0.004
"b=0" volumes give 0.002).

Methods
-------
``"ols"``
    Log-linear least squares on ``ln S``.
``"wls"``
    Log-linear weighted least squares with weights ``n_k · Ŝ_k²`` (``n_k`` volumes averaged in
    shell *k*, ``Ŝ`` the signal predicted by the previous iteration; the variance of ``ln S`` is
    about ``σ²/S²``), iterated `wls_iterations` times starting from OLS.
``"nlls"``
    Nonlinear least squares on the signal itself (weights ``n_k``) with the bound
    ``ADC >= 0``, started from WLS: S0 is projected out (variable projection) and the ADC found
    by safeguarded Newton steps with analytic derivatives, all voxels at once.

With two shells every method reduces to the closed form ``ADC = ln(S1/S2)/(b2 − b1)``.

Per-voxel failure is data, not an exception: the ``status`` map holds

==== =================================================================
code meaning
==== =================================================================
0    fitted
1    outside the mask (not fitted)
2    invalid signal: a used sample is zero, negative, NaN or infinite
3    negative ADC estimate (physically impossible; ADC set to NaN)
4    nonlinear fit did not converge
==== =================================================================

ADC, S0 and R² are NaN wherever ``status != 0``.

The work is done in chunks of voxels so memory stays bounded, in float32 for integer or float32
data and float64 for float64 data (NLLS always iterates in float64). The logarithm dominates the
cost, so shells are reduced by multiplying up to four samples before each ``log`` (the directions
of a shell share their weight, so ``Σ ln S = ln Π S``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..core.gradients import DEFAULT_B0_THRESHOLD, find_shells
from ..core.image import DWISeries, ParameterMap
from ..errors import FitError, InputDataError
from ..units import DIFFUSIVITY_UNIT
from ._chunks import check_chunk_size, check_memory, put, take, voxel_slabs

__all__ = [
    "STATUS_CODES",
    "METHODS",
    "AdcModel",
    "ADCFit",
    "fit_adc",
    "adc_loglinear",
    "adc_nlls",
    "adc_rician",
]

logger = logging.getLogger(__name__)

#: Per-voxel status codes of ADC fits.
STATUS_CODES = {
    0: "fitted",
    1: "outside mask",
    2: "invalid signal (zero, negative or non-finite sample)",
    3: "negative ADC estimate",
    4: "nonlinear fit did not converge",
}
OK, MASKED, INVALID, NEGATIVE, NOT_CONVERGED = 0, 1, 2, 3, 4

METHODS = ("ols", "wls", "nlls")
_GROUP = 4  # samples multiplied before one log: float32-safe for signals in [1e-9, 1e9]
DEFAULT_CHUNK = 16384


# --------------------------------------------------------------------------------------------
# Pure functions on arrays
# --------------------------------------------------------------------------------------------
def _shell_log_means(
    block: NDArray, groups: Sequence[Sequence[int]], dtype
) -> tuple[NDArray, NDArray[np.bool_]]:
    """Mean log-signal per shell for a (N, V) block; also a mask of voxels with valid samples."""
    used = sorted({i for g in groups for i in g})
    sub = block if used == list(range(block.shape[0])) else block[used]
    # NaN propagates through min (NaN > 0 is False); +inf is caught after the fit as non-finite
    ok = sub.min(axis=0) > 0
    y = np.empty((len(groups), block.shape[1]), dtype=dtype)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for k, g in enumerate(groups):
            acc = None
            for start in range(0, len(g), _GROUP):
                part = g[start : start + _GROUP]
                prod = block[part[0]].astype(dtype, copy=True)
                for i in part[1:]:
                    prod *= block[i]
                lg = np.log(prod)
                if acc is None:
                    acc = lg
                else:
                    acc += lg
            if len(g) > 1:
                acc *= dtype(1.0 / len(g))
            y[k] = acc
    return y, ok


def adc_loglinear(
    y: NDArray,
    b: ArrayLike,
    *,
    n: ArrayLike | None = None,
    method: Literal["ols", "wls"] = "ols",
    wls_iterations: int = 2,
) -> tuple[NDArray, NDArray, NDArray]:
    """Log-linear mono-exponential fit of shell log-signals.

    Parameters
    ----------
    y : ndarray of shape (M, V)
        Mean log-signal ``ln S`` of M shells for V voxels.
    b : array_like of shape (M,)
        Shell b-values in s/mm².
    n : array_like of shape (M,), optional
        Volumes averaged in each shell (WLS weights ``n · S²``); ones by default.
    method : {"ols", "wls"}
        Ordinary or weighted least squares.
    wls_iterations : int, optional
        WLS re-weighting passes after the initial OLS.

    Returns
    -------
    ln_s0 : ndarray of shape (V,)
    adc : ndarray of shape (V,)
        mm²/s.
    rsquared : ndarray of shape (V,)
        Coefficient of determination of the (weighted) fit of ``ln S``; 1 for two shells.

    Examples
    --------
    >>> b = np.array([0.0, 500.0, 1000.0])
    >>> y = np.log(1000.0 * np.exp(-b * 1.1e-3))[:, None]
    >>> ln_s0, adc, r2 = adc_loglinear(y, b)
    >>> round(float(adc[0]) * 1e3, 6), round(float(np.exp(ln_s0[0])), 3)
    (1.1, 1000.0)
    """
    y = np.asarray(y)
    bb = np.asarray(b, dtype=np.float64)
    dtype = y.dtype if y.dtype in (np.float32, np.float64) else np.float64
    m = bb.size
    if y.shape[0] != m:
        raise InputDataError(f"y has {y.shape[0]} shells but b has {m} values.")
    if m < 2:
        raise FitError("an ADC fit needs at least two distinct b-values.")
    bc = bb - bb.mean()
    sbb = float((bc**2).sum())
    if sbb <= 0:
        raise FitError("an ADC fit needs at least two distinct b-values.")
    # OLS: slope = Σ bc·y / Σ bc² ; intercept = mean(y) − slope·mean(b)
    coef_slope = (bc / sbb).astype(dtype)
    coef_icpt = (np.full(m, 1.0 / m) - bb.mean() * bc / sbb).astype(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        slope = coef_slope @ y
        icpt = coef_icpt @ y
    if method == "wls" and m > 2:
        nn = np.ones(m) if n is None else np.asarray(n, dtype=np.float64)
        bcol = bb.astype(dtype)[:, None]
        for _ in range(max(1, int(wls_iterations))):
            with np.errstate(over="ignore", invalid="ignore"):
                w = np.exp(2.0 * (icpt[None, :] + slope[None, :] * bcol))
                w *= nn.astype(dtype)[:, None]
                sw = w.sum(axis=0)
                swb = (w * bcol).sum(axis=0)
                swbb = (w * (bcol * bcol)).sum(axis=0)
                swy = (w * y).sum(axis=0)
                swby = (w * (bcol * y)).sum(axis=0)
                det = sw * swbb - swb * swb
                slope = (sw * swby - swb * swy) / det
                icpt = (swy - slope * swb) / sw
    elif method not in ("ols", "wls"):
        raise FitError(f"unknown log-linear method {method!r}; use 'ols' or 'wls'.")
    # R² of the fit of ln S (weighted for WLS)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if m == 2:
            r2 = np.ones_like(slope)
        elif method == "wls":
            pred = icpt[None, :] + slope[None, :] * bb.astype(dtype)[:, None]
            nn = np.ones(m) if n is None else np.asarray(n, dtype=np.float64)
            w = np.exp(2.0 * pred) * nn.astype(dtype)[:, None]
            ybar = (w * y).sum(axis=0) / w.sum(axis=0)
            r2 = 1 - (w * (y - pred) ** 2).sum(axis=0) / (w * (y - ybar) ** 2).sum(axis=0)
        else:
            # OLS: R² = SS_reg / SS_tot with SS_reg = slope² Σ(b − b̄)² and
            # SS_tot = Σ y² − M ȳ² (one pass over y instead of forming residuals)
            ybar = y.mean(axis=0)
            ss_tot = np.einsum("mv,mv->v", y, y) - m * ybar * ybar
            r2 = slope * slope * np.asarray(sbb, dtype=dtype) / ss_tot
    return icpt, -slope, r2


def adc_nlls(
    signal: NDArray,
    b: ArrayLike,
    *,
    n: ArrayLike | None = None,
    s0_init: NDArray | None = None,
    adc_init: NDArray | None = None,
    max_iter: int = 50,
    xtol: float = 1e-10,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Nonlinear least-squares mono-exponential fit, vectorised over voxels.

    Minimises ``Σ_k n_k (S_k − S0·exp(−b_k·ADC))²`` per voxel with ``ADC >= 0``. The linear
    parameter is projected out (variable projection: for a given ADC the optimal S0 is
    ``Σ n S e / Σ n e²`` with ``e = exp(−b·ADC)``), and the remaining one-dimensional cost
    ``f(ADC) = Σ n S² − (Σ n S e)² / Σ n e²`` is minimised by safeguarded Newton steps with
    analytic first and second derivatives, for all voxels at once. The minimiser is the same as a
    joint (S0, ADC) least-squares fit such as ``scipy.optimize.curve_fit``.

    Parameters
    ----------
    signal : ndarray of shape (M, V)
        Signal of M shells for V voxels (positive).
    b : array_like of shape (M,)
        b-values in s/mm².
    n : array_like of shape (M,), optional
        Weights (volumes per shell); ones by default.
    s0_init, adc_init : ndarray of shape (V,), optional
        Starting values (e.g. from WLS); a log-linear OLS fit by default. Only the ADC start is
        used (S0 follows from it).
    max_iter : int, optional
        Iteration limit.
    xtol : float, optional
        Convergence when a Newton step changes ADC by less than ``xtol · max(ADC, 1e-3)``.

    Returns
    -------
    s0 : ndarray of shape (V,)
    adc : ndarray of shape (V,)
        mm²/s.
    converged : ndarray of bool, shape (V,)

    Examples
    --------
    >>> b = np.array([0.0, 400.0, 800.0])
    >>> s = (1000.0 * np.exp(-b * 1.6e-3))[:, None]
    >>> s0, adc, ok = adc_nlls(s, b)
    >>> round(float(adc[0]) * 1e3, 9), round(float(s0[0]), 6), bool(ok[0])
    (1.6, 1000.0, True)
    """
    S = np.asarray(signal, dtype=np.float64)
    bb = np.asarray(b, dtype=np.float64)[:, None]
    w = (np.ones(bb.shape[0]) if n is None else np.asarray(n, dtype=np.float64))[:, None]
    V = S.shape[1]
    if adc_init is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            _, adc_init, _ = adc_loglinear(np.log(S), bb[:, 0], method="ols")
    adc = np.array(adc_init, dtype=np.float64, copy=True).reshape(V)
    adc[~np.isfinite(adc)] = 1e-3
    np.maximum(adc, 0.0, out=adc)
    converged = np.zeros(V, dtype=bool)
    active = np.arange(V)
    tol_scale = 1e-3

    def cost(Sa, Da):
        e = np.exp(-bb * Da)
        we = w * e
        A = (we * Sa).sum(axis=0)
        B = (we * e).sum(axis=0)
        return -(A * A) / B  # f(D) minus the constant Σ w S²

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(max_iter):
            if active.size == 0:
                break
            Sa = S[:, active]
            Da = adc[active]
            e = np.exp(-bb * Da)
            we = w * e
            A = (we * Sa).sum(axis=0)
            B = (we * e).sum(axis=0)
            wbe = bb * we
            A1 = -(wbe * Sa).sum(axis=0)
            B1 = -2.0 * (wbe * e).sum(axis=0)
            wbbe = bb * wbe
            A2 = (wbbe * Sa).sum(axis=0)
            B2 = 4.0 * (wbbe * e).sum(axis=0)
            iB = 1.0 / B
            g = -2.0 * A * A1 * iB + A * A * B1 * iB * iB
            h = (-2.0 * (A1 * A1 + A * A2) * iB + 4.0 * A * A1 * B1 * iB * iB
                 + A * A * B2 * iB * iB - 2.0 * A * A * B1 * B1 * iB * iB * iB)
            f0 = -(A * A) * iB
            newton = h > 0
            # Newton where the cost is locally convex, else a bounded step downhill
            step = np.where(newton, -g / np.where(newton, h, 1.0), -np.sign(g) * np.maximum(0.5 * Da, 1e-4))
            step = np.clip(step, -1e-2, 1e-2)
            Dn = np.maximum(Da + step, 0.0)
            fn = cost(Sa, Dn)
            worse = ~(fn <= f0 + 1e-15 * np.abs(f0))
            for _halve in range(8):  # backtracking for the few voxels where the step overshot
                if not worse.any():
                    break
                step = np.where(worse, 0.5 * step, step)
                Dn = np.where(worse, np.maximum(Da + step, 0.0), Dn)
                fw = cost(Sa[:, worse], Dn[worse])
                still = ~(fw <= f0[worse] + 1e-15 * np.abs(f0[worse]))
                worse_idx = np.flatnonzero(worse)
                worse = np.zeros_like(worse)
                worse[worse_idx[still]] = True
            Dn = np.where(worse, Da, Dn)  # no improvement possible: stay (converged or stuck)
            moved = np.abs(Dn - Da)
            at_bound = (Dn == 0.0) & (g > 0)
            done = (moved <= xtol * np.maximum(Da, tol_scale)) | at_bound | worse
            adc[active] = Dn
            converged[active[done & np.isfinite(Dn)]] = True
            active = active[~done]
        e = np.exp(-bb * adc)
        we = w * e
        s0 = (we * S).sum(axis=0) / (we * e).sum(axis=0)
    return s0, adc, converged


def adc_rician(
    signal: NDArray,
    b: ArrayLike,
    sigma: ArrayLike,
    *,
    s0_init: NDArray,
    adc_init: NDArray,
    max_iter: int = 100,
    xtol: float = 1e-9,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Mono-exponential fit of magnitude data to the expected **Rician** magnitude.

    Minimises ``Σ_i (M_i − E[M | S0·exp(−b_i·ADC), σ])²`` per voxel (``E[M]`` from
    :func:`dwi_toolkit.models.noise.rician_expected_magnitude`), with ``ADC >= 0`` and
    ``S0 >= 0``, by a batched Levenberg–Marquardt over all voxels at once, with the full Newton
    Hessian (analytic first and second derivatives) wherever it is positive definite.
    ``E[M]`` and its derivative come from a table of the Bessel terms with cubic Hermite
    interpolation (error < 1e-11 σ, :func:`dwi_toolkit.models.noise.rician_mean_and_derivative`).
    Magnitude images sit on a noise floor at high b, which biases ordinary fits towards lower
    ADC (dwi_toolkit References §1.1); modelling the floor removes that bias.

    Parameters
    ----------
    signal : ndarray of shape (N, V)
        Magnitude samples (individual volumes, not direction averages: the average of Rician
        samples is not Rician) for V voxels.
    b : array_like of shape (N,)
        b-values in s/mm².
    sigma : float or ndarray of shape (V,)
        Noise σ of each quadrature channel, in signal units.
    s0_init, adc_init : ndarray of shape (V,)
        Starting values (e.g. a WLS fit).
    max_iter : int, optional
        Iteration limit.
    xtol : float, optional
        Relative parameter change below which a voxel has converged.

    Returns
    -------
    s0 : ndarray of shape (V,)
    adc : ndarray of shape (V,)
        mm²/s.
    converged : ndarray of bool, shape (V,)

    Examples
    --------
    >>> from dwi_toolkit.models.noise import rician_expected_magnitude
    >>> b = np.array([0.0, 500, 1000, 1500, 2000])
    >>> m = rician_expected_magnitude(100 * np.exp(-b * 2e-3), 5.0)[:, None]  # floor-biased data
    >>> s0, adc, ok = adc_rician(m, b, 5.0, s0_init=np.array([100.0]), adc_init=np.array([1.5e-3]))
    >>> round(float(adc[0]) * 1e3, 6), bool(ok[0])
    (2.0, True)
    """
    from .noise import rician_mean_and_derivative

    M = np.asarray(signal, dtype=np.float64)
    bb = np.asarray(b, dtype=np.float64)[:, None]
    V = M.shape[1]
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (V,))[None, :]
    s0 = np.maximum(np.array(s0_init, dtype=np.float64, copy=True).reshape(V), 1e-12)
    adc = np.maximum(np.array(adc_init, dtype=np.float64, copy=True).reshape(V), 0.0)
    adc[~np.isfinite(adc)] = 1e-3
    s0[~np.isfinite(s0)] = np.nanmax(M, axis=0)[~np.isfinite(s0)] if V else 1.0
    lam = np.full(V, 1e-4)
    converged = np.zeros(V, dtype=bool)
    active = np.arange(V)

    def residual(s0_, adc_, M_, sg, derivatives=True):
        a = s0_[None, :] * np.exp(-bb * adc_[None, :])
        if not derivatives:
            r = M_ - rician_mean_and_derivative(a, sg, first=False)[0]
            return a, r, (r * r).sum(axis=0), None, None
        mean, deriv, deriv2 = rician_mean_and_derivative(a, sg, second=True)
        r = M_ - mean
        return a, r, (r * r).sum(axis=0), deriv, deriv2

    # working set, compacted once a quarter of it has converged (gathers cost more than the steps)
    Ma, sg, s0a, adca, la = M, sig, s0.copy(), adc.copy(), lam
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(max_iter):
            if active.size == 0:
                break
            a, r, cost, d, d2 = residual(s0a, adca, Ma, sg)
            e = a / s0a[None, :]
            j0 = d * e
            j1 = -bb * a * d
            a00, a01, a11 = (j0 * j0).sum(0), (j0 * j1).sum(0), (j1 * j1).sum(0)
            g0, g1 = (j0 * r).sum(0), (j1 * r).sum(0)
            # full Newton Hessian (minus the residual-weighted curvature of the model) where it is
            # positive definite: quadratic instead of Gauss-Newton's linear convergence
            c = r * (d + a * d2)  # shared factor of the mixed and ADC second derivatives
            h00 = a00 - (r * d2 * e * e).sum(0)
            h01 = a01 + (bb * e * c).sum(0)
            h11 = a11 - (bb * bb * a * c).sum(0)
            pd = (h00 > 0) & (h00 * h11 - h01 * h01 > 0)
            a00, a01, a11 = np.where(pd, h00, a00), np.where(pd, h01, a01), np.where(pd, h11, a11)
            d00, d11 = a00 * (1 + la), a11 * (1 + la)
            det = d00 * d11 - a01 * a01
            ns0 = np.maximum(s0a + (d11 * g0 - a01 * g1) / det, 1e-12)
            nadc = np.maximum(adca + (d00 * g1 - a01 * g0) / det, 0.0)
            rel = np.maximum(np.abs(ns0 - s0a) / s0a, np.abs(nadc - adca) / np.maximum(adca, 1e-4))
            # a step below tolerance is taken without a trial evaluation (it ends the iteration)
            tiny = rel < xtol
            trial = np.flatnonzero(~tiny)
            better = tiny.copy()
            if trial.size:
                _, _, ncost, _, _ = residual(ns0[trial], nadc[trial], Ma[:, trial], sg[:, trial], derivatives=False)
                better[trial] = np.isfinite(ncost) & (ncost <= cost[trial])
            frozen = converged[active]  # converged earlier, waiting to leave the working set
            upd = better & ~frozen
            s0a, adca = np.where(upd, ns0, s0a), np.where(upd, nadc, adca)
            la = np.where(better, np.maximum(la / 10, 1e-9), la * 10)
            done = ((rel < xtol) | (~better & (la > 1e9))) & ~frozen  # a tiny step, accepted or not
            converged[active[done]] = True
            s0[active[done]], adc[active[done]] = s0a[done], adca[done]
            if (done | frozen).sum() * 4 >= active.size:
                kp = ~(done | frozen)
                active, s0a, adca, la, Ma, sg = active[kp], s0a[kp], adca[kp], la[kp], Ma[:, kp], sg[:, kp]
    left = ~converged[active]
    s0[active[left]], adc[active[left]] = s0a[left], adca[left]  # not converged: last accepted point
    return s0, adc, converged


# --------------------------------------------------------------------------------------------
# Model / Fit
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False, repr=False)
class ADCFit:
    """Result of a mono-exponential ADC fit.

    Attributes
    ----------
    adc : ndarray of shape (X, Y, Z)
        ADC in mm²/s; NaN where ``status != 0``.
    s0 : ndarray of shape (X, Y, Z)
        Fitted signal at b = 0 (scanner units).
    rsquared : ndarray of shape (X, Y, Z)
        Coefficient of determination: of ``ln S`` for ``ols``/``wls``, of ``S`` for ``nlls``.
    status : ndarray of uint8, shape (X, Y, Z)
        Per-voxel status, see :data:`STATUS_CODES`.
    affine : ndarray of shape (4, 4)
        Voxel → RAS+ mm.
    bvals_used : ndarray of shape (M,)
        Shell b-values (s/mm²) that entered the fit.
    method : str
        ``"ols"``, ``"wls"`` or ``"nlls"``.
    b0_threshold : float
        s/mm².
    direction_adc : ndarray of shape (X, Y, Z, D) or None
        Per-direction ADC maps when fitted with ``per_direction=True``.
    directions : ndarray of shape (D, 3) or None
        Image-frame unit vectors of those directions.
    params : dict
        The options the fit ran with (for provenance).

    Examples
    --------
    >>> from dwi_toolkit.core.image import DWISeries
    >>> b = np.array([0.0, 800.0])
    >>> fit = fit_adc(DWISeries(1000 * np.exp(-b * 1.5e-3) * np.ones((2, 2, 1, 2)), np.eye(4), b,
    ...                         [[0, 0, 0], [0, 0, 1]]))
    >>> fit.map("adc").unit, round(float(np.nanmean(fit.adc)) * 1e3, 3)   # ×10⁻³ mm²/s
    ('mm^2/s', 1.5)
    >>> fit.status_counts()["fitted"]
    4
    """

    adc: np.ndarray
    s0: np.ndarray
    rsquared: np.ndarray
    status: np.ndarray
    affine: np.ndarray
    bvals_used: np.ndarray
    method: str
    b0_threshold: float = DEFAULT_B0_THRESHOLD
    direction_adc: np.ndarray | None = None
    directions: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    #: Units of each map.
    UNITS = {"adc": DIFFUSIVITY_UNIT, "s0": "a.u.", "rsquared": "", "status": ""}

    @property
    def shape(self) -> tuple[int, int, int]:
        """Map shape (X, Y, Z)."""
        return tuple(self.adc.shape)  # type: ignore[return-value]

    def status_counts(self) -> dict[str, int]:
        """Number of voxels per status meaning."""
        counts = np.bincount(self.status.reshape(-1), minlength=len(STATUS_CODES))
        return {STATUS_CODES[k]: int(c) for k, c in enumerate(counts) if c}

    def map(self, name: str) -> ParameterMap:
        """One output as a :class:`ParameterMap` (``"adc"``, ``"s0"``, ``"rsquared"``, ``"status"``)."""
        if name not in self.UNITS:
            raise InputDataError(f"unknown ADC fit map {name!r}; choose from {sorted(self.UNITS)}.")
        return ParameterMap(getattr(self, name), self.affine, name, self.UNITS[name])

    def to_maps(self) -> dict[str, ParameterMap]:
        """All outputs as :class:`ParameterMap` objects keyed by name."""
        return {name: self.map(name) for name in self.UNITS}

    def to_nifti(self, name: str = "adc"):
        """One output as a :class:`nibabel.Nifti1Image` with the series' affine."""
        return self.map(name).to_nifti()

    def predict(self, bvals: ArrayLike) -> NDArray[np.float64]:
        """Model signal ``S0·exp(−b·ADC)`` at `bvals` (s/mm²), shape (X, Y, Z, len(bvals))."""
        b = np.asarray(bvals, dtype=np.float64)
        return self.s0[..., None] * np.exp(-b * self.adc[..., None])

    def save(self, out_dir: str | os.PathLike, *, prefix: str = "") -> dict[str, Any]:
        """Write ``adc``, ``s0``, ``rsquared`` and ``status`` maps as NIfTI into `out_dir`."""
        from ..core.writers import get_writer  # io sits above models: registered, not imported

        save_map = get_writer("map")

        from pathlib import Path

        out = Path(out_dir)
        paths = {}
        for name, pmap in self.to_maps().items():
            if name == "status":
                pmap = ParameterMap(self.status.astype(np.uint8), self.affine, "status", "")
            paths[name] = save_map(pmap, out / f"{prefix}{name}.nii.gz")
        return paths

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts about the fit (method, b-values, status counts, median ADC)."""
        ok = self.status == OK
        return {
            "method": self.method,
            "bvals_used": [float(b) for b in self.bvals_used],
            "b0_threshold": self.b0_threshold,
            "n_fitted": int(ok.sum()),
            "status_counts": self.status_counts(),
            "median_adc_mm2_s": float(np.median(self.adc[ok])) if ok.any() else None,
            "params": dict(self.params),
        }

    def __repr__(self) -> str:
        ok = int((self.status == OK).sum())
        return (
            f"ADCFit(method={self.method!r}, shape={self.shape}, "
            f"bvals_used={[round(float(b), 3) for b in self.bvals_used]}, fitted={ok}/{self.status.size})"
        )

    def _repr_html_(self) -> str:
        s = self.summary()
        med = s["median_adc_mm2_s"]
        rows = [
            ("method", s["method"]),
            ("b-values used (s/mm²)", ", ".join(f"{b:g}" for b in s["bvals_used"])),
            ("fitted voxels", f"{s['n_fitted']} / {self.status.size}"),
            ("median ADC (×10⁻³ mm²/s)", "—" if med is None else f"{med * 1e3:.3f}"),
        ] + [(f"status: {k}", str(v)) for k, v in s["status_counts"].items()]
        from ..core._display import html_table, thumbnail_img

        shown = np.where(self.status == OK, self.adc, np.nan)
        return html_table("ADCFit", rows, image=thumbnail_img(shown * 1e3, vmin=0.0, vmax=3.0,
                                                            title="ADC 0–3 ×10⁻³ mm²/s"))


class AdcModel:
    """Configuration of a mono-exponential ADC fit (holds no data; ``fit`` never changes it).

    Parameters
    ----------
    bvals : array_like of shape (N,)
        b-values in s/mm² of the series to be fitted.
    method : {"ols", "wls", "nlls"}, optional
        Fitting method (default ``"wls"``).
    b_range : (float or None, float or None), optional
        Keep only volumes with ``b_min <= b <= b_max`` (s/mm²); e.g. ``(200, None)`` leaves out
        the perfusion-weighted low b-values, ``(None, 1000)`` the noise-floor-prone high ones.
    b0_threshold : float, optional
        s/mm²; reported with the fit (shells come from the b-values themselves).
    wls_iterations : int, optional
        Re-weighting passes of WLS (1 or 2 are usual).
    chunk_size : int, optional
        Voxels processed at a time (bounds memory).

    Raises
    ------
    FitError
        Unknown method, or fewer than two distinct b-values left after `b_range`.

    Examples
    --------
    >>> from dwi_toolkit.core.image import DWISeries
    >>> b = np.array([0.0, 400.0, 800.0])
    >>> series = DWISeries(np.exp(-b * 1.1e-3) * np.ones((2, 2, 1, 3)), np.eye(4), b,
    ...                    [[0, 0, 0], [1, 0, 0], [1, 0, 0]])
    >>> fit = AdcModel(b, method="ols").fit(series)
    >>> round(float(fit.adc[0, 0, 0]), 6)   # mm²/s
    0.0011
    """

    def __init__(
        self,
        bvals: ArrayLike,
        *,
        method: str = "wls",
        b_range: tuple[float | None, float | None] | None = None,
        b0_threshold: float = DEFAULT_B0_THRESHOLD,
        wls_iterations: int = 2,
        chunk_size: int = DEFAULT_CHUNK,
        max_iter: int = 50,
    ) -> None:
        if method not in METHODS:
            raise FitError(f"unknown ADC method {method!r}; choose one of {', '.join(METHODS)}.")
        b = np.asarray(bvals, dtype=np.float64).reshape(-1)
        keep = np.ones(b.size, dtype=bool)
        lo, hi = (None, None) if b_range is None else tuple(b_range)
        if lo is not None:
            keep &= b >= lo - 1e-9
        if hi is not None:
            keep &= b <= hi + 1e-9
        # shells by the b-values themselves (not the b0 threshold), so b=50 never merges with b=0
        shells = find_shells(np.where(keep, b, np.nan), b0_threshold=None) if keep.any() else []
        if len(shells) < 2:
            raise FitError(
                f"the ADC fit needs at least two distinct b-values; after b_range={b_range} the "
                f"series has {[round(s.bval, 3) for s in shells]} (all b-values: "
                f"{sorted(set(np.round(b, 3).tolist()))} s/mm^2)."
            )
        self.method = method
        self.b_range = (lo, hi)
        self.b0_threshold = float(b0_threshold)
        self.wls_iterations = int(wls_iterations)
        self.chunk_size = check_chunk_size(chunk_size)
        self.max_iter = int(max_iter)
        self.groups = [list(s.indices) for s in shells]
        self.shell_b = np.array([b[list(s.indices)].mean() for s in shells])  # actual mean b per shell
        self.shell_n = np.array([len(s.indices) for s in shells], dtype=np.float64)
        self.n_volumes = b.size

    def __repr__(self) -> str:
        return (
            f"AdcModel(method={self.method!r}, shells={[round(float(x), 3) for x in self.shell_b]}, "
            f"b_range={self.b_range})"
        )

    def fit_array(
        self, data: ArrayLike, *, mask: ArrayLike | None = None
    ) -> tuple[NDArray, NDArray, NDArray, NDArray[np.uint8]]:
        """Fit data of shape (..., N); returns ``adc, s0, rsquared, status`` of shape (...).

        The data are read slab by slab (:func:`~dwi_toolkit.models._chunks.voxel_slabs`) in
        their stored dtype and fitted `chunk_size` voxels at a time, so a Fortran-ordered or
        integer array is never copied or cast as a whole.
        """
        arr = np.asarray(data)
        if arr.shape[-1] != self.n_volumes:
            raise InputDataError(
                f"data has {arr.shape[-1]} volumes (last axis) but the model was built for "
                f"{self.n_volumes} b-values."
            )
        spatial = arr.shape[:-1]
        dtype = np.float64 if arr.dtype == np.float64 else np.float32
        m = None
        if mask is not None:
            m = np.asarray(mask, dtype=bool)
            if m.shape != spatial:
                raise InputDataError(f"mask shape {m.shape} does not match the data {spatial}.")
        nvox = int(np.prod(spatial))
        check_memory("fit_adc", nvox, 3 * np.dtype(dtype).itemsize + 1,
                     min(self.chunk_size, max(nvox, 1)) * self.n_volumes * 8 * 6)
        # without a mask every voxel is written below, so the maps need no NaN fill first
        alloc = np.empty if m is None else (lambda shape, dtype: np.full(shape, np.nan, dtype=dtype))
        adc, s0, r2 = (alloc(spatial, dtype=dtype) for _ in range(3))
        status = np.full(spatial, MASKED if m is not None else OK, dtype=np.uint8)
        for index, slab in voxel_slabs(arr, self.chunk_size, whole=True, progress="ADC fit"):
            n = slab.shape[0]
            rows = None if m is None else np.flatnonzero(take(m, index))
            count = n if rows is None else rows.size
            if count == 0:
                continue
            direct = rows is None and isinstance(index, slice)  # flat slab, every voxel fitted: write in place
            if direct:
                outs = [mp.reshape(-1)[index] for mp in (adc, s0, r2)]
                st_slab = status.reshape(-1)[index]
            else:
                outs = [alloc(n, dtype=dtype) for _ in range(3)]
                st_slab = np.full(n, MASKED, dtype=np.uint8)
            for start in range(0, count, self.chunk_size):
                idx = slice(start, min(start + self.chunk_size, n)) if rows is None else rows[start:start + self.chunk_size]
                vals, st = self._fit_block(np.ascontiguousarray(slab[idx].T), dtype)
                for out, val in zip(outs, vals):
                    out[idx] = val
                st_slab[idx] = st
            if not direct:
                for full_map, out in zip((adc, s0, r2, status), outs + [st_slab]):
                    put(full_map, index, out, len(spatial))
        status = status.reshape(-1)
        counts = {STATUS_CODES[k]: int(v) for k, v in enumerate(np.bincount(status, minlength=5)) if v}
        failed = {k: v for k, v in counts.items() if k not in (STATUS_CODES[OK], STATUS_CODES[MASKED])}
        if failed:
            logger.info("ADC fit (%s): %s", self.method, counts)
        return adc, s0, r2, status.reshape(spatial)

    def _fit_block(self, block: NDArray, dtype) -> tuple[tuple[NDArray, NDArray, NDArray], NDArray[np.uint8]]:
        """Fit one (N, V) block; returns ``(adc, s0, r2)`` (NaN where not fitted) and status."""
        b = self.shell_b
        y, valid = _shell_log_means(block, self.groups, dtype)
        method = "wls" if self.method == "nlls" else self.method
        ln0, a, q = adc_loglinear(y, b, n=self.shell_n, method=method, wls_iterations=self.wls_iterations)
        nc = None
        if self.method == "nlls" and b.size > 2:
            a, ln0, q, nc = self._nlls_refine(y, valid, ln0, a, q)
        st = np.zeros(block.shape[1], dtype=np.uint8)
        st[~valid] = INVALID
        fin = np.isfinite(a) & np.isfinite(ln0)
        st[valid & ~fin] = INVALID
        st[(st == OK) & (a < 0)] = NEGATIVE
        if nc is not None:
            st[(st == OK) & nc] = NOT_CONVERGED
        bad = st != OK
        with np.errstate(over="ignore"):
            s0_blk = np.exp(ln0)
        vals = []
        for val in (a, s0_blk, q):  # fresh arrays of this block: NaN-filled in place
            val = np.asarray(val, dtype=dtype)
            val[bad] = np.nan
            vals.append(val)
        return (vals[0], vals[1], vals[2]), st

    def _nlls_refine(self, y, valid, ln0, a, q):
        """Refine the WLS estimates of the valid voxels by :func:`adc_nlls` (float64)."""
        b = self.shell_b
        good = np.flatnonzero(valid)
        sig = np.exp(y[:, good].astype(np.float64))
        s0n, an, conv = adc_nlls(
            sig, b, n=self.shell_n, s0_init=np.exp(ln0[good].astype(np.float64)),
            adc_init=a[good].astype(np.float64), max_iter=self.max_iter,
        )
        pred = s0n[None, :] * np.exp(-b[:, None] * an[None, :])
        wn = self.shell_n[:, None]
        sbar = (wn * sig).sum(0) / wn.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            qn = 1 - (wn * (sig - pred) ** 2).sum(0) / (wn * (sig - sbar) ** 2).sum(0)
        a = a.astype(np.float64)
        ln0 = ln0.astype(np.float64)
        q = q.astype(np.float64)
        a[good], ln0[good], q[good] = an, np.log(np.maximum(s0n, 1e-300)), qn
        nc = np.zeros(valid.shape, dtype=bool)
        nc[good] = ~conv
        return a, ln0, q, nc

    def fit(self, series: DWISeries, *, mask: ArrayLike | None = None) -> ADCFit:
        """Fit a :class:`DWISeries` (trace mode) and return an :class:`ADCFit`."""
        if series.n_volumes != self.n_volumes:
            raise InputDataError(
                f"series has {series.n_volumes} volumes but the model was built for {self.n_volumes}."
            )
        adc, s0, r2, status = self.fit_array(series.data, mask=mask)
        return ADCFit(
            adc=adc, s0=s0, rsquared=r2, status=status, affine=series.affine,
            bvals_used=self.shell_b.copy(), method=self.method, b0_threshold=self.b0_threshold,
            params=self._params(),
        )

    def _params(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "b_range": list(self.b_range),
            "b0_threshold": self.b0_threshold,
            "wls_iterations": self.wls_iterations,
            "signal": "trace (geometric mean per shell)",
            "model": "S = S0 exp(-b ADC)",
        }


def _rician_refit(fit: ADCFit, series: DWISeries, correction: str, sigma, chunk_size: int) -> ADCFit:
    """Refine the fitted voxels of `fit` with :func:`adc_rician` on the individual volumes."""
    from .noise import rician_mean_and_derivative

    if correction != "rician":
        raise InputDataError(f"unknown noise_correction {correction!r}; choose None or 'rician'.")
    if sigma is None or not np.all(np.asarray(sigma) > 0):
        raise InputDataError(
            "noise_correction='rician' needs sigma > 0 (noise per channel in signal units); "
            "estimate it with dwi_toolkit.models.noise.estimate_sigma_background(series.data)."
        )
    sig_map = np.broadcast_to(np.asarray(sigma, dtype=np.float64), series.spatial_shape)
    flat = series.data.reshape(-1, series.n_volumes)
    ok = np.flatnonzero(fit.status.reshape(-1) == OK)
    adc = fit.adc.reshape(-1).astype(np.float64)
    s0 = fit.s0.reshape(-1).astype(np.float64)
    r2 = fit.rsquared.reshape(-1).astype(np.float64)
    status = fit.status.reshape(-1).copy()
    b = series.bvals
    for start in range(0, ok.size, chunk_size):
        idx = ok[start : start + chunk_size]
        m = flat[idx].T.astype(np.float64)
        sg = sig_map.reshape(-1)[idx]
        # xtol 1e-6: the last (accepted) Newton step is below 1e-6, so the estimate is within
        # ~1e-12 of the optimum (quadratic convergence); measured ≤ 1e-8 from xtol=1e-9
        s0n, an, conv = adc_rician(m, b, sg, s0_init=s0[idx], adc_init=adc[idx], xtol=1e-6)
        conv &= np.isfinite(s0n) & (s0n < 1e30) & np.isfinite(an)

        pred = rician_mean_and_derivative(s0n[None, :] * np.exp(-b[:, None] * an[None, :]), sg[None, :],
                                          first=False)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            r2n = 1 - ((m - pred) ** 2).sum(0) / ((m - m.mean(0)) ** 2).sum(0)
        adc[idx], s0[idx], r2[idx] = np.where(conv, an, np.nan), np.where(conv, s0n, np.nan), np.where(conv, r2n, np.nan)
        status[idx[~conv]] = NOT_CONVERGED
    shape = fit.adc.shape
    return ADCFit(**{**fit.__dict__, "adc": adc.reshape(shape).astype(fit.adc.dtype),
                     "s0": s0.reshape(shape).astype(fit.s0.dtype),
                     "rsquared": r2.reshape(shape).astype(fit.rsquared.dtype),
                     "status": status.reshape(shape),
                     "bvals_used": np.unique(np.round(b, 6))})


def _direction_groups(series: DWISeries, keep: NDArray[np.bool_]) -> list[tuple[NDArray, list[int]]]:
    """Unique diffusion directions (sign-insensitive) and the volumes along each."""
    dw = np.flatnonzero(keep & ~series.b0_mask)
    dirs: list[tuple[NDArray, list[int]]] = []
    for i in dw:
        v = series.bvecs[i]
        if np.linalg.norm(v) == 0:
            continue
        for d, members in dirs:
            if abs(float(d @ v)) > 0.9999:
                members.append(int(i))
                break
        else:
            dirs.append((v.copy(), [int(i)]))
    return dirs


def _check_b_range(bvals: np.ndarray, keep: np.ndarray, b_range: Any) -> None:
    """Raise FitError naming the `b_range` given and the series' b-values when fewer than two
    distinct b-values (shells) are inside it."""
    inside = find_shells(np.where(keep, bvals, np.nan), b0_threshold=None) if keep.any() else []
    if len(inside) >= 2:
        return
    every = sorted(set(np.round(np.asarray(bvals, dtype=float), 3).tolist()))
    if b_range is None:
        raise FitError(f"the ADC fit needs at least two distinct b-values; the series has only {every} s/mm^2.")
    left = ("no b-value" if not inside else f"only b = {round(inside[0].bval, 3):g}")
    raise FitError(
        f"b_range={tuple(b_range)} s/mm^2 leaves {left} of the series' b-values {every} s/mm^2; the ADC fit "
        "needs at least two distinct b-values: widen b_range (None leaves an end open) or drop it."
    )


def fit_adc(
    series: DWISeries,
    *,
    method: str = "wls",
    b_range: tuple[float | None, float | None] | None = None,
    mask: ArrayLike | None = None,
    per_direction: bool = False,
    wls_iterations: int = 2,
    chunk_size: int = DEFAULT_CHUNK,
    noise_correction: str | None = None,
    sigma: float | ArrayLike | None = None,
) -> ADCFit:
    """Fit a mono-exponential ADC map to a DWI series.

    Parameters
    ----------
    series : DWISeries
        The DWI data (b in s/mm²).
    method : {"wls", "ols", "nlls"}, optional
        Log-linear weighted (default) or ordinary least squares, or nonlinear least squares on
        the signal (see the module notes).
    b_range : (float or None, float or None), optional
        ``(b_min, b_max)`` in s/mm²; volumes outside are left out. The range is literal:
        ``(200, None)`` leaves out b=0 too, giving a perfusion-insensitive ADC from b >= 200.
    mask : ndarray of bool, shape (X, Y, Z), optional
        Voxels to fit; others get status 1 and NaN.
    per_direction : bool, optional
        Also fit every gradient direction separately (with the b=0 volumes); the results are in
        ``ADCFit.direction_adc`` and ``ADCFit.directions``. The main maps stay the trace fit.
    wls_iterations : int, optional
        Re-weighting passes for ``"wls"``.
    chunk_size : int, optional
        Voxels processed at a time. The series is read in its stored dtype (int16 is not cast
        as a whole) and slab by slab, so the memory beyond it is the three maps plus one chunk.
    noise_correction : {None, "rician"}, optional
        ``"rician"``: after the `method` fit, refit every fitted voxel to the expected Rician
        magnitude of its individual volumes (:func:`adc_rician`), which removes the noise-floor
        bias of high-b magnitude data. Needs `sigma`. ``rsquared`` is then that of the signal.
    sigma : float or ndarray of shape (X, Y, Z), optional
        Noise σ per quadrature channel in signal units (e.g. from
        :func:`dwi_toolkit.models.noise.estimate_sigma_background`).

    Returns
    -------
    ADCFit

    Raises
    ------
    FitError
        Unknown method or fewer than two distinct b-values.
    InputDataError
        ``noise_correction="rician"`` without a positive `sigma`, an unknown correction, or a
        `chunk_size` below 1.
    InsufficientMemoryError
        The result maps would not fit in the available memory (raised before allocating).

    Examples
    --------
    >>> b = np.array([0.0, 500, 500, 500, 1000, 1000, 1000])
    >>> vecs = np.vstack([[0, 0, 0], np.eye(3), np.eye(3)])
    >>> data = 1000.0 * np.exp(-b * 1.1e-3) * np.ones((2, 2, 1, 1))
    >>> fit = fit_adc(DWISeries(data, np.eye(4), b, vecs), method="ols")
    >>> round(float(fit.adc[0, 0, 0]) * 1e3, 6)
    1.1
    """
    lo, hi = (None, None) if b_range is None else tuple(b_range)
    keep = series.b_mask(lo, hi)
    _check_b_range(series.bvals, keep, b_range)
    work = series if keep.all() else series.select(keep)
    model = AdcModel(
        work.bvals, method=method, b0_threshold=series.b0_threshold,
        wls_iterations=wls_iterations, chunk_size=chunk_size,
    )
    fit = model.fit(work, mask=mask)
    params = dict(fit.params, b_range=[lo, hi])
    if noise_correction is not None:
        fit = _rician_refit(fit, work, noise_correction, sigma, chunk_size)
        params.update(noise_correction=noise_correction,
                      sigma=float(np.median(sigma)) if sigma is not None else None,
                      signal="individual volumes, expected Rician magnitude (started from the trace fit)")
    if not per_direction:
        return ADCFit(**{**fit.__dict__, "params": params})
    groups = _direction_groups(series, keep)
    if not groups:
        raise FitError("per_direction=True needs diffusion-weighted volumes with directions.")
    b0_idx = list(np.flatnonzero(series.b0_mask & keep))
    maps = []
    for _vec, members in groups:
        sub = series.select(b0_idx + members)
        sub_model = AdcModel(sub.bvals, method=method, b0_threshold=series.b0_threshold,
                             wls_iterations=wls_iterations, chunk_size=chunk_size)
        maps.append(sub_model.fit_array(sub.data, mask=mask)[0])
    params["per_direction"] = True
    return ADCFit(
        **{**fit.__dict__, "params": params,
           "direction_adc": np.stack(maps, axis=-1),
           "directions": np.array([d for d, _ in groups])}
    )
