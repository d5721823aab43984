"""Along-root profiles of FA, ADC, MD, AD and RD, and their left–right comparison.

Two ways to sample a root, both at nodes spaced along its centre-line (the bundle core):

- ``sampling="core"`` (default): the voxels of the root's core — voxel centres within
  ``core_radius_mm`` of the centre-line — are placed at their arc length along it and each node
  is a local-linear Gaussian-kernel regression of their values on that arc length (σ =
  ``smooth_mm``; local-linear so the 15 mm along-root gradients are not flattened, Fan & Gijbels
  1996). Voxel values are used as they are, never interpolated across the root's edge, so a
  thin root (2–3 voxels across) is not mixed with the CSF or muscle around it; CSF voxels
  (MD/ADC > 2.2×10⁻³ mm²/s) in the tube are left out and nodes whose kernel holds mostly CSF
  (inside the thecal sac) get no value. Intervals come from a bootstrap over the core voxels.
- ``sampling="streamlines"``: the tract-profile method of Yeatman et al. (PLoS One 2012; dipy's
  ``afq_profile`` with ``gaussian_weights``): every streamline is sampled (trilinear) at each
  node and the values are averaged with Gaussian weights on the Mahalanobis distance of the
  streamline from the core; intervals from a bootstrap over streamlines. For comparison with
  AFQ/pyAFQ profiles. On a root 2–3 voxels across its nodes average few independent voxels and
  trilinear sampling near the edge mixes in the tissue around the root.

Distances are in mm from the dural junction (or the origin chosen when tracking), so sides are
compared at homologous positions (Miyagi et al. 2015: values change over the first 15 mm).
The junction's own uncertainty (``RootBundle.origin_sd_mm``) enters the intervals and the
comparison. :func:`compare_profiles` gives the side difference with simultaneous
(whole-profile, max-t) bootstrap bands that allow for misaligned origins and names the stretch
with the largest deviation.

Neither bootstrap knows the spatial correlation of neighbouring voxels in real images (k-space
filtering, interpolation), so the bands can be narrow; a finding also needs a relative
difference of at least ``min_relative_difference``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..core.affines import voxel_sizes
from ..core.image import ParameterMap
from ..core.polyline import unit_tangents
from ..errors import InputDataError
from ..units import DIFFUSIVITY_UNIT
from .tracking import CSF_MD, RootBundle, RootTracts, _sample, project_to_line

__all__ = ["PROFILE_COLUMNS", "CORE_RADIUS_MM", "RootProfile", "ProfileTable", "along_root_profiles",
           "ProfileComparison", "compare_profiles", "COMPARISON_COLUMNS", "find_lesions"]

#: Columns of :meth:`ProfileTable.to_records` and the profiles CSV.
PROFILE_COLUMNS = ("level", "side", "distance_mm", "parameter", "unit", "value", "ci_low", "ci_high",
                   "n_streamlines")
#: Columns of the comparison records.
COMPARISON_COLUMNS = ("level", "parameter", "unit", "deviation_found", "side", "peak_distance_mm", "start_mm",
                      "end_mm", "difference", "relative_difference", "band_low", "band_high", "critical_t",
                      "max_misalignment_mm", "smallest_reportable_difference")

_ABNORMAL_LOW = {"fa"}  # abnormal when lower; diffusivities abnormal when higher


@dataclass(frozen=True, eq=False)
class RootProfile:
    """One parameter along one root: node distances (mm), weighted means, bootstrap replicates.

    ``boot`` holds replicates of the estimator itself at fixed distances (their spread is its
    standard error; :func:`compare_profiles` uses them with ``origin_sd_mm``, the uncertainty of
    the distance origin). ``ci_boot``, when set, holds the replicates that :meth:`ci` uses
    instead: of a bias-corrected estimator, each moved along the root by a draw of the origin's
    uncertainty (see :func:`along_root_profiles`).

    Examples
    --------
    >>> p = RootProfile("L5", "left", "fa", "", np.array([0.0, 1.0]), np.array([0.3, 0.4]),
    ...                 np.array([[0.3, 0.4], [0.31, 0.39]]), np.array([10, 10]))
    >>> p.ci(0.5)[0].round(3).tolist()
    [0.3, 0.39]
    """

    level: str
    side: str
    parameter: str
    unit: str
    distance_mm: NDArray[np.float64]
    value: NDArray[np.float64]
    boot: NDArray[np.float64]
    n_streamlines: NDArray[np.int64]
    ci_boot: NDArray[np.float64] | None = None
    origin_sd_mm: float = 0.0

    def ci(self, level: float = 0.95) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Pointwise percentile bootstrap interval (of ``ci_boot`` when set), widened where
        needed to contain ``value``."""
        a = (1 - level) / 2
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nodes without a value stay NaN
            reps = self.boot if self.ci_boot is None else self.ci_boot
            lo, hi = np.nanpercentile(reps, [100 * a, 100 * (1 - a)], axis=0)
        return np.fmin(lo, self.value), np.fmax(hi, self.value)


