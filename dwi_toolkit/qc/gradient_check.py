"""Gradient-table check: is the b-vector table flipped or has it its axes permuted?

A b-vector table with one axis flipped or two axes swapped still gives a plausible ADC (the
trace is invariant) but reflects or permutes every principal diffusion direction, so FA colour
maps and tractography are wrong without any warning. Jeurissen, Leemans & Sijbers (2014,
*Med Image Anal* 18:953, "Automated correction of improperly rotated diffusion gradient
orientations in diffusion weighted MRI"; MRtrix3's ``dwigradcheck``) showed that the correct
table is the one under which the principal directions are most *coherent along space*: fibres
continue in the direction they point to, so deterministic streamlines are longest.

This module does the same, fast:

1. one ordinary-least-squares tensor fit of the log signal in the body mask (a fit under a
   transformed table ``g' = P g`` with ``P`` a signed permutation is exactly ``D' = P D Pᵀ``, so
   the principal direction of every candidate is ``P v₁`` — no refit is needed);
2. for each of the 24 candidates (6 axis permutations × {no flip, flip x, flip y, flip z}; a flip
   of all three axes is the identity for a tensor, so these are all distinct tables, as in
   ``dwigradcheck``), short deterministic streamlines (Basser et al. 2000 "FACT"-like
   Euler steps of half a voxel, stop at FA < threshold or a turn > 45°) from seeds of high FA;
3. the score is the mean streamline length (mm). The given table is flagged when another
   candidate beats it by more than ``min_margin`` (relative).

b-vectors are in the image frame with FSL's convention (see
:func:`dwi_toolkit.core.gradients.bvec_frame_to_world`).
"""

from __future__ import annotations

import html
import itertools
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..core.image import DWISeries
from ..errors import FitError, GradientWarning, InputDataError

__all__ = ["CANDIDATES", "GradientCheckResult", "candidate_tables", "check_gradients", "fix_gradients"]

logger = logging.getLogger(__name__)


def _candidates() -> dict[str, NDArray[np.float64]]:
    out: dict[str, NDArray[np.float64]] = {}
    for perm in itertools.permutations(range(3)):
        p = np.eye(3)[list(perm)]
        for flip in (None, 0, 1, 2):
            f = np.eye(3)
            label = "".join("xyz"[i] for i in perm)
            if flip is not None:
                f[flip, flip] = -1.0
                label += f" flip {'xyz'[flip]}"
            out[label] = f @ p
    return out


#: Candidate transforms ``name -> 3×3 signed permutation P`` applied to the given table
#: (``g_new = P @ g``): "xyz" is the identity, "yxz" swaps x and y, "xyz flip x" negates x.
CANDIDATES: dict[str, NDArray[np.float64]] = _candidates()
IDENTITY = "xyz"


def candidate_tables(bvecs: ArrayLike) -> dict[str, NDArray[np.float64]]:
    """Every candidate b-vector table (24 signed axis permutations of the given one).

    Parameters
    ----------
    bvecs : array_like of shape (N, 3)
        The given b-vectors (image frame, FSL convention).

    Returns
    -------
    dict
        Candidate name → (N, 3) table; ``"xyz"`` is the given table.

    Examples
    --------
    >>> t = candidate_tables([[1.0, 0.5, 0.2]])
    >>> len(t), t["xyz flip y"].tolist(), t["yxz"].tolist()
    (24, [[1.0, -0.5, 0.2]], [[0.5, 1.0, 0.2]])
    """
    g = np.asarray(bvecs, dtype=float)
    if g.ndim != 2 or g.shape[1] != 3:
        raise InputDataError(f"bvecs must have shape (N, 3), got {g.shape}.")
    return {name: g @ p.T for name, p in CANDIDATES.items()}


