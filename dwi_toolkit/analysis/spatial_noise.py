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

- :func:`estimate_from_rois` — restricted maximum likelihood (REML) over the ROI voxel values with
  their voxel positions, each ROI with its own mean (what :func:`~dwi_toolkit.analysis.compare.
  compare_sides` does by default: the estimate comes from the data being compared);
- :func:`estimate_fwhm` — Forman's per-axis estimator on a residual or background image (e.g. the
  fit residuals of every b-volume, AFNI ``3dFWHMx -classic``);
- :func:`fwhm_from_matrix` — from the acquisition and reconstruction matrices (BIDS
  ``AcquisitionMatrixPE``/``ReconMatrixPE``): zero-filling by a factor ``r`` gives sinc-correlated
  noise with ``ρ₁ = sinc(1/r)``, turned into the Gaussian FWHM with the same ``ρ₁``.

:func:`roi_variance` turns an FWHM into the variance of an ROI mean for the ROI's exact voxel
layout: ``Var(mean) = σ² · 1ᵀR1 / n²``, the effective number of independent voxels
``n_eff = n² / 1ᵀR1``, ``σ²`` estimated without bias from the within-ROI sum of squares
(``E[SS] = σ² (n − 1ᵀR1/n)``) and its degrees of freedom by Satterthwaite's approximation
(``df = tr(CR)² / tr((CR)²)``, ``C`` the centring matrix).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
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
#: Largest lag-1 correlation searched by the REML estimate (FWHM ≈ 6.8 voxels).
_RHO_MAX = 0.97
#: ROI voxels used per ROI by the REML estimate (larger ROIs are truncated in storage order).
_REML_MAX_VOXELS = 150


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
        ``"roi-reml"``, ``"residual-forman"``, ``"matrix"``, ``"given"`` or ``"unknown"``.
    n_values : int
        Voxel values the estimate rests on (0 when not estimated from data).

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
        (Satterthwaite degrees of freedom of the variance estimate), ``sd`` (σ, bias-corrected).

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
    if coords is None or not noise.known or n == 1:
        q, tr_m2 = float(n), float(n - 1)
    else:
        r = _corr(_sq_dists(np.asarray(coords, dtype=float)), noise.fwhm_vox)
        q = float(r.sum())
        m = r - r.mean(axis=0, keepdims=True) - r.mean(axis=1, keepdims=True) + r.mean()
        tr_m2 = float(np.sum(m * m))
    tr_m = n - q / n
    if n < 2 or tr_m <= 1e-9:
        return RoiVariance(mean, math.nan, n, n * n / q, 0.0, math.nan)
    sigma2 = ss / tr_m
    df = tr_m * tr_m / tr_m2 if tr_m2 > 0 else 0.0
    return RoiVariance(mean, math.sqrt(sigma2 * q) / n, n, n * n / q, df, math.sqrt(sigma2))


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run small dense linear algebra on one OpenBLAS thread (restored afterwards).

    The REML fit factorises many small matrices; OpenBLAS threads on them only add contention
    (100× slower on a loaded 2-core machine). Best effort: Linux + OpenBLAS only, else a no-op.
    """
    handles = []
    try:
        with open("/proc/self/maps", encoding="utf-8") as fh:
            paths = set(re.findall(r"(/\S*openblas\S*\.so\S*)", fh.read()))
        for path in paths:
            lib = ctypes.CDLL(path)
            for prefix in ("scipy_openblas", "openblas"):
                for suffix in ("64_", ""):
                    get = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                    put = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    if get is not None and put is not None:
                        handles.append((put, int(get())))
                        put(1)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - platform without /proc or OpenBLAS
        pass
    try:
        yield
    finally:
        for put, n in handles:
            put(n)


def _reml_nll(rhos: NDArray, groups: list[tuple[NDArray, NDArray]], axes: list[int]) -> float:
    from scipy.linalg import solve_triangular

    log_rho = np.log(np.clip(np.asarray(rhos, dtype=float), 1e-12, None))
    total = 0.0
    for y, d2 in groups:
        n = y.size
        # rho(d) = prod_k rho1_k ** (d_k^2) for the Gaussian model
        r = np.exp(np.tensordot(log_rho, d2[axes], axes=1)) + 1e-6 * np.eye(n)
        try:
            low = np.linalg.cholesky(r)
        except np.linalg.LinAlgError:
            return 1e12
        z = solve_triangular(low, np.column_stack([np.ones(n), y]), lower=True, check_finite=False)
        a1, b1, c1 = z[:, 0] @ z[:, 0], z[:, 0] @ z[:, 1], z[:, 1] @ z[:, 1]
        ss = max(c1 - b1 * b1 / a1, 1e-300)
        total += 0.5 * ((n - 1) * math.log(ss / (n - 1)) + 2.0 * np.log(np.diag(low)).sum() + math.log(a1))
    return float(total)


def _lag1_moments(groups: list[tuple[NDArray, NDArray]], axes: list[int]) -> list[float]:
    """Moment estimate of the lag-1 correlation per axis, pooled over ROIs (each centred on its mean).

    Sum of products over neighbour pairs one voxel apart along the axis, divided by the mean
    squared deviation of the same voxels. Biased low for small ROIs (the centring); used as a
    lower bound of the FWHM next to REML.

    Examples
    --------
    >>> y = np.array([1.0, 1.0, -1.0, -1.0]); c = np.array([[i, 0, 0] for i in range(4)], float)
    >>> _lag1_moments([(y, _sq_dists(c))], [0])
    [0.3333333333333333]
    """
    out = []
    for a in axes:
        num = den = 0.0
        for y, d2 in groups:
            others = [k for k in range(3) if k != a]
            p, q = np.nonzero(np.triu((d2[a] == 1.0) & (d2[others[0]] == 0) & (d2[others[1]] == 0)))
            if p.size:
                num += float(np.sum(y[p] * y[q]))
                den += float(np.sum(y[p] ** 2 + y[q] ** 2)) / 2.0
        out.append(num / den if den > 0 else 0.0)
    return out


def estimate_from_rois(rois: Sequence[tuple[ArrayLike, ArrayLike]],
                       voxel_size_mm: Sequence[float] = (1.0, 1.0, 1.0)) -> NoiseCorrelation:
    """REML estimate of the noise FWHM per voxel axis from ROI values and their positions.

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
        ``source="roi-reml"``; FWHM NaN when there are no usable ROIs.

    Notes
    -----
    The FWHM per axis is the larger of the REML estimate and a moment estimate (pooled lag-1
    correlation of neighbouring ROI voxels). REML is efficient for Gaussian values but reads the
    FWHM too small for the heavy-tailed ADC noise of low-SNR scans (2.5 instead of ≈ 2.9 mm at SNR
    10, FWHM 3 voxels), whereas the variance of an ROI mean depends on the moments; the moment
    estimate is biased low in small ROIs (centring), where REML is the larger one.
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
    >>> [round(f, 1) for f in estimate_from_rois(rois).fwhm_vox]
    [2.5, 2.5, 0.0]
    """
    import scipy.linalg  # noqa: F401 - load scipy's BLAS before limiting its threads
    from scipy.optimize import minimize

    groups: list[tuple[NDArray, NDArray]] = []
    n_values = 0
    for values, coords in rois:
        y = np.asarray(values, dtype=float).reshape(-1)[:_REML_MAX_VOXELS]
        c = np.asarray(coords, dtype=float).reshape(-1, 3)[:_REML_MAX_VOXELS]
        ok = np.isfinite(y)
        y, c = y[ok], c[ok]
        if y.size < 3 or np.std(y) == 0:
            continue
        groups.append(((y - y.mean()) / y.std(), _sq_dists(c)))
        n_values += y.size
    vs = tuple(float(x) for x in voxel_size_mm)
    if not groups:
        return NoiseCorrelation((math.nan,) * 3, vs, "unknown", 0)  # type: ignore[arg-type]
    axes = [k for k in range(3) if any(np.any(d2[k] == 1.0) for _, d2 in groups)]
    fwhm = [0.0, 0.0, 0.0]
    if axes:
        best = None
        with _single_threaded_blas():
            for start in (0.05, 0.5):  # the likelihood can be flat near 0: two starts
                res = minimize(_reml_nll, x0=np.full(len(axes), start), args=(groups, axes),
                               method="L-BFGS-B", bounds=[(0.0, _RHO_MAX)] * len(axes))
                if best is None or res.fun < best.fun:
                    best = res
        moment = _lag1_moments(groups, axes)
        for a, rho, rho_m in zip(axes, best.x, moment):
            # the larger of the REML and the moment estimate (see Notes)
            fwhm[a] = round(max(_fwhm_from_rho(float(rho)), _fwhm_from_rho(rho_m)), 4)
    logger.debug("ROI REML noise FWHM %s voxels from %d values in %d ROIs", fwhm, n_values, len(groups))
    return NoiseCorrelation(tuple(fwhm), vs, "roi-reml", n_values)  # type: ignore[arg-type]


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