@dataclass(frozen=True, eq=False)
class ProfileTable:
    """Tidy along-root profiles: one :class:`RootProfile` per (level, side, parameter).

    Examples
    --------
    >>> t = ProfileTable([RootProfile("L5", "left", "fa", "", np.array([0.0]), np.array([0.3]),
    ...                   np.array([[0.3]]), np.array([5]))])
    >>> t.to_records()[0]["value"], len(t)
    (0.3, 1)
    """

    profiles: list
    meta: dict = field(default_factory=dict)

    def __iter__(self) -> Iterator[RootProfile]:
        return iter(self.profiles)

    def __len__(self) -> int:
        return len(self.profiles)

    def get(self, level: str, side: str, parameter: str) -> RootProfile | None:
        """The profile of one root and parameter, or ``None``."""
        return next((p for p in self.profiles if (p.level, p.side, p.parameter) == (level, side, parameter)), None)

    def to_records(self, level: float = 0.95) -> list[dict[str, Any]]:
        """One row per node: level, side, distance_mm, parameter, unit, value, ci_low, ci_high, n_streamlines."""
        rows = []
        for p in self.profiles:
            lo, hi = p.ci(level)
            rows += [{"level": p.level, "side": p.side, "distance_mm": float(d), "parameter": p.parameter,
                      "unit": p.unit, "value": float(v), "ci_low": float(a), "ci_high": float(b),
                      "n_streamlines": int(n)}
                     for d, v, a, b, n in zip(p.distance_mm, p.value, lo, hi, p.n_streamlines)]
        return rows

    def save(self, path):
        """Write the table as CSV atomically (:func:`dwi_toolkit.io.tables.write_csv`)."""
        from ..core.writers import get_writer  # io sits above tracts: registered, not imported

        return get_writer("csv")(path, self.to_records(), columns=PROFILE_COLUMNS)

    def __repr__(self) -> str:
        return f"ProfileTable({len(self)} profiles)"


# --------------------------------------------------------------------------- maps

def _maps(maps: Any, parameters: Sequence[str] | None) -> dict[str, tuple[NDArray, NDArray, str]]:
    """name → (data, affine, unit) from a DTIFit, an ADCFit, or a mapping of maps."""
    out: dict[str, tuple[NDArray, NDArray, str]] = {}
    if hasattr(maps, "fa") and hasattr(maps, "md") and hasattr(maps, "affine"):
        aff = np.asarray(maps.affine, float)
        for name in ("fa", "md", "ad", "rd"):
            out[name] = (np.asarray(getattr(maps, name), float), aff, "" if name == "fa" else DIFFUSIVITY_UNIT)
        out["adc"] = (out["md"][0], aff, DIFFUSIVITY_UNIT)  # tensor trace ADC = MD
    elif hasattr(maps, "adc") and hasattr(maps, "affine"):
        out["adc"] = (np.asarray(maps.adc, float), np.asarray(maps.affine, float), DIFFUSIVITY_UNIT)
    elif isinstance(maps, Mapping):
        for name, m in maps.items():
            if isinstance(m, ParameterMap):
                out[name] = (np.asarray(m.data, float), m.affine, m.unit)
            elif isinstance(m, tuple) and len(m) == 2:
                out[name] = (np.asarray(m[0], float), np.asarray(m[1], float),
                             DIFFUSIVITY_UNIT if name in ("adc", "md", "ad", "rd") else "")
            else:
                raise InputDataError(f"map {name!r}: expected a ParameterMap or (array, affine), got {type(m).__name__}.")
    else:
        raise InputDataError(f"along_root_profiles needs a DTIFit, an ADCFit or a mapping of maps, got {type(maps).__name__}.")
    if parameters is not None:
        missing = [p for p in parameters if p not in out]
        if missing:
            raise InputDataError(f"no map for {missing}; available: {sorted(out)}.")
        out = {p: out[p] for p in parameters}
    return out


# --------------------------------------------------------------------------- profile of one root

def _node_positions(bundle: RootBundle, nodes_arc: NDArray) -> NDArray[np.float64]:
    """(n_streamlines, n_nodes, 3): each streamline's position at each node (NaN where it does
    not reach the node), by interpolation over its points' arc length on the centre-line."""
    out = np.full((bundle.n_kept, nodes_arc.size, 3), np.nan)
    for i, s in enumerate(bundle.streamlines):
        arc, _ = project_to_line(s, bundle.centerline)
        order = np.argsort(arc, kind="stable")
        a, p = arc[order], s[order]
        inside = (nodes_arc >= a[0]) & (nodes_arc <= a[-1])
        for k in range(3):
            out[i, inside, k] = np.interp(nodes_arc[inside], a, p[:, k])
    return out


def _gaussian_weights(pos: NDArray) -> NDArray[np.float64]:
    """(n_streamlines, n_nodes) weights ∝ exp(−d²/2), d the Mahalanobis distance of each
    streamline from the mean position at the node (Yeatman et al. 2012), normalised per node."""
    w = np.zeros(pos.shape[:2])
    for j in range(pos.shape[1]):
        ok = np.all(np.isfinite(pos[:, j]), axis=1)
        if ok.sum() < 2:
            w[ok, j] = 1.0
            continue
        x = pos[ok, j] - pos[ok, j].mean(0)
        cov = x.T @ x / (ok.sum() - 1) + 0.25 * np.eye(3)  # 0.25 mm² keeps it invertible
        m2 = np.einsum("ni,ij,nj->n", x, np.linalg.inv(cov), x)
        w[ok, j] = np.exp(-0.5 * m2)
    return w


def _weighted(values: NDArray, w: NDArray, counts: NDArray) -> NDArray[np.float64]:
    """Weighted means per node for each row of bootstrap counts (B, n_streamlines)."""
    ok = np.isfinite(values)
    wv = np.where(ok, w, 0.0)
    num = counts @ np.where(ok, values * w, 0.0)
    den = counts @ wv
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _smooth(rows: NDArray, sigma_nodes: float) -> NDArray[np.float64]:
    """Gaussian smoothing along the nodes (axis 1), NaN-aware (normalised convolution)."""
    if sigma_nodes <= 0:
        return rows
    from scipy.ndimage import gaussian_filter1d

    ok = np.isfinite(rows)
    num = gaussian_filter1d(np.where(ok, rows, 0.0), sigma_nodes, axis=1, mode="nearest")
    den = gaussian_filter1d(ok.astype(float), sigma_nodes, axis=1, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok & (den > 0), num / den, np.nan)


# --------------------------------------------------------------------------- core-voxel profile

