"""Intravoxel incoherent motion (IVIM): vectorised segmented, full and MAP bi-exponential fits.

Model (Le Bihan et al., Radiology 1988;168:497–505; see dwi_toolkit References §1.1 for the
mono-exponential limit and the perfusion contribution at low b):

.. math:: S(b) = S_0 \\left[ f\\, e^{-b D^*} + (1 - f)\\, e^{-b D} \\right]

with b in s/mm², the tissue diffusion coefficient ``D`` and the pseudo-diffusion coefficient
``D*`` in mm²/s and the perfusion fraction ``f`` (unitless, 0–1).

Three methods, all vectorised over voxels (no per-voxel Python loop):

``"segmented"``
    1. ``D`` (and the intercept ``S0·(1−f)``) from a weighted log-linear fit of the samples with
       ``b >= b_threshold``, where the perfusion term has decayed;
    2. a grid search over ``D*`` with the two linear amplitudes solved in closed form
       (variable projection, non-negative), then a bounded Levenberg–Marquardt refinement of
       ``S0, f, D*`` with ``D`` held fixed.

``"full"``
    Steps 1 and the ``D*`` grid of the segmented method give the starting point of a bounded
    Levenberg–Marquardt fit of all four parameters.

``"map"`` (the default of :func:`fit_ivim`)
    A maximum a posteriori fit with two priors (dwi_toolkit References §1.7):

    1. ``D*``: a weak log-normal prior (:data:`DSTAR_PRIOR`: median 25×10⁻³ mm²/s, log-SD 0.7,
       i.e. one SD is a factor of 2): the joint fit minimises
       ``Σ (y − S(b))² + σ² ((ln D* − ln 25×10⁻³)/0.7)²`` with ``σ`` the noise level (known with
       ``noise_correction="rician"``, else the residual RMS of the ``D*`` grid step). Where the
       data determine ``D*`` the prior changes little; where they do not (low ``f``, low SNR,
       ``D*`` close to ``D``) it keeps ``D*`` in the physiological range instead of at a bound.
       Its range (12–50×10⁻³ mm²/s within one SD) covers the body-tissue ``D*`` values of the
       OSIPI TF2.4 reference tissues (10–100×10⁻³ mm²/s); for tissue known to lie far outside
       it use ``"full"``.
    2. ``D``: uniform between 0 and the self-diffusion coefficient of free water at 37 °C,
       :data:`D_FREE_WATER_37C` = 3.037×10⁻³ mm²/s (Holz, Heil & Sacco 2000; References §1.4),
       the physical limit of tissue water diffusion at body temperature (OSIPI's bounds allow up
       to 5×10⁻³). Set ``bounds={"d": (0, 5e-3)}`` for room-temperature phantoms above it or to
       report the unconstrained value; a voxel at the limit has status 5.

    Then, per voxel, ``D`` comes from whichever estimate has the smaller expected squared error
    (:func:`_map_choose_d`): the joint one, whose posterior variance follows from the Laplace
    approximation ``σ² [(JᵀJ + prior curvature)⁻¹]_DD``, or the segmented one (the
    mono-exponential on ``b >= b_threshold``), whose variance ``σ² [(J_hᵀJ_h)⁻¹]_DD`` plus
    squared bias from the perfusion signal left above ``b_threshold`` (linearised, joint
    estimates plugged in) is its estimated mean squared error. Where the segmented ``D`` wins —
    ``f`` small or ``D*`` close to ``D``, where the joint fit cannot separate the two
    compartments and its ``D`` variance exceeds the segmented ``D``'s error — ``S0, f, D*`` are
    refitted with ``D`` held. The rule needs no tuning constant; on noiseless data the joint
    estimate (variance 0) is always kept, so the fit stays exact there.

    On the OSIPI TF2.4 simulation protocol this is as accurate as the best of its 19 algorithms
    at the median over cells and within 1.4× (D), 1.6× (f), 2.5× (D*) of it in every cell with
    SNR ≥ 30 (docs/benchmarks.md).

The Levenberg–Marquardt solver (:func:`_batched_lm`) works on every voxel at once: normal
equations in closed form from weighted exponential moments (analytic Jacobian), per-voxel damping, box bounds by projection with an active-set rule (a parameter at a
bound whose gradient points outward is frozen for that step), and per-voxel convergence tests.
Internally the signal is scaled by its b=0 level and diffusivities are expressed in µm²/ms so
every parameter is of order 1.

Noise handling (``noise_correction``, see :mod:`dwi_toolkit.models.noise`):
``"exclude"`` drops samples below ``k·σ``; ``"rician"`` fits the expected Rician magnitude
``E[M](S(b), σ)`` instead of ``S(b)``, which removes the noise-floor bias of ``D`` at high b.

Default bounds follow the OSIPI TF2.4 IVIM code collection: ``D`` 0–5×10⁻³ (``"map"``:
0–:data:`D_FREE_WATER_37C`), ``D*`` 5×10⁻³–0.3 mm²/s, ``f`` 0–1, ``S0 >= 0``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .._options import with_settings
from ..core.image import DWISeries, ParameterMap
from ..errors import FitError, InputDataError
from . import noise as _noise
from ._chunks import check_chunk_size, check_memory, put, take, voxel_slabs

__all__ = [
    "fit_ivim",
    "IVIMSolver",
    "IVIMFit",
    "IVIMResult",
    "ivim_segmented",
    "ivim_full",
    "ivim_signal",
    "average_directions",
    "STATUS_CODES",
    "DEFAULT_BOUNDS",
    "DSTAR_PRIOR",
    "D_FREE_WATER_37C",
    "MAP_UNITS",
]

logger = logging.getLogger(__name__)

#: Per-voxel status codes (uint8), shared with the ADC fit where they overlap.
STATUS_CODES: dict[int, str] = {
    0: "ok",
    1: "outside mask",
    2: "invalid signal (non-finite, non-positive b=0 or too few usable samples)",
    4: "not converged",
    5: "a parameter (f, D or D*) at a bound",
}

#: Default bounds (lower, upper) per parameter; diffusivities in mm²/s, S0 in signal units.
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "s0": (0.0, np.inf),
    "f": (0.0, 1.0),
    "d": (0.0, 5e-3),
    "dstar": (5e-3, 0.3),
}

#: Unit of each map returned by :meth:`IVIMFit.map`.
MAP_UNITS: dict[str, str] = {
    "d": "mm^2/s",
    "dstar": "mm^2/s",
    "f": "",
    "s0": "",
    "rsquared": "",
    "status": "",
}

_ALIASES = {"D": "d", "Dstar": "dstar", "D*": "dstar", "Dp": "dstar", "d*": "dstar", "S0": "s0",
            "F": "f", "r2": "rsquared"}
_PARAMS = ("s0", "f", "d", "dstar")
_DSCALE = 1e3  # mm²/s -> µm²/ms (internal units)
_BSCALE = 1e-3  # s/mm² -> ms/µm²
_N_DSTAR_GRID = 24
#: Log-normal prior on D* of the "map" method: median 25×10⁻³ mm²/s, log-SD 0.7 (a factor of 2).
DSTAR_PRIOR: dict[str, float] = {"median": 25e-3, "log_sd": 0.7}
_LOG_DSTAR_PRIOR = float(np.log(DSTAR_PRIOR["median"] * 1e3))  # internal units (µm²/ms)
_DSTAR_PRIOR_TAU = DSTAR_PRIOR["log_sd"]
#: Self-diffusion coefficient of free water at 37 °C, mm²/s (Holz, Heil & Sacco 2000, Speedy–Angell
#: fit; dwi_toolkit References §1.4): the upper limit of tissue ``D`` in vivo, the default upper
#: bound of ``D`` in the ``"map"`` method.
D_FREE_WATER_37C = 3.037e-3
_FREE_NO_D = np.array([True, True, False, True])  # S0, f, D* free; D held


class IVIMResult(NamedTuple):
    """Per-voxel IVIM parameters from :func:`ivim_segmented` / :func:`ivim_full`.

    Fields, each an ndarray of shape (V,): ``s0`` signal at b=0 (signal units); ``f`` perfusion
    fraction (unitless); ``d`` diffusion coefficient (mm²/s); ``dstar`` pseudo-diffusion
    coefficient (mm²/s); ``rsquared`` coefficient of determination on the samples used;
    ``status`` uint8 code from :data:`STATUS_CODES` (0, 2, 4 or 5; 1 is assigned by
    :func:`fit_ivim`); ``n_iter`` Levenberg–Marquardt iterations used.

    Examples
    --------
    >>> b = np.array([0, 10, 20, 50, 100, 200, 400, 600, 800.0])
    >>> res = ivim_segmented(ivim_signal(b, 1000.0, 0.1, 1e-3, 20e-3)[None, :], b)
    >>> round(float(res.f[0]), 2), res.status.tolist()
    (0.1, [0])
    """

    s0: NDArray[np.float64]
    f: NDArray[np.float64]
    d: NDArray[np.float64]
    dstar: NDArray[np.float64]
    rsquared: NDArray[np.float64]
    status: NDArray[np.uint8]
    n_iter: NDArray[np.int64]


# --------------------------------------------------------------------------------------- model
def ivim_signal(bvals: ArrayLike, s0: ArrayLike, f: ArrayLike, d: ArrayLike, dstar: ArrayLike) -> NDArray:
    """Bi-exponential IVIM signal ``S0 [f e^{-b D*} + (1-f) e^{-b D}]``.

    Parameters
    ----------
    bvals : array_like of shape (N,)
        b-values in s/mm².
    s0, f, d, dstar : array_like of shape (...)
        Parameters (``d``, ``dstar`` in mm²/s), broadcast together.

    Returns
    -------
    ndarray of shape (..., N)

    Examples
    --------
    >>> ivim_signal([0, 1000], 1000.0, 0.1, 1e-3, 20e-3).round(3).tolist()
    [1000.0, 331.091]
    """
    b = np.asarray(bvals, dtype=float)
    s0, f, d, ds = (np.asarray(x, dtype=float)[..., None] for x in (s0, f, d, dstar))
    return s0 * (f * np.exp(-b * ds) + (1.0 - f) * np.exp(-b * d))


def _model_jac(p: np.ndarray, b: np.ndarray, sigma: np.ndarray | None, prior: np.ndarray | None = None):
    """Prediction (V, M) and what the normal equations need, in internal units; p = (s0, f, d, dstar).

    M is the number of samples N, plus one with ``prior`` (V,): the pseudo-sample
    ``prior·(ln D* − ln D*_prior)`` (observed value 0) of the log-normal prior on ``D*`` that
    :func:`_fit_arrays` adds for the ``"map"`` method. The second value is ``(e1, e2)``, the two
    exponentials (V, N), without a Rician model, else the Jacobian (V, 4, N) of the Rician mean.
    """
    n = b.size
    s0, f, d, ds = p[:, 0:1], p[:, 1:2], p[:, 2:3], p[:, 3:4]
    pred = np.empty((p.shape[0], n if prior is None else n + 1))
    e1 = np.exp(-b * ds)
    e2 = np.exp(-b * d)
    mix = f * (e1 - e2)
    mix += e2  # f e1 + (1 - f) e2
    np.multiply(s0, mix, out=pred[:, :n])
    if prior is not None:
        pred[:, n] = prior * (np.log(ds[:, 0]) - _LOG_DSTAR_PRIOR)
    if sigma is None:
        return pred, (e1, e2)
    jac = np.stack([mix, s0 * (e1 - e2), (-s0 * (1.0 - f)) * b * e2, (-s0 * f) * b * e1], axis=1)
    pred[:, :n], deriv = _noise.rician_mean_and_derivative(pred[:, :n], sigma[:, None])  # tabulated Bessel
    jac *= deriv[:, None, :]
    return pred, jac


def _normal_equations(p, aux, r, w, bpow, prior):
    """``JᵀWJ`` (V, 4, 4) and ``JᵀWr`` (V, 4) of the bi-exponential at p.

    Without the Rician model the Jacobian columns are products of ``e1 = exp(-b D*)``,
    ``e2 = exp(-b D)``, ``b`` and the parameters, so both follow in closed form from the weighted
    moments ``Σ w bᵏ e_i e_j`` (k ≤ 2) and ``Σ w bᵏ r e_i`` (k ≤ 1): two small matrix products
    instead of forming the (V, 4, N) Jacobian. With ``r=None`` only ``JᵀWJ`` is formed (the
    gradient is None).
    """
    n = bpow.shape[0]
    s0, f = p[:, 0], p[:, 1]
    rn, wn = (None if r is None else r[:, :n]), (None if w is None else w[:, :n])
    if isinstance(aux, tuple):
        e1, e2 = aux
        we1, we2 = (e1 if w is None else wn * e1), (e2 if w is None else wn * e2)
        nv = p.shape[0]
        pairs = ((we1, e1), (we1, e2), (we2, e2)) + (() if r is None else ((we1, rn), (we2, rn)))
        buf = np.empty((len(pairs), nv, n))
        for k, (u, v) in enumerate(pairs):
            np.multiply(u, v, out=buf[k])
        # one GEMM each: (3V, N) @ (N, 3) and (2V, N) @ (N, 2)
        e11, e12, e22 = (buf[:3].reshape(3 * nv, n) @ bpow).reshape(3, nv, 3)  # pair 11/12/22, power k
        g, s2, fc = 1.0 - f, s0 * s0, f * (1.0 - f)
        jtj = np.empty((p.shape[0], 4, 4))
        jtj[:, 0, 0] = f * f * e11[:, 0] + 2 * fc * e12[:, 0] + g * g * e22[:, 0]
        jtj[:, 0, 1] = s0 * (f * e11[:, 0] + (1 - 2 * f) * e12[:, 0] - g * e22[:, 0])
        jtj[:, 0, 2] = -s0 * g * (f * e12[:, 1] + g * e22[:, 1])
        jtj[:, 0, 3] = -s0 * f * (f * e11[:, 1] + g * e12[:, 1])
        jtj[:, 1, 1] = s2 * (e11[:, 0] - 2 * e12[:, 0] + e22[:, 0])
        jtj[:, 1, 2] = -s2 * g * (e12[:, 1] - e22[:, 1])
        jtj[:, 1, 3] = -s2 * f * (e11[:, 1] - e12[:, 1])
        jtj[:, 2, 2] = s2 * g * g * e22[:, 2]
        jtj[:, 2, 3] = s2 * fc * e12[:, 2]
        jtj[:, 3, 3] = s2 * f * f * e11[:, 2]
        iu = np.triu_indices(4, 1)
        jtj[:, iu[1], iu[0]] = jtj[:, iu[0], iu[1]]
        grad = None
        if r is not None:
            r1, r2 = (buf[3:].reshape(2 * nv, n) @ bpow[:, :2]).reshape(2, nv, 2)  # r·e1 / r·e2, power k
            grad = np.column_stack([f * r1[:, 0] + g * r2[:, 0], s0 * (r1[:, 0] - r2[:, 0]),
                                    -s0 * g * r2[:, 1], -s0 * f * r1[:, 1]])
    else:
        jw = aux if w is None else aux * wn[:, None, :]
        jtj = np.matmul(jw, aux.transpose(0, 2, 1))
        grad = np.matmul(jw, rn[:, :, None])[..., 0]
    if prior is not None:  # the prior's pseudo-sample, weight 1
        jp = prior / p[:, 3]
        jtj[:, 3, 3] += jp * jp
        if grad is not None:
            grad[:, 3] += jp * r[:, n]
    return jtj, grad


# --------------------------------------------------------------------------------------- solver
def _batched_lm(
    p0: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    free: np.ndarray,
    *,
    sigma: np.ndarray | None = None,
    max_iter: int = 200,
    xtol: float = 1e-6,
    ftol: float = 1e-8,
    prior: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bounded Levenberg–Marquardt on all voxels at once.

    Minimises ``sum_n w[v, n] (y[v, n] - model(p[v], b_n))²`` for every voxel v.

    Parameters
    ----------
    p0 : (V, 4) initial parameters (internal units), y : (V, N), w : (V, N) sample weights,
    b : (N,) internal b-values, lo, hi : (4,) bounds, free : (4,) bool, which parameters move.

    Returns
    -------
    p : (V, 4), converged : (V,) bool, n_iter : (V,) int
    """
    n_vox = p0.shape[0]
    p_out = np.clip(p0, lo, hi).astype(float)
    converged = np.zeros(n_vox, dtype=bool)
    n_iter = np.zeros(n_vox, dtype=np.int64)
    fixed_global = ~np.asarray(free, dtype=bool)
    eye = np.eye(4)
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    bound_eps = 1e-12 * span
    # working set (compacted as voxels converge, so finished voxels cost nothing)
    ids = np.arange(n_vox)
    p, yw, ww = p_out.copy(), y, (None if np.all(w == 1.0) else w)
    bpow = b[:, None] ** np.arange(3)  # (N, 3): 1, b, b²
    sw = sigma
    pw = prior
    if prior is not None:  # the prior's pseudo-sample: observed 0
        yw = np.concatenate([y, np.zeros((n_vox, 1))], axis=1)
        ww = None if ww is None else np.concatenate([w, np.ones((n_vox, 1))], axis=1)
    pred, aux = _model_jac(p, b, sw, pw)
    r = yw - pred
    cost = np.einsum("vn,vn->v", r, r) if ww is None else np.einsum("vn,vn->v", ww, r * r)
    lam = np.full(n_vox, 1e-3)
    its = np.zeros(n_vox, dtype=np.int64)
    frozen = np.zeros(n_vox, dtype=bool)  # converged, waiting to leave the working set
    for _ in range(max_iter):
        if ids.size == 0:
            break
        jtj, grad = _normal_equations(p, aux, r, ww, bpow, pw)  # increasing p along grad lowers cost
        at_lo = (p <= lo + bound_eps) & (grad < 0)
        at_hi = (p >= hi - bound_eps) & (grad > 0)
        fixed = at_lo | at_hi | fixed_global
        diag = np.einsum("vpp->vp", jtj)
        scale = np.maximum(diag, 1e-12 * np.maximum(diag.max(axis=1, keepdims=True), 1e-300))
        a = jtj + (lam[:, None] * scale)[..., None] * eye
        keep = ~fixed
        a = a * keep[:, :, None] * keep[:, None, :] + eye * fixed[:, None, :]
        g = np.where(fixed, 0.0, grad)
        delta = _solve_spd4(a, g)
        solved = np.all(np.isfinite(delta), axis=1)  # else: more damping, try again
        delta = np.where(solved[:, None], delta, 0.0)
        p_new = np.clip(p + delta, lo, hi)
        pred_new, aux_new = _model_jac(p_new, b, sw, pw)
        r_new = yw - pred_new
        cost_new = np.einsum("vn,vn->v", r_new, r_new) if ww is None else np.einsum("vn,vn->v", ww, r_new * r_new)
        ok = solved & np.isfinite(cost_new) & (cost_new <= cost) & ~frozen
        small_step = np.all(np.abs(p_new - p) <= xtol * (np.abs(p) + xtol), axis=1)
        small_gain = (cost - cost_new) <= ftol * cost + 1e-30
        ok2 = ok[:, None]
        np.copyto(p, p_new, where=ok2)
        np.copyto(r, r_new, where=ok2)
        np.copyto(cost, cost_new, where=ok)
        if isinstance(aux, tuple):
            for old_a, new_a in zip(aux, aux_new):
                np.copyto(old_a, new_a, where=ok2)
        else:
            np.copyto(aux, aux_new, where=ok[:, None, None])
        lam = np.where(ok, np.maximum(lam / 5.0, 1e-12), lam * 4.0)
        its += 1
        done = ((ok & (small_step | small_gain)) | (lam > 1e12) | ~np.any(g != 0, axis=1)) & ~frozen
        if done.any():  # record now; drop from the working set once a quarter of it is done
            fin = ids[done]
            p_out[fin] = p[done]
            converged[fin] = True
            n_iter[fin] = its[done]
            frozen |= done
        if frozen.sum() * 4 >= ids.size:
            kp = ~frozen
            ids, p, yw, r, cost, lam, its, frozen = (x[kp] for x in (ids, p, yw, r, cost, lam, its, frozen))
            aux = tuple(x[kp] for x in aux) if isinstance(aux, tuple) else aux[kp]
            ww, sw, pw = (None if x is None else x[kp] for x in (ww, sw, pw))
    ids, p, its = ids[~frozen], p[~frozen], its[~frozen]
    p_out[ids] = p  # not converged within max_iter: best point found
    n_iter[ids] = its
    return p_out, converged, n_iter


