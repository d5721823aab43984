"""Tensor tractography of the lumbar nerve roots, kept per root (level, side).

Steps (each a named function below):

1. the tensor: :func:`dwi_toolkit.models.dti.fit_dti` unless a fit is given;
2. seeds per root from a :class:`~dwi_toolkit.roi.model.RootROI` / ``RoiSet`` (sphere on the
   ganglion, a point, a tube, a label-map voxel mask) or from points, jittered within
   ``seed_radius_mm``;
3. dipy's tracking functions (``dipy.tracking.tracker``) — deterministic (``eudx_tracking`` on
   the principal eigenvector) or probabilistic (``probabilistic_tracking`` on a tensor ODF) —
   stopping where FA < ``fa_threshold`` (trilinear), the turn exceeds ``max_angle_deg`` or the
   body mask ends;
4. rejection of implausible streamlines: too short, crossing the mid-sagittal plane, leaving the
   body (a point more than one voxel outside the mask, :func:`body_reach`), far from the bundle
   (counts are kept per root);
5. per root a centre-line (bundle core: mean of streamline points binned by arc length along a
   reference, as in tract-profile methods, Yeatman et al. PLoS One 2012), a
   :class:`~dwi_toolkit.roi.model.Tube` ROI around it, and the origin of distance along the
   root: the dural junction (where the root leaves the CSF of the thecal sac; Miyagi et al. 2015
   measured from there) or a user point.

Everything is in RAS+ mm; streamlines run proximal (midline) → distal.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..core.image import DWISeries
from ..core.affines import voxel_sizes
from ..core.polyline import arc_lengths as _arc
from ..core.polyline import arc_of_point, points_at, project_to_line, unit_tangents
from ..errors import FitError, InputDataError
from ..roi.masks import roi_mask
from ..roi.model import RootROI, RoiSet, Sphere, Tube, normalize_level, normalize_side

__all__ = ["TrackingParams", "RootBundle", "RootTracts", "track_roots", "REJECT_REASONS", "body_reach"]

logger = logging.getLogger(__name__)

#: Reasons a streamline is rejected, in the order they are tested.
REJECT_REASONS = ("too_short", "crosses_midline", "leaves_body", "off_bundle")

#: MD above which a voxel counts as CSF when finding the thecal sac (mm²/s; free water at body
#: temperature ≈ 3.0×10⁻³ mm²/s, normal root ≈ 1.2–1.6×10⁻³).
CSF_MD = 2.2e-3


@dataclass(frozen=True)
class TrackingParams:
    """Tracking settings (lengths in mm, angles in degrees).

    Examples
    --------
    >>> TrackingParams(method="prob").fa_threshold
    0.2
    """

    method: str = "det"
    fa_threshold: float = 0.2
    max_angle_deg: float = 40.0
    step_mm: float = 0.5
    seeds_per_root: int = 40
    seed_radius_mm: float = 1.5
    min_length_mm: float = 15.0
    max_length_mm: float = 120.0
    off_bundle_mm: float = 6.0
    tube_radius_mm: float = 2.5
    random_seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("det", "prob"):
            raise InputDataError(f"tracking method must be 'det' or 'prob', got {self.method!r}.")
        if not 0 <= self.fa_threshold < 1 or self.step_mm <= 0 or self.seeds_per_root < 1:
            raise InputDataError("fa_threshold must be in [0, 1), step_mm > 0 and seeds_per_root >= 1.")


@dataclass(frozen=True, eq=False)
class RootBundle:
    """The kept streamlines of one root with its centre-line.

    Attributes
    ----------
    level, side : str
    streamlines : list of ndarray (Ki, 3)
        RAS+ mm, oriented proximal → distal.
    centerline : ndarray (K, 3)
        Bundle core in RAS+ mm, proximal → distal, 1 mm spacing (empty when nothing was kept).
    origin_arc_mm : float
        Arc length along the centre-line (from its first point) of the distance origin; the
        distance along the root of centre-line point k is ``arc[k] - origin_arc_mm``.
    origin_source : str
        ``"dural junction (CSF)"``, ``"user point"`` or ``"centre-line start"``.
    n_seeds, n_tracked : int
    rejected : dict
        Reason → count (:data:`REJECT_REASONS`).
    tube_radius_mm : float
        Radius (mm) of :meth:`roi`'s tube.
    origin_sd_mm : float
        Standard uncertainty (mm) of the origin along the root: 0 for a user point; for the
        dural junction the voxel quantisation of the sac's edge (voxel extent across the edge
        / √12) divided by the sine of the angle at which the centre-line leaves the sac — a root
        that runs along the sac before leaving it has an ill-defined exit; for the centre-line
        start (no sac found) two voxels, a conservative guess. Profiles carry it into their
        intervals (:func:`~dwi_toolkit.tracts.profiles.along_root_profiles`) and the side
        comparison into its band.

    Examples
    --------
    >>> line = np.array([[0.0, 0, 0], [0, 0, 10], [0, 0, 20]])
    >>> b = RootBundle("L5", "left", [line], line, 5.0, "user point", 1, 1, dict.fromkeys(REJECT_REASONS, 0))
    >>> b.n_kept, b.distance_mm.tolist(), b.roi(start_mm=0, end_mm=15).distance_mm
    (1, [-5.0, 5.0, 15.0], 10.0)
    >>> b.points([0.0, 10.0]).tolist()
    [[0.0, 0.0, 5.0], [0.0, 0.0, 15.0]]
    """

    level: str
    side: str
    streamlines: list
    centerline: NDArray[np.float64]
    origin_arc_mm: float
    origin_source: str
    n_seeds: int
    n_tracked: int
    rejected: dict
    tube_radius_mm: float = 2.5
    origin_sd_mm: float = 0.0

    @property
    def n_kept(self) -> int:
        """Number of streamlines kept."""
        return len(self.streamlines)

    @property
    def arc_mm(self) -> NDArray[np.float64]:
        """Arc length (mm) of each centre-line point from its first point."""
        c = self.centerline
        return np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(c, axis=0), axis=1))] if len(c) else np.zeros(0)

    @property
    def distance_mm(self) -> NDArray[np.float64]:
        """Distance along the root (mm from the origin) of each centre-line point."""
        return self.arc_mm - self.origin_arc_mm

    def points(self, distance_mm: ArrayLike) -> NDArray[np.float64]:
        """RAS+ mm points of the centre-line at distances (mm from the origin) along the root
        (clamped to its ends)."""
        return points_at(self.centerline, np.asarray(distance_mm, float) + self.origin_arc_mm)

    def tube(self, radius_mm: float | None = None) -> Tube:
        """The centre-line as a :class:`~dwi_toolkit.roi.model.Tube` (RAS+ mm)."""
        return Tube(self.centerline, self.tube_radius_mm if radius_mm is None else radius_mm)

    def roi(self, radius_mm: float | None = None, *, start_mm: float | None = None,
            end_mm: float | None = None, segment: str = "ganglion") -> RootROI:
        """A tube :class:`RootROI` around the centre-line, optionally only between two distances
        along the root (mm from the origin), with ``distance_mm`` at the tube's middle.

        The whole-root tube spans several segments; pass `start_mm`/`end_mm` and the matching
        `segment` to compare sides at homologous positions (Miyagi et al. 2015).
        """
        d = self.distance_mm
        lo = d[0] if start_mm is None else start_mm
        hi = d[-1] if end_mm is None else end_mm
        sel = (d >= lo) & (d <= hi)
        if sel.sum() < 1:
            raise InputDataError(f"{self.level} {self.side}: no centre-line between {lo} and {hi} mm "
                                 f"(centre-line covers {d[0]:.1f} to {d[-1]:.1f} mm).")
        tube = Tube(self.centerline[sel], self.tube_radius_mm if radius_mm is None else radius_mm)
        return RootROI(self.level, self.side, segment, tube, notes="tract centre-line tube",
                       distance_mm=float(0.5 * (d[sel][0] + d[sel][-1])))


@dataclass(frozen=True, eq=False, repr=False)
class RootTracts:
    """Result of :func:`track_roots`: one :class:`RootBundle` per root, plus provenance.

    Examples
    --------
    >>> from dwi_toolkit.phantom_roots import make_root_phantom
    >>> ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30)
    >>> tr = track_roots(ph.series, ph.seeds, mask=ph.body_mask)
    >>> sorted(tr.keys()), all(b.n_kept > 5 for b in tr)
    ([('L5', 'left'), ('L5', 'right')], True)
    """

    bundles: dict
    affine: NDArray[np.float64]
    shape: tuple
    params: TrackingParams
    midsagittal_plane: tuple
    meta: dict = field(default_factory=dict)

    def __iter__(self):
        return iter(self.bundles.values())

    def __len__(self) -> int:
        return len(self.bundles)

    def keys(self) -> list[tuple[str, str]]:
        """(level, side) of each root."""
        return list(self.bundles)

    def get(self, level: str, side: str) -> RootBundle | None:
        """The bundle of one root, or ``None``."""
        return self.bundles.get((normalize_level(level), normalize_side(side)))

    def rois(self, radius_mm: float | None = None) -> RoiSet:
        """Tube ROIs around every non-empty centre-line, usable with ``roi_stats``/``compare_sides``."""
        return RoiSet([b.roi(radius_mm) for b in self if len(b.centerline) > 1],
                      meta={"source": "dwi_toolkit.track_roots", "frame": "RAS+ mm"})

    def summary(self) -> list[dict[str, Any]]:
        """One JSON-ready record per root: seeds, tracked, kept, rejected by reason, length."""
        return [{"level": b.level, "side": b.side, "n_seeds": b.n_seeds, "n_tracked": b.n_tracked,
                 "n_kept": b.n_kept, **{f"rejected_{k}": int(v) for k, v in b.rejected.items()},
                 "centerline_length_mm": float(b.arc_mm[-1]) if len(b.centerline) > 1 else 0.0,
                 "origin": b.origin_source, "origin_sd_mm": round(b.origin_sd_mm, 2)} for b in self]

    def __repr__(self) -> str:
        return f"RootTracts({', '.join(f'{b.level}_{b.side}:{b.n_kept}' for b in self)})"


# --------------------------------------------------------------------------- seeds

def _per_root(spec: Any, what: str, from_roi: Any) -> dict[tuple[str, str], list[NDArray]]:
    """(level, side) → list of (M, 3) RAS+ point arrays, from a mapping (``(level, side)`` or
    ``"L5_left"`` keys → point(s)) or from RootROIs / a RoiSet (``from_roi(roi)``)."""
    if isinstance(spec, RootROI):
        spec = [spec]
    out: dict[tuple[str, str], list] = {}
    if isinstance(spec, Mapping):
        for key, pts in spec.items():
            lev, side = key if isinstance(key, tuple) else key.split("_")[:2]
            out.setdefault((normalize_level(lev), normalize_side(side)), []).append(
                np.asarray(pts, float).reshape(-1, 3))
    elif isinstance(spec, (RoiSet, Iterable)):
        for roi in spec:
            if not isinstance(roi, RootROI):
                raise InputDataError(f"{what} must be RootROIs, a RoiSet or a mapping, got {type(roi).__name__}.")
            out.setdefault((roi.level, roi.side), []).append(from_roi(roi))
    else:
        raise InputDataError(f"cannot take {what} from {type(spec).__name__}; pass a RoiSet, RootROIs or "
                             "{(level, side): points}.")
    return out


def _seed_centres(seeds: Any, shape: tuple, affine: NDArray) -> dict[tuple[str, str], NDArray]:
    """(level, side) → (M, 3) RAS+ points that the seeds are drawn around."""
    out = _per_root(seeds, "seeds", lambda roi: _roi_points(roi, shape, affine))
    if not out:
        raise InputDataError("no seeds given; pass at least one RootROI or point per root.")
    return {k: np.vstack(v) for k, v in out.items()}


def _origin_points(origins: Any) -> dict[tuple[str, str], NDArray]:
    """(level, side) → one RAS+ point, from a mapping or from RootROIs / a RoiSet (each ROI's
    centroid, e.g. a point or small sphere marked on the dural junction)."""
    if origins is None:
        return {}
    out = _per_root(origins, "origins", lambda roi: np.asarray(roi.shape.centroid(), float).reshape(1, 3))
    return {k: np.vstack(v).mean(0) for k, v in out.items()}


def _roi_points(roi: RootROI, shape: tuple, affine: NDArray) -> NDArray:
    """Voxel centres of a sphere/tube/mask ROI; its centroid when it covers no voxel centre."""
    if isinstance(roi.shape, Sphere) and roi.shape.radius_mm < 1.0:
        return roi.shape.centroid().reshape(1, 3)
    try:
        m = roi_mask(roi, shape, affine)
    except Exception:  # noqa: BLE001 - small ROI: fall back to its centre
        return np.asarray(roi.shape.centroid(), float).reshape(1, 3)
    ijk = np.argwhere(m)
    return ijk @ affine[:3, :3].T + affine[:3, 3]


def _seed_points(centres: NDArray, params: TrackingParams, rng: np.random.Generator) -> NDArray:
    """``seeds_per_root`` points: the centres, repeated, jittered in a ball of seed_radius_mm."""
    n = params.seeds_per_root
    base = centres[rng.integers(0, len(centres), n)] if len(centres) < n else centres[rng.permutation(len(centres))[:n]]
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    r = params.seed_radius_mm * rng.random(n) ** (1 / 3)
    return base + v * r[:, None]


# --------------------------------------------------------------------------- tracking

def _voxel_axes(affine: NDArray) -> NDArray:
    lin = affine[:3, :3]
    return lin / np.linalg.norm(lin, axis=0)


def _peaks(fit: Any, params: TrackingParams, valid: NDArray):
    """dipy ``PeaksAndMetrics`` of the tensor for EuDX: the principal direction on the voxel
    axes as the nearest vertex of dipy's default sphere, FA as the peak value."""
    from dipy.data import default_sphere
    from dipy.direction.peaks import PeaksAndMetrics

    axes = _voxel_axes(np.asarray(fit.affine, float))
    fa = np.where(valid, np.nan_to_num(fit.fa), 0.0)
    d = np.nan_to_num(fit.principal_direction_ras() @ axes)
    pam = PeaksAndMetrics()
    pam.sphere = default_sphere
    pam.peak_dirs = np.ascontiguousarray(d[..., None, :], dtype=float)
    pam.peak_values = np.ascontiguousarray(fa[..., None], dtype=float)
    # nearest sphere vertex, only where tracking can go (FA above threshold)
    idx = np.zeros(fa.size, np.int32)
    go = np.flatnonzero(fa.reshape(-1) >= params.fa_threshold)
    idx[go] = np.argmax(np.abs(d.reshape(-1, 3)[go] @ default_sphere.vertices.T), axis=1)
    pam.peak_indices = idx.reshape(fa.shape + (1,))
    return pam