#: Default radius (mm) of the core sampled around a root's centre-line (lumbar roots are 4–7 mm
#: across; voxels that are not root by the tracker's standard are left out).
CORE_RADIUS_MM = 3.0

#: sampling → (description, default smooth_mm).
_SAMPLING = {"core": ("core voxels, local-linear Gaussian kernel along the root", 3.0),
             "streamlines": ("streamlines, Gaussian (Mahalanobis) weights, Yeatman 2012", 1.5)}


def _core_voxels(bundle: RootBundle, shape: tuple, affine: NDArray,
                 radius: float) -> tuple[NDArray, NDArray]:
    """Voxels (V, 3 int) whose centres lie within `radius` mm of the centre-line, beside it (not
    beyond its ends), and their arc length (mm) along it."""
    from scipy.spatial import cKDTree

    c = bundle.centerline
    inv = np.linalg.inv(affine)
    cijk = c @ inv[:3, :3].T + inv[:3, 3]
    vox = voxel_sizes(affine)
    pad = radius / vox + 1
    lo = np.maximum(np.floor(cijk.min(0) - pad), 0).astype(int)
    hi = np.minimum(np.ceil(cijk.max(0) + pad), np.asarray(shape[:3]) - 1).astype(int)
    if np.any(hi < lo):
        return np.zeros((0, 3), int), np.zeros(0)
    ijk = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1).reshape(-1, 3)
    pts = ijk @ affine[:3, :3].T + affine[:3, 3]
    near = cKDTree(c).query(pts, distance_upper_bound=radius + 1.0)[0] <= radius + 1.0  # centre-line spacing 1 mm
    ijk, pts = ijk[near], pts[near]
    arc, dist = project_to_line(pts, c) if len(pts) else (np.zeros(0), np.zeros(0))
    keep = (dist <= radius) & (arc > 0) & (arc < bundle.arc_mm[-1])
    return ijk[keep], arc[keep]


def _kernel_sums(s: NDArray, y: NDArray, nodes: NDArray, sigma: float, counts: NDArray,
                 degree: int) -> tuple[list, list]:
    """Gaussian-kernel weighted sums at `nodes` for a local polynomial of `degree` in y(s): Σk·xʲ
    (j ≤ 2·degree) and Σk·xʲ·y (j ≤ degree), x = (s − node)/σ, one row per row of voxel `counts`
    (B, V) (bootstrap multiplicities; a row of ones for the estimate itself)."""
    ok = np.isfinite(y)
    x = (s[None, :] - nodes[:, None]) / sigma  # in kernel widths: a well-scaled design
    k = np.exp(-0.5 * x**2) * ok[None, :]
    y0 = np.where(ok, y, 0.0)
    return ([counts @ (k * x**j).T for j in range(2 * degree + 1)],
            [counts @ (k * x**j * y0).T for j in range(degree + 1)])


def _linear_fit(m: list, t: list) -> NDArray[np.float64]:
    """Intercepts of the local-linear fits from :func:`_kernel_sums` (degree ≥ 1); where the
    kernel is too one-sided for a slope, the local mean."""
    den = m[0] * m[2] - m[1] ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        linear = (m[2] * t[0] - m[1] * t[1]) / den
        constant = np.where(m[0] > 0, t[0] / m[0], np.nan)
    return np.where(den > 0.05 * m[0] * m[2], linear, constant)


def _quadratic_fit(m: list, t: list) -> NDArray[np.float64]:
    """Intercepts of the local-quadratic fits from :func:`_kernel_sums` (degree 2); NaN where the
    kernel's design is too one-sided for a curvature term."""
    # the 3×3 normal equations [[m0 m1 m2] [m1 m2 m3] [m2 m3 m4]] c = t, by Cramer's rule
    minor = (m[2] * m[4] - m[3] ** 2, m[1] * m[4] - m[2] * m[3], m[1] * m[3] - m[2] ** 2)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        det = m[0] * minor[0] - m[1] * minor[1] + m[2] * minor[2]
        num = t[0] * minor[0] - t[1] * minor[1] + t[2] * minor[2]
        return np.where(det > 1e-4 * m[0] ** 3, num / det, np.nan)


def _local_linear(s: NDArray, y: NDArray, nodes: NDArray, sigma: float, counts: NDArray) -> NDArray[np.float64]:
    """(B, N) local-linear Gaussian-kernel estimates at `nodes` of y(s), one row per row of
    voxel `counts` (B, V)."""
    return _linear_fit(*_kernel_sums(s, y, nodes, sigma, counts, 1))


def _interp_rows(q: NDArray, xp: NDArray, rows: NDArray) -> NDArray[np.float64]:
    """``np.interp`` of every row of `rows` (R, n) on increasing `xp` (n,) at `q` — (G,) for all
    rows or (R, G), one query per row — in one pass; end values held beyond `xp`. A NaN value
    spoils only the queries that give it weight."""
    i = np.clip(np.searchsorted(xp, q, side="right") - 1, 0, xp.size - 2)
    w = np.clip((q - xp[i]) / (xp[i + 1] - xp[i]), 0.0, 1.0)
    a = np.take_along_axis(rows, np.broadcast_to(i, (len(rows),) + np.shape(q)[-1:]), 1)
    b = np.take_along_axis(rows, np.broadcast_to(i + 1, (len(rows),) + np.shape(q)[-1:]), 1)
    with np.errstate(invalid="ignore"):
        return np.where(w < 1, a * (1 - w), 0.0) + np.where(w > 0, b * w, 0.0)


