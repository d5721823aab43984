"""Batched log-linear tensor fits (OLS, WLS, iterated WLS) in NumPy (private kernel of fit_dti).

Model (Basser, Mattiello & LeBihan 1994): ``ln S_i = ln S0 − b_i g_iᵀ D g_i``, linear in the six
tensor elements and ``ln S0``. With the design matrix ``X`` (N × 7, dipy's column order
``Dxx, Dxy, Dyy, Dxz, Dyz, Dzz, ln S0``):

- OLS: ``β = X⁺ y`` for all voxels in one matrix product;
- WLS (Chung, Lu & Henry 2006; dipy's ``wls_fit_tensor``): weights ``w_i = Ŝ_i²`` with ``Ŝ`` the
  OLS prediction, normal equations ``(Xᵀ W X) β = Xᵀ W y`` solved voxel-batched;
- IWLS (Veraart et al. 2013; MRtrix3 ``dwi2tensor -iter``): the WLS step repeated with weights
  from the previous estimate.

The weighted normal matrices are built for all voxels at once as ``W @ P`` with ``P`` the
(N × 28) products of design columns, so the per-voxel cost is two BLAS matrix products and
one 7 × 7 Cholesky solve.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__: list[str] = []

TOL = 1e-6  # dipy: eigenvalues are clipped to TOL / max(b) (min_diffusivity)
MIN_POSITIVE_SIGNAL = 1e-4  # dipy's default floor before the logarithm
WEIGHT_RANGE = 1e-10  # min/max WLS weight below which a voxel is solved by SVD


def design_matrix(bvals: NDArray, bvecs: NDArray) -> NDArray[np.float64]:
    """(N, 7) design matrix in dipy's order (Dxx, Dxy, Dyy, Dxz, Dyz, Dzz, ln S0)."""
    b = np.asarray(bvals, dtype=np.float64)
    g = np.asarray(bvecs, dtype=np.float64)
    x, y, z = g[:, 0], g[:, 1], g[:, 2]
    return np.column_stack([-b * x * x, -2 * b * x * y, -b * y * y, -2 * b * x * z, -2 * b * y * z,
                            -b * z * z, np.ones_like(b)])


class TensorKernel:
    """Precomputed matrices for fitting one gradient table; call :meth:`fit` per voxel block.

    Blocks are processed transposed, (N, V), so every per-voxel operation is a long vector
    operation and the 7 × 7 solves and 3 × 3 eigen-decompositions are unrolled over voxels.
    """

    def __init__(self, bvals: NDArray, bvecs: NDArray, *, min_signal: float | None = None) -> None:
        X = design_matrix(bvals, bvecs)
        # scale the columns to unit size so the normal equations stay well conditioned
        self.scale = np.maximum(np.abs(X).max(axis=0), 1e-12)
        self.Xs = X / self.scale
        self.pinv = np.linalg.pinv(self.Xs)  # (7, N)
        self.iu = np.triu_indices(7)
        self.pairs_t = (self.Xs[:, self.iu[0]] * self.Xs[:, self.iu[1]]).T.copy()  # (28, N)
        self.xs_t = self.Xs.T.copy()
        self.min_signal = MIN_POSITIVE_SIGNAL if min_signal is None else float(min_signal)
        self.min_diffusivity = TOL / -X.min()

    def _wls_step(self, y: NDArray, beta: NDArray) -> NDArray:
        """One weighted solve with weights Ŝ² from `beta` (scaled, (7, V)); y is (N, V)."""
        pred = self.Xs @ beta  # (N, V) ln Ŝ
        pred -= beta[6]  # weights are scale-free; keeps exp() in range
        pred *= 2.0
        w = np.exp(pred, out=pred)
        # a weight range beyond 1e10 (signal ratio 1e5, e.g. zeros raised to min_signal) makes
        # the normal equations lose digits: those voxels are solved by SVD instead
        stiff = np.flatnonzero(w.min(axis=0) < WEIGHT_RANGE * w.max(axis=0))
        upper = self.pairs_t @ w  # (28, V)
        sw = np.sqrt(w[:, stiff]) if stiff.size else None
        w *= y
        rhs = self.xs_t @ w  # (7, V)
        beta = _cholesky_solve(upper, rhs, self.iu)
        if sw is not None:
            xw = self.Xs[None, :, :] * sw.T[:, :, None]  # (K, N, 7)
            beta[:, stiff] = (np.linalg.pinv(xw) @ (sw * y[:, stiff]).T[:, :, None])[:, :, 0].T
        return beta

    def fit(self, block: NDArray, *, method: str, iterations: int = 2) -> tuple[NDArray, NDArray]:
        """Fit a (V, N) signal block; returns ``(lower_triangular (6, V) in mm²/s, ln S0 (V,))``."""
        y = np.maximum(block.T, self.min_signal, dtype=np.float64)
        np.log(y, out=y)
        beta = self.pinv @ y
        n_wls = {"OLS": 0, "WLS": 1, "IWLS": max(1, int(iterations))}[method]
        for _ in range(n_wls):
            beta = self._wls_step(y, beta)
        beta /= self.scale[:, None]
        return beta[:6], beta[6]

    def eig(self, lower: NDArray) -> tuple[NDArray, NDArray, NDArray[np.bool_]]:
        """Eigenvalues (descending, clipped like dipy) and eigenvectors (columns) of a (6, V) block.

        Returns evals (V, 3), evecs (V, 3, 3) and where the smallest (clipped) eigenvalue is
        <= 0, the rule fit_dti has always applied to dipy's clipped eigenvalues.
        """
        finite = np.isfinite(lower).all(axis=0)
        lower = np.where(finite, lower, 0.0)
        evals, evecs = eigh_sym3(lower)
        np.maximum(evals, self.min_diffusivity, out=evals)
        nonpos = (evals[:, 2] <= 0) & finite  # as dipy's clipped output (see DTI STATUS_CODES)
        evals[~finite] = np.nan
        evecs[~finite] = np.nan
        return evals, evecs, nonpos