def _tensor_pmf(fit: Any, params: TrackingParams, valid: NDArray):
    """(pmf, sphere) for probabilistic tracking: a sharpened axially symmetric ODF of the tensor,
    cos^(2 + 40·FA) of the angle to the principal direction, on dipy's repulsion200 sphere."""
    from dipy.data import get_sphere

    sphere = get_sphere(name="repulsion200")
    axes = _voxel_axes(np.asarray(fit.affine, float))
    fa = np.where(valid, np.nan_to_num(fit.fa), 0.0)
    dirs = sphere.vertices @ axes.T  # sphere vertices (voxel axes) in RAS+
    pmf = np.zeros(fa.shape + (len(dirs),))
    idx = np.flatnonzero(valid & (fa >= params.fa_threshold))
    v1 = fit.principal_direction_ras().reshape(-1, 3)[idx]
    power = 2 + 40 * fa.reshape(-1)[idx][:, None]
    pmf.reshape(-1, len(dirs))[idx] = np.abs(v1 @ dirs.T) ** power
    return pmf, sphere


def _direction_model(fit: Any, params: TrackingParams, valid: NDArray):
    """What dipy tracks on: tensor peaks (deterministic, EuDX) or a tensor PMF (probabilistic)."""
    return _peaks(fit, params, valid) if params.method == "det" else _tensor_pmf(fit, params, valid)