def _shift_replicates(rows: NDArray, grid: NDArray, nodes: NDArray, shifts: NDArray) -> NDArray[np.float64]:
    """Bootstrap replicates (rows, on `grid`) read at `nodes` moved by one draw each (`shifts`,
    mm): the uncertainty of the distance origin (:attr:`RootBundle.origin_sd_mm`), which moves
    the whole profile along the root. Beyond a replicate's last value the value is held."""
    ok = np.isfinite(rows)
    if ok.all():
        return _interp_rows(nodes[None, :] + shifts[:, None], grid, rows)
    out = np.full((len(rows), nodes.size), np.nan)
    for b, (row, shift) in enumerate(zip(rows, shifts)):
        if ok[b].sum() >= 2:
            out[b] = np.interp(nodes + shift, grid[ok[b]], row[ok[b]])
    return out


def _root_like(opts: dict, bundle: RootBundle, pts: NDArray, arc: NDArray) -> NDArray[np.bool_]:
    """Which core voxels (RAS+ centres `pts` at `arc` mm along the centre-line) are root by the
    tracker's own standard: not CSF (MD, else ADC, ≤ 2.2×10⁻³ mm²/s), FA ≥ the tracking threshold and the
    principal direction within the tracking angle of the centre-line — when those maps exist."""
    maps, ok = opts["all_maps"], np.ones(len(pts), bool)
    if not len(pts):
        return ok
    diff = next((maps[n] for n in ("md", "adc") if n in maps), None)
    if diff is not None:
        ok &= ~(np.nan_to_num(_sample(diff[0], diff[1], pts), nan=np.inf) > CSF_MD)
    if "fa" in maps and opts["root_fa"] > 0:
        ok &= np.nan_to_num(_sample(maps["fa"][0], maps["fa"][1], pts), nan=0.0) >= opts["root_fa"]
    if opts["v1"] is not None:
        v1, aff = opts["v1"]
        inv = np.linalg.inv(aff)
        ijk = np.rint(pts @ inv[:3, :3].T + inv[:3, 3]).astype(int)
        inside = np.all((ijk >= 0) & (ijk < np.asarray(v1.shape[:3])), axis=1)
        tangent = unit_tangents(bundle.centerline, arc, 0.5)
        cos = np.zeros(len(pts))
        cos[inside] = np.abs(np.nan_to_num((v1[tuple(ijk[inside].T)] * tangent[inside]).sum(1)))
        ok &= cos >= np.cos(np.deg2rad(opts["max_angle_deg"]))
    return ok


def _valid_nodes(s: NDArray, root: NDArray, nodes: NDArray, sigma: float) -> NDArray[np.bool_]:
    """Nodes whose kernel holds mostly root voxels (≥ 75 % of its weight), at least 2 voxels'
    weight, and root voxels on both sides (≥ 1/3 of that weight proximal and distal): an
    estimate leaning on one side only extrapolates the gradient, which at the ends of a root
    2–3 voxels across is mostly noise (and beyond the root's end, the tissue around it)."""
    x = s[None, :] - nodes[:, None]
    k = np.exp(-0.5 * (x / sigma) ** 2)
    w_root = k @ root
    with np.errstate(invalid="ignore", divide="ignore"):
        frac_root = w_root / k.sum(1)
        before = (k * (x < 0)) @ root / w_root
    return (frac_root >= 0.75) & (w_root >= 2.0) & (before >= 1 / 3) & (before <= 2 / 3)


def _streamline_counts(bundle: RootBundle, nodes_arc: NDArray) -> NDArray[np.int64]:
    """Number of streamlines whose projection on the centre-line spans each node."""
    n = np.zeros(nodes_arc.size, np.int64)
    for sl in bundle.streamlines:
        arc, _ = project_to_line(sl, bundle.centerline)
        n += (nodes_arc >= arc.min()) & (nodes_arc <= arc.max())
    return n


def _core_grid(bundle: RootBundle, shape: tuple, affine: NDArray, nodes: NDArray, opts: dict,
               rng: np.random.Generator) -> tuple:
    """Core voxels of one root on one grid: (ijk, arc, root-like, bootstrap counts, valid nodes)."""
    ijk, s = _core_voxels(bundle, shape, affine, opts["core_radius_mm"])
    root = _root_like(opts, bundle, ijk @ affine[:3, :3].T + affine[:3, 3], s)
    n = len(s)
    counts = np.vstack([np.ones((1, n)), rng.multinomial(n, np.full(n, 1.0 / max(n, 1)), size=opts["n_boot"])])
    return ijk, s, root, counts, _valid_nodes(s, root, nodes, opts["smooth_mm"])


def _core_profiles(bundle: RootBundle, maps: dict, nodes: NDArray, opts: dict,
                   rng: np.random.Generator) -> list[RootProfile]:
    """Profiles from the core voxels (module docstring); nodes inside the sac are trimmed.

    The replicates are also evaluated beyond the nodes (by 4 origin SDs) so that moving them by
    the origin's uncertainty reads the kernel estimate there, not a held end value."""
    sigma, grids, rows, shifts = opts["smooth_mm"], {}, {}, opts["origin_shifts"]
    step = float(nodes[1] - nodes[0]) if nodes.size > 1 else 1.0
    pad = int(math.ceil(4 * bundle.origin_sd_mm / step)) if shifts is not None else 0
    ext = nodes[0] + step * np.arange(-pad, nodes.size + pad)
    for name, (data, affine, unit) in maps.items():
        key = (data.shape, np.asarray(affine, float).round(6).tobytes())
        if key not in grids:
            grids[key] = _core_grid(bundle, data.shape, affine, nodes, opts, rng)
        ijk, s, root, counts, valid = grids[key]
        est = np.full((opts["n_boot"] + 1, nodes.size), np.nan)
        rbc = est[1:].copy()
        if len(s):
            m, t = _kernel_sums(s, np.where(root, data[tuple(ijk.T)], np.nan), ext, sigma, counts, 2)
            est = _linear_fit(m, t)
            rbc = _quadratic_fit([v[1:] for v in m], [v[1:] for v in t])  # the replicates only
            rbc = np.where(np.isfinite(rbc), rbc, est[1:])
            rbc = _shift_replicates(rbc, ext, nodes, shifts) if shifts is not None else rbc
            est = est[:, pad:pad + nodes.size]
        est[:, ~valid] = np.nan
        rbc[:, ~valid] = np.nan
        rows[name] = (unit, est, rbc, valid)
    good = np.any([v for *_, v in rows.values()], axis=0)
    if not good.any():
        return []
    sel = slice(int(np.flatnonzero(good)[0]), int(np.flatnonzero(good)[-1]) + 1)
    n_sl = _streamline_counts(bundle, nodes[sel])
    return [RootProfile(bundle.level, bundle.side, name, unit, nodes[sel] - bundle.origin_arc_mm, est[0, sel],
                        est[1:, sel], n_sl, ci_boot=rbc[:, sel], origin_sd_mm=bundle.origin_sd_mm)
            for name, (unit, est, rbc, _) in rows.items()]


