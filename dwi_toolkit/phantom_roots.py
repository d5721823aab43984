"""Curved, anisotropic lumbar nerve-root phantom for tractography, with along-root truth.

Each root (L1–S1, left and right) leaves the thecal sac at its dural junction and runs caudally,
laterally and anteriorly along a curved path (a quadratic Bézier curve in patient coordinates,
RAS+ mm, origin at the L3–L4 disc as in :mod:`dwi_toolkit.phantom`). Root voxels carry an axially
symmetric tensor along the local centre-line direction. Along the root the values follow the
pattern measured by Miyagi et al. (BMC Musculoskelet Disord 2015; b = 800, short fibre tracking):
from the dural junction ADC falls and FA rises linearly over the first 15 mm, then both plateau;
proximal ADC is higher caudally (S1 > L5 > L4). Plateau FA ≈ 0.40 is the distal spinal-nerve value of
Karampinos et al. (NMR Biomed 2013). An optional focal lesion lowers FA and raises ADC over a
stretch of one root (a test device, not a claim about any patient).

The same anatomy can be sampled straight, on an oblique slice grid (``grid_rotation_deg``) or with
the patient rotated in the scanner (``rotation_deg``); the truth centre-lines and the mid-sagittal
plane move with the patient. Each voxel takes the tissue at its centre (no partial volume).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .core.affines import rotation_matrix
from .core.gradients import bvec_frame_to_world
from .core.image import DWISeries
from .core.polyline import arc_of_point
from .phantom import LEVELS, SIDES, _BODY_Z, _dist_to_polyline, fa_to_axial_factor, gradient_directions

__all__ = ["RootLesion", "RootPhantom", "make_root_phantom", "root_truth_profile", "PROFILE_PARAMETERS"]

#: Parameters of along-root profiles: FA (unitless), ADC/MD/AD/RD in mm²/s.
PROFILE_PARAMETERS = ("fa", "adc", "md", "ad", "rd")

#: Proximal (dural junction) ADC per level in mm²/s; caudal roots higher (Miyagi 2015).
PROXIMAL_ADC = {"L1": 1.55e-3, "L2": 1.56e-3, "L3": 1.57e-3, "L4": 1.58e-3, "L5": 1.62e-3, "S1": 1.66e-3}
#: Proximal FA per level; L4 > L5 > S1 (Miyagi 2015).
PROXIMAL_FA = {"L1": 0.27, "L2": 0.27, "L3": 0.27, "L4": 0.28, "L5": 0.27, "S1": 0.26}
PLATEAU_ADC = 1.20e-3
PLATEAU_FA = 0.40
#: Length (mm from the dural junction) over which values change linearly (Miyagi 2015).
GRADIENT_LENGTH_MM = 15.0

_S0 = {"muscle": 300.0, "csf": 1000.0, "root": 500.0}
_ADC_MUSCLE, _ADC_CSF = 1.45e-3, 3.0e-3
#: Root radius (mm).
ROOT_RADIUS_MM = 3.0
_SAC = (0.0, -4.0, 10.0, 8.0)  # centre x, y and radii (mm) of the thecal sac ellipse


@dataclass(frozen=True)
class RootLesion:
    """A focal lesion on one root: FA × `fa_factor`, ADC × `adc_factor` over a stretch.

    ``center_mm`` is the distance from the dural junction along the root (mm), ``length_mm`` the
    full length of the stretch; the edges ramp over 2 mm.

    Examples
    --------
    >>> RootLesion("L5", "left", center_mm=25.0).fa_factor
    0.65
    """

    level: str
    side: str
    center_mm: float = 25.0
    length_mm: float = 8.0
    fa_factor: float = 0.65
    adc_factor: float = 1.3

    def weight(self, distance_mm: NDArray) -> NDArray[np.float64]:
        """0 outside the stretch, 1 inside, linear ramps of 2 mm at the edges."""
        d = np.abs(np.asarray(distance_mm, float) - self.center_mm) - self.length_mm / 2
        return np.clip(1.0 - d / 2.0, 0.0, 1.0) * (d < 2.0)


def root_truth_profile(level: str, side: str, distance_mm: ArrayLike,
                       lesion: RootLesion | None = None) -> dict[str, NDArray[np.float64]]:
    """True FA, ADC (= MD), AD and RD (mm²/s) at distances (mm) from the dural junction.

    Examples
    --------
    >>> t = root_truth_profile("L5", "left", [0.0, 15.0, 30.0])
    >>> t["fa"].round(2).tolist(), (t["adc"] * 1e3).round(2).tolist()
    ([0.27, 0.4, 0.4], [1.62, 1.2, 1.2])
    """
    d = np.asarray(distance_mm, dtype=float)
    f = np.clip(d / GRADIENT_LENGTH_MM, 0.0, 1.0)
    fa = PROXIMAL_FA[level] + f * (PLATEAU_FA - PROXIMAL_FA[level])
    adc = PROXIMAL_ADC[level] + f * (PLATEAU_ADC - PROXIMAL_ADC[level])
    if lesion is not None and (lesion.level, lesion.side) == (level, side):
        w = lesion.weight(d)
        fa = fa * (1 + w * (lesion.fa_factor - 1))
        adc = adc * (1 + w * (lesion.adc_factor - 1))
    t = np.array([fa_to_axial_factor(x) for x in np.atleast_1d(fa)]).reshape(fa.shape)
    return {"fa": fa, "adc": adc, "md": adc.copy(), "ad": adc * (1 + 2 * t), "rd": adc * (1 - t)}


def _root_curve(level: str, side: str, n: int = 160) -> NDArray[np.float64]:
    """Centre-line (n, 3) of one root in patient RAS+ mm, dural junction first."""
    z0 = _BODY_Z[level] + 2.0
    ctrl = np.array([[9.7, -2.0, z0], [17.0, -3.0, z0 - 13.0], [40.0, 8.0, z0 - 26.0]])
    if side == "left":
        ctrl[:, 0] *= -1
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * ctrl[0] + 2 * (1 - t) * t * ctrl[1] + t**2 * ctrl[2]


@dataclass(frozen=True, eq=False)
class RootPhantom:
    """A synthetic DWI of curved anisotropic roots with its truth.

    Attributes
    ----------
    series : DWISeries
        Simulated DWI (b in s/mm²; Rician noise unless ``snr=None``).
    centerlines : dict
        (level, side) → (K, 3) true centre-line in RAS+ mm, dural junction first.
    junctions : dict
        (level, side) → dural-junction point (RAS+ mm), where distance along the root is 0.
    seeds : dict
        (level, side) → one seed point (RAS+ mm) on the root (at the ganglion, 22 mm along).
    labels : ndarray of int, shape (X, Y, Z)
        0 background, 1 muscle, 4 CSF (thecal sac), 5 root.
    root_labels : ndarray of int
        0 outside roots, else 1 + index of the root in ``roots``.
    fa_true, md_true : ndarray of shape (X, Y, Z)
        True FA and MD (mm²/s) per voxel.
    body_mask : ndarray of bool
        Voxels inside the body.
    lesion : RootLesion or None
    midsagittal_plane : (point, unit normal)
        RAS+ mm.
    params : dict
        Generator arguments (JSON-ready).

    Examples
    --------
    >>> ph = make_root_phantom(levels=("L5",), voxel_size=3.0, n_directions=12, snr=None)
    >>> ph.roots, round(float(ph.length_mm("L5", "left")), 1)
    ([('L5', 'left'), ('L5', 'right')], 41.9)
    """

    series: DWISeries
    centerlines: dict
    junctions: dict
    seeds: dict
    labels: np.ndarray
    root_labels: np.ndarray
    fa_true: np.ndarray
    md_true: np.ndarray
    body_mask: np.ndarray
    lesion: RootLesion | None
    midsagittal_plane: tuple
    params: dict = field(default_factory=dict)

    @property
    def roots(self) -> list[tuple[str, str]]:
        """(level, side) of every simulated root."""
        return list(self.centerlines)

    def length_mm(self, level: str, side: str) -> float:
        """Length of the true centre-line in mm."""
        return float(np.linalg.norm(np.diff(self.centerlines[(level, side)], axis=0), axis=1).sum())

    def truth_profile(self, level: str, side: str, distance_mm: ArrayLike) -> dict[str, NDArray[np.float64]]:
        """True values at distances from the dural junction (see :func:`root_truth_profile`)."""
        return root_truth_profile(level, side, distance_mm, self.lesion)

    def truth_at(self, level: str, side: str, points: ArrayLike) -> dict[str, NDArray[np.float64]]:
        """True values at RAS+ mm points: each point is projected on the true centre-line and
        takes the truth at that distance from the junction — the rule the voxels were simulated
        with, so a profile node is compared with the tissue it sampled, whatever the error of its
        distance (the dural junction is located to about a voxel).

        Examples
        --------
        >>> ph = make_root_phantom(levels=("L5",), voxel_size=3.0, n_directions=12, snr=None)
        >>> line = ph.centerlines[("L5", "left")]
        >>> float(ph.truth_at("L5", "left", line[:1])["fa"][0]) == float(ph.truth_profile("L5", "left", [0.0])["fa"][0])
        True
        """
        p = np.atleast_2d(np.asarray(points, float))
        _, frac, _ = _dist_to_polyline(p, self.centerlines[(level, side)])
        return self.truth_profile(level, side, frac * self.length_mm(level, side))

    def junction_arc_mm(self, level: str, side: str, line: ArrayLike) -> float:
        """Arc length (mm) along a polyline (e.g. a tracked centre-line, RAS+ mm) of the foot of
        the true dural junction; negative when the junction lies before the line's first point
        (the line is extended straight back along its first 3 mm). A tracked root's origin error
        is ``bundle.origin_arc_mm - junction_arc_mm(level, side, bundle.centerline)``.

        Examples
        --------
        >>> ph = make_root_phantom(levels=("L5",), voxel_size=3.0, n_directions=12, snr=None)
        >>> line = ph.centerlines[("L5", "left")]
        >>> round(ph.junction_arc_mm("L5", "left", line[5:]), 1) < 0
        True
        """
        return arc_of_point(self.junctions[(level, side)], np.asarray(line, float))

    def truth_records(self, step_mm: float = 1.0) -> list[dict]:
        """Tidy truth table: level, side, distance_mm, parameter, value (mm²/s for diffusivities)."""
        recs = []
        for lev, side in self.roots:
            d = np.arange(0.0, self.length_mm(lev, side) + 1e-9, step_mm)
            truth = self.truth_profile(lev, side, d)
            for p in PROFILE_PARAMETERS:
                recs += [{"level": lev, "side": side, "distance_mm": float(x), "parameter": p, "value": float(v)}
                         for x, v in zip(d, truth[p])]
        return recs


def _grid(roots_world: list[NDArray], voxel: NDArray, grid_rotation_deg: ArrayLike, margin_mm: float,
          shape: tuple[int, int, int] | None) -> tuple[tuple[int, int, int], NDArray]:
    """Shape and LAS-stored (optionally oblique) affine of a grid covering every root."""
    pts = np.vstack(roots_world)
    lo, hi = pts.min(0) - margin_mm, pts.max(0) + margin_mm
    centre = (lo + hi) / 2
    rg = rotation_matrix(grid_rotation_deg)
    lin = rg @ np.diag([-voxel[0], voxel[1], voxel[2]])
    if shape is None:
        ext = np.abs((pts - centre) @ rg).max(0) + margin_mm  # half extent along the grid axes
        shape = tuple(int(np.ceil(2 * e / v)) + 1 for e, v in zip(ext, voxel))
    affine = np.eye(4)
    affine[:3, :3] = lin
    affine[:3, 3] = centre - lin @ ((np.asarray(shape) - 1) / 2.0)
    return shape, affine


def _gradient_scheme(bval: float, n_directions: int, n_b0: int) -> tuple[NDArray, NDArray]:
    dirs = gradient_directions(int(n_directions))
    bvals = np.r_[np.zeros(n_b0), np.full(len(dirs), float(bval))]
    return bvals, np.vstack([np.zeros((n_b0, 3)), dirs])


def _tissue(p: NDArray, roots_p: dict, radius: float, lesion: RootLesion | None):
    """Per-voxel labels, root label, MD, FA and unit axis (patient frame)."""
    n = p.shape[0]
    labels = np.zeros(n, np.int16)
    labels[((p[:, 0] / 62.0) ** 2 + ((p[:, 1] - 5.0) / 45.0) ** 2) <= 1.0] = 1
    cx, cy, rx, ry = _SAC
    labels[((p[:, 0] - cx) / rx) ** 2 + ((p[:, 1] - cy) / ry) ** 2 <= 1.0] = 4
    md = np.where(labels == 4, _ADC_CSF, np.where(labels == 1, _ADC_MUSCLE, 0.0))
    fa = np.zeros(n)
    axis = np.zeros((n, 3))
    root_labels = np.zeros(n, np.int16)
    for k, ((lev, side), line) in enumerate(roots_p.items(), start=1):
        near = np.all((p >= line.min(0) - radius - 1) & (p <= line.max(0) + radius + 1), axis=1)
        idx = np.flatnonzero(near & (labels != 4))
        dist, frac, direction = _dist_to_polyline(p[idx], line)
        inside = dist <= radius
        hit = idx[inside]
        length = float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum())
        truth = root_truth_profile(lev, side, frac[inside] * length, lesion)
        labels[hit], root_labels[hit] = 5, k
        md[hit], fa[hit], axis[hit] = truth["adc"], truth["fa"], direction[inside]
    return labels, root_labels, md, fa, axis


def _signal(labels: NDArray, md: NDArray, fa: NDArray, axis_world: NDArray, bvals: NDArray,
            g_world: NDArray) -> NDArray[np.float64]:
    s0 = np.select([labels == 1, labels == 4, labels == 5], [_S0["muscle"], _S0["csf"], _S0["root"]], 0.0)
    t = np.array([fa_to_axial_factor(f) for f in fa])
    lam_par, lam_perp = md * (1 + 2 * t), md * (1 - t)
    cos2 = (axis_world @ g_world.T) ** 2  # (V, N)
    gdg = lam_perp[:, None] + (lam_par - lam_perp)[:, None] * cos2
    return s0[:, None] * np.exp(-bvals[None, :] * gdg)


def make_root_phantom(
    *,
    levels: tuple[str, ...] = LEVELS,
    voxel_size: float | tuple[float, float, float] = 2.0,
    bval: float = 800.0,
    n_directions: int = 20,
    snr: float | None = 25.0,
    rotation_deg: ArrayLike = (0.0, 0.0, 0.0),
    grid_rotation_deg: ArrayLike = (0.0, 0.0, 0.0),
    lesion: RootLesion | None = None,
    margin_mm: float = 8.0,
    seed: int | None = 0,
) -> RootPhantom:
    """Simulate a DTI acquisition of curved L1–S1 roots with along-root gradients.

    Parameters
    ----------
    levels : tuple of str, optional
        Levels to simulate (both sides each); fewer levels give a smaller, faster volume.
    voxel_size : float or (float, float, float), optional
        mm. The grid covers every root with `margin_mm` around and is stored LAS.
    bval : float, optional
        s/mm² of the single shell (Miyagi 2015 used 800).
    n_directions : int, optional
        Diffusion directions (≥ 12 recommended; a near-uniform half-sphere set); 2 b=0 volumes.
    snr : float or None, optional
        b=0 root signal / noise σ (per quadrature channel; Rician magnitude); ``None`` gives the
        exact, noise-free signal.
    rotation_deg : optional
        Patient rotation in the scanner (about x, y, z, degrees, about the grid centre).
    grid_rotation_deg : optional
        Rotation of the slice grid (oblique acquisition).
    lesion : RootLesion, optional
        A focal lesion; ``None`` for a lesion-free phantom.
    margin_mm : float, optional
        Margin of the grid around the roots (mm); ~30 mm gives a lumbar-size field of view.
    seed : int, optional
        Noise seed.

    Returns
    -------
    RootPhantom

    Examples
    --------
    >>> ph = make_root_phantom(levels=("L4",), voxel_size=3.0, n_directions=12, snr=20)
    >>> ph.series.shells[-1].bval, ph.series.n_volumes
    (800.0, 14)
    """
    vox = np.broadcast_to(np.asarray(voxel_size, dtype=float), (3,))
    rp = rotation_matrix(rotation_deg)
    roots_p = {(lev, side): _root_curve(lev, side) for lev in levels for side in SIDES}
    pivot = np.vstack(list(roots_p.values())).mean(0)
    to_world = lambda x: (x - pivot) @ rp.T + pivot  # noqa: E731 - patient pose about the roots' centre
    shape, affine = _grid([to_world(v) for v in roots_p.values()], vox, grid_rotation_deg, float(margin_mm), None)
    ijk = np.indices(shape, dtype=float).reshape(3, -1).T
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    p = (world - pivot) @ rp + pivot
    labels, root_labels, md, fa, axis_p = _tissue(p, roots_p, ROOT_RADIUS_MM, lesion)
    bvals, bvecs = _gradient_scheme(bval, n_directions, 2)
    g_world = bvecs @ bvec_frame_to_world(affine).T
    signal = _signal(labels, md, fa, axis_p @ rp.T, bvals, g_world)
    if snr is not None:
        rng = np.random.default_rng(seed)
        sigma = _S0["root"] / float(snr)
        signal = np.sqrt((signal + rng.normal(0, sigma, signal.shape)) ** 2 + rng.normal(0, sigma, signal.shape) ** 2)
    series = DWISeries(signal.reshape(shape + (bvals.size,)).astype(np.float32), affine, bvals, bvecs,
                       meta={"Manufacturer": "dwi_toolkit synthetic root phantom", "MagneticFieldStrength": 3})
    centerlines = {k: to_world(v) for k, v in roots_p.items()}
    seeds = {}
    for k, line in centerlines.items():
        cum = np.r_[0, np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))]
        seeds[k] = line[int(np.searchsorted(cum, 22.0))]
    return RootPhantom(
        series=series, centerlines=centerlines, junctions={k: v[0].copy() for k, v in centerlines.items()},
        seeds=seeds, labels=labels.reshape(shape), root_labels=root_labels.reshape(shape),
        fa_true=fa.reshape(shape), md_true=md.reshape(shape), body_mask=(labels > 0).reshape(shape),
        lesion=lesion, midsagittal_plane=(to_world(np.array([0.0, 0.0, pivot[2]])), rp @ np.array([1.0, 0, 0])),
        params={"levels": list(levels), "voxel_size": vox.tolist(), "bval": float(bval),
                "n_directions": int(n_directions), "snr": None if snr is None else float(snr),
                "rotation_deg": list(map(float, np.ravel(rotation_deg))),
                "grid_rotation_deg": list(map(float, np.ravel(grid_rotation_deg))),
                "root_radius_mm": ROOT_RADIUS_MM, "margin_mm": float(margin_mm),
                "lesion": None if lesion is None else lesion.__dict__.copy()},
    )