def _run_dipy(model: Any, stop_map: NDArray, seeds: NDArray, affine: NDArray, params: TrackingParams) -> list:
    """Track with dipy's current interface (``dipy.tracking.tracker``, dipy ≥ 1.11): EuDX on the
    peaks (``eudx_tracking``; the same streamlines as ``LocalTracking`` with
    ``PeaksAndMetrics``, deprecated in dipy 1.12) or ``probabilistic_tracking`` on the PMF.
    One thread; lengths in mm (``max_len``), no dipy length filter (our rules count rejections)."""
    from dipy.tracking.stopping_criterion import ThresholdStoppingCriterion
    from dipy.tracking.tracker import eudx_tracking, probabilistic_tracking

    sc = ThresholdStoppingCriterion(np.ascontiguousarray(stop_map, dtype=float), float(params.fa_threshold))
    common = {"step_size": params.step_mm, "max_angle": float(params.max_angle_deg), "min_len": 0,
              "max_len": float(params.max_length_mm), "nbr_threads": 1, "return_all": True,
              "random_seed": int(params.random_seed) + 1}  # dipy: 0 is not reproducible
    seeds = np.ascontiguousarray(seeds, dtype=float)
    if params.method == "det":
        gen = eudx_tracking(seeds, sc, affine, pam=model, pmf_threshold=float(params.fa_threshold), **common)
    else:
        pmf, sphere = model
        gen = probabilistic_tracking(seeds, sc, affine, sf=pmf, sphere=sphere, **common)
    return [np.asarray(s, float) for s in gen]