# --------------------------------------------------------------------------- streamline profile

def _streamline_profiles(bundle: RootBundle, maps: dict, nodes: NDArray, opts: dict,
                         rng: np.random.Generator) -> list[RootProfile]:
    """Profiles from the streamlines, Gaussian-weighted per node (Yeatman et al. 2012)."""
    n_boot, shifts = opts["n_boot"], opts["origin_shifts"]
    smooth_nodes = opts["smooth_mm"] / max(nodes[1] - nodes[0], 1e-6)
    pos = _node_positions(bundle, nodes)
    w = _gaussian_weights(pos)
    counts = rng.multinomial(bundle.n_kept, np.full(bundle.n_kept, 1.0 / bundle.n_kept), size=n_boot).astype(float)
    flat = pos.reshape(-1, 3)
    good = np.all(np.isfinite(flat), axis=1)
    out = []
    for name, (data, affine, unit) in maps.items():
        vals = np.full(flat.shape[0], np.nan)
        vals[good] = _sample(data, affine, flat[good])
        vals = vals.reshape(pos.shape[:2])
        value = _smooth(_weighted(vals, w, np.ones((1, bundle.n_kept))), smooth_nodes)[0]
        n_sl = np.isfinite(vals).sum(0)
        boot = _smooth(_weighted(vals, w, counts), smooth_nodes)
        moved = _shift_replicates(boot, nodes, nodes, shifts) if shifts is not None else None
        out.append(RootProfile(bundle.level, bundle.side, name, unit, nodes - bundle.origin_arc_mm, value, boot, n_sl,
                               ci_boot=moved, origin_sd_mm=bundle.origin_sd_mm))
    return out


def along_root_profiles(
    tracts: RootTracts,
    maps: Any,
    *,
    n_points: int | None = None,
    spacing_mm: float = 1.0,
    parameters: Sequence[str] | None = None,
    n_boot: int = 300,
    smooth_mm: float | None = None,
    sampling: str = "core",
    core_radius_mm: float | None = None,
    seed: int = 0,
) -> ProfileTable:
    """FA, ADC, MD, AD and RD along each tracked root.

    Sampling (module docstring): ``"core"`` regresses the values of the voxels within
    `core_radius_mm` of the centre-line on their distance along it (local-linear, Gaussian kernel
    σ = `smooth_mm`); ``"streamlines"`` is the tract-profile method of Yeatman et al. (2012).
    Core voxels count as root by the tracker's own standard — FA ≥ the tracking threshold
    (``tracts.params.fa_threshold``), not CSF and, with a tensor fit, the principal direction
    within the tracking angle of the centre-line; the others (the tissue the tracker stopped in)
    are left out, and nodes whose kernel weight lies mostly on them, or on one side only, get no
    value, which trims the profile to the root. Where the root's own FA nears the threshold,
    leaving low values out raises its FA profile.

    Intervals (:meth:`RootProfile.ci`) are for the value at a distance from the *true* origin.
    Two things the voxel bootstrap alone does not see are added to it: the kernel's rounding of
    corners in the along-root gradients — the ``"core"`` replicates are of a local-quadratic
    estimate with the same kernel, i.e. robust bias correction (Calonico, Cattaneo & Farrell,
    J Am Stat Assoc 2018) — and the uncertainty of the origin (``RootBundle.origin_sd_mm``):
    each replicate is read at its nodes moved along the root by a draw from N(0, origin_sd²).
    Each interval is widened to contain the node's value where needed.

    Parameters
    ----------
    tracts : RootTracts
        From :func:`~dwi_toolkit.tracts.tracking.track_roots`.
    maps : DTIFit, ADCFit or mapping
        A tensor fit (gives ``fa``, ``md``, ``ad``, ``rd`` and ``adc`` = MD, mm²/s), an ADC fit,
        or name → :class:`~dwi_toolkit.core.image.ParameterMap` / ``(array, affine)``.
    n_points : int, optional
        Nodes per root (default: one every `spacing_mm` along the centre-line).
    spacing_mm : float, optional
        Node spacing when `n_points` is not given.
    parameters : sequence of str, optional
        Subset of the maps to profile.
    n_boot : int, optional
        Bootstrap replicates (over core voxels, or over streamlines) for the intervals and
        :func:`compare_profiles`.
    smooth_mm : float, optional
        ``"core"``: σ (mm) of the kernel along the root (default 3.0; larger is smoother but
        rounds the corners of the along-root gradients: ≈ 0.4 × σ × the change of slope). ``"streamlines"``: σ (mm) of a Gaussian
        smoothing of the profile and its replicates (default 1.5, 0 to switch off).
    sampling : {"core", "streamlines"}, optional
        How each node is sampled (see above).
    core_radius_mm : float, optional
        ``"core"``: radius (mm) of the core around the centre-line (default
        :data:`CORE_RADIUS_MM`, 3 mm).
    seed : int, optional
        Bootstrap seed.

    Returns
    -------
    ProfileTable
        ``to_records()`` gives the tidy table (level, side, distance_mm, parameter, unit, value,
        ci_low, ci_high, n_streamlines); ``save(path)`` writes it as CSV.

    Examples
    --------
    >>> from dwi_toolkit.phantom_roots import make_root_phantom
    >>> from dwi_toolkit.models.dti import fit_dti
    >>> ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30)
    >>> fit = fit_dti(ph.series, mask=ph.body_mask)
    >>> from dwi_toolkit.tracts.tracking import track_roots
    >>> prof = along_root_profiles(track_roots(fit, ph.seeds, mask=ph.body_mask), fit, parameters=["fa"])
    >>> rec = prof.to_records()[0]; sorted(rec)[:3], rec["parameter"]
    (['ci_high', 'ci_low', 'distance_mm'], 'fa')
    """
    if spacing_mm <= 0 or n_boot < 10 or sampling not in _SAMPLING:
        raise InputDataError(f"spacing_mm must be > 0, n_boot >= 10 and sampling one of {list(_SAMPLING)}; got "
                             f"{spacing_mm}, {n_boot}, {sampling!r}.")
    every = _maps(maps, None)
    m = _maps(maps, parameters)
    opts = {"n_boot": int(n_boot), "smooth_mm": float(_SAMPLING[sampling][1] if smooth_mm is None else smooth_mm),
            "core_radius_mm": float(core_radius_mm or CORE_RADIUS_MM), "all_maps": every,
            "max_angle_deg": tracts.params.max_angle_deg,
            "v1": ((np.asarray(maps.principal_direction_ras(), float), np.asarray(maps.affine, float))
                   if hasattr(maps, "principal_direction_ras") else None),
            "root_fa": float(tracts.params.fa_threshold)}
    if sampling == "core" and opts["smooth_mm"] <= 0:
        raise InputDataError("sampling='core' needs smooth_mm > 0 (the kernel width along the root).")
    rng = np.random.default_rng(seed)
    out = []
    for i, bundle in enumerate(tracts):
        if bundle.n_kept == 0 or len(bundle.centerline) < 2:
            continue
        sd = bundle.origin_sd_mm  # one draw of the origin per replicate, shared by the root's parameters
        opts["origin_shifts"] = np.random.default_rng((int(seed), i)).normal(0.0, sd, int(n_boot)) if sd > 0 else None
        arc = bundle.arc_mm
        nodes = np.linspace(0.0, arc[-1], n_points or max(2, int(arc[-1] / spacing_mm) + 1))
        out += (_core_profiles if sampling == "core" else _streamline_profiles)(bundle, m, nodes, opts, rng)
    return ProfileTable(out, meta={"n_boot": int(n_boot), "smooth_mm": opts["smooth_mm"], "sampling": sampling,
                                   "weighting": _SAMPLING[sampling][0]})


