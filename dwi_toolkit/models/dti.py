"""Diffusion tensor imaging (DTI): batched log-linear tensor fits, dipy for NLLS/RESTORE.

OLS, WLS and iterated WLS run in our own batched NumPy kernel (:mod:`dwi_toolkit.models._tensor`,
equal to dipy's ``TensorModel`` OLS/WLS to rounding, several times faster and read chunk by chunk
so memory stays bounded); NLLS and RESTORE are delegated to dipy's ``TensorModel``. Around the
fit this module handles our :class:`~dwi_toolkit.core.image.DWISeries`, masks, a b-value range,
per-voxel status codes, NaN outside the fitted voxels, and maps as
:class:`~dwi_toolkit.core.image.ParameterMap` with units.

Scalars (dwi_toolkit References §1.3; Basser, Mattiello & LeBihan 1994), eigenvalues
λ1 ≥ λ2 ≥ λ3 in mm²/s:

- ``MD = (λ1 + λ2 + λ3) / 3``, ``AD = λ1``, ``RD = (λ2 + λ3) / 2`` (mm²/s);
- ``FA = sqrt(3/2) · sqrt(Σ (λi − MD)²) / sqrt(Σ λi²)`` (unitless, 0–1).

The principal direction (eigenvector of λ1) is returned in the frame of the b-vectors, i.e. the
image voxel axes with FSL's convention (see :mod:`dwi_toolkit.io.nifti`);
:meth:`DTIFit.principal_direction_ras` rotates it into RAS+ world space.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..core.image import DWISeries, ParameterMap
from ..errors import FitError, InputDataError
from . import _tensor
from ._chunks import check_chunk_size, check_memory, put, take, voxel_slabs

__all__ = [
    "dti_feasible", "fit_dti", "DTIFit", "STATUS_CODES", "MAP_UNITS", "METHODS"]

logger = logging.getLogger(__name__)

#: Per-voxel status codes (uint8), aligned with the ADC fit's codes.
STATUS_CODES: dict[int, str] = {
    0: "ok",
    1: "outside mask",
    2: "invalid signal (non-finite samples or mean b=0 <= 0)",
    3: "an eigenvalue <= 0 (non-physical tensor, clipped to 0 by dipy; maps kept, flagged)",
}

#: Units of the scalar maps.
MAP_UNITS: dict[str, str] = {
    "fa": "",
    "md": "mm^2/s",
    "ad": "mm^2/s",
    "rd": "mm^2/s",
    "s0": "",
    "status": "",
}

#: Fit methods accepted (case-insensitive; dipy's names plus IWLS, iterated WLS).
METHODS = ("WLS", "OLS", "IWLS", "NLLS", "RESTORE")

#: Voxels fitted at a time by default.
DEFAULT_CHUNK = 32768


@dataclass(frozen=True, eq=False, repr=False)
class DTIFit:
    """Voxel-wise tensor maps with status and provenance (returned by :func:`fit_dti`).

    Attributes
    ----------
    fa : ndarray of shape (X, Y, Z)
        Fractional anisotropy, 0–1; NaN where status is 1 or 2.
    md, ad, rd : ndarray of shape (X, Y, Z)
        Mean, axial and radial diffusivity, mm²/s.
    evals : ndarray of shape (X, Y, Z, 3)
        Eigenvalues λ1 ≥ λ2 ≥ λ3, mm²/s.
    evecs : ndarray of shape (X, Y, Z, 3, 3)
        Eigenvectors as columns (``evecs[..., :, k]`` belongs to ``evals[..., k]``), in the
        b-vector frame.
    principal_direction : ndarray of shape (X, Y, Z, 3)
        Unit eigenvector of λ1 in the b-vector frame (sign arbitrary).
    s0 : ndarray of shape (X, Y, Z)
        Fitted b=0 signal (signal units).
    status : ndarray of uint8, shape (X, Y, Z)
        :data:`STATUS_CODES`.
    affine : ndarray of shape (4, 4)
        Voxel → RAS+ mm.
    bvals_used : ndarray of shape (N,)
        b-values (s/mm²) of the volumes fitted.
    method : str
        Fit method (upper case: WLS, OLS, IWLS, NLLS or RESTORE).
    b0_threshold : float
        s/mm².

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = rng.standard_normal((12, 3)); g /= np.linalg.norm(g, axis=1, keepdims=True)
    >>> b = np.r_[0.0, np.full(12, 1000.0)]; bvecs = np.vstack([[0, 0, 0], g])
    >>> q = (bvecs ** 2) @ np.array([1.7e-3, 0.3e-3, 0.3e-3])     # tensor along x, mm²/s
    >>> from dwi_toolkit.core.image import DWISeries
    >>> fit = fit_dti(DWISeries(np.broadcast_to(np.exp(-b * q), (2, 2, 1, 13)).copy(), np.eye(4), b, bvecs))
    >>> round(float(fit.fa[0, 0, 0]), 3), round(float(fit.md[0, 0, 0]) * 1e3, 3)
    (0.799, 0.767)
    """

    fa: np.ndarray
    md: np.ndarray
    ad: np.ndarray
    rd: np.ndarray
    evals: np.ndarray
    evecs: np.ndarray
    principal_direction: np.ndarray
    s0: np.ndarray
    status: np.ndarray
    affine: np.ndarray
    bvals_used: np.ndarray
    method: str
    b0_threshold: float = 50.0

    @property
    def shape(self) -> tuple[int, int, int]:
        """Map shape (X, Y, Z)."""
        return tuple(self.fa.shape)  # type: ignore[return-value]

    def map(self, name: str, *, ok_only: bool = False) -> ParameterMap:
        """One scalar map: ``"fa"``, ``"md"``, ``"ad"``, ``"rd"``, ``"s0"`` or ``"status"``.

        With ``ok_only=True`` voxels whose status is not 0 are NaN, so ROI statistics of the map
        (:func:`dwi_toolkit.analysis.roi_stats.roi_stats`, which drops NaN) exclude them.
        """
        key = name.lower()
        if key not in MAP_UNITS:
            raise InputDataError(
                f"unknown DTI map {name!r}; choose one of {list(MAP_UNITS)} (the principal "
                "direction is the 4-D array DTIFit.principal_direction)."
            )
        data = getattr(self, key)
        if ok_only and key != "status":
            data = np.where(self.status == 0, data, np.nan)
        return ParameterMap(data, self.affine, key, MAP_UNITS[key])

    def to_maps(self) -> dict[str, ParameterMap]:
        """All scalar maps, name → :class:`ParameterMap`."""
        return {k: self.map(k) for k in MAP_UNITS}

    def principal_direction_ras(self) -> NDArray[np.float64]:
        """Principal direction rotated into RAS+ world space, shape (X, Y, Z, 3), unit vectors.

        The b-vector frame is the voxel frame with FSL's first-axis flip when the affine has a
        positive determinant; this undoes the flip and applies the affine's rotation.
        """
        from ..core.gradients import bvec_frame_to_world

        return np.asarray(self.principal_direction, dtype=float) @ bvec_frame_to_world(self.affine).T

    def color_fa(self) -> NDArray[np.float64]:
        """Direction-encoded colour FA (X, Y, Z, 3) in RAS+ (red L–R, green A–P, blue S–I)."""
        rgb = np.abs(self.principal_direction_ras()) * np.nan_to_num(self.fa)[..., None]
        return np.clip(rgb, 0.0, 1.0)

    def summary(self) -> dict[str, Any]:
        """Counts per status code and medians of FA/MD over ok voxels (JSON-ready)."""
        ok = self.status == 0
        counts = {STATUS_CODES[c]: int((self.status == c).sum()) for c in STATUS_CODES}
        med = {k: (float(np.median(getattr(self, k)[ok])) if ok.any() else None) for k in ("fa", "md")}
        return {"method": self.method, "status_counts": counts, "median_ok": med}

    def save(self, out_dir: str | os.PathLike, *, prefix: str = "dti_") -> dict[str, Path]:
        """Write the scalar maps and the principal direction as NIfTI into `out_dir`, atomically.

        Returns
        -------
        dict
            name → path (``<prefix><name>.nii.gz``; the direction as ``<prefix>v1.nii.gz``,
            4-D (X, Y, Z, 3) in the b-vector frame).
        """
        import nibabel as nib

        from ..core.writers import get_writer  # io sits above models: registered, not imported

        atomic_path, save_map = get_writer("atomic_path"), get_writer("map")

        d = Path(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        out = {k: save_map(m, d / f"{prefix}{k}.nii.gz") for k, m in self.to_maps().items()}
        target = d / f"{prefix}v1.nii.gz"
        img = nib.Nifti1Image(np.asarray(self.principal_direction, dtype=np.float32), self.affine)
        img.header.set_xyzt_units("mm")
        img.header["descrip"] = b"principal eigenvector (b-vector frame)"
        with atomic_path(target) as tmp:
            nib.save(img, str(tmp))
        out["v1"] = target
        return out

    def __repr__(self) -> str:
        return f"DTIFit(method={self.method!r}, shape={self.shape}, ok_voxels={int((self.status == 0).sum())})"

    def _repr_html_(self) -> str:
        from ..core._display import fmt_seq, html_table, thumbnail_img

        s = self.summary()
        med = s["median_ok"]
        rows = [
            ("method", self.method),
            ("shape", str(self.shape)),
            ("b-values used (s/mm²)", fmt_seq(sorted(set(np.round(self.bvals_used, 0).tolist())))),
            ("median FA", "—" if med["fa"] is None else f"{med['fa']:.3f}"),
            ("median MD (×10⁻³ mm²/s)", "—" if med["md"] is None else f"{med['md'] * 1e3:.3f}"),
        ] + [(f"status: {k}", str(v)) for k, v in s["status_counts"].items() if v]
        shown = np.where(self.status == 0, self.fa, np.nan)
        return html_table("DTIFit", rows, image=thumbnail_img(shown, vmin=0.0, vmax=1.0, title="FA 0–1"))


def _volumes(series: DWISeries, b_range: tuple[float | None, float | None] | None) -> np.ndarray:
    """Indices of the volumes to fit (all, or those with b in `b_range`), without copying data."""
    if b_range is None:
        return np.arange(series.n_volumes)
    try:
        b_min, b_max = b_range
    except (TypeError, ValueError) as err:
        raise InputDataError(f"b_range must be a (b_min, b_max) pair in s/mm^2, got {b_range!r}.") from err
    return series.b_indices(b_min, b_max)


def _spans_tensor(bvals: np.ndarray, bvecs: np.ndarray) -> bool:
    """True when the diffusion-weighted volumes determine all six tensor elements."""
    if bvals.size < 6:
        return False
    bmat = bvecs * np.sqrt(bvals)[:, None]
    quad = np.column_stack([bmat[:, 0] ** 2, bmat[:, 1] ** 2, bmat[:, 2] ** 2, 2 * bmat[:, 0] * bmat[:, 1],
                            2 * bmat[:, 0] * bmat[:, 2], 2 * bmat[:, 1] * bmat[:, 2]])
    return bool(np.linalg.matrix_rank(quad, tol=1e-6 * max(1.0, np.abs(quad).max())) >= 6)


def dti_feasible(series: DWISeries) -> bool:
    """Whether a tensor can be fitted: a b=0 volume and directions that span the six elements.

    Examples
    --------
    >>> bvecs = np.vstack([[0, 0, 0], np.eye(3)])
    >>> dti_feasible(DWISeries(np.ones((1, 1, 1, 4)), np.eye(4), [0, 800, 800, 800], bvecs))
    False
    """
    b0 = series.b0_mask
    return bool(b0.any()) and _spans_tensor(series.bvals[~b0], series.bvecs[~b0])


def _valid_voxels(block: np.ndarray, b0: np.ndarray) -> np.ndarray:
    """Voxels of a (V, N) block with finite samples and a positive mean b=0 signal."""
    with np.errstate(invalid="ignore"):
        ok = block[:, b0].mean(axis=1, dtype=np.float64) > 0
        if np.issubdtype(block.dtype, np.floating):
            ok &= np.isfinite(block).all(axis=1)
    return ok


def _check_tensor_design(sel_bvals: np.ndarray, sel_bvecs: np.ndarray, b0: np.ndarray, b0_threshold: float) -> None:
    if not b0.any():
        raise FitError(
            f"DTI needs at least one b=0 volume (b <= {b0_threshold:g} s/mm^2); b-values: "
            f"{sorted(set(np.round(sel_bvals, 3).tolist()))}."
        )
    dw = ~b0
    if not _spans_tensor(sel_bvals[dw], sel_bvecs[dw]):
        raise FitError(
            f"DTI needs at least six non-collinear diffusion directions; this series has {int(dw.sum())} "
            "diffusion-weighted volumes whose directions do not span a tensor. Use fit_adc for "
            "trace-weighted or 3-direction data."
        )


class _DTIOutputs:
    """Result arrays of a tensor fit, filled block by block (NaN where not fitted)."""

    #: bytes per voxel of the result maps (evals 3, evecs 9, FA/MD/AD/RD/S0 5 float64; status)
    BYTES_PER_VOXEL = 17 * 8 + 1

    def __init__(self, spatial: tuple[int, ...]) -> None:
        self.evals = np.full(spatial + (3,), np.nan)
        self.evecs = np.full(spatial + (3, 3), np.nan)
        self.maps = {k: np.full(spatial, np.nan) for k in ("fa", "md", "ad", "rd", "s0")}
        self.status = np.ones(spatial, dtype=np.uint8)

    def put(self, index, fitted, valid, evals, evecs, nonpos, s0) -> None:
        """Write one slab: `fitted` (in mask) and `valid` are flat over the slab's voxels."""
        nd = self.status.ndim
        ok = fitted & valid
        st = np.where(fitted, np.where(valid, 0, 2), 1).astype(np.uint8)
        st[ok & nonpos] = 3
        put(self.status, index, st, nd)
        fa, md, ad, rd = _tensor.scalars(evals)
        for name, val in (("fa", fa), ("md", md), ("ad", ad), ("rd", rd), ("s0", s0)):
            put(self.maps[name], index, np.where(ok, val, np.nan), nd)
        put(self.evals, index, np.where(ok[:, None], evals, np.nan), nd)
        put(self.evecs, index, np.where(ok[:, None, None], evecs, np.nan), nd)