# --------------------------------------------------------------------------- cleaning

def _length(s: NDArray) -> float:
    return float(np.linalg.norm(np.diff(s, axis=0), axis=1).sum()) if len(s) > 1 else 0.0


def body_reach(body: NDArray) -> NDArray[np.bool_]:
    """Voxels a tracked point can reach without leaving the body: the mask and its 26 neighbours.

    The tracker interpolates the stopping map trilinearly, so a point it accepts can lie up to
    one voxel beyond the last mask voxel centre, and the point where it stops one step further;
    the nearest voxel of such a point is outside the mask although the streamline never left
    the body. A streamline *leaves the body* when one of its points falls in a voxel more than
    one voxel away from the mask.

    Examples
    --------
    >>> m = np.zeros((5, 5, 5), bool); m[2, 2, 2] = True
    >>> int(body_reach(m).sum())
    27
    """
    from scipy import ndimage as ndi

    return ndi.binary_dilation(np.asarray(body, bool), structure=np.ones((3, 3, 3), bool))


def _inside(mask: NDArray, affine_inv: NDArray, pts: NDArray) -> NDArray[np.bool_]:
    ijk = np.rint(pts @ affine_inv[:3, :3].T + affine_inv[:3, 3]).astype(int)
    ok = np.all((ijk >= 0) & (ijk < np.asarray(mask.shape)), axis=1)
    out = np.zeros(len(pts), bool)
    out[ok] = mask[tuple(ijk[ok].T)]
    return out