# --------------------------------------------------------------------------- comparison

@dataclass(frozen=True, eq=False)
class ProfileComparison:
    """Left − right difference of one parameter along one level, with a simultaneous band.

    ``difference`` and ``relative_difference`` are taken at the same distance from each side's
    origin. ``band_low``/``band_high`` cover the difference at every distance at once, allowing
    for a misalignment of the two origins of up to ``max_misalignment_mm`` (mm; 0 when both were
    set by hand). ``deviation_found`` is true when, over at least ``min_length_mm``, the relative
    difference reaches the threshold and the band excludes 0 at every alignment within that
    misalignment; ``side`` is then the abnormal side (lower FA, higher diffusivity) and
    ``peak_distance_mm`` the position of the largest deviation. ``smallest_reportable_difference``
    says what the comparison could not have found: a relative side difference is reported only
    where its estimate clears both the band's half-width and the minimum relative difference;
    this is that bar (median over the compared distances). A true difference of this size is
    found about half the time (FA less: noise raises a lower FA more, shrinking FA differences);
    docs/tractography.md gives the measured rates.

    Examples
    --------
    >>> d = np.arange(10.0)
    >>> c = ProfileComparison("L5", "fa", "", 2.5, d, np.zeros(10), np.full(10, -.01), np.full(10, .01),
    ...                       np.zeros(10), False, None, 4.0, (float("nan"), float("nan")))
    >>> c.to_record()["deviation_found"], c.to_record()["peak_distance_mm"]
    (False, 4.0)
    """

    level: str
    parameter: str
    unit: str
    critical_t: float
    distance_mm: NDArray[np.float64]
    difference: NDArray[np.float64]
    band_low: NDArray[np.float64]
    band_high: NDArray[np.float64]
    relative_difference: NDArray[np.float64]
    deviation_found: bool
    side: str | None
    peak_distance_mm: float
    segment_mm: tuple
    max_misalignment_mm: float = 0.0
    smallest_reportable_difference: float = math.nan

    def to_record(self) -> dict[str, Any]:
        """Summary row (columns :data:`COMPARISON_COLUMNS`)."""
        k = int(np.nanargmin(np.abs(self.distance_mm - self.peak_distance_mm))) if self.distance_mm.size else 0
        pick = (lambda a: float(a[k]) if a.size else math.nan)  # noqa: E731
        return {"level": self.level, "parameter": self.parameter, "unit": self.unit,
                "deviation_found": self.deviation_found, "side": self.side or "",
                "peak_distance_mm": self.peak_distance_mm, "start_mm": self.segment_mm[0],
                "end_mm": self.segment_mm[1], "difference": pick(self.difference),
                "relative_difference": pick(self.relative_difference), "band_low": pick(self.band_low),
                "band_high": pick(self.band_high), "critical_t": self.critical_t,
                "max_misalignment_mm": self.max_misalignment_mm,
                "smallest_reportable_difference": self.smallest_reportable_difference}