@dataclass(frozen=True, eq=False)
class GradientCheckResult:
    """Outcome of :func:`check_gradients`.

    Attributes
    ----------
    scores : dict
        Candidate name → mean streamline length in mm (higher = more coherent).
    given_score, best_score : float
        Score of the given table and of the best candidate (mm).
    best : str
        Name of the best candidate (``"xyz"`` = the given table).
    margin : float
        ``best_score / given_score − 1`` (0 when the given table is best).
    status : {"ok", "wrong", "inconclusive"}
        "wrong" when another table beats the given one by more than the minimum margin;
        "inconclusive" when too few anisotropic voxels or a smaller margin.
    n_seeds : int
        Streamline seeds (voxels with FA above the threshold).
    bvecs_given, bvecs_best : ndarray of shape (N, 3)
        The given and the best table (image frame, FSL convention).
    message : str
        One sentence for people.

    Examples
    --------
    >>> from dwi_toolkit.phantom_sessions import make_gradient_error_phantom
    >>> import warnings
    >>> ph = make_gradient_error_phantom("xyz flip x", shape=(30, 26, 40), voxel_size=(3, 3, 3), seed=1)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     res = check_gradients(ph.series)          # warns: the table looks wrong
    >>> res.status, res.best, caught[0].category.__name__
    ('wrong', 'xyz flip x', 'GradientWarning')
    """

    scores: dict[str, float]
    given_score: float
    best_score: float
    best: str
    margin: float
    status: str
    n_seeds: int
    bvecs_given: np.ndarray = field(repr=False)
    bvecs_best: np.ndarray = field(repr=False)
    message: str = ""

    @property
    def is_wrong(self) -> bool:
        """True when the given table should be replaced by :attr:`bvecs_best`."""
        return self.status == "wrong"

    @property
    def transform(self) -> NDArray[np.float64]:
        """3×3 signed permutation taking the given table to the best (``g_best = P @ g``)."""
        return CANDIDATES[self.best].copy()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (scores in mm, the transform as nested lists).

        Examples
        --------
        >>> r = GradientCheckResult({"xyz": 10.0}, 10.0, 10.0, "xyz", 0.0, "ok", 5, np.zeros((1, 3)), np.zeros((1, 3)))
        >>> r.to_dict()["status"]
        'ok'
        """
        return {
            "status": self.status, "best": self.best, "margin": round(self.margin, 4),
            "given_score_mm": round(self.given_score, 3), "best_score_mm": round(self.best_score, 3),
            "n_seeds": self.n_seeds, "transform": self.transform.tolist(), "message": self.message,
            "scores_mm": {k: round(v, 3) for k, v in sorted(self.scores.items(), key=lambda kv: -kv[1])},
            "method": "tensor OLS + deterministic streamlines, 24 signed axis permutations "
                      "(Jeurissen et al. 2014, Med Image Anal 18:953)",
        }

    def __repr__(self) -> str:
        return (f"GradientCheckResult(status={self.status!r}, best={self.best!r}, margin={self.margin:.1%}, "
                f"given={self.given_score:.1f} mm, best={self.best_score:.1f} mm, seeds={self.n_seeds})")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.1f}</td></tr>"
                       for k, v in sorted(self.scores.items(), key=lambda kv: -kv[1])[:6])
        return (f"<b>Gradient-table check: {html.escape(self.status)}</b><p>{html.escape(self.message)}</p>"
                f"<table><tr><th>candidate</th><th>mean streamline (mm)</th></tr>{rows}</table>")


def _body_mask(series: DWISeries) -> NDArray[np.bool_]:
    b0 = np.asarray(series.mean_b0(), dtype=float)
    finite = b0[np.isfinite(b0)]
    if finite.size == 0 or np.nanmax(b0) <= 0:
        raise InputDataError("the mean b=0 image is empty or non-finite; cannot find the body.")
    return np.isfinite(b0) & (b0 > 0.1 * np.percentile(finite, 99))


def _fit_tensor_ols(series: DWISeries, mask: NDArray[np.bool_]) -> tuple[NDArray, NDArray]:
    """FA and principal eigenvector (image frame) in `mask`, by OLS on the log signal."""
    g = series.bvecs
    b = series.bvals
    design = np.column_stack([
        -b * g[:, 0] ** 2, -b * g[:, 1] ** 2, -b * g[:, 2] ** 2,
        -2 * b * g[:, 0] * g[:, 1], -2 * b * g[:, 0] * g[:, 2], -2 * b * g[:, 1] * g[:, 2], np.ones_like(b)])
    sig = np.nan_to_num(series.data[mask].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    logs = np.log(np.maximum(sig, 1e-3 * max(float(np.nanmax(sig)), 1e-12)))
    coef = logs @ np.linalg.pinv(design).T
    d = coef[:, [0, 3, 4, 3, 1, 5, 4, 5, 2]].reshape(-1, 3, 3)
    evals, evecs = np.linalg.eigh(d)  # ascending
    evals = np.clip(evals, 0.0, None)
    md = evals.mean(axis=1, keepdims=True)
    den = np.sqrt((evals**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        fa = np.sqrt(1.5) * np.sqrt(((evals - md) ** 2).sum(axis=1)) / den
    return np.nan_to_num(fa), evecs[:, :, 2]


def _track_lengths(fa: NDArray, v1: NDArray, seeds: NDArray, step_vox: NDArray, *,
                   fa_threshold: float, max_steps: int, cos_max: float) -> NDArray[np.float64]:
    """Number of steps of forward + backward streamlines from `seeds` through the field `v1`
    (voxel-axis frame, index units per step)."""
    shape = np.asarray(fa.shape)
    total = np.zeros(seeds.shape[0])
    for sign in (1.0, -1.0):
        pos = seeds.astype(float).copy()
        d = sign * v1[tuple(seeds.T)]
        alive = np.ones(seeds.shape[0], dtype=bool)
        for _ in range(max_steps):
            idx = np.flatnonzero(alive)
            if idx.size == 0:
                break
            pos[idx] += d[idx] * step_vox
            nb = np.rint(pos[idx]).astype(int)
            inside = np.all((nb >= 0) & (nb < shape), axis=1)
            nb_in = np.clip(nb, 0, shape - 1)
            new = v1[tuple(nb_in.T)]
            dot = np.einsum("ij,ij->i", new, d[idx])
            ok = inside & (fa[tuple(nb_in.T)] >= fa_threshold) & (np.abs(dot) >= cos_max)
            new *= np.where(dot < 0, -1.0, 1.0)[:, None]
            d[idx[ok]] = new[ok]
            total[idx[ok]] += 1
            alive[idx[~ok]] = False
    return total


def _voxel_frame(series: DWISeries) -> NDArray[np.float64]:
    """FSL b-vector frame → voxel-axis frame (flip of x for a positive-determinant affine)."""
    return np.diag([-1.0, 1.0, 1.0]) if np.linalg.det(series.affine[:3, :3]) > 0 else np.eye(3)


def _prepare(series: DWISeries, mask: ArrayLike | None) -> tuple[NDArray, NDArray]:
    if not isinstance(series, DWISeries):
        raise InputDataError(f"check_gradients needs a DWISeries, got {type(series).__name__}.")
    from ..models.dti import dti_feasible

    if not dti_feasible(series):
        raise FitError("the gradient-table check needs DTI-capable data: a b=0 volume and at least six "
                       "non-collinear directions. Trace-weighted or 3-direction data cannot be checked.")
    m = _body_mask(series) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != series.spatial_shape:
        raise InputDataError(f"mask shape {m.shape} does not match the image {series.spatial_shape}.")
    return m, np.flatnonzero(m)


def check_gradients(
    series: DWISeries,
    *,
    mask: ArrayLike | None = None,
    fa_threshold: float = 0.2,
    max_seeds: int = 5000,
    min_margin: float = 0.1,
    max_length_mm: float = 40.0,
    seed: int = 0,
) -> GradientCheckResult:
    """Check the b-vector table against its 23 flipped/permuted alternatives.

    Parameters
    ----------
    series : DWISeries
        DTI-capable DWI (a b=0 volume and ≥ 6 non-collinear directions; b in s/mm²).
    mask : array_like of bool, shape (X, Y, Z), optional
        Voxels to fit; default: mean b=0 above 10 % of its 99th percentile (the body).
    fa_threshold : float, optional
        Seeds and streamlines need FA at or above this.
    max_seeds : int, optional
        Seeds are a random subsample of the voxels above the FA threshold (speed).
    min_margin : float, optional
        Relative score gain another table needs to call the given one "wrong" (default 10 %).
    max_length_mm : float, optional
        Streamlines stop after this length in each direction.
    seed : int, optional
        Seed of the subsampling.

    Returns
    -------
    GradientCheckResult
        A :class:`~dwi_toolkit.errors.GradientWarning` is also issued when the status is "wrong".

    Raises
    ------
    FitError
        The data cannot support a tensor (trace-weighted or < 6 directions).

    Examples
    --------
    >>> from dwi_toolkit.phantom_sessions import make_gradient_error_phantom
    >>> ph = make_gradient_error_phantom(None, shape=(30, 26, 40), voxel_size=(3, 3, 3), seed=1)
    >>> res = check_gradients(ph.series)
    >>> res.status, res.best, res.margin
    ('ok', 'xyz', 0.0)
    """
    m, flat = _prepare(series, mask)
    fa_m, v1_m = _fit_tensor_ols(series, m)
    spatial = series.spatial_shape
    fa = np.zeros(spatial)
    fa.reshape(-1)[flat] = fa_m
    v1_bvec = np.zeros(spatial + (3,))
    v1_bvec.reshape(-1, 3)[flat] = v1_m
    seeds = np.argwhere(fa >= fa_threshold)
    rng = np.random.default_rng(seed)
    if seeds.shape[0] > max_seeds:
        seeds = seeds[rng.choice(seeds.shape[0], max_seeds, replace=False)]
    vox = series.voxel_sizes
    step_mm = 0.5 * float(vox.min())
    step_vox = step_mm / vox
    to_vox = _voxel_frame(series)
    scores: dict[str, float] = {}
    for name, p in CANDIDATES.items():
        if seeds.shape[0] == 0:
            scores[name] = 0.0
            continue
        v1 = v1_bvec @ (to_vox @ p).T
        steps = _track_lengths(fa, v1, seeds, step_vox, fa_threshold=fa_threshold,
                               max_steps=int(max_length_mm / step_mm), cos_max=np.cos(np.radians(45.0)))
        scores[name] = float(steps.mean() * step_mm)
    return _decide(series, scores, int(seeds.shape[0]), min_margin)


def _decide(series: DWISeries, scores: dict[str, float], n_seeds: int, min_margin: float) -> GradientCheckResult:
    given = scores[IDENTITY]
    best = max(scores, key=lambda k: (scores[k], k == IDENTITY))
    margin = 0.0 if best == IDENTITY else (scores[best] / given - 1.0 if given > 0 else np.inf)
    if n_seeds < 50:
        status, msg = "inconclusive", (f"only {n_seeds} voxels with FA above the threshold: too few "
                                       "anisotropic voxels to check the gradient table.")
    elif best == IDENTITY:
        status, msg = "ok", "the given gradient table gives the most coherent principal directions."
    elif margin >= min_margin:
        status, msg = "wrong", (f"the gradient table looks wrong: '{best}' gives {margin:.0%} longer "
                                f"streamlines than the given table; check the b-vectors (or use fix_gradients).")
    else:
        status, msg = "inconclusive", (f"'{best}' scores {margin:.0%} above the given table, below the "
                                       f"{min_margin:.0%} needed to call it wrong.")
    if status == "wrong":
        warnings.warn(msg, GradientWarning, stacklevel=3)
    logger.info("gradient check: %s (best %s, margin %.3f, %d seeds)", status, best, margin, n_seeds)
    p = CANDIDATES[best]
    return GradientCheckResult(scores=scores, given_score=given, best_score=scores[best], best=best,
                               margin=float(margin), status=status, n_seeds=n_seeds,
                               bvecs_given=series.bvecs.copy(), bvecs_best=series.bvecs @ p.T, message=msg)


def fix_gradients(series: DWISeries, result: GradientCheckResult | None = None, *,
                  force: bool = False) -> tuple[DWISeries, GradientCheckResult]:
    """Apply the best gradient table when the check calls the given one wrong.

    Parameters
    ----------
    series : DWISeries
        The DWI (not modified).
    result : GradientCheckResult, optional
        A previous check of this series; run :func:`check_gradients` when omitted.
    force : bool, optional
        Apply the best table even when the status is "inconclusive".

    Returns
    -------
    (DWISeries, GradientCheckResult)
        The series with the corrected b-vectors (``meta["GradientTableCorrection"]`` records the
        transform) — or the same series when nothing was changed — and the check.

    Examples
    --------
    >>> import warnings
    >>> from dwi_toolkit.phantom_sessions import make_gradient_error_phantom
    >>> ph = make_gradient_error_phantom("yxz", shape=(30, 26, 40), voxel_size=(3, 3, 3), seed=1)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     fixed, res = fix_gradients(ph.series)
    >>> bool(np.allclose(fixed.bvecs, ph.true_bvecs)), fixed.meta["GradientTableCorrection"]["best"]
    (True, 'yxz')
    """
    res = check_gradients(series) if result is None else result
    if res.status == "wrong" or (force and res.best != IDENTITY):
        meta = dict(series.meta)
        meta["GradientTableCorrection"] = {"best": res.best, "transform": res.transform.tolist(),
                                           "margin": round(res.margin, 4)}
        return series.replace(bvecs=res.bvecs_best, meta=meta), res
    return series, res