def _solve_spd4(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve the (V, 4, 4) symmetric positive-definite systems ``a x = g`` (vectorised Cholesky).

    Systems that are not numerically positive definite give non-finite rows; the solver then
    rejects the step and increases the damping (a shorter, gradient-like step next time).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        l00 = np.sqrt(a[:, 0, 0])
        l10, l20, l30 = a[:, 1, 0] / l00, a[:, 2, 0] / l00, a[:, 3, 0] / l00
        l11 = np.sqrt(a[:, 1, 1] - l10 * l10)
        l21 = (a[:, 2, 1] - l20 * l10) / l11
        l31 = (a[:, 3, 1] - l30 * l10) / l11
        l22 = np.sqrt(a[:, 2, 2] - l20 * l20 - l21 * l21)
        l32 = (a[:, 3, 2] - l30 * l20 - l31 * l21) / l22
        l33 = np.sqrt(a[:, 3, 3] - l30 * l30 - l31 * l31 - l32 * l32)
        z0 = g[:, 0] / l00
        z1 = (g[:, 1] - l10 * z0) / l11
        z2 = (g[:, 2] - l20 * z0 - l21 * z1) / l22
        z3 = (g[:, 3] - l30 * z0 - l31 * z1 - l32 * z2) / l33
        x3 = z3 / l33
        x2 = (z2 - l32 * x3) / l22
        x1 = (z1 - l21 * x2 - l31 * x3) / l11
        x0 = (z0 - l10 * x1 - l20 * x2 - l30 * x3) / l00
    return np.stack([x0, x1, x2, x3], axis=1)


# --------------------------------------------------------------------------------------- helpers
def _check_bounds(bounds: Mapping[str, tuple[float, float]] | None,
                  physical: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Bounds (lower, upper) in mm²/s; ``physical``: D ≤ :data:`D_FREE_WATER_37C` unless `bounds` sets D."""
    merged = dict(DEFAULT_BOUNDS)
    if physical:
        merged["d"] = (merged["d"][0], D_FREE_WATER_37C)
    if bounds:
        for key, val in bounds.items():
            name = _ALIASES.get(key, key)
            if name not in merged:
                raise InputDataError(f"unknown IVIM bound {key!r}; known: {sorted(merged)}.")
            try:
                lo, hi = (float(v) if v is not None else np.nan for v in val)
            except (TypeError, ValueError) as err:
                raise InputDataError(f"bound {key!r} must be a (lower, upper) pair, got {val!r}.") from err
            lo = merged[name][0] if np.isnan(lo) else lo
            hi = np.inf if np.isnan(hi) else hi
            if not lo < hi:
                raise InputDataError(f"bound {key!r}: lower {lo} must be below upper {hi}.")
            merged[name] = (lo, hi)
    if merged["s0"][0] < 0 or merged["f"][0] < 0 or merged["f"][1] > 1 or merged["d"][0] < 0:
        raise InputDataError("bounds must keep S0 >= 0, 0 <= f <= 1 and D >= 0.")
    lo = np.array([merged[k][0] for k in _PARAMS])
    hi = np.array([merged[k][1] for k in _PARAMS])
    return lo, hi


def _prepare(signal: ArrayLike, bvals: ArrayLike, sigma: ArrayLike | None, weights: ArrayLike | None):
    y = np.asarray(signal, dtype=float)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2:
        raise InputDataError(f"signal must have shape (V, N), got {y.shape}.")
    b = np.asarray(bvals, dtype=float).reshape(-1)
    if b.size != y.shape[1]:
        raise InputDataError(f"bvals has {b.size} entries but the signal has {y.shape[1]} samples per voxel.")
    if np.any(~np.isfinite(b)) or np.any(b < 0):
        raise InputDataError("b-values must be finite and >= 0 s/mm^2.")
    sig = None
    if sigma is not None:
        sig = np.broadcast_to(np.asarray(sigma, dtype=float), (y.shape[0],)).copy()
        if np.any(~np.isfinite(sig)) or np.any(sig <= 0):
            raise InputDataError("sigma must be finite and > 0 (signal units) for the Rician model.")
    if weights is None:
        w = np.ones_like(y)
    else:
        w = np.broadcast_to(np.asarray(weights, dtype=float), y.shape).copy()
        if np.any(~np.isfinite(w)) or np.any(w < 0):
            raise InputDataError("weights must be finite and >= 0.")
    return y, b, sig, w


def _scale(y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-voxel signal scale: mean of the samples at the lowest b-value (fallback: max)."""
    low = b <= b.min() + 1e-9
    with np.errstate(invalid="ignore", divide="ignore"):
        sc = np.nanmean(np.where(low, y, np.nan), axis=1)
        alt = np.nanmax(np.where(np.isfinite(y), y, np.nan), axis=1) if y.size else sc
    sc = np.where(np.isfinite(sc) & (sc > 0), sc, alt)
    sc = np.where(np.isfinite(sc) & (sc > 0), sc, 1.0)
    return sc


def _rsquared(y, pred, w):
    wsum = np.maximum(w.sum(axis=1), 1e-300)
    mean = (w * y).sum(axis=1) / wsum
    ss_tot = (w * (y - mean[:, None]) ** 2).sum(axis=1)
    ss_res = (w * (y - pred) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)


def _loglinear_mono(y, w, b):
    """Weighted log-linear mono-exponential fit per voxel: returns (intercept signal, D) internal."""
    pos = (y > 0) & (w > 0)
    logy = np.log(np.where(pos, y, 1.0))
    ww = np.where(pos, w * np.where(pos, y, 0.0) ** 2, 0.0)  # WLS weights ∝ S² (clin-ref §1.1)
    for _ in range(2):
        sw = ww.sum(1)
        sb = (ww * b).sum(1)
        sbb = (ww * b * b).sum(1)
        sy = (ww * logy).sum(1)
        sby = (ww * b * logy).sum(1)
        det = sw * sbb - sb * sb
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = (sw * sby - sb * sy) / det
            icpt = (sy - slope * sb) / sw
        pred = np.exp(icpt[:, None] + slope[:, None] * b)
        ww = np.where(pos, w * np.where(np.isfinite(pred), pred, 0.0) ** 2, 0.0)
    return np.exp(icpt), -slope


def _dstar_grid_search(y, w, b, d, lo, hi):
    """For fixed D, grid over D* with non-negative closed-form amplitudes (variable projection).

    Returns (s0, f, dstar, rss) of the best grid point, internal units.
    """
    grid = np.geomspace(max(lo[3], 1e-4), min(hi[3], 1e3) if np.isfinite(hi[3]) else 300.0, _N_DSTAR_GRID)
    e1 = np.exp(-np.outer(grid, b))  # (G, N)
    e2 = np.exp(-d[:, None] * b)  # (V, N)
    we2 = w * e2
    s11 = w @ (e1 * e1).T  # (V, G)
    s12 = we2 @ e1.T
    s22 = (we2 * e2).sum(1)[:, None]
    wy = w * y
    y1 = wy @ e1.T
    y2 = (wy * e2).sum(1)[:, None]
    yy = (wy * y).sum(1)[:, None]
    det = s11 * s22 - s12 * s12
    with np.errstate(invalid="ignore", divide="ignore"):
        amp1 = (s22 * y1 - s12 * y2) / det
        amp2 = (s11 * y2 - s12 * y1) / det
        # non-negativity: a negative amplitude leaves the other component alone
        neg1, neg2 = ~(amp1 >= 0), ~(amp2 >= 0)
        a1 = np.where(neg1, 0.0, np.where(neg2, np.maximum(y1 / s11, 0.0), amp1))
        a2 = np.where(neg1, np.maximum(y2 / s22, 0.0), np.where(neg2, 0.0, amp2))
    rss = yy - a1 * y1 - a2 * y2  # least-squares residual on the active components
    rss = np.where(np.isfinite(rss), rss, np.inf)
    g = np.argmin(rss, axis=1)
    rows = np.arange(y.shape[0])
    A1, A2 = a1[rows, g], a2[rows, g]
    s0 = A1 + A2
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.where(s0 > 0, A1 / s0, 0.0)
    return s0, f, grid[g], np.maximum(rss[rows, g], 0.0)


def _validity(y, w, b, min_samples: int) -> np.ndarray:
    finite = np.all(np.isfinite(y), axis=1)
    low = b <= b.min() + 1e-9
    with np.errstate(invalid="ignore"):
        b0_ok = np.all(np.where(low, y > 0, True), axis=1)
    enough = (w > 0).sum(1) >= min_samples
    return finite & b0_ok & enough


# --------------------------------------------------------------------------------------- public array API
def ivim_segmented(
    signal: ArrayLike,
    bvals: ArrayLike,
    *,
    b_threshold: float = 200.0,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    sigma: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    max_iter: int = 200,
) -> IVIMResult:
    """Segmented IVIM fit on a (V, N) signal array, vectorised over voxels.

    Step 1: ``D`` and the intercept from a weighted log-linear fit of the samples with
    ``b >= b_threshold`` (weights ∝ S², dwi_toolkit References §1.1). Step 2: ``S0, f, D*`` with
    ``D`` fixed — a grid over ``D*`` with non-negative amplitudes solved in closed form, refined by
    bounded Levenberg–Marquardt on all samples.

    Parameters
    ----------
    signal : array_like of shape (V, N)
        Signal per voxel (one row per voxel), any positive scale.
    bvals : array_like of shape (N,)
        b-values in s/mm². At least two distinct values ``>= b_threshold`` and one below.
    b_threshold : float, optional
        s/mm²; samples at or above it are taken as perfusion-free for ``D`` (default 200).
    bounds : mapping, optional
        ``{"d": (lo, hi), "dstar": (lo, hi), "f": (lo, hi), "s0": (lo, hi)}`` overriding
        :data:`DEFAULT_BOUNDS` (mm²/s for diffusivities).
    sigma : float or array_like of shape (V,), optional
        Noise σ (signal units). When given, the Rician expected magnitude is fitted instead of
        the bi-exponential itself (step 1 is then refined by a Rician mono-exponential fit).
    weights : array_like of shape (V, N) or (N,), optional
        Sample weights (e.g. :func:`dwi_toolkit.models.noise.rician_exclusion_weights`).
    max_iter : int, optional
        Levenberg–Marquardt iteration limit.

    Returns
    -------
    IVIMResult

    Raises
    ------
    FitError
        If the b-values cannot support the fit.

    Examples
    --------
    >>> b = np.array([0, 10, 20, 50, 100, 200, 400, 600, 800, 1000.0])
    >>> y = ivim_signal(b, 1000.0, 0.12, 1.0e-3, 30e-3)[None, :]
    >>> r = ivim_segmented(y, b, b_threshold=400)
    >>> f"{r.d[0]:.4g} {r.status[0]}"
    '0.001 0'
    """
    y, b, sig, w = _prepare(signal, bvals, sigma, weights)
    lo_mm, hi_mm = _check_bounds(bounds)
    return _fit_arrays(y, b, sig, w, lo_mm, hi_mm, b_threshold, full=False, max_iter=max_iter)


def ivim_full(
    signal: ArrayLike,
    bvals: ArrayLike,
    *,
    b_threshold: float = 200.0,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    sigma: ArrayLike | None = None,
    weights: ArrayLike | None = None,
    max_iter: int = 200,
    dstar_prior: bool = False,
) -> IVIMResult:
    """Full bounded bi-exponential IVIM fit on a (V, N) signal array, vectorised over voxels.

    The segmented fit's step 1 and ``D*`` grid (:func:`ivim_segmented`) provide the starting
    point; a bounded Levenberg–Marquardt then fits ``S0, f, D, D*`` jointly on all samples.
    Parameters as for :func:`ivim_segmented`; with ``dstar_prior=True`` the fit is the ``"map"``
    method of :func:`fit_ivim` (log-normal prior :data:`DSTAR_PRIOR` on ``D*``, ``D`` at most
    :data:`D_FREE_WATER_37C` unless `bounds` sets it, and the per-voxel choice of the segmented
    ``D``; see the module docstring).

    Examples
    --------
    >>> b = np.array([0, 10, 20, 50, 100, 200, 400, 600, 800, 1000.0])
    >>> y = ivim_signal(b, 1000.0, 0.12, 1.0e-3, 30e-3)[None, :]
    >>> r = ivim_full(y, b)
    >>> f"{r.f[0]:.4f} {r.d[0]:.4g} {r.dstar[0]:.4g}"
    '0.1200 0.001 0.03'
    >>> r = ivim_full(y, b, dstar_prior=True)  # noiseless: the prior's weight vanishes
    >>> f"{r.f[0]:.4f} {r.d[0]:.4g} {r.dstar[0]:.4g}"
    '0.1200 0.001 0.03'
    """
    y, b, sig, w = _prepare(signal, bvals, sigma, weights)
    lo_mm, hi_mm = _check_bounds(bounds, physical=dstar_prior)
    return _fit_arrays(y, b, sig, w, lo_mm, hi_mm, b_threshold, full=True, max_iter=max_iter,
                       prior=dstar_prior)


def _map_fit(p0, y, w, b, lo, hi, sigma, s_hat, max_iter, free=None, refine=True):
    """Fit with the log-normal ``D*`` prior; the prior's weight is ``σ/τ`` per voxel.

    ``σ`` (`s_hat`, per voxel) is the Rician σ when known, else the residual RMS of the ``D*``
    grid step. That overestimates σ where the grid point's model error exceeds the noise (high
    SNR, noiseless data): there the fit is repeated (at most twice) with σ from its own residual,
    so the prior's pull vanishes with the noise (``refine=False``: σ kept). `free`: which of
    (S0, f, D, D*) move (default all). Returns the parameters, convergence, iterations and the σ
    used.
    """
    free = np.ones(4, bool) if free is None else free
    n_used = np.maximum((w > 0).sum(1) - 4, 1)
    s_hat = np.maximum(s_hat, 1e-9)
    p, conv, it = _batched_lm(p0, y, w, b, lo, hi, free, sigma=sigma, max_iter=max_iter,
                              prior=s_hat / _DSTAR_PRIOR_TAU)
    for _ in range(2 if sigma is None and refine else 0):
        resid = y - _model_jac(p, b, None)[0]
        s_new = np.maximum(np.sqrt(np.einsum("vn,vn->v", w, resid * resid) / n_used), 1e-9)
        redo = np.flatnonzero(s_new < 0.5 * s_hat)
        if redo.size == 0:
            break
        s_hat[redo] = s_new[redo]
        p[redo], conv[redo], it_r = _batched_lm(p[redo], y[redo], w[redo], b, lo, hi, free,
                                                max_iter=max_iter, prior=s_hat[redo] / _DSTAR_PRIOR_TAU)
        it[redo] += it_r
    return p, conv, it, s_hat


def _posterior_var_d(p, w, b, s_hat):
    """Posterior variance of ``D`` (internal units) at the MAP estimate, Laplace approximation.

    ``σ² [(JᵀJ + P)⁻¹]_DD`` with ``P`` the curvature of the ``D*`` prior term. Where ``f`` sits at
    0, ``f`` and ``D*`` are held (``D*`` is then undetermined); a system that is not positive
    definite gives NaN.
    """
    aux = (np.exp(-b * p[:, 3:4]), np.exp(-b * p[:, 2:3]))
    jtj, _ = _normal_equations(p, aux, None, None if np.all(w == 1.0) else w, b[:, None] ** np.arange(3),
                               s_hat / _DSTAR_PRIOR_TAU)
    held = np.zeros((p.shape[0], 4), bool)
    held[:, 1] = held[:, 3] = p[:, 1] <= 1e-9
    keep = ~held
    jtj = jtj * keep[:, :, None] * keep[:, None, :] + np.eye(4) * held[:, None, :]
    unit = np.zeros((p.shape[0], 4))
    unit[:, 2] = 1.0
    return s_hat ** 2 * _solve_spd4(jtj, unit)[:, 2]


def _segmented_d_mse(p, w, b, high, d_seg, a_seg, s_hat):
    """Estimated mean squared error of the segmented ``D`` (internal units), per voxel.

    Variance ``σ² [(J_hᵀJ_h)⁻¹]_DD`` of the mono-exponential ``a e^{-b D}`` on the samples
    ``b >= b_threshold`` plus the squared bias that the perfusion signal left there,
    ``S0 f e^{-b D*}``, puts on it (linearised: ``[(J_hᵀJ_h)⁻¹ J_hᵀ S0 f e^{-b D*}]_D``), with
    the joint estimates ``p`` plugged in.
    """
    wh, b = w[:, high], b[high]
    e = np.exp(-d_seg[:, None] * b)
    jd = -a_seg[:, None] * b * e
    s00 = np.einsum("vn,vn->v", wh, e * e)
    s01 = np.einsum("vn,vn->v", wh, e * jd)
    s11 = np.einsum("vn,vn->v", wh, jd * jd)
    det = s00 * s11 - s01 * s01
    perf = (p[:, 0] * p[:, 1])[:, None] * np.exp(-p[:, 3:4] * b)
    g0 = np.einsum("vn,vn->v", wh, e * perf)
    g1 = np.einsum("vn,vn->v", wh, jd * perf)
    bias = (s00 * g1 - s01 * g0) / det
    return s_hat ** 2 * s00 / det + bias * bias


def _map_choose_d(p0, y, w, b, lo, hi, sigma, s_hat, max_iter, seg):
    """The ``"map"`` fit: the joint MAP estimate, then per voxel the ``D`` of lower estimated error.

    `seg` = ``(high, d_seg, a_seg)``: the samples ``b >= b_threshold`` and the segmented step's
    ``D`` and intercept. Where the joint posterior variance of ``D`` (:func:`_posterior_var_d`)
    exceeds the segmented estimate's mean squared error (:func:`_segmented_d_mse`) — ``D*`` too
    close to ``D`` or ``f`` too small for the joint fit to separate them — ``D`` is the segmented
    one and ``S0, f, D*`` are refitted (with the prior) given it.
    """
    high, d_seg, a_seg = seg
    p, conv, it, s_hat = _map_fit(p0, y, w, b, lo, hi, sigma, s_hat, max_iter)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        better = _segmented_d_mse(p, w, b, high, d_seg, a_seg, s_hat) < _posterior_var_d(p, w, b, s_hat)
    pick = np.flatnonzero(better)
    if pick.size:
        p_s = p[pick].copy()
        p_s[:, 2] = d_seg[pick]
        p[pick], conv[pick], it_s, _ = _map_fit(p_s, y[pick], w[pick], b, lo, hi,
                                                None if sigma is None else sigma[pick], s_hat[pick],
                                                max_iter, free=_FREE_NO_D, refine=False)
        it[pick] += it_s
    return p, conv, it


def _fit_arrays(y, b_mm, sig, w, lo_mm, hi_mm, b_threshold, *, full: bool, max_iter: int,
                prior: bool = False) -> IVIMResult:
    n_vox = y.shape[0]
    high = b_mm >= b_threshold
    if np.unique(b_mm[high]).size < 2:
        raise FitError(
            f"the segmented IVIM step needs at least two distinct b-values >= b_threshold="
            f"{b_threshold:g} s/mm^2; b-values present: {sorted(set(np.round(b_mm, 3).tolist()))}. "
            "Lower b_threshold or use a protocol with more high b-values."
        )
    if np.unique(b_mm).size < 4:
        raise FitError(
            f"IVIM has 4 parameters but only {np.unique(b_mm).size} distinct b-values are present."
        )
    if np.unique(b_mm[~high]).size < 1:
        raise FitError(f"IVIM needs at least one b-value below b_threshold={b_threshold:g} s/mm^2.")
    # internal units
    b = b_mm * _BSCALE
    scale = _scale(y, b_mm)
    ys = y / scale[:, None]
    sg = None if sig is None else sig / scale
    lo = lo_mm.copy()
    hi = hi_mm.copy()
    lo[2:] *= _DSCALE
    hi[2:] *= _DSCALE
    n_high = ((w[:, high] > 0) & (y[:, high] > 0)).sum(1)
    valid = _validity(y, w, b_mm, 4) & (n_high >= 2)
    out_p = np.full((n_vox, 4), np.nan)
    status = np.full(n_vox, 2, dtype=np.uint8)
    rsq = np.full(n_vox, np.nan)
    n_iter = np.zeros(n_vox, dtype=np.int64)
    vi = np.flatnonzero(valid)
    if vi.size:
        yv, wv, sv = ys[vi], w[vi], (None if sg is None else sg[vi])
        # S0 bounds are in signal units: the solver keeps S0 >= 0, user bounds are applied after
        lo_v = lo.copy()
        hi_v = hi.copy()
        s0_lo = lo_mm[0] / scale[vi]
        s0_hi = hi_mm[0] / scale[vi]
        lo_v[0], hi_v[0] = 0.0, np.inf
        # --- step 1: D from high b
        wh = np.where(high, wv, 0.0)
        s_int, d = _loglinear_mono(yv, wh, b)
        d = np.clip(np.where(np.isfinite(d), d, 1.0), lo[2], hi[2])
        s_int = np.where(np.isfinite(s_int) & (s_int > 0), s_int, 1.0)
        if sv is not None:  # Rician-aware refinement of the mono-exponential (f fixed at 0)
            p_m = np.column_stack([s_int, np.zeros_like(d), d, np.full_like(d, hi[3])])
            lo_m = np.array([0.0, 0.0, lo[2], lo[3]])
            p_m, _, _ = _batched_lm(p_m, yv, wh, b, lo_m, np.array([np.inf, 1.0, hi[2], hi[3]]),
                                    np.array([True, False, True, False]), sigma=sv, max_iter=max_iter)
            s_int, d = p_m[:, 0], p_m[:, 2]
        # --- step 2: D* grid (variable projection), then LM on S0, f, D* with D fixed
        s0_0, f_0, ds_0, rss_grid = _dstar_grid_search(yv, wv, b, d, lo, hi)
        f_0 = np.clip(f_0, lo[1], hi[1])
        s0_0 = np.where(s0_0 > 0, s0_0, 1.0)
        p0 = np.column_stack([s0_0, f_0, d, ds_0])
        # segmented: LM on S0, f, D* with D fixed; full: LM on all four from the same start (the
        # intermediate segmented refinement changes neither accuracy nor the optimum reached but
        # costs up to 3x the time)
        free = np.ones(4, bool) if full else _FREE_NO_D
        if prior:
            s_hat = sv if sv is not None else np.sqrt(rss_grid / np.maximum((wv > 0).sum(1) - 4, 1))
            p, conv, it = _map_choose_d(p0, yv, wv, b, lo_v, hi_v, sv, s_hat, max_iter, (high, d, s_int))
        else:
            p, conv, it = _batched_lm(p0, yv, wv, b, lo_v, hi_v, free, sigma=sv, max_iter=max_iter)
        # S0 bounds (rarely active): clip afterwards
        p[:, 0] = np.clip(p[:, 0], s0_lo, s0_hi)
        pred = _model_jac(p, b, sv)[0]
        rsq[vi] = _rsquared(yv, pred, wv)
        # status
        span = hi - lo
        tol = 1e-6 * np.where(np.isfinite(span), span, 1.0)
        check = [1, 2, 3] if full else [1, 3]
        at_bound = np.zeros(vi.size, dtype=bool)
        for k in check:
            at_bound |= (p[:, k] <= lo[k] + tol[k]) | (p[:, k] >= hi[k] - tol[k])
        st = np.where(conv, np.where(at_bound, 5, 0), 4).astype(np.uint8)
        status[vi] = st
        n_iter[vi] = it
        out_p[vi] = p
    out_p[:, 0] *= scale
    out_p[:, 2:] /= _DSCALE
    return IVIMResult(out_p[:, 0], out_p[:, 1], out_p[:, 2], out_p[:, 3], rsq, status, n_iter)


# --------------------------------------------------------------------------------------- direction averaging
def average_directions(
    data: ArrayLike, bvals: ArrayLike, bvecs: ArrayLike | None = None, *, atol: float = 0.5,
    rtol: float = 0.02,
) -> tuple[NDArray[np.float64], NDArray[np.float32]]:
    """Average volumes that share a b-value: geometric mean over directions (trace).

    Unlike :meth:`DWISeries.trace`, low b-values (1, 2, 5, 10 ... s/mm²) are kept as separate
    samples, which IVIM needs. b-values within ``max(atol, rtol·b)`` of each other form one group.
    Groups whose volumes all have a zero b-vector (b=0 repeats, scanner trace volumes) are averaged
    arithmetically; groups of directional volumes by the geometric mean, whose logarithm is the mean
    of the directional log-signals (dwi_toolkit References §1.1).

    Parameters
    ----------
    data : array_like of shape (..., N)
    bvals : array_like of shape (N,)
        s/mm².
    bvecs : array_like of shape (N, 3), optional
        Unit vectors; when omitted every group is treated as directional (geometric mean), except
        b=0.
    atol, rtol : float, optional
        Grouping tolerances (s/mm² and relative).

    Returns
    -------
    bvals : ndarray of shape (M,)
        Group b-values (mean of members), ascending.
    data : ndarray of shape (..., M), float32

    Examples
    --------
    >>> b, s = average_directions(np.array([[100.0, 50.0, 200.0, 10.0]]), [0, 1000, 1000, 5])
    >>> b.tolist(), s.round(2).tolist()
    ([0.0, 5.0, 1000.0], [[100.0, 10.0, 100.0]])
    """
    arr = np.asarray(data)
    bv = np.asarray(bvals, dtype=float).reshape(-1)
    if bv.size != arr.shape[-1]:
        raise InputDataError(f"bvals has {bv.size} entries but data has {arr.shape[-1]} volumes.")
    vec = None if bvecs is None else np.asarray(bvecs, dtype=float).reshape(-1, 3)
    order = np.argsort(bv, kind="stable")
    groups: list[list[int]] = []
    for i in order:
        if groups and abs(bv[i] - bv[groups[-1][0]]) <= max(atol, rtol * bv[i]):
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    out = np.empty(arr.shape[:-1] + (len(groups),), dtype=np.float32)
    gb = np.empty(len(groups))
    for k, g in enumerate(groups):
        gb[k] = bv[g].mean()
        sub = np.take(arr, g, axis=-1).astype(np.float64)
        no_dir = gb[k] == 0 or (vec is not None and np.all(np.linalg.norm(vec[g], axis=1) == 0))
        if no_dir or len(g) == 1:
            out[..., k] = sub.mean(axis=-1)
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[..., k] = np.exp(np.log(np.where(sub > 0, sub, np.nan)).mean(axis=-1))
    return gb, out


# --------------------------------------------------------------------------------------- fit container
@dataclass(frozen=True, eq=False, repr=False)
class IVIMFit:
    """Voxel-wise IVIM maps with status and provenance (returned by :func:`fit_ivim`).

    Attributes
    ----------
    d, dstar : ndarray of shape (X, Y, Z)
        Diffusion and pseudo-diffusion coefficients, mm²/s; NaN where status is 1 or 2.
    f : ndarray of shape (X, Y, Z)
        Perfusion fraction, unitless 0–1.
    s0 : ndarray of shape (X, Y, Z)
        Fitted b=0 signal (signal units).
    rsquared : ndarray of shape (X, Y, Z)
        Coefficient of determination on the samples used.
    status : ndarray of uint8, shape (X, Y, Z)
        :data:`STATUS_CODES`. Values are kept (not NaN) for 4 (not converged) and 5 (at a bound)
        so they can be inspected; ROI statistics exclude any status != 0 by default.
    affine : ndarray of shape (4, 4)
        Voxel → RAS+ mm.
    bvals_used : ndarray of shape (M,)
        b-values (s/mm²) of the samples fitted (after direction averaging).
    method : str
        ``"map"``, ``"segmented"`` or ``"full"``.
    b_threshold : float
        s/mm² used for the segmented step.
    bounds : dict
        Bounds used, name → (lower, upper), diffusivities in mm²/s.
    noise_correction : str or None
        ``None``, ``"exclude"`` or ``"rician"``.
    sigma : float or None
        Noise σ used (signal units), when a correction was applied.
    b0_threshold : float
        s/mm², from the series.

    Examples
    --------
    >>> from dwi_toolkit.core.image import DWISeries
    >>> b = np.array([0, 10, 20, 50, 100, 200, 400, 600, 800.0])
    >>> sig = ivim_signal(b, 1000.0, np.full((2, 2, 1), 0.1), np.full((2, 2, 1), 1e-3), np.full((2, 2, 1), 20e-3))
    >>> fit = fit_ivim(DWISeries(sig, np.eye(4), b, np.zeros((9, 3))), method="segmented")
    >>> fit.map("d").unit, bool(abs(np.median(fit.d) - 1e-3) < 2e-5)
    ('mm^2/s', True)
    """

    d: np.ndarray
    dstar: np.ndarray
    f: np.ndarray
    s0: np.ndarray
    rsquared: np.ndarray
    status: np.ndarray
    affine: np.ndarray
    bvals_used: np.ndarray
    method: str
    b_threshold: float
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    noise_correction: str | None = None
    sigma: float | None = None
    b0_threshold: float = 50.0

    @property
    def shape(self) -> tuple[int, int, int]:
        """Map shape (X, Y, Z)."""
        return tuple(self.d.shape)  # type: ignore[return-value]

    def map(self, name: str, *, ok_only: bool = False) -> ParameterMap:
        """One map as a :class:`ParameterMap`: ``"d"``, ``"dstar"``, ``"f"``, ``"s0"``,
        ``"rsquared"`` or ``"status"`` (aliases ``"D"``, ``"D*"``, ``"Dp"``, ``"S0"``).

        With ``ok_only=True`` voxels whose status is not 0 are NaN, so ROI statistics of the map
        (:func:`dwi_toolkit.analysis.roi_stats.roi_stats`, which drops NaN) exclude failed fits.
        """
        key = _ALIASES.get(name, name)
        if key not in MAP_UNITS:
            raise InputDataError(f"unknown IVIM map {name!r}; choose one of {list(MAP_UNITS)}.")
        data = getattr(self, key)
        if ok_only and key != "status":
            data = np.where(self.status == 0, data, np.nan)
        return ParameterMap(data, self.affine, key, MAP_UNITS[key])

    def to_maps(self) -> dict[str, ParameterMap]:
        """All maps, name → :class:`ParameterMap`."""
        return {k: self.map(k) for k in MAP_UNITS}

    def predict(self, bvals: ArrayLike | None = None) -> NDArray[np.float64]:
        """Model signal (X, Y, Z, N) at `bvals` (s/mm²; default :attr:`bvals_used`)."""
        b = self.bvals_used if bvals is None else np.asarray(bvals, dtype=float)
        return ivim_signal(b, self.s0, self.f, self.d, self.dstar)

    def summary(self) -> dict[str, Any]:
        """Counts per status code and medians of the ok voxels (JSON-ready)."""
        ok = self.status == 0
        counts = {STATUS_CODES[c]: int((self.status == c).sum()) for c in STATUS_CODES}
        med = {k: (float(np.median(getattr(self, k)[ok])) if ok.any() else None) for k in ("d", "dstar", "f")}
        return {"method": self.method, "b_threshold": self.b_threshold, "status_counts": counts,
                "median_ok": med, "noise_correction": self.noise_correction}

    def save(self, out_dir: str | os.PathLike, *, prefix: str = "ivim_") -> dict[str, Path]:
        """Write every map as NIfTI (``<prefix><name>.nii.gz``) into `out_dir`, atomically.

        Returns
        -------
        dict
            name → path written.
        """
        from ..core.writers import get_writer  # io sits above models: registered, not imported

        save_map = get_writer("map")

        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        return {k: save_map(m, d / f"{prefix}{k}.nii.gz") for k, m in self.to_maps().items()}

    def __repr__(self) -> str:
        n_ok = int((self.status == 0).sum())
        return (f"IVIMFit(method={self.method!r}, shape={self.shape}, ok_voxels={n_ok}, "
                f"b_threshold={self.b_threshold:g})")

    def _repr_html_(self) -> str:
        from ..core._display import fmt_seq, html_table, thumbnail_img

        s = self.summary()
        med = s["median_ok"]

        def show(v: float | None, scale: float, fmt: str) -> str:
            return "—" if v is None else format(v * scale, fmt)

        rows = [
            ("method", self.method),
            ("shape", str(self.shape)),
            ("b-values used (s/mm²)", fmt_seq(self.bvals_used)),
            ("b threshold (s/mm²)", f"{self.b_threshold:g}"),
            ("noise correction", self.noise_correction or "none"),
            ("median D (×10⁻³ mm²/s)", show(med["d"], 1e3, ".3f")),
            ("median D* (×10⁻³ mm²/s)", show(med["dstar"], 1e3, ".1f")),
            ("median f", show(med["f"], 1.0, ".3f")),
        ] + [(f"status: {k}", str(v)) for k, v in s["status_counts"].items() if v]
        shown = np.where(self.status == 0, self.d, np.nan) * 1e3
        return html_table("IVIMFit", rows, image=thumbnail_img(shown, vmin=0.0, vmax=3.0,
                                                              title="D 0–3 ×10⁻³ mm²/s"))


# --------------------------------------------------------------------------------------- series API
_METHODS = {"segmented": (False, False), "full": (True, False), "map": (True, True)}  # (joint, D* prior)


def _check_options(method: str, noise_correction: str | None, sigma) -> None:
    """Validate fit_ivim's method and noise options."""
    if method not in _METHODS:
        raise InputDataError(f"unknown IVIM method {method!r}; choose one of {list(_METHODS)}.")
    if noise_correction not in (None, "exclude", "rician"):
        raise InputDataError(
            f"unknown noise_correction {noise_correction!r}; choose None, 'exclude' or 'rician'."
        )
    if noise_correction is not None and sigma is None:
        raise InputDataError(
            f"noise_correction={noise_correction!r} needs sigma (signal units); estimate it with "
            "dwi_toolkit.models.noise.estimate_sigma_background or estimate_sigma_repeated."
        )


def _sample_bvals(series: DWISeries, average: bool) -> tuple[np.ndarray, np.ndarray]:
    """b-values of the fitted samples and how many volumes each sample averages."""
    if not average:
        return series.bvals.astype(float), np.ones(series.n_volumes, dtype=int)
    bvals, _ = average_directions(np.zeros((1, series.n_volumes)), series.bvals, series.bvecs)
    counts = np.array([int(np.sum(np.abs(series.bvals - bb) <= max(0.5, 0.02 * bb))) for bb in bvals])
    return bvals, counts


def _noise_weights(y, s_vox, noise_correction, counts, bvals, k, b_threshold):
    """Sample weights and the σ the fit models, for one chunk of voxels (y is (V, M))."""
    w = np.ones_like(y)
    s_fit = None
    if s_vox is not None:
        if noise_correction == "exclude":
            s_eff = s_vox[:, None] / np.sqrt(counts)[None, :]
            w = (y > k * s_eff).astype(float)
        elif noise_correction == "rician":
            # averaging reduces σ; use the σ of the average of the most-averaged samples at high b
            s_fit = s_vox / np.sqrt(counts[bvals >= b_threshold].min())
    return w, s_fit


@dataclass(frozen=True)
class IVIMSolver:
    """Solver settings of :func:`fit_ivim` (they change speed and memory, not the model).

    Attributes
    ----------
    chunk_size : int
        Voxels fitted per batch (default 50 000; working memory ≈ chunk_size × N × 100 bytes);
        the series is read slab by slab in its stored dtype, so memory beyond the input is the
        result maps (41 bytes per voxel) plus one chunk.
    max_iter : int
        Levenberg–Marquardt iteration limit per stage (default 50: on a 49 152-voxel test volume
        at SNR 50, 4 voxels need more and get status 4 with their last estimate; each further
        iteration costs a fixed overhead however few voxels remain).

    Examples
    --------
    >>> IVIMSolver(max_iter=100).chunk_size
    50000
    """

    chunk_size: int = 50_000
    max_iter: int = 50


def fit_ivim(
    series: DWISeries,
    *,
    method: str = "map",
    b_threshold: float = 200.0,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    mask: ArrayLike | None = None,
    average: bool | None = None,
    noise_correction: str | None = None,
    sigma: float | ArrayLike | None = None,
    k: float = 2.0,
    solver: IVIMSolver | None = None,
    **settings: Any,
) -> IVIMFit:
    """Fit the IVIM model voxel by voxel to a DWI series.

    Parameters
    ----------
    series : DWISeries
        Multi-b series (b in s/mm²). At least 4 distinct b-values, two of them ``>= b_threshold``.
    method : {"map", "segmented", "full"}, optional
        See the module docstring. ``"map"`` (default): the joint four-parameter fit with a weak
        log-normal prior on ``D*`` (:data:`DSTAR_PRIOR`), ``D`` at most :data:`D_FREE_WATER_37C`
        and, per voxel, the segmented ``D`` where its estimated error is the smaller; as
        accurate as the best OSIPI TF2.4 algorithm per tissue and SNR (median,
        docs/benchmarks.md). ``"segmented"``: ``D`` from the high b-values, then ``f`` and ``D*``
        (``D`` biased where ``D*`` is low). ``"full"``: the joint least-squares fit without prior
        (``D*`` runs to its bounds where the data do not determine it).
    b_threshold : float, optional
        s/mm²; samples at or above are used for ``D`` in the segmented step and for the
        segmented ``D`` that ``"map"`` compares with its joint ``D`` (default 200).
    bounds : mapping, optional
        Overrides of :data:`DEFAULT_BOUNDS` (diffusivities in mm²/s); with ``"map"`` the upper
        bound of ``d`` defaults to :data:`D_FREE_WATER_37C`.
    mask : array_like of bool, shape (X, Y, Z), optional
        Voxels to fit; others get status 1 and NaN maps.
    average : bool, optional
        ``True``: fit the direction-averaged signal (geometric mean per b-value, see
        :func:`average_directions`). ``False``: fit every volume as a separate sample (one ``D``
        for all directions, a least-squares compromise close to the mean diffusivity). Default:
        ``True``, except with ``noise_correction="rician"``, where the default is ``False``
        because the Rician model holds for each measured magnitude but not for a geometric mean
        of magnitudes (on the low-SNR phantom this takes the CSF bias from −4 % to +1 %, see
        docs/ivim-dti.md).
    noise_correction : {None, "exclude", "rician"}, optional
        ``"exclude"``: drop samples below ``k·σ`` (:func:`~dwi_toolkit.models.noise.rician_exclusion_weights`);
        ``"rician"``: fit the expected Rician magnitude. Both need `sigma`.
    sigma : float or array_like of shape (X, Y, Z), optional
        Noise σ in signal units (see :mod:`dwi_toolkit.models.noise`), of the individual
        volumes. With direction averaging the σ of an average of ``n`` volumes is taken as
        ``σ/sqrt(n)`` (an approximation for the geometric mean).
    k : float, optional
        Exclusion threshold in units of σ for ``"exclude"`` (default 2).
    solver : IVIMSolver, optional
        Batch size and iteration limit (``chunk_size``, ``max_iter``; see :class:`IVIMSolver`).
    **settings
        :class:`IVIMSolver` fields by name (``chunk_size=5``, ``max_iter=100``), applied on top
        of `solver`; an unknown name raises :class:`~dwi_toolkit.errors.InputDataError`.

    Returns
    -------
    IVIMFit

    Raises
    ------
    InputDataError
        Unknown method/noise option, bad mask shape, missing sigma.
    FitError
        b-values that cannot support the model.
    InsufficientMemoryError
        The result maps would not fit in the available memory (raised before allocating).

    Examples
    --------
    >>> b = np.array([0, 10, 20, 50, 100, 200, 400, 600, 800, 1000.0])
    >>> data = ivim_signal(b, 800.0, np.full((2, 2, 1), 0.1), 1.1e-3, 25e-3)
    >>> s = DWISeries(data, np.eye(4), b, np.zeros((b.size, 3)))
    >>> fit = fit_ivim(s, method="full")
    >>> f"{fit.d[0, 0, 0]:.3g} {fit.f[0, 0, 0]:.3f} {fit.dstar[0, 0, 0]:.3g}"
    '0.0011 0.100 0.025'
    >>> fit.map("D").unit
    'mm^2/s'
    """
    sv = with_settings(IVIMSolver, solver, settings, where="fit_ivim")
    max_iter = sv.max_iter
    _check_options(method, noise_correction, sigma)
    chunk_size = check_chunk_size(sv.chunk_size)
    lo_mm, hi_mm = _check_bounds(bounds, physical=_METHODS[method][1])
    spatial = series.spatial_shape
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != spatial:
            raise InputDataError(f"mask shape {m.shape} does not match the image {spatial}.")
    if average is None:
        average = noise_correction != "rician"
    bvals, counts = _sample_bvals(series, average)
    sig_map = None
    if sigma is not None:
        sig_map = np.broadcast_to(np.asarray(sigma, dtype=float), spatial)
        if np.any(~np.isfinite(sig_map)) or np.any(sig_map <= 0):
            raise InputDataError("sigma must be finite and > 0 (signal units).")
    n_tot = int(np.prod(spatial))
    check_memory("fit_ivim", n_tot, 5 * 8 + 1, min(chunk_size, max(n_tot, 1)) * series.n_volumes * 8 * 12)
    res = {k2: np.full(spatial, np.nan) for k2 in ("s0", "f", "d", "dstar", "rsquared")}
    status = np.ones(spatial, dtype=np.uint8)
    n_fit = 0
    for index, block in voxel_slabs(series.data, chunk_size, whole=True, progress="IVIM fit") if bvals.size else ():
        rows = np.arange(block.shape[0]) if m is None else np.flatnonzero(take(m, index))
        n_fit += rows.size
        slab_res = {k2: np.full(block.shape[0], np.nan) for k2 in res}
        slab_status = np.ones(block.shape[0], dtype=np.uint8)
        for start in range(0, rows.size, chunk_size):
            sl = rows[start:start + chunk_size]
            y = block[sl]
            y = (average_directions(y, series.bvals, series.bvecs)[1] if average else y).astype(np.float64)
            s_vox = None if sig_map is None else take(sig_map, index)[sl]
            w, s_fit = _noise_weights(y, s_vox, noise_correction, counts, bvals, k, b_threshold)
            with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
                r = _fit_arrays(y, bvals, s_fit, w, lo_mm, hi_mm, b_threshold, full=_METHODS[method][0],
                                prior=_METHODS[method][1],
                                max_iter=max_iter)
            for k2 in res:
                slab_res[k2][sl] = getattr(r, k2)
            slab_status[sl] = r.status
        bad = np.isin(slab_status, (1, 2))
        for k2 in res:
            slab_res[k2][bad] = np.nan
            put(res[k2], index, slab_res[k2], len(spatial))
        put(status, index, slab_status, len(spatial))
    logger.info(
        "IVIM %s fit: %d voxels, %d ok, %d at bound, %d not converged, %d invalid", method, n_fit,
        int((status == 0).sum()), int((status == 5).sum()), int((status == 4).sum()), int((status == 2).sum()),
    )
    bnd = {k2: (float(lo_mm[i]), float(hi_mm[i])) for i, k2 in enumerate(_PARAMS)}
    return IVIMFit(
        d=res["d"], dstar=res["dstar"], f=res["f"], s0=res["s0"], rsquared=res["rsquared"], status=status, affine=series.affine.copy(), bvals_used=np.asarray(bvals, float),
        method=method, b_threshold=float(b_threshold), bounds=bnd, noise_correction=noise_correction,
        sigma=(float(np.median(sig_map)) if sig_map is not None else None), b0_threshold=series.b0_threshold,
    )