#: Length (mm) of a profile's end over which a straight line is fitted to extend it (only for
#: reading a profile moved by a misalignment, :func:`_on_grid`).
_END_FIT_MM = 5.0


def _on_grid(p: RootProfile, grid: NDArray, extend: bool = False) -> tuple[NDArray, NDArray]:
    """Value and replicates at `grid` (mm). Outside the profile's extent: NaN, or with `extend`
    the least-squares line through its first (last) :data:`_END_FIT_MM` mm, so that a profile
    moved by a few mm of misalignment can still be read near its ends."""
    d = p.distance_mm
    rows = np.vstack([p.value, p.boot])
    out = _interp_rows(grid, d, rows) if d.size > 1 else np.repeat(rows, grid.size, 1)
    before, after = grid < d[0], grid > d[-1]
    for mask, end in ((before, d <= d[0] + _END_FIT_MM), (after, d >= d[-1] - _END_FIT_MM)):
        if not mask.any():
            continue
        if not extend or end.sum() < 2:
            out[:, mask] = np.nan
            continue
        x = d[end] - d[end].mean()
        slope = (rows[:, end] - rows[:, end].mean(1, keepdims=True)) @ x / (x @ x)
        out[:, mask] = rows[:, end].mean(1, keepdims=True) + slope[:, None] * (grid[mask] - d[end].mean())
    return out[0], out[1:]


def _runs(mask: NDArray) -> list[tuple[int, int]]:
    """(start, end) index pairs (inclusive) of runs of True."""
    d = np.diff(np.r_[0, mask.astype(int), 0])
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1))


def _alignments(left: RootProfile, right: RootProfile, alpha: float) -> tuple[NDArray, float]:
    """Relative shifts (mm) of the right profile to consider, and the band's own error rate.

    The two origins are uncertain (:attr:`RootProfile.origin_sd_mm`), so the sides may be
    misaligned by Δ ~ N(0, σ²), σ² the sum of their variances. Half of `alpha` goes to Δ
    falling outside ±z(1 − α/4)·σ, half to the bands at each Δ in that range (union bound):
    their envelope covers the difference at the true alignment with probability ≥ 1 − α."""
    from statistics import NormalDist

    sd = math.hypot(left.origin_sd_mm, right.origin_sd_mm)
    if sd <= 0:
        return np.zeros(1), alpha
    reach = NormalDist().inv_cdf(1 - alpha / 4) * sd
    n = int(math.ceil(reach / 0.5))
    return np.linspace(-reach, reach, 2 * n + 1), alpha / 2


def _deviations(grid: NDArray, band_lo: NDArray, band_hi: NDArray, rel: NDArray, min_rel: float,
                min_len: float) -> list[tuple[int, int, int]]:
    """(start, end, peak) indices of every stretch of ≥ `min_len` mm where the band excludes 0
    and |relative difference| ≥ `min_rel`, largest |relative difference| first."""
    flag = ((band_lo > 0) | (band_hi < 0)) & (np.abs(rel) >= min_rel)
    runs = []
    for a, b in _runs(np.nan_to_num(flag).astype(bool)):
        if grid[b] - grid[a] + 1 >= min_len:
            runs.append((a, b, a + int(np.nanargmax(np.abs(rel[a:b + 1])))))
    return sorted(runs, key=lambda r: -abs(rel[r[2]]))