def _orient(s: NDArray, plane: tuple) -> NDArray:
    """Proximal (closer to the mid-sagittal plane) end first."""
    p, n = plane
    return s[::-1].copy() if abs((s[0] - p) @ n) > abs((s[-1] - p) @ n) else s


def _reject(streams: list, side: str, plane: tuple, reach: NDArray, affine: NDArray,
            params: TrackingParams) -> tuple[list, dict]:
    """Apply the plausibility rules; return kept streamlines (oriented) and counts by reason.

    `reach` is :func:`body_reach` of the body mask (a point one voxel beyond the mask, where the
    trilinear tracker stops, is not outside the body)."""
    counts = dict.fromkeys(REJECT_REASONS, 0)
    inv = np.linalg.inv(affine)
    sign = -1.0 if side == "left" else 1.0
    kept = []
    for s in streams:
        if len(s) < 2 or _length(s) < params.min_length_mm:
            counts["too_short"] += 1
        elif np.any(sign * ((s - plane[0]) @ plane[1]) < -1.0):
            counts["crosses_midline"] += 1
        elif not _inside(reach, inv, s).all():
            counts["leaves_body"] += 1
        else:
            kept.append(_orient(s, plane))
    return kept, counts


# --------------------------------------------------------------------------- centre-line

def _core(streams: list, reference: NDArray, min_frac: float = 0.3) -> NDArray:
    """Mean streamline position in 1 mm arc-length bins along `reference`, smoothed."""
    from scipy.ndimage import gaussian_filter1d

    pts = np.vstack(streams)
    owner = np.repeat(np.arange(len(streams)), [len(s) for s in streams])
    s, _ = project_to_line(pts, reference)
    bins = np.floor(s).astype(int)
    nb = int(bins.max()) + 1
    sums = np.zeros((nb, 3))
    np.add.at(sums, bins, pts)
    cnt = np.bincount(bins, minlength=nb).astype(float)
    cover = np.zeros(nb)
    for b in range(nb):  # streamlines present in each bin
        cover[b] = np.unique(owner[bins == b]).size
    good = np.flatnonzero(cover >= max(2, min_frac * len(streams)))
    if good.size < 3:
        return reference
    sel = np.arange(good[0], good[-1] + 1)
    sel = sel[cnt[sel] > 0]
    core = sums[sel] / cnt[sel, None]
    core = gaussian_filter1d(core, 1.5, axis=0, mode="nearest")
    return _resample(core, 1.0)


def _resample(line: NDArray, spacing: float) -> NDArray:
    arc = _arc(line)
    if arc[-1] <= 0:
        return line[:1]
    return points_at(line, np.linspace(0, arc[-1], max(2, int(round(arc[-1] / spacing)) + 1)))