def _cholesky_solve(upper: NDArray, rhs: NDArray, iu: tuple[NDArray, NDArray]) -> NDArray:
    """Solve a batch of 7 × 7 SPD systems given as (28, V) upper triangles and (7, V) sides.

    Unrolled Cholesky over voxels; a voxel whose matrix is not positive definite gets NaN.
    """
    n = rhs.shape[0]
    A = {(int(i), int(j)): upper[k] for k, (i, j) in enumerate(zip(*iu))}
    L: dict[tuple[int, int], NDArray] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(n):
            d = A[(j, j)] - sum((L[(j, k)] ** 2 for k in range(j)), np.zeros_like(rhs[0]))
            d = np.sqrt(np.where(d > 0, d, np.nan))
            L[(j, j)] = d
            inv = 1.0 / d
            for i in range(j + 1, n):
                acc = A[(j, i)] - sum((L[(i, k)] * L[(j, k)] for k in range(j)), np.zeros_like(rhs[0]))
                L[(i, j)] = acc * inv
        z = [None] * n
        for i in range(n):
            z[i] = (rhs[i] - sum((L[(i, k)] * z[k] for k in range(i)), np.zeros_like(rhs[0]))) / L[(i, i)]
        x = [None] * n
        for i in range(n - 1, -1, -1):
            x[i] = (z[i] - sum((L[(k, i)] * x[k] for k in range(i + 1, n)), np.zeros_like(rhs[0]))) / L[(i, i)]
    return np.stack(x)