def _fit_dti_numpy(data, vol_idx, bvals, bvecs, b0, mask, method, min_signal, chunk_size, iterations):
    """Our batched OLS/WLS/IWLS fit, slab by slab; returns a :class:`_DTIOutputs`."""
    kernel = _tensor.TensorKernel(bvals, bvecs, min_signal=min_signal)
    out = _DTIOutputs(data.shape[:-1])
    for index, block in voxel_slabs(data, chunk_size, vol_idx, progress="tensor fit"):
        fitted = np.ones(block.shape[0], bool) if mask is None else take(mask, index)
        valid = _valid_voxels(block, b0)
        n = block.shape[0]
        evals = np.full((n, 3), np.nan)
        evecs = np.full((n, 3, 3), np.nan)
        s0 = np.full(n, np.nan)
        nonpos = np.zeros(n, bool)
        todo = np.flatnonzero(fitted & valid)
        for c0 in range(0, todo.size, chunk_size):
            rows = todo[c0:c0 + chunk_size]
            sub = block[rows] if rows.size < n else block
            lower, ln_s0 = kernel.fit(sub, method=method, iterations=iterations)
            evals[rows], evecs[rows], nonpos[rows] = kernel.eig(lower)
            with np.errstate(over="ignore"):
                s0[rows] = np.exp(ln_s0)
        out.put(index, fitted, valid, evals, evecs, nonpos, s0)
    return out