def _centerline(streams: list, params: TrackingParams) -> tuple[NDArray, list, int]:
    """Bundle core (two passes) and the streamlines within ``off_bundle_mm`` of it."""
    ref = max(streams, key=_length)
    core = _core(streams, ref)
    core = _core(streams, core)
    keep, off = [], 0
    for s in streams:
        _, d = project_to_line(s, core)
        if np.median(d) <= params.off_bundle_mm:
            keep.append(s)
        else:
            off += 1
    if keep and off:
        core = _core(keep, core)
    return core, keep, off


# --------------------------------------------------------------------------- distance origin

def _sample(data: NDArray, affine: NDArray, pts: NDArray) -> NDArray[np.float64]:
    """Trilinear values at RAS+ points (NaN outside the grid or next to NaN voxels)."""
    from scipy.ndimage import map_coordinates

    inv = np.linalg.inv(affine)
    ijk = (pts @ inv[:3, :3].T + inv[:3, 3]).T
    bad = ~np.isfinite(data)
    vals = map_coordinates(np.where(bad, 0.0, data), ijk, order=1, mode="constant", cval=np.nan)
    if bad.any():
        touched = map_coordinates(bad.astype(float), ijk, order=1, mode="constant", cval=1.0)
        vals[touched > 0.5] = np.nan
    return vals



def thecal_sac_mask(md: NDArray, body: NDArray, affine: NDArray, *, csf_md: float = CSF_MD) -> NDArray[np.bool_]:
    """The thecal sac: largest connected CSF component (MD > `csf_md`, mm²/s), closed so that roots
    running inside it do not make holes.

    Examples
    --------
    >>> md = np.full((20, 20, 5), 1.3e-3); md[8:12, 8:12] = 3e-3
    >>> int(thecal_sac_mask(md, np.ones(md.shape, bool), np.eye(4)).sum())
    80
    """
    from scipy import ndimage as ndi

    csf = np.nan_to_num(md) > csf_md
    csf &= body
    lab, n = ndi.label(csf)
    if n == 0:
        return csf
    sizes = ndi.sum(csf, lab, index=np.arange(1, n + 1))
    sac = lab == (1 + int(np.argmax(sizes)))
    vox = voxel_sizes(affine)
    it = max(1, int(round(3.0 / vox.min())))
    return ndi.binary_closing(sac, iterations=it, border_value=0) | sac


def _sac_distance(sac: NDArray, affine: NDArray) -> NDArray[np.float64] | None:
    """Distance (mm) of every voxel centre to the nearest sac voxel centre (None without a sac)."""
    from scipy import ndimage as ndi

    if not sac.any():
        return None
    return ndi.distance_transform_edt(~sac, sampling=voxel_sizes(affine))


#: Uncertainty (voxels) of an origin at the centre-line's start, used when no sac is found: the
#: streamlines stop proximally where the root enters the CSF, near but not at the junction.
_START_SD_VOXELS = 2.0

#: Smallest sine of the exit angle used for the origin's uncertainty (a root tangent to the sac
#: would otherwise have an unbounded one).
_MIN_EXIT_SINE = 0.25


def _origin_sd(core: NDArray, origin: float, edt: NDArray, affine: NDArray) -> float:
    """Uncertainty (mm) of the junction along the centre-line (:attr:`RootBundle.origin_sd_mm`):
    quantisation of the sac's edge across it, over the sine of the exit angle. The edge normal
    is the gradient of the distance to the sac, 1.5 voxels outside the junction."""
    vox = voxel_sizes(affine)
    t = unit_tangents(core, origin, 1.0)
    p = points_at(core, origin) + 1.5 * float(vox.max()) * t
    rot = affine[:3, :3] / vox  # voxel axes in RAS+ (columns)
    h = float(vox.min())
    steps = np.vstack([p + h * rot[:, k] for k in range(3)] + [p - h * rot[:, k] for k in range(3)])
    d = _sample(edt, affine, steps)
    grad_vox = (d[:3] - d[3:]) / (2 * h)  # along the voxel axes
    if not np.all(np.isfinite(grad_vox)) or np.linalg.norm(grad_vox) < 1e-6:
        return float(vox.max() / np.sqrt(12.0) / _MIN_EXIT_SINE)
    n_vox = grad_vox / np.linalg.norm(grad_vox)
    n = rot @ n_vox
    across = float(np.sqrt(np.sum((vox * n_vox) ** 2)))  # voxel extent across the edge (mm)
    return float(across / np.sqrt(12.0) / max(abs(float(n @ t)), _MIN_EXIT_SINE))


