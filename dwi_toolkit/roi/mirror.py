"""Mid-sagittal plane and contralateral mirroring of nerve-root ROIs (RAS+ mm).

Method
------
The spine is close to left–right symmetric about its mid-sagittal plane. We find the plane
``n · (x − p) = 0`` that maximises the Pearson correlation between the image and its mirror
image, sampled at foreground voxels::

    x' = x − 2 (n · (x − p)) n          (reflection of the world point x)
    score(n, p) = corr(I(x), I(x'))     (I trilinearly interpolated)

Only pairs whose mirror point lies inside the field of view count, so a field of view that cuts
the body asymmetrically does not pull the plane. The image is lightly smoothed first.
The normal is parameterised by a rotation about the S–I axis (yaw ``θ``) and a tilt about the
A–P axis (``φ``): ``n = (cos θ cos φ, sin θ cos φ, sin φ)``, and the plane is shifted along
``n`` by ``t`` mm from the intensity-weighted centroid. A coarse grid over (θ, t) (2°, 1 mm),
a fine grid around its best point (0.5°, 0.25 mm) and a Powell refinement of (θ, φ, t)
(scipy.optimize) follow each other. With ``per_level`` the refinement is repeated
in an S–I slab around each level, for curved (scoliotic) spines.

Mirroring reflects the ROI's world geometry across the plane and flips its side. Optionally the
mirrored ROI is *snapped*: shifted (at most ``search_radius_mm``) to where the mean intensity of
a high-b image inside the shape is largest — nerve roots are bright on high-b images.

In RAS+ coordinates +x points to the patient's right, so a sagittal plane has normal ≈ (1, 0, 0).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..core import affines as _aff
from ..errors import InputDataError, RoiError
from .masks import sample_points
from .model import RootROI, RoiSet, normalize_level, opposite_side

__all__ = [
    "Plane",
    "estimate_midsagittal_plane",
    "plane_from_points",
    "level_ranges_from_rois",
    "mirror_roi",
    "mirror_rois",
    "snap_to_bright",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Plane:
    """A plane in RAS+ mm: ``point`` (3,) on it and unit ``normal`` (3,).

    ``score`` is the image–mirror correlation at the optimum (for estimated planes), ``method``
    says how it was obtained and ``level`` which spinal level it was fitted to (``None``: all).

    Examples
    --------
    >>> pl = Plane([2.0, 0, 0], [1, 0, 0])
    >>> pl.reflect([[5.0, 1, 1]]).tolist()
    [[-1.0, 1.0, 1.0]]
    """

    point: NDArray[np.float64]
    normal: NDArray[np.float64]
    score: float | None = None
    method: str = "given"
    level: str | None = None

    def __post_init__(self) -> None:
        p = np.asarray(self.point, float).reshape(3)
        n = np.asarray(self.normal, float).reshape(3)
        norm = np.linalg.norm(n)
        if not np.all(np.isfinite(p)) or not np.isfinite(norm) or norm == 0:
            raise RoiError("a plane needs a finite point and a non-zero normal (RAS+ mm).")
        n = n / norm
        if n[0] < 0:  # orient towards +x (patient's right) for readable reports
            n = -n
        p, n = p.copy(), n.copy()
        p.setflags(write=False)
        n.setflags(write=False)
        object.__setattr__(self, "point", p)
        object.__setattr__(self, "normal", n)

    def signed_distance(self, points: ArrayLike) -> NDArray[np.float64]:
        """Signed distance (mm) of points (N, 3) from the plane; > 0 on the patient's right."""
        return (np.asarray(points, float).reshape(-1, 3) - self.point) @ self.normal

    def reflect(self, points: ArrayLike) -> NDArray[np.float64]:
        """Mirror points (N, 3) across the plane."""
        p = np.asarray(points, float).reshape(-1, 3)
        return p - 2 * np.outer(self.signed_distance(p), self.normal)

    def reflection_matrix(self) -> NDArray[np.float64]:
        """4×4 world → world reflection across the plane."""
        n = self.normal
        m = np.eye(4)
        m[:3, :3] -= 2 * np.outer(n, n)
        m[:3, 3] = 2 * (n @ self.point) * n
        return m

    @property
    def angles_deg(self) -> tuple[float, float]:
        """(yaw about S–I, tilt about A–P) of the normal from the +x axis, degrees."""
        n = self.normal
        return math.degrees(math.atan2(n[1], n[0])), math.degrees(math.asin(max(-1, min(1, n[2]))))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored in ROI set meta as ``midsagittal_plane``)."""
        return {"point": self.point.tolist(), "normal": self.normal.tolist(), "score": self.score,
                "method": self.method, "level": self.level, "frame": "RAS+ mm"}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Plane:
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(d["point"], d["normal"], d.get("score"), d.get("method", "given"), d.get("level"))
        except KeyError as err:
            raise RoiError(f"a plane needs 'point' and 'normal', missing {err.args[0]!r}.") from err

    def __repr__(self) -> str:
        p = ", ".join(f"{v:.2f}" for v in self.point)
        n = ", ".join(f"{v:.4f}" for v in self.normal)
        extra = f", score={self.score:.4f}" if self.score is not None else ""
        lv = f", level={self.level!r}" if self.level else ""
        return f"Plane(point=({p}), normal=({n}){extra}, method={self.method!r}{lv})"


def plane_from_points(points: ArrayLike) -> Plane:
    """Mid-sagittal plane through user-picked midline points (RAS+ mm).

    Two points (e.g. the spinous process and the centre of the vertebral body on one axial
    slice) give the plane that contains both and the S–I axis. Three or more give the
    least-squares plane; if they are (nearly) collinear, the plane containing their line and
    the S–I axis.

    Raises
    ------
    RoiError
        Fewer than 2 distinct points, or points that cannot define a sagittal-like plane.

    Examples
    --------
    >>> pl = plane_from_points([[1.0, -30, 0], [1.0, 10, 0]])
    >>> pl.point.round(3).tolist(), pl.normal.round(3).tolist()
    ([1.0, -10.0, 0.0], [1.0, 0.0, 0.0])
    """
    p = np.asarray(points, float)
    if p.ndim != 2 or p.shape[1] != 3 or p.shape[0] < 2:
        raise RoiError(f"plane_from_points needs at least 2 points of shape (K, 3), got {p.shape}.")
    c = p.mean(axis=0)
    centred = p - c
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    if s[0] < 1e-6:
        raise RoiError("the midline points coincide; pick points at least a few mm apart.")
    si = np.array([0.0, 0.0, 1.0])
    if p.shape[0] >= 3 and s.size >= 2 and s[1] > 1e-3 * s[0] and s[1] > 0.5:
        normal = vt[-1] if vt.shape[0] == 3 else np.cross(vt[0], vt[1])
        method = "points (least squares)"
    else:
        line = vt[0]
        normal = np.cross(line, si)
        if np.linalg.norm(normal) < 1e-6:
            raise RoiError("the midline points lie along the S-I axis; add a point in the axial plane.")
        method = "points (line + S-I axis)"
    return Plane(c, normal, None, method)


def _as_volume(image: Any, affine: ArrayLike | None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    if affine is None:
        if hasattr(image, "trace") and hasattr(image, "bvals"):  # DWISeries: highest-b trace
            _, tr = image.trace()
            return np.asarray(tr[..., -1], float), np.asarray(image.affine, float)
        if hasattr(image, "affine") and hasattr(image, "dataobj"):
            data = np.asanyarray(image.dataobj)
            return np.asarray(data, float), np.asarray(image.affine, float)
        if hasattr(image, "affine") and hasattr(image, "data"):
            return np.asarray(image.data, float), np.asarray(image.affine, float)
        if isinstance(image, tuple) and len(image) == 2:
            return np.asarray(image[0], float), _aff.check_affine(image[1])
        raise InputDataError(
            f"cannot use {type(image).__name__} as an image; pass (array, affine), a ParameterMap, "
            "a DWISeries or a nibabel image."
        )
    return np.asarray(image, float), _aff.check_affine(affine)


def _sampler(vol: NDArray, affine: NDArray, *, with_valid: bool = False):
    from scipy import ndimage

    inv = np.linalg.inv(affine)
    upper = np.asarray(vol.shape, float) - 1

    def sample(world: NDArray):
        ijk = _aff.apply_affine(inv, world)
        vals = ndimage.map_coordinates(vol, ijk.T, order=1, mode="constant", cval=0.0, prefilter=False)
        if with_valid:
            return vals, np.all((ijk >= -0.5) & (ijk <= upper + 0.5), axis=1)
        return vals

    return sample


def _normal(theta: float, phi: float) -> NDArray:
    return np.array([math.cos(theta) * math.cos(phi), math.sin(theta) * math.cos(phi), math.sin(phi)])


def _fit_plane(sample, pts, vals, p0, *, x0, max_angle, search_mm, coarse: bool, tilt: bool):
    from scipy import optimize

    def neg_corr(params, pts=pts, vals=vals):
        th, ph, t = params
        n = _normal(th, ph if tilt else 0.0)
        d = (pts - p0) @ n - t
        refl, valid = sample(pts - 2 * d[:, None] * n[None])
        # only pairs whose mirror point lies in the field of view: a field of view that cuts
        # the body asymmetrically must not pull the plane
        if valid.sum() < 0.5 * valid.size:
            return 0.0
        a, b = vals[valid], refl[valid]
        az, bz = a - a.mean(), b - b.mean()
        den = np.sqrt((az**2).sum() * (bz**2).sum())
        return 0.0 if den == 0 else -float((az * bz).sum() / den)

    def grid(ths, ts, phi, stride=1):
        sub = (pts[::stride], vals[::stride])
        scores = np.array([[neg_corr((th, phi, t), *sub) for t in ts] for th in ths])
        i, j = np.unravel_index(np.argmin(scores), scores.shape)
        return np.array([ths[i], phi, ts[j]])

    best = np.asarray(x0, float)
    if coarse:  # coarse grid, then a finer one around its best point (the objective is rough)
        best = grid(np.radians(np.arange(-max_angle, max_angle + 1e-9, 2.0)),
                    np.arange(-search_mm, search_mm + 1e-9, 1.0), 0.0, stride=4)
    best = grid(best[0] + np.radians(np.arange(-2.0, 2.01, 0.5)),
                best[2] + np.arange(-1.5, 1.51, 0.25), best[1])
    res = optimize.minimize(
        neg_corr, best, method="Powell",
        bounds=[(-math.radians(max_angle + 5), math.radians(max_angle + 5)),
                (-math.radians(max_angle + 5), math.radians(max_angle + 5)),
                (-search_mm - 5, search_mm + 5)],
        options={"xtol": 1e-4, "ftol": 1e-7, "maxfev": 4000},
    )
    x = res.x if res.fun <= neg_corr(best) else best
    return x, -float(neg_corr(x))


def estimate_midsagittal_plane(
    image: Any,
    affine: ArrayLike | None = None,
    *,
    mask: ArrayLike | None = None,
    per_level: Mapping[str, tuple[float, float]] | None = None,
    max_angle_deg: float = 20.0,
    search_mm: float = 12.0,
    tilt: bool = True,
    max_samples: int = 20000,
    smooth_voxels: float = 0.75,
) -> Plane | dict[str, Plane]:
    """Estimate the spine's mid-sagittal plane by maximising image/mirror-image similarity.

    Parameters
    ----------
    image : ndarray of shape (X, Y, Z), or an image object
        A b0 or trace image (any contrast with a symmetric spine). With ``affine=None`` a
        ParameterMap, nibabel image, ``(array, affine)`` or DWISeries (its highest-b trace) is
        accepted. A 4-D array is averaged over its last axis.
    affine : ndarray of shape (4, 4), optional
        Voxel → RAS+ mm.
    mask : ndarray of shape (X, Y, Z), optional
        Voxels to compare (default: voxels brighter than 10% of the 99th percentile).
    per_level : mapping, optional
        ``{level: (z_min, z_max)}`` S–I ranges in RAS+ mm (see :func:`level_ranges_from_rois`);
        the plane is then refined within each slab and a dict ``{level: Plane}`` is returned.
    max_angle_deg : float, optional
        Largest yaw/tilt searched, degrees (default 20).
    search_mm : float, optional
        Largest shift of the plane from the intensity-weighted centroid, mm (default 12).
    tilt : bool, optional
        Also fit the tilt about the A–P axis (default True); otherwise only yaw and shift.
    max_samples : int, optional
        Foreground voxels used for the similarity (evenly subsampled).
    smooth_voxels : float, optional
        Gaussian smoothing (σ in voxels) before comparing, which makes the similarity smoother
        in the plane parameters (default 0.75; 0 disables).

    Returns
    -------
    Plane or dict of str to Plane
        ``Plane(point, normal, score=correlation, method="mirror similarity")``.

    Raises
    ------
    InputDataError
        For an image without foreground or a mask of the wrong shape.

    Examples
    --------
    >>> from dwi_toolkit.phantom import make_lumbar_phantom
    >>> ph = make_lumbar_phantom(shape=(36, 28, 24), voxel_size=(4.0, 4.0, 8.0), noise=False)

    >>> plane = estimate_midsagittal_plane(ph.series.mean_b0(), ph.series.affine)
    >>> plane.normal.round(2).tolist(), round(float(plane.point[0]), 1)       # true plane x = 0 mm
    ([1.0, 0.0, 0.0], 0.0)
    """
    vol, aff = _as_volume(image, affine)
    if vol.ndim == 4:
        vol = vol.mean(axis=-1)
    if vol.ndim != 3:
        raise InputDataError(f"estimate_midsagittal_plane needs a 3-D image, got shape {vol.shape}.")
    vol = np.nan_to_num(vol, nan=0.0, posinf=0.0, neginf=0.0)
    if smooth_voxels:
        from scipy import ndimage

        vol = ndimage.gaussian_filter(vol, float(smooth_voxels))
    if mask is None:
        hi = np.percentile(vol, 99)
        m = vol > 0.1 * hi if hi > 0 else np.zeros(vol.shape, bool)
    else:
        m = np.asarray(mask, bool)
        if m.shape != vol.shape:
            raise InputDataError(f"mask shape {m.shape} differs from the image shape {vol.shape}.")
    idx = np.argwhere(m)
    if idx.shape[0] < 50:
        raise InputDataError("the image has too little foreground to estimate a mid-sagittal plane.")
    world_all = _aff.apply_affine(aff, idx)
    vals_all = vol[m]
    p0 = (world_all * vals_all[:, None]).sum(axis=0) / vals_all.sum()
    sample = _sampler(vol, aff, with_valid=True)

    def subsample(sel):
        k = np.flatnonzero(sel)
        if k.size > max_samples:
            k = k[np.linspace(0, k.size - 1, max_samples).astype(int)]
        return world_all[k], vals_all[k]

    pts, vals = subsample(np.ones(world_all.shape[0], bool))
    x, score = _fit_plane(sample, pts, vals, p0, x0=(0, 0, 0), max_angle=max_angle_deg,
                          search_mm=search_mm, coarse=True, tilt=tilt)
    n = _normal(x[0], x[1] if tilt else 0.0)
    glob = Plane(p0 + x[2] * n, n, score, "mirror similarity")
    logger.info("mid-sagittal plane: %r", glob)
    if per_level is None:
        return glob
    out: dict[str, Plane] = {}
    for level, (z0, z1) in per_level.items():
        lv = normalize_level(level)
        sel = (world_all[:, 2] >= min(z0, z1)) & (world_all[:, 2] <= max(z0, z1))
        if sel.sum() < 50:
            logger.warning("level %s: too little foreground in z %.1f..%.1f mm; using the global plane",
                           lv, z0, z1)
            out[lv] = Plane(glob.point, glob.normal, glob.score, "mirror similarity (global)", lv)
            continue
        lp, lvals = subsample(sel)
        xl, sl = _fit_plane(sample, lp, lvals, p0, x0=x, max_angle=max_angle_deg, search_mm=search_mm,
                            coarse=False, tilt=tilt)
        nl = _normal(xl[0], xl[1] if tilt else 0.0)
        out[lv] = Plane(p0 + xl[2] * nl, nl, sl, "mirror similarity (per level)", lv)
    return out


def level_ranges_from_rois(rois: RoiSet, *, margin_mm: float = 15.0) -> dict[str, tuple[float, float]]:
    """S–I slabs ``{level: (z_min, z_max)}`` (RAS+ mm) around each level's ROIs, for ``per_level``.

    Examples
    --------
    >>> from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere
    >>> rois = RoiSet([RootROI("L5", "left", shape=Sphere([-20, 0, 10], 3)), RootROI("S1", "left", shape=Sphere([-20, 0, -20], 3))])
    >>> level_ranges_from_rois(rois, margin_mm=5)                      # S-I slabs, RAS+ mm
    {'L5': (5.0, 15.0), 'S1': (-25.0, -15.0)}
    """
    out: dict[str, tuple[float, float]] = {}
    for roi in rois:
        z = float(roi.shape.centroid()[2])  # type: ignore[union-attr]
        lo, hi = out.get(roi.level, (z, z))
        out[roi.level] = (min(lo, z), max(hi, z))
    return {k: (lo - margin_mm, hi + margin_mm) for k, (lo, hi) in out.items()}


def snap_to_bright(roi: RootROI, image: Any, affine: ArrayLike | None = None, *,
                   search_radius_mm: float = 3.0, step_mm: float | None = None) -> tuple[RootROI, NDArray[np.float64]]:
    """Shift an ROI (≤ `search_radius_mm`) to where a high-b image is brightest inside it.

    The score of a shift is the mean (trilinear) intensity at regularly spaced points inside
    the shifted shape; the smallest shift scoring within 2% of the score range of the best one
    wins (so an ROI does not wander along a uniformly bright root).

    Returns
    -------
    roi : RootROI
        The shifted ROI.
    offset : ndarray of shape (3,)
        Applied shift in RAS+ mm.

    Examples
    --------
    >>> from dwi_toolkit.roi.model import RootROI, Sphere
    >>> img = np.zeros((20, 20, 20)); img[11, 10, 10] = 100.0          # bright voxel at x = 11 mm
    >>> roi, offset = snap_to_bright(RootROI("L5", "left", shape=Sphere([9.0, 10, 10], 1.0)), img, np.eye(4))
    >>> offset.round(1).tolist()
    [2.0, 0.0, 0.0]
    """
    vol, aff = _as_volume(image, affine)
    if vol.ndim == 4:
        vol = vol[..., -1]
    vol = np.nan_to_num(vol, nan=0.0)
    vox = float(_aff.voxel_sizes(aff).min())
    step = float(step_mm) if step_mm else max(0.25, vox / 3)
    r = float(search_radius_mm)
    pts = sample_points(roi, spacing_mm=max(0.3, vox / 3), max_points=3000)
    g = np.arange(-r, r + 1e-9, step)
    offs = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    offs = offs[np.linalg.norm(offs, axis=1) <= r + 1e-9]
    offs = offs[np.argsort(np.linalg.norm(offs, axis=1), kind="stable")]
    sample = _sampler(vol, aff)
    scores = np.empty(offs.shape[0])
    chunk = max(1, 400_000 // pts.shape[0])
    for i in range(0, offs.shape[0], chunk):
        o = offs[i : i + chunk]
        vals = sample((pts[None] + o[:, None]).reshape(-1, 3)).reshape(o.shape[0], pts.shape[0])
        scores[i : i + chunk] = vals.mean(axis=1)
    # the smallest shift whose score is within 2% of the score range of the best: a root is a
    # tube, and sliding along it changes the score by noise only
    tol = 0.02 * float(scores.max() - np.median(scores))
    best = offs[int(np.flatnonzero(scores >= scores.max() - tol)[0])]
    return roi.replace(shape=roi.shape.translated(best)), best  # type: ignore[union-attr]


def _plane_for(plane: Any, level: str) -> Plane:
    if isinstance(plane, Plane):
        return plane
    if isinstance(plane, Mapping):
        if level in plane:
            return plane[level]
        for key in ("global", None):
            if key in plane:
                return plane[key]
        raise RoiError(f"no mid-sagittal plane for level {level} (planes for {', '.join(map(str, plane))}).")
    if isinstance(plane, tuple) and len(plane) == 2:
        return Plane(*plane)
    raise RoiError(f"expected a Plane, a dict level -> Plane or (point, normal), got {type(plane).__name__}.")


def mirror_roi(
    roi: RootROI,
    plane: Plane | Mapping[str, Plane] | tuple[ArrayLike, ArrayLike],
    *,
    snap_to: Any = None,
    search_radius_mm: float = 3.0,
) -> RootROI:
    """The contralateral twin of `roi`: geometry reflected across `plane`, side flipped.

    Parameters
    ----------
    roi : RootROI
    plane : Plane, dict level → Plane, or (point, normal)
        The mid-sagittal plane in RAS+ mm (see :func:`estimate_midsagittal_plane`,
        :func:`plane_from_points`). With a dict, the plane of the ROI's level is used.
    snap_to : image, optional
        High-b image (ParameterMap, nibabel image, (array, affine), or a DWISeries — its
        highest-b trace) to snap the mirrored ROI to the locally brightest position.
    search_radius_mm : float, optional
        Largest snapping shift (default 3 mm).

    Returns
    -------
    RootROI
        Same level and segment, opposite side; ``notes`` record the mirroring (and snap).

    Examples
    --------
    >>> from dwi_toolkit.roi.model import Sphere
    >>> twin = mirror_roi(RootROI("L5", "left", shape=Sphere([-20, 3, 5], 2)), Plane([1, 0, 0], [1, 0, 0]))
    >>> twin.name, twin.shape.center.tolist()
    ('L5_right_ganglion', [22.0, 3.0, 5.0])
    """
    pl = _plane_for(plane, roi.level)
    shape = roi.shape.transformed(pl.reflection_matrix())  # type: ignore[union-attr]
    note = f"mirrored from {roi.name}"
    twin = RootROI(roi.level, opposite_side(roi.side), roi.segment, shape, note, roi.distance_mm)
    if snap_to is not None:
        twin, off = snap_to_bright(twin, snap_to, search_radius_mm=search_radius_mm)
        twin = twin.replace(notes=f"{note}; snapped by ({', '.join(f'{v:.2f}' for v in off)}) mm")
    return twin


def mirror_rois(
    rois: RoiSet,
    plane: Plane | Mapping[str, Plane] | tuple[ArrayLike, ArrayLike],
    *,
    snap_to: Any = None,
    search_radius_mm: float = 3.0,
    overwrite: bool = False,
) -> RoiSet:
    """Add the contralateral twin of every ROI that lacks one (or of all, ``overwrite=True``).

    The plane(s) used are stored in the returned set's ``meta["midsagittal_plane"]``.

    Examples
    --------
    >>> from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere
    >>> rois = RoiSet([RootROI("L5", "left", shape=Sphere([-20.0, 5, 10], 3))])
    >>> both = mirror_rois(rois, Plane([0, 0, 0], [1, 0, 0]))          # across x = 0
    >>> both.names, both.get("L5", "right").shape.center.tolist()
    (['L5_left_ganglion', 'L5_right_ganglion'], [20.0, 5.0, 10.0])
    """
    out = rois
    produced: set[tuple[str, str, str]] = set()
    for roi in rois:
        if roi.key in produced or "mirrored from" in roi.notes:
            continue  # never mirror a mirror back onto its source
        twin_key = (roi.level, opposite_side(roi.side), roi.segment)
        if any(r.key == twin_key for r in rois) and not overwrite:
            continue
        out = out.replace(mirror_roi(roi, plane, snap_to=snap_to, search_radius_mm=search_radius_mm))
        produced.add(twin_key)
    if isinstance(plane, Mapping):
        meta = {str(k): _plane_for(plane, k).to_dict() for k in plane}
    else:
        meta = _plane_for(plane, "").to_dict()
    return out.with_meta(midsagittal_plane=meta)