def eigh_sym3(lower: NDArray) -> tuple[NDArray, NDArray]:
    """Eigen-decomposition of a batch of symmetric 3 × 3 matrices, closed form.

    `lower` is (6, V) in dipy's order (xx, xy, yy, xz, yz, zz). The trigonometric solution of
    the characteristic cubic (Smith 1961) locates the eigenvalues; the best-separated one's
    eigenvector is the largest cross product of two rows of ``A − λI``, its eigenvalue the
    Rayleigh quotient, and the other two come from the exact 2 × 2 problem on the orthogonal
    plane, so near-degenerate pairs (prolate and oblate tensors) keep full precision.
    Returns evals (V, 3), descending, and evecs (V, 3, 3) with eigenvectors as columns, like
    :func:`numpy.linalg.eigh` with the order reversed.
    """
    xx, xy, yy, xz, yz, zz = lower
    q = (xx + yy + zz) / 3.0
    a, b, c = xx - q, yy - q, zz - q
    p = np.sqrt((a * a + b * b + c * c + 2.0 * (xy * xy + xz * xz + yz * yz)) / 6.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ip = np.where(p > 0, 1.0 / p, 0.0)
        det = (a * (b * c - yz * yz) - xy * (xy * c - yz * xz) + xz * (xy * yz - b * xz)) * ip ** 3
    phi = np.arccos(np.clip(det / 2.0, -1.0, 1.0)) / 3.0
    l1 = q + 2.0 * p * np.cos(phi)
    l3 = q + 2.0 * p * np.cos(phi + 2.0 * np.pi / 3.0)
    l2 = 3.0 * q - l1 - l3
    rows = (xx, xy, xz), (xy, yy, yz), (xz, yz, zz)
    first = (l1 - l2) >= (l2 - l3)  # the best-separated eigenvalue: largest or smallest
    u = _null_vector(rows, np.where(first, l1, l3))
    e1 = _orthogonal_unit(u)
    e2 = np.cross(u, e1, axis=0)
    lam_u = _quad(lower, u, u)
    m00, m01, m11 = _quad(lower, e1, e1), _quad(lower, e1, e2), _quad(lower, e2, e2)
    half = 0.5 * (m00 - m11)
    h = np.hypot(half, m01)
    mid = 0.5 * (m00 + m11)
    theta = 0.5 * np.arctan2(m01, half)
    ct, st = np.cos(theta), np.sin(theta)
    w_hi = ct * e1 + st * e2
    w_lo = ct * e2 - st * e1
    vals = np.where(first, np.stack([lam_u, mid + h, mid - h]), np.stack([mid + h, mid - h, lam_u]))
    vecs = np.where(first[None, :, None], np.stack([u, w_hi, w_lo], axis=-1), np.stack([w_hi, w_lo, u], axis=-1))
    order = np.argsort(-vals, axis=0, kind="stable")  # (3, V); already sorted but for rounding
    vals = np.take_along_axis(vals, order, axis=0)
    vecs = np.take_along_axis(vecs, order.T[None, :, :], axis=2)  # (3 comp, V, 3)
    return np.ascontiguousarray(vals.T), np.ascontiguousarray(vecs.transpose(1, 0, 2))


def _quad(lower: NDArray, u: NDArray, v: NDArray) -> NDArray:
    """``uᵀ A v`` for a batch of symmetric matrices given as (6, V) lower triangles."""
    xx, xy, yy, xz, yz, zz = lower
    av0 = xx * v[0] + xy * v[1] + xz * v[2]
    av1 = xy * v[0] + yy * v[1] + yz * v[2]
    av2 = xz * v[0] + yz * v[1] + zz * v[2]
    return u[0] * av0 + u[1] * av1 + u[2] * av2


def _orthogonal_unit(u: NDArray) -> NDArray:
    """A unit vector orthogonal to each unit column of (3, V)."""
    axis = np.abs(u).argmin(axis=0)
    e = np.zeros_like(u)
    e[axis, np.arange(u.shape[1])] = 1.0
    e -= u * (e * u).sum(0)
    return e / np.sqrt((e * e).sum(0))


def _null_vector(rows, lam: NDArray) -> NDArray:
    """Unit vector spanning the null space of ``A − λI`` (3, V) (x-axis if A − λI vanishes)."""
    r = [np.stack([rows[i][0] - (lam if i == 0 else 0), rows[i][1] - (lam if i == 1 else 0),
                   rows[i][2] - (lam if i == 2 else 0)]) for i in range(3)]
    cands = [np.cross(r[0], r[1], axis=0), np.cross(r[0], r[2], axis=0), np.cross(r[1], r[2], axis=0)]
    norms = np.stack([(c * c).sum(0) for c in cands])
    best = norms.argmax(0)
    v = np.where(best == 0, cands[0], np.where(best == 1, cands[1], cands[2]))
    n = np.sqrt((v * v).sum(0))
    zero = ~(n > 0)
    v[0, zero] = 1.0
    n[zero] = 1.0
    return v / n


def scalars(evals: NDArray) -> tuple[NDArray, NDArray, NDArray, NDArray]:
    """FA, MD, AD, RD of (V, 3) descending eigenvalues (dipy's formulas)."""
    l1, l2, l3 = evals[:, 0], evals[:, 1], evals[:, 2]
    md = (l1 + l2 + l3) / 3.0
    all_zero = (evals == 0).all(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        fa = np.sqrt(0.5 * ((l1 - l2) ** 2 + (l2 - l3) ** 2 + (l3 - l1) ** 2)
                     / ((evals * evals).sum(axis=1) + all_zero))
    return fa, md, l1.copy(), (l2 + l3) / 2.0