def _origin_from_sac(core: NDArray, sac: NDArray, edt: NDArray | None,
                     affine: NDArray) -> tuple[float, float] | None:
    """Arc length of the dural junction — the last centre-line point inside the sac (or, if the
    line starts outside, minus its distance to the sac) — and its uncertainty (mm)."""
    if edt is None:
        return None
    inv = np.linalg.inv(affine)
    inside = _inside(sac, inv, core)
    arc = _arc(core)
    if inside[0]:
        k = int(np.argmin(inside)) if not inside.all() else len(inside) - 1
        return float(arc[k]), _origin_sd(core, float(arc[k]), edt, affine)
    ijk = np.rint(core[0] @ inv[:3, :3].T + inv[:3, 3]).astype(int)
    if np.any(ijk < 0) or np.any(ijk >= np.asarray(sac.shape)):
        return None
    vox = voxel_sizes(affine)
    d0 = max(0.0, float(edt[tuple(ijk)]) - 0.5 * float(vox.min()))  # sac edge lies half a voxel out
    return (-d0, _origin_sd(core, 0.0, edt, affine)) if d0 < 10.0 else None


# --------------------------------------------------------------------------- public

def _as_fit(data: Any, mask: NDArray | None):
    if isinstance(data, DWISeries):
        from ..models.dti import fit_dti

        return fit_dti(data, mask=mask)
    if all(hasattr(data, a) for a in ("fa", "md", "principal_direction_ras", "affine")):
        return data
    raise InputDataError(f"track_roots needs a DWISeries or a DTIFit, got {type(data).__name__}.")


def _body_mask(fit: Any, mask: ArrayLike | None) -> NDArray[np.bool_]:
    if mask is not None:
        m = np.asarray(mask, bool)
        if m.shape != fit.fa.shape:
            raise InputDataError(f"mask shape {m.shape} differs from the image {fit.fa.shape}.")
        return m
    s0 = np.nan_to_num(fit.s0)
    return s0 > 0.1 * np.percentile(s0[s0 > 0], 99) if (s0 > 0).any() else np.isfinite(fit.fa)


def _plane(centres: dict, plane: Any) -> tuple[NDArray, NDArray]:
    """Mid-sagittal plane (point, unit normal towards the patient's right) in RAS+ mm."""
    if plane is not None:
        if isinstance(plane, Mapping):
            plane = (plane["point"], plane["normal"])
        elif hasattr(plane, "normal"):
            plane = (plane.point, plane.normal)
        p, n = (np.asarray(v, float) for v in plane)
        return p, n / np.linalg.norm(n)
    left = [c.mean(0) for (lv, sd), c in centres.items() if sd == "left"]
    right = [c.mean(0) for (lv, sd), c in centres.items() if sd == "right"]
    pts = np.vstack(list(centres.values()))
    if left and right:
        n = np.mean(right, 0) - np.mean(left, 0)
        return 0.5 * (np.mean(right, 0) + np.mean(left, 0)), n / np.linalg.norm(n)
    return np.array([0.0, pts[:, 1].mean(), pts[:, 2].mean()]), np.array([1.0, 0.0, 0.0])