def _fit_dti_dipy(data, vol_idx, bvals, bvecs, b0, b0_threshold, mask, method, min_signal, chunk_size):
    """dipy's ``TensorModel`` (NLLS, RESTORE), slab by slab; returns a :class:`_DTIOutputs`."""
    from dipy.core.gradients import gradient_table
    from dipy.reconst.dti import TensorModel

    gtab = gradient_table(bvals, bvecs=bvecs, b0_threshold=b0_threshold)
    kwargs: dict[str, Any] = {} if min_signal is None else {"min_signal": min_signal}
    model = TensorModel(gtab, fit_method=method, return_S0_hat=True, **kwargs)
    out = _DTIOutputs(data.shape[:-1])
    for index, block in voxel_slabs(data, chunk_size, vol_idx, progress="tensor fit"):
        fitted = np.ones(block.shape[0], bool) if mask is None else take(mask, index)
        valid = _valid_voxels(block, b0)
        tf = model.fit(block, mask=fitted & valid)
        evals = np.asarray(tf.evals, dtype=float)
        out.put(index, fitted, valid, evals, np.asarray(tf.evecs, dtype=float),
                np.any(evals <= 0, axis=-1), np.asarray(tf.S0_hat, dtype=float))
    return out


def fit_dti(
    series: DWISeries,
    *,
    method: str = "WLS",
    b_range: tuple[float | None, float | None] | None = None,
    mask: ArrayLike | None = None,
    min_signal: float | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    iterations: int = 2,
) -> DTIFit:
    """Fit the diffusion tensor voxel by voxel.

    OLS, WLS and iterated WLS run in our own batched NumPy kernel (identical to dipy's OLS/WLS,
    see :mod:`dwi_toolkit.models._tensor`); NLLS and RESTORE go through dipy's ``TensorModel``.
    The series is read in chunks of `chunk_size` voxels, so the memory beyond the input is the
    result maps (about 140 bytes per voxel) plus one chunk.

    Parameters
    ----------
    series : DWISeries
        At least one b=0 volume and six non-collinear directions (b in s/mm², b-vectors in the
        image frame, FSL convention). Integer data is used as stored (no up-front cast).
    method : {"WLS", "OLS", "IWLS", "NLLS", "RESTORE"}, optional
        Fit method, case-insensitive (default weighted least squares with weights from an OLS
        fit, as dipy). ``"IWLS"`` repeats the weighted step `iterations` times (MRtrix3's
        ``dwi2tensor`` default is 2).
    b_range : (b_min, b_max), optional
        s/mm²; only volumes with b in the range (plus the b=0 volumes) are fitted, e.g.
        ``(0, 1000)`` to keep a single shell from a multi-shell acquisition.
    mask : array_like of bool, shape (X, Y, Z), optional
        Voxels to fit; others get status 1 and NaN maps.
    min_signal : float, optional
        Samples below are raised to it before taking logarithms (dipy's default 1e-4).
    chunk_size : int, optional
        Voxels fitted at a time (bounds the working memory).
    iterations : int, optional
        Weighted re-fits for ``"IWLS"``.

    Returns
    -------
    DTIFit

    Raises
    ------
    InputDataError
        Unknown method, bad mask, b-range without volumes, bad chunk_size.
    FitError
        Fewer than six non-collinear directions or no b=0 volume.
    InsufficientMemoryError
        The result maps would not fit in the available memory (raised before allocating).

    Examples
    --------
    >>> bvecs = np.vstack([[0, 0, 0], np.eye(3), np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]]) / np.sqrt(2)])
    >>> bvals = np.array([0] + [1000] * 6)
    >>> dt = np.diag([1.7e-3, 0.3e-3, 0.3e-3])
    >>> sig = 1000 * np.exp(-bvals * np.einsum("ni,ij,nj->n", bvecs, dt, bvecs))
    >>> s = DWISeries(np.tile(sig, (2, 2, 1, 1)), np.eye(4), bvals, bvecs)
    >>> fit = fit_dti(s)
    >>> f"{fit.fa[0, 0, 0]:.4f} {fit.md[0, 0, 0]:.3g}"
    '0.7990 0.000767'
    >>> fit_dti(s, method="iwls").method
    'IWLS'
    """
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise InputDataError(f"unknown DTI method {method!r}; choose one of {list(METHODS)} (any case).")
    method = method.upper()
    chunk_size = check_chunk_size(chunk_size)
    vol_idx = _volumes(series, b_range)
    bvals, bvecs = series.bvals[vol_idx], series.bvecs[vol_idx]
    b0 = bvals <= series.b0_threshold
    spatial = series.spatial_shape
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != spatial:
            raise InputDataError(f"mask shape {m.shape} does not match the image {spatial}.")
    _check_tensor_design(bvals, bvecs, b0, series.b0_threshold)
    check_memory("fit_dti", int(np.prod(spatial)), _DTIOutputs.BYTES_PER_VOXEL,
                 min(chunk_size, int(np.prod(spatial))) * bvals.size * 8 * 8)
    all_vols = None if vol_idx.size == series.n_volumes else vol_idx
    if method in ("OLS", "WLS", "IWLS"):
        out = _fit_dti_numpy(series.data, all_vols, bvals, bvecs, b0, m, method, min_signal, chunk_size,
                             iterations)
    else:
        out = _fit_dti_dipy(series.data, all_vols, bvals, bvecs, b0, series.b0_threshold, m, method,
                            min_signal, chunk_size)
    status = out.status
    logger.info("DTI %s fit: %d voxels, %d ok, %d negative eigenvalue, %d invalid", method,
                int((status != 1).sum()), int((status == 0).sum()), int((status == 3).sum()),
                int((status == 2).sum()))
    return DTIFit(fa=out.maps["fa"], md=out.maps["md"], ad=out.maps["ad"], rd=out.maps["rd"],
                  evals=out.evals, evecs=out.evecs, principal_direction=out.evecs[..., :, 0], s0=out.maps["s0"],
                  status=status, affine=series.affine.copy(), bvals_used=bvals.copy(), method=method,
                  b0_threshold=series.b0_threshold)
