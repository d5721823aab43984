"""Optional preprocessing steps before model fitting, each backed by dipy.

Every step takes a :class:`~dwi_toolkit.core.image.DWISeries`, never modifies it, and returns
``(new_series, provenance)`` where ``provenance`` is a JSON-ready dict (step name, dipy version,
parameters, a short methods sentence and step-specific numbers) for the report.

- :func:`denoise_mppca` — Marchenko–Pastur PCA denoising (Veraart et al., NeuroImage
  2016;142:394–406), ``dipy.denoise.localpca.mppca``. Run it first, on the raw magnitude data.
- :func:`remove_gibbs` — Gibbs-ringing removal by local sub-voxel shifts (Kellner et al., Magn
  Reson Med 2016;76:1574–1581), ``dipy.denoise.gibbs.gibbs_removal``, slice by slice.
- :func:`motion_correct` — volume-to-b0 affine registration (``dipy.align.motion_correction``:
  b0 volumes registered to each other and averaged, then every volume to that mean), with the
  b-vectors rotated by the rotation part of each volume's transform.

Typical order: denoise → Gibbs removal → motion correction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..core.gradients import bvec_frame_to_world
from ..core.image import DWISeries
from ..errors import InputDataError

__all__ = ["denoise_mppca", "remove_gibbs", "motion_correct", "rotate_bvecs"]

logger = logging.getLogger(__name__)


def _dipy_version() -> str:
    import dipy

    return str(dipy.__version__)


def _mask(mask: ArrayLike | None, shape: tuple[int, int, int]) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask, dtype=bool)
    if m.shape != shape:
        raise InputDataError(f"mask shape {m.shape} does not match the image {shape}.")
    return m


def denoise_mppca(
    series: DWISeries, *, patch_radius: int = 2, mask: ArrayLike | None = None
) -> tuple[DWISeries, dict[str, Any]]:
    """MP-PCA denoising of the whole series (dipy's ``mppca``).

    Parameters
    ----------
    series : DWISeries
        Raw magnitude series (denoise before any interpolation). Needs more volumes than
        ``(2·patch_radius+1)³`` is *not* required, but fewer volumes than patch voxels is where
        MP-PCA works best.
    patch_radius : int, optional
        Radius of the cubic local patch in voxels (default 2 → 5×5×5).
    mask : array_like of bool, shape (X, Y, Z), optional
        Voxels to denoise; others are left as 0 by dipy, so pass a generous mask or none.

    Returns
    -------
    series : DWISeries
        Denoised series (float32), same geometry and gradients.
    provenance : dict
        Includes the median estimated noise σ (signal units) from dipy.

    Examples
    --------
    >>> from dwi_toolkit.core.image import DWISeries
    >>> rng = np.random.default_rng(0)
    >>> b = np.r_[0.0, np.full(6, 800.0)]
    >>> g = np.vstack([[0, 0, 0], np.eye(3), -np.eye(3)])
    >>> clean = 1000 * np.exp(-b * 1e-3) * np.ones((8, 8, 8, 7))
    >>> s = DWISeries(clean + 20 * rng.standard_normal(clean.shape), np.eye(4), b, g)
    >>> den, prov = denoise_mppca(s, patch_radius=1)
    >>> bool(np.std(den.data - clean) < np.std(s.data - clean)), prov["step"]
    (True, 'denoise_mppca')
    """
    from dipy.denoise.localpca import mppca

    if patch_radius < 1:
        raise InputDataError(f"patch_radius must be >= 1, got {patch_radius}.")
    m = _mask(mask, series.spatial_shape)
    data = np.asarray(series.data, dtype=np.float32)
    den, sigma = mppca(data, mask=m, patch_radius=patch_radius, return_sigma=True, out_dtype=np.float32)
    sig = np.asarray(sigma)
    sel = sig[m] if m is not None else sig[np.isfinite(sig) & (sig > 0)]
    med = float(np.median(sel)) if sel.size else float("nan")
    prov = {
        "step": "denoise_mppca",
        "software": f"dipy {_dipy_version()} dipy.denoise.localpca.mppca",
        "parameters": {"patch_radius": patch_radius, "mask": m is not None},
        "median_sigma": med,
        "methods": (
            f"Noise was reduced with Marchenko-Pastur PCA denoising (Veraart et al. 2016; dipy "
            f"{_dipy_version()}, patch radius {patch_radius} voxels); median estimated noise "
            f"sigma {med:.3g} (signal units)."
        ),
    }
    logger.info("MP-PCA denoising: median sigma %.3g", med)
    return series.replace(data=den), prov


def remove_gibbs(
    series: DWISeries, *, slice_axis: int = 2, n_points: int = 3
) -> tuple[DWISeries, dict[str, Any]]:
    """Gibbs-ringing removal by local sub-voxel shifts (dipy's ``gibbs_removal``).

    Parameters
    ----------
    series : DWISeries
        Series with the in-plane acquisition matrix on the two axes other than `slice_axis`.
    slice_axis : int, optional
        Voxel axis of the slice direction (default 2, axial acquisitions stored as acquired).
    n_points : int, optional
        Neighbour points used for the local total variation (dipy default 3).

    Returns
    -------
    series : DWISeries
        Corrected series (float32).
    provenance : dict

    Examples
    --------
    >>> from dwi_toolkit.core.image import DWISeries
    >>> data = np.zeros((16, 16, 2, 2)); data[4:12, 4:12] = 100.0
    >>> out, prov = remove_gibbs(DWISeries(data, np.eye(4), [0, 800], [[0, 0, 0], [1, 0, 0]]))
    >>> out.shape, prov["step"]
    ((16, 16, 2, 2), 'remove_gibbs')
    """
    from dipy.denoise.gibbs import gibbs_removal

    if slice_axis not in (0, 1, 2):
        raise InputDataError(f"slice_axis must be 0, 1 or 2, got {slice_axis}.")
    data = np.array(series.data, dtype=np.float32, copy=True)
    out = gibbs_removal(data, slice_axis=slice_axis, n_points=n_points, inplace=False)
    prov = {
        "step": "remove_gibbs",
        "software": f"dipy {_dipy_version()} dipy.denoise.gibbs.gibbs_removal",
        "parameters": {"slice_axis": slice_axis, "n_points": n_points},
        "methods": (
            "Gibbs ringing was removed with the local sub-voxel-shift method (Kellner et al. 2016; "
            f"dipy {_dipy_version()}), slice axis {slice_axis}."
        ),
    }
    return series.replace(data=np.asarray(out, dtype=np.float32)), prov


def rotate_bvecs(bvecs: ArrayLike, transforms: ArrayLike, affine: ArrayLike) -> np.ndarray:
    """Rotate FSL-convention b-vectors by the rotation part of per-volume world transforms.

    Parameters
    ----------
    bvecs : array_like of shape (N, 3)
        Unit vectors in the image frame, FSL convention (first axis flipped when
        ``det(affine) > 0``).
    transforms : array_like of shape (N, 4, 4) or (4, 4, N)
        Per-volume registration transforms in world (RAS+ mm) space as returned by dipy
        (mapping static → moving points).
    affine : array_like of shape (4, 4)
        Voxel → RAS+ mm affine of the series.

    Returns
    -------
    ndarray of shape (N, 3)
        Rotated unit vectors in the same FSL image frame; zero vectors stay zero.

    Notes
    -----
    The rotation ``R`` is the polar factor of the transform's 3×3 part; the gradient seen in the
    corrected (static) frame is ``R⁻¹ g`` (as in dipy's ``reorient_bvecs``). The conversion
    between the FSL image frame and world space uses the affine's normalised rotation ``M`` and
    FSL's flip ``F``: ``g_world = M F g_fsl``.

    Examples
    --------
    >>> rz = np.array([[0, -1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])  # 90° about z
    >>> rotate_bvecs([[1.0, 0, 0]], rz[None], np.diag([-1.0, 1, 1, 1])).round(6).tolist()
    [[0.0, 1.0, 0.0]]
    """
    from scipy.linalg import polar

    v = np.asarray(bvecs, dtype=float)
    t = np.asarray(transforms, dtype=float)
    if t.ndim == 3 and t.shape[:2] == (4, 4) and t.shape[2] == v.shape[0] and t.shape[0] != v.shape[0]:
        t = np.moveaxis(t, -1, 0)
    if t.shape != (v.shape[0], 4, 4):
        raise InputDataError(f"need one 4x4 transform per volume ({v.shape[0]}), got shape {t.shape}.")
    to_world = bvec_frame_to_world(affine)
    from_world = np.linalg.inv(to_world)
    out = np.zeros_like(v)
    for i in range(v.shape[0]):  # N is the number of volumes (tens), not voxels
        if not np.any(v[i]):
            continue
        r, _ = polar(t[i, :3, :3])
        g = np.linalg.solve(r, to_world @ v[i])
        g = from_world @ g
        out[i] = g / np.linalg.norm(g)
    return out


def motion_correct(
    series: DWISeries,
    *,
    pipeline: Sequence[str] = ("center_of_mass", "translation", "rigid", "affine"),
    level_iters: Sequence[int] | None = None,
    static_mask: ArrayLike | None = None,
) -> tuple[DWISeries, dict[str, Any]]:
    """Volume-to-b0 affine motion correction with b-vector rotation (dipy's ``motion_correction``).

    b=0 volumes are registered to each other and averaged; every diffusion-weighted volume is
    then registered to that mean (mutual information, dipy's default), resampled, and its
    b-vector rotated by the rotation of its transform (:func:`rotate_bvecs`).

    Parameters
    ----------
    series : DWISeries
        Series with at least one b=0 volume.
    pipeline : sequence of str, optional
        dipy registration stages (``"center_of_mass"``, ``"translation"``, ``"rigid"``,
        ``"affine"``); use ``("center_of_mass", "translation", "rigid")`` for rigid-only.
    level_iters : sequence of int, optional
        Iterations per Gaussian-pyramid level (dipy default ``[1000, 500, 100]``; fewer is faster).
    static_mask : array_like of bool, shape (X, Y, Z), optional
        Restricts the similarity metric to these voxels.

    Returns
    -------
    series : DWISeries
        Corrected series (float32) with rotated b-vectors.
    provenance : dict
        ``transforms`` (N × 4 × 4 world transforms), ``max_translation_mm``,
        ``max_rotation_deg`` and the methods text.

    Examples
    --------
    >>> from dwi_toolkit.core.image import DWISeries
    >>> x, y, z = np.mgrid[:16, :16, :8]
    >>> blob = np.exp(-((x - 8) ** 2 + (y - 7) ** 2 + (z - 4) ** 2) / 12.0) * 1000
    >>> s = DWISeries(np.stack([blob, blob * 0.5], -1), np.eye(4), [0, 800], [[0, 0, 0], [1, 0, 0]])
    >>> out, prov = motion_correct(s, pipeline=("center_of_mass", "translation"), level_iters=[10])
    >>> out.shape, bool(prov["max_translation_mm"] < 0.5)
    ((16, 16, 8, 2), True)
    """
    from dipy.align import motion_correction
    from dipy.core.gradients import gradient_table

    if not series.b0_mask.any():
        raise InputDataError("motion correction registers to the b=0 volumes; the series has none.")
    gtab = gradient_table(series.bvals, bvecs=series.bvecs, b0_threshold=series.b0_threshold)
    m = _mask(static_mask, series.spatial_shape)
    kwargs = {}
    if level_iters is not None:
        import inspect

        if "level_iters" in inspect.signature(motion_correction).parameters:
            kwargs["level_iters"] = list(level_iters)
        else:  # dipy < 1.12 registers with its own iteration schedule
            logger.info("dipy %s has no level_iters option; using its default schedule", _dipy_version())
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()) as dipy_out:  # some dipy versions print progress
        img, transforms = motion_correction(
            np.asarray(series.data, dtype=np.float32), gtab, affine=series.affine, pipeline=list(pipeline),
            static_mask=m, **kwargs,
        )
    if dipy_out.getvalue().strip():
        logger.debug("dipy motion_correction: %s", dipy_out.getvalue().strip())
    t = np.moveaxis(np.asarray(transforms, dtype=float), -1, 0)  # (N, 4, 4)
    new_bvecs = rotate_bvecs(series.bvecs, t, series.affine)
    trans = np.linalg.norm(t[:, :3, 3], axis=1)
    from scipy.linalg import polar

    angles = []
    for ti in t:
        r, _ = polar(ti[:3, :3])
        angles.append(float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0)))))
    data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)
    prov = {
        "step": "motion_correct",
        "software": f"dipy {_dipy_version()} dipy.align.motion_correction",
        "parameters": {"pipeline": list(pipeline), "level_iters": list(level_iters) if level_iters else None,
                       "static_mask": m is not None},
        "transforms": t.round(6).tolist(),
        "max_translation_mm": float(trans.max()),
        "max_rotation_deg": float(max(angles)),
        "methods": (
            f"Volumes were registered to the mean b=0 image with dipy {_dipy_version()} "
            f"({' → '.join(pipeline)}, mutual information) and the b-vectors rotated accordingly; "
            f"largest displacement {trans.max():.2f} mm, largest rotation {max(angles):.2f}°."
        ),
    }
    logger.info("motion correction: max translation %.2f mm, max rotation %.2f deg", trans.max(), max(angles))
    return series.replace(data=data, bvecs=new_bvecs), prov