def _bundle(key: tuple, streams: list, n_seeds: int, ctx: dict, origin_point: NDArray | None) -> RootBundle:
    params: TrackingParams = ctx["params"]
    kept, counts = _reject(streams, key[1], ctx["plane"], ctx["reach"], ctx["affine"], params)
    core, source, origin, origin_sd = np.zeros((0, 3)), "none", 0.0, 0.0
    if kept:
        core, kept, counts["off_bundle"] = _centerline(kept, params)
        if origin_point is not None:
            origin, source = arc_of_point(origin_point, core), "user point"
        else:
            o = _origin_from_sac(core, ctx["sac"], ctx["sac_edt"], ctx["affine"])
            if o is not None:
                (origin, origin_sd), source = o, "dural junction (CSF)"
            else:  # where tracking stopped proximally: near the junction, known to a couple of voxels
                vox = float(voxel_sizes(ctx["affine"]).max())
                origin, origin_sd, source = 0.0, _START_SD_VOXELS * vox, "centre-line start"
    logger.info("root %s %s: %d seeds, %d streamlines, %d kept (%s)", key[0], key[1], n_seeds, len(streams),
                len(kept), ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    return RootBundle(level=key[0], side=key[1], streamlines=kept, centerline=core, origin_arc_mm=origin,
                      origin_source=source, n_seeds=n_seeds, n_tracked=len(streams), rejected=counts,
                      tube_radius_mm=params.tube_radius_mm, origin_sd_mm=origin_sd)


def track_roots(
    series_or_fit: DWISeries | Any,
    seeds: RoiSet | Iterable[RootROI] | Mapping,
    *,
    params: TrackingParams | None = None,
    mask: ArrayLike | None = None,
    midsagittal_plane: Any = None,
    origins: Mapping | RoiSet | Iterable[RootROI] | None = None,
) -> RootTracts:
    """Track each lumbar root from its seeds and keep the streamlines per (level, side).

    Parameters
    ----------
    series_or_fit : DWISeries or DTIFit
        DWI with ≥ 6 directions (b in s/mm²), fitted with :func:`~dwi_toolkit.models.dti.fit_dti`
        (inside `mask`), or an existing tensor fit.
    seeds : RoiSet, iterable of RootROI, or mapping
        One or more ROIs per root (sphere on the ganglion, tube, label-map mask) or a mapping
        ``(level, side)`` (or ``"L5_left"``) → point(s) (RAS+ mm). A single point per root is
        enough; ``params.seeds_per_root`` seeds are drawn around the points or voxels.
    params : TrackingParams, optional
        Method (``"det"``/``"prob"``), FA threshold, angle, step, lengths (mm).
    mask : array_like of bool, optional
        Body mask on the DWI grid (tracking stops outside; streamlines leaving it are rejected);
        default: mean b=0 above 10 % of its 99th percentile.
    midsagittal_plane : (point, normal), dict or Plane, optional
        RAS+ mm; default: half-way between the left and right seeds.
    origins : mapping, RoiSet or iterable of RootROI, optional
        Where distance along a root is 0, for the roots given: ``(level, side)`` (or
        ``"L5_left"``) → RAS+ point, or ROIs whose centroids are the points (e.g. points marked on
        the dural junctions in 3D Slicer). Such an origin has no uncertainty
        (``origin_sd_mm`` 0). Default: the dural junction found from the CSF of the thecal sac
        (MD > 2.2×10⁻³ mm²/s).

    Returns
    -------
    RootTracts

    Raises
    ------
    InputDataError
        Bad seeds, mask or parameters.
    FitError
        If no root yields a streamline.

    Examples
    --------
    >>> from dwi_toolkit.phantom_roots import make_root_phantom
    >>> ph = make_root_phantom(levels=("L4",), voxel_size=2.5, n_directions=12, snr=30)
    >>> tr = track_roots(ph.series, {k: p for k, p in ph.seeds.items()}, mask=ph.body_mask)
    >>> b = tr.get("L4", "left"); b.n_kept > 10, b.origin_source
    (True, 'dural junction (CSF)')
    """
    params = params or TrackingParams()
    body0 = None if mask is None else np.asarray(mask, bool)
    fit = _as_fit(series_or_fit, body0)
    affine = np.asarray(fit.affine, float)
    body = _body_mask(fit, body0)
    valid = body & np.isfinite(fit.fa)
    centres = _seed_centres(seeds, fit.fa.shape, affine)
    points = _origin_points(origins)
    sac = thecal_sac_mask(fit.md, body, affine)
    ctx = {"params": params, "affine": affine, "reach": body_reach(body), "plane": _plane(centres, midsagittal_plane),
           "sac": sac, "sac_edt": _sac_distance(sac, affine)}
    model = _direction_model(fit, params, valid)
    stop = np.where(valid, np.nan_to_num(fit.fa), 0.0)
    rng = np.random.default_rng(params.random_seed)
    bundles = {}
    for key, pts in centres.items():
        sp = _seed_points(pts, params, rng)
        streams = _run_dipy(model, stop, sp, affine, params)
        o = points.get(key)
        bundles[key] = _bundle(key, streams, len(sp), ctx, None if o is None else np.asarray(o, float))
    if not any(b.n_kept for b in bundles.values()):
        raise FitError("no plausible streamline on any root; check the seeds (RAS+ mm), the FA threshold "
                       f"({params.fa_threshold}) and the body mask.")
    return RootTracts(bundles=bundles, affine=affine, shape=tuple(fit.fa.shape), params=params,
                      midsagittal_plane=ctx["plane"], meta={"n_roots": len(bundles)})