def _smallest_reportable(band_lo: NDArray, band_hi: NDArray, left: NDArray, diff: NDArray,
                         min_rel: float) -> float:
    """The smallest relative side difference the comparison can report, the median over the
    compared distances: an estimate must clear both the band's half-width and `min_rel`."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        level = np.abs(left - 0.5 * diff)  # mean of the sides: (left + right) / 2
        need = np.maximum(min_rel, 0.5 * (band_hi - band_lo) / level)
        return float(np.nanmedian(need)) if np.isfinite(need).any() else math.nan


def _compare_one(left: RootProfile, right: RootProfile, alpha: float, min_rel: float,
                 min_len: float) -> ProfileComparison:
    lo, hi = max(left.distance_mm[0], right.distance_mm[0]), min(left.distance_mm[-1], right.distance_mm[-1])
    grid = np.arange(math.ceil(lo), math.floor(hi) + 1, 1.0)
    vl, bl = _on_grid(left, grid)
    shifts, a_band = _alignments(left, right, alpha)
    band_lo = np.full((shifts.size, grid.size), np.nan)
    band_hi, rel, diffs = band_lo.copy(), band_lo.copy(), band_lo.copy()
    crits = np.full(shifts.size, np.nan)
    found = []
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # nodes without a value on one side stay NaN
        for k, delta in enumerate(shifts):
            vr, br = _on_grid(right, grid + delta, extend=bool(delta))
            diffs[k] = diff = vl - vr
            bd = bl - br
            se = np.nanstd(bd, axis=0, ddof=1)
            se = np.where(se > 0, se, np.nan)
            tmax = np.nanmax(np.abs(bd - diff) / se, axis=1)
            crits[k] = float(np.nanquantile(tmax, 1 - a_band)) if np.isfinite(tmax).any() else math.nan
            band_lo[k], band_hi[k] = diff - crits[k] * se, diff + crits[k] * se
            rel[k] = diff / (0.5 * (np.abs(vl) + np.abs(vr)))
            found.append(_deviations(grid, band_lo[k], band_hi[k], rel[k], 0.0, min_len))
        env_lo, env_hi = np.nanmin(band_lo, axis=0), np.nanmax(band_hi, axis=0)
    k0 = int(np.argmin(np.abs(shifts)))
    rel0 = rel[k0]
    # a deviation counts when it reaches `min_rel` as estimated (no misalignment) and, at every
    # alignment the origins allow, a stretch where the band excludes 0 with the same sign lies
    # within that misalignment of it (misalignment alone makes none that persists)
    best = None
    for run in _deviations(grid, band_lo[k0], band_hi[k0], rel0, min_rel, min_len):
        sign, start, end = np.sign(rel0[run[2]]), grid[run[0]], grid[run[1]]
        if all(any(np.sign(rel[k][r[2]]) == sign and grid[r[0]] <= end + abs(d) + min_len
                   and grid[r[1]] >= start - abs(d) - min_len for r in found[k])
               for k, d in enumerate(shifts)):
            best = run
            break
    k = best[2] if best else (int(np.nanargmax(np.abs(rel0))) if grid.size and np.isfinite(rel0).any() else 0)
    side = None
    reportable = _smallest_reportable(env_lo, env_hi, vl, diffs[k0], min_rel)
    if best:
        left_abnormal = rel0[k] < 0 if left.parameter in _ABNORMAL_LOW else rel0[k] > 0
        side = left.side if left_abnormal else right.side
    return ProfileComparison(
        level=left.level, parameter=left.parameter, unit=left.unit, distance_mm=grid,
        difference=diffs[k0], band_low=env_lo, band_high=env_hi, relative_difference=rel0,
        critical_t=float(np.nanmax(crits)), deviation_found=best is not None, side=side,
        peak_distance_mm=float(grid[k]) if grid.size else math.nan,
        segment_mm=(float(grid[best[0]]), float(grid[best[1]])) if best else (math.nan, math.nan),
        max_misalignment_mm=float(shifts[-1]), smallest_reportable_difference=reportable)


def compare_profiles(
    profiles: ProfileTable,
    *,
    parameters: Sequence[str] | None = None,
    alpha: float = 0.05,
    min_relative_difference: float = 0.15,
    min_length_mm: float = 3.0,
) -> list[ProfileComparison]:
    """Compare left and right profiles of each level at the same distance along the root.

    The band is simultaneous over the whole profile: the bootstrap replicates of the difference
    are standardised node by node and a high quantile of their maximum |t| is the critical value
    (max-t; Westfall & Young 1993). Each side's distance origin is uncertain
    (:attr:`RootProfile.origin_sd_mm`), and in the first 15 mm, where values change along the
    root, misaligned origins alone make the sides differ. So the comparison is repeated with the
    right profile moved by every misalignment Δ within ±z(1 − α/4)·σ (σ² the sum of both
    origins' variances; 0.5 mm steps), each band at level α/2, and the reported band is their
    envelope: by the union bound it covers the difference at the true alignment with probability
    ≥ 1 − `alpha`. A deviation is reported where the estimated relative difference reaches
    `min_relative_difference` over `min_length_mm` and, at every Δ, the band excludes 0 with the
    same sign within |Δ| + `min_length_mm` of it — a difference that no allowed misalignment
    explains. Measured on the curved-root phantom: docs/tractography.md, "How far the intervals
    can be trusted".

    Parameters
    ----------
    profiles : ProfileTable
        From :func:`along_root_profiles`.
    parameters : sequence of str, optional
        Default: every parameter in the table.
    alpha : float, optional
        1 − coverage of the simultaneous band.
    min_relative_difference : float, optional
        |left − right| / mean of the sides needed for a finding (0.15 = 15 %).
    min_length_mm : float, optional
        Shortest stretch (mm) reported.

    Returns
    -------
    list of ProfileComparison
        One per (level, parameter) with both sides profiled; ``.to_record()`` for a table.

    Examples
    --------
    >>> d = np.arange(0.0, 20.0)
    >>> mk = lambda side, v: RootProfile("L5", side, "fa", "", d, v, v + np.random.default_rng(1).normal(0, .005, (50, 20)), np.full(20, 30))
    >>> low = np.full(20, 0.4); low[8:14] = 0.25
    >>> c = compare_profiles(ProfileTable([mk("left", low), mk("right", np.full(20, 0.4))]))[0]
    >>> c.deviation_found, c.side, c.segment_mm
    (True, 'left', (8.0, 13.0))
    """
    params = parameters or sorted({p.parameter for p in profiles})
    out = []
    for lev in sorted({p.level for p in profiles}, key=lambda s: ("LS".index(s[0]), s)):
        for par in params:
            left, right = profiles.get(lev, "left", par), profiles.get(lev, "right", par)
            if left is not None and right is not None:
                out.append(_compare_one(left, right, float(alpha), float(min_relative_difference), float(min_length_mm)))
    return out


def find_lesions(comparisons: Sequence[ProfileComparison], *, parameters: Sequence[str] = ("fa", "adc"),
                 max_gap_mm: float = 5.0) -> list[dict[str, Any]]:
    """Focal lesions: stretches where every parameter in `parameters` deviates on the same side
    (FA lower and ADC higher, as in compressed roots) with peaks within `max_gap_mm`.

    Requiring concordant FA and ADC deviations keeps single-parameter noise excursions out.

    Returns
    -------
    list of dict
        level, side, distance_mm (mean of the peaks), start_mm, end_mm, and per parameter the
        relative difference at its peak. Empty when nothing is found.

    Examples
    --------
    >>> find_lesions([])
    []
    """
    out = []
    for lev in dict.fromkeys(c.level for c in comparisons):
        found = {c.parameter: c for c in comparisons if c.level == lev and c.deviation_found}
        hits = [found.get(p) for p in parameters]
        if any(h is None for h in hits) or len({h.side for h in hits}) != 1:
            continue
        peaks = [h.peak_distance_mm for h in hits]
        if max(peaks) - min(peaks) > max_gap_mm:
            continue
        rec = {"level": lev, "side": hits[0].side, "distance_mm": float(np.mean(peaks)),
               "start_mm": min(h.segment_mm[0] for h in hits), "end_mm": max(h.segment_mm[1] for h in hits)}
        rec.update({f"relative_difference_{h.parameter}": h.to_record()["relative_difference"] for h in hits})
        out.append(rec)
    return out
