"""Synthetic lumbar DWI phantom with known ADC: vertebrae, discs, thecal sac, muscle and the
paired L1–S1 nerve roots as thin oblique tubes leaving the foramina.

Everything is defined analytically in patient coordinates (RAS+ mm, origin at the centre of the
L3–L4 disc, +x towards the patient's right) and sampled at voxel centres of any grid, so the same
anatomy can be imaged axially, obliquely (``grid_rotation_deg``), or with the patient rotated in
the scanner (``rotation_deg``). Each voxel takes the tissue at its centre (no partial volume), so
``adc_true`` is exact per voxel and a noiseless fit must return it.

Tissue values (ADC in ×10⁻³ mm²/s) follow ``docs/references.md``: CSF ≈ 3.0 (free water at 37 °C,
§1.4/§1.6), normal roots ≈ 1.25–1.35 and a compressed root ≈ 1.6–1.8 (§2.3, e.g. Zhang 2018
sympt. 1.79, Stepanov 2019 1.635 vs 1.109). The altered root is a test device, not a claim about
any patient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._options import with_settings
from .core.affines import rotation_matrix
from .core.gradients import bvec_frame_to_world
from .core.image import DWISeries

__all__ = [
    "LEVELS",
    "SIDES",
    "TISSUES",
    "LumbarPhantom",
    "make_lumbar_phantom",
    "PhantomSpec",
    "rotation_matrix",
    "gradient_directions",
    "fa_to_axial_factor",
]

LEVELS = ("L1", "L2", "L3", "L4", "L5", "S1")
SIDES = ("left", "right")

#: label -> (name, ADC mm²/s, S0 a.u.)
TISSUES = {
    0: ("background", 0.0, 0.0),
    1: ("muscle", 1.45e-3, 300.0),
    2: ("bone", 0.45e-3, 220.0),
    3: ("disc", 1.70e-3, 450.0),
    4: ("csf", 3.00e-3, 1000.0),
    5: ("root", np.nan, 500.0),  # per-root ADC
}
#: Normal root ADC per level (mm²/s); proximal ADC rises caudally (Miyagi 2015, dwi_toolkit References §2.4).
NORMAL_ROOT_ADC = {"L1": 1.25e-3, "L2": 1.26e-3, "L3": 1.28e-3, "L4": 1.30e-3, "L5": 1.32e-3, "S1": 1.35e-3}

_BODY_Z = {"L1": 70.0, "L2": 42.0, "L3": 14.0, "L4": -14.0, "L5": -42.0, "S1": -70.0}
_BODY_HALF_HEIGHT = 10.0


def gradient_directions(n: int) -> NDArray[np.float64]:
    """``n`` unit gradient directions: the voxel axes for ``n <= 3``, otherwise a deterministic,
    near-uniform half-sphere set (Fibonacci lattice), as used for DTI.

    Examples
    --------
    >>> gradient_directions(2).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    >>> d = gradient_directions(12); d.shape, bool(np.allclose(np.linalg.norm(d, axis=1), 1))
    ((12, 3), True)
    """
    if n <= 3:
        return np.eye(3)[:n].copy()
    k = np.arange(n) + 0.5
    z = k / n  # upper half sphere: antipodal directions are equivalent for diffusion
    phi = np.pi * (1 + 5**0.5) * k
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def fa_to_axial_factor(fa: float) -> float:
    """t such that eigenvalues ``MD·(1+2t), MD·(1−t), MD·(1−t)`` have fractional anisotropy `fa`.

    From FA = 3|t| / sqrt(3 + 6t²) (dwi_toolkit References §1.3 with λ2 = λ3).

    Examples
    --------
    >>> t = fa_to_axial_factor(0.3); round(float(3 * t / np.sqrt(3 + 6 * t * t)), 12)
    0.3
    """
    if not 0.0 <= fa < 1.0:
        raise ValueError(f"fa must be in [0, 1), got {fa}")
    return float(fa * np.sqrt(3.0 / (9.0 - 6.0 * fa * fa)))


def _root_centerline(level: str, side: str) -> NDArray[np.float64]:
    """Centre-line of one root in patient RAS+ mm: from the dural sleeve through the foramen
    (dorsal root ganglion) to the extraforaminal course, running inferolaterally and anteriorly."""
    zd = _BODY_Z[level] - 14.0  # foramen / disc below the vertebra of the same number
    sx = -1.0 if side == "left" else 1.0
    pts = np.array(
        [
            [6.0, -8.0, zd + 18.0],  # leaves the thecal sac (preganglionic)
            [13.0, -7.0, zd + 9.0],  # lateral recess
            [20.0, -5.0, zd + 2.0],  # foramen: dorsal root ganglion
            [29.0, 0.0, zd - 7.0],  # postganglionic
            [38.0, 6.0, zd - 16.0],  # extraforaminal
        ]
    )
    pts[:, 0] *= sx
    return pts


#: Fractions of the centre-line length that bound the segments (pre-/ganglion/post-ganglionic).
SEGMENT_BOUNDS = {"preganglionic": (0.0, 0.38), "ganglion": (0.38, 0.62), "postganglionic": (0.62, 1.0)}


def _dist_to_polyline(p: NDArray, line: NDArray) -> tuple[NDArray, NDArray, NDArray]:
    """Distance of points (V, 3) to a polyline (K, 3), the arc-length fraction of the foot, and
    the unit direction (V, 3) of the nearest segment."""
    seg_len = np.linalg.norm(np.diff(line, axis=0), axis=1)
    total = seg_len.sum()
    best = np.full(p.shape[0], np.inf)
    frac = np.zeros(p.shape[0])
    direction = np.zeros((p.shape[0], 3))
    start = 0.0
    for a, b, ln in zip(line[:-1], line[1:], seg_len):
        d = b - a
        t = np.clip(((p - a) @ d) / (ln * ln), 0.0, 1.0)
        foot = a + t[:, None] * d
        dist = np.linalg.norm(p - foot, axis=1)
        closer = dist < best
        best[closer] = dist[closer]
        frac[closer] = (start + t[closer] * ln) / total
        direction[closer] = d / ln
        start += ln
    return best, frac, direction


def _in_ellipse(p: NDArray, cx: float, cy: float, rx: float, ry: float) -> NDArray[np.bool_]:
    return ((p[:, 0] - cx) / rx) ** 2 + ((p[:, 1] - cy) / ry) ** 2 <= 1.0


@dataclass(frozen=True, eq=False)
class LumbarPhantom:
    """A synthetic lumbar DWI with its ground truth.

    Attributes
    ----------
    series : DWISeries
        The simulated DWI (Rician noise unless ``noise=False``).
    adc_true : ndarray of shape (X, Y, Z)
        True ADC per voxel in mm²/s (0 in background).
    s0_true : ndarray of shape (X, Y, Z)
        True b=0 signal.
    labels : ndarray of int, shape (X, Y, Z)
        Tissue labels, see :data:`TISSUES`.
    root_labels : ndarray of int, shape (X, Y, Z)
        0 outside roots, else the key of `root_table`.
    segment_labels : ndarray of int, shape (X, Y, Z)
        0 outside roots, 1 preganglionic, 2 ganglion, 3 postganglionic.
    root_table : dict
        Root label → (level, side).
    centerlines : dict
        (level, side) → ndarray of shape (K, 3), RAS+ mm world coordinates.
    root_adc : dict
        (level, side) → ADC in mm²/s.
    root_radius_mm : float
    midsagittal_plane : tuple of ndarray
        (point, unit normal) in RAS+ mm world coordinates.
    sigma : float
        Noise standard deviation of each quadrature channel (0 without noise).
    fa_true : ndarray of shape (X, Y, Z) or None
        True fractional anisotropy (0 in isotropic tissue) when roots are anisotropic.
    root_fa : dict
        (level, side) → FA of anisotropic roots (empty when isotropic).

    Examples
    --------
    >>> from dwi_toolkit.phantom import make_lumbar_phantom
    >>> ph = make_lumbar_phantom(shape=(36, 28, 24), voxel_size=(4.0, 4.0, 8.0), noise=False)
    >>> ph.series.shape, ph.root_table[1], round(ph.root_adc[("L5", "left")] * 1e3, 2)   # ×10⁻³ mm²/s
    ((36, 28, 24, 10), ('L1', 'left'), 1.6)
    """

    series: DWISeries
    adc_true: np.ndarray
    s0_true: np.ndarray
    labels: np.ndarray
    root_labels: np.ndarray
    segment_labels: np.ndarray
    root_table: dict
    centerlines: dict
    root_adc: dict
    root_radius_mm: float
    midsagittal_plane: tuple
    sigma: float
    params: dict = field(default_factory=dict)
    fa_true: np.ndarray | None = None
    root_fa: dict = field(default_factory=dict)

    def root_mask(self, level: str, side: str, segment: str | None = None) -> NDArray[np.bool_]:
        """Voxels of one root (optionally one segment of it)."""
        lab = next(k for k, v in self.root_table.items() if v == (level, side))
        m = self.root_labels == lab
        if segment is not None:
            m &= self.segment_labels == (1 + list(SEGMENT_BOUNDS).index(segment))
        return m

    def segment_point(self, level: str, side: str, segment: str = "ganglion") -> NDArray[np.float64]:
        """World point (RAS+ mm) at the middle of a segment along the root's centre-line."""
        lo, hi = SEGMENT_BOUNDS[segment]
        return _point_at_fraction(self.centerlines[(level, side)], 0.5 * (lo + hi))


def _point_at_fraction(line: NDArray, f: float) -> NDArray[np.float64]:
    seg_len = np.linalg.norm(np.diff(line, axis=0), axis=1)
    target = f * seg_len.sum()
    acc = 0.0
    for a, b, ln in zip(line[:-1], line[1:], seg_len):
        if acc + ln >= target:
            return a + (target - acc) / ln * (b - a)
        acc += ln
    return line[-1].copy()


@dataclass(frozen=True)
class PhantomSpec:
    """Everything :func:`make_lumbar_phantom` simulates: grid, acquisition, pose, roots, noise.

    Attributes
    ----------
    shape : (int, int, int)
        Grid size (X, Y, Z); the default axial grid covers L1–S1.
    voxel_size : (float, float, float)
        mm. The grid is stored L→R flipped (``LAS``), like most scanner NIfTI.
    bvals : sequence of float
        Distinct b-values in s/mm²; b=0 is acquired once, every other b-value along
        `n_directions` orthogonal directions (image frame).
    n_directions : int
        Directions per non-zero b-value: the voxel axes for up to 3 (enough for a trace ADC),
        a near-uniform set (:func:`gradient_directions`) for more (≥ 6 for DTI).
    snr : float
        b=0 root signal divided by the noise σ (per quadrature channel; magnitude is Rician).
    rotation_deg, translation_mm : sequence of float
        Pose of the patient in the scanner (rotations about x, y, z in degrees, then a shift).
        The mid-sagittal plane and centre-lines move with it.
    grid_rotation_deg : sequence of float
        Rotation of the slice grid (an oblique acquisition), about the grid centre.
    root_adc : dict, optional
        (level, side) → ADC (mm²/s) overriding the normal values.
    altered : dict, optional
        (level, side) → ADC (mm²/s); default ``{("L5", "left"): 1.65e-3}``. Pass ``{}`` for a
        symmetric control.
    root_radius_mm : float
        Radius of the root tubes.
    root_fa : float or dict, optional
        Fractional anisotropy of the roots (a float for all, or (level, side) → FA). ``None``
        (default) keeps every tissue isotropic. Otherwise each root voxel has an axially
        symmetric tensor along the local centre-line with mean diffusivity equal to the root's
        ADC (dwi_toolkit References §1.3), so the trace ADC is unchanged; normal lumbar roots have FA
        ≈ 0.30–0.35 (§2.4) and compressed roots lower (≈ 0.22–0.26, §2.3).
    altered_fa : dict, optional
        (level, side) → FA overriding `root_fa` (e.g. ``{("L5", "left"): 0.22}``).
    seed : int or Generator, optional
        Noise seed.
    noise : bool
        Add Rician noise (``False`` gives the exact model signal).
    dtype : numpy dtype or str
        dtype of the simulated data (default float32).

    Examples
    --------
    >>> PhantomSpec(snr=20).snr, PhantomSpec().shape
    (20, (72, 56, 48))
    """

    shape: tuple[int, int, int] = (72, 56, 48)
    voxel_size: tuple[float, float, float] = (2.0, 2.0, 4.0)
    bvals: ArrayLike = (0, 100, 400, 800)
    n_directions: int = 3
    snr: float = 40.0
    rotation_deg: ArrayLike = (0.0, 0.0, 0.0)
    translation_mm: ArrayLike = (0.0, 0.0, 0.0)
    grid_rotation_deg: ArrayLike = (0.0, 0.0, 0.0)
    root_adc: dict | None = None
    altered: dict | None = None
    root_radius_mm: float = 2.6
    root_fa: float | dict | None = None
    altered_fa: dict | None = None
    seed: int | np.random.Generator | None = 0
    noise: bool = True
    dtype: Any = "float32"


def make_lumbar_phantom(spec: PhantomSpec | None = None, **settings: Any) -> LumbarPhantom:
    """Simulate a lumbar DWI with L1–S1 nerve roots of known ADC.

    Parameters
    ----------
    spec : PhantomSpec, optional
        What to simulate (default: :class:`PhantomSpec` defaults).
    **settings
        Any :class:`PhantomSpec` field by name (``shape=...``, ``snr=20``, ``altered={}`` ...),
        applied on top of `spec`; an unknown name raises :class:`~dwi_toolkit.errors.InputDataError`.

    Returns
    -------
    LumbarPhantom

    Examples
    --------
    >>> ph = make_lumbar_phantom(shape=(40, 32, 12), voxel_size=(4, 4, 16), noise=False)
    >>> ph.series.shells[-1].bval, round(ph.root_adc[("L5", "left")] * 1e3, 2)
    (800.0, 1.65)
    """
    sp = with_settings(PhantomSpec, spec, settings, where="make_lumbar_phantom")
    rng = sp.seed if isinstance(sp.seed, np.random.Generator) else np.random.default_rng(sp.seed)
    shape = tuple(int(s) for s in sp.shape)
    vox = np.asarray(sp.voxel_size, dtype=float)
    affine, lin = _phantom_grid(shape, vox, sp.grid_rotation_deg)
    # patient pose
    rp = rotation_matrix(sp.rotation_deg)
    tp = np.asarray(sp.translation_mm, dtype=float)
    ijk = np.indices(shape, dtype=float).reshape(3, -1).T
    world = ijk @ lin.T + affine[:3, 3]
    p = (world - tp) @ rp  # patient coordinates: rp.T @ (w - t)
    labels = _tissue_labels(p)
    adc_by_root, fa_by_root = _root_values(sp)
    roots = _place_roots(p, labels, rp, tp, sp.root_radius_mm, adc_by_root, fa_by_root)
    b_unique = [float(b) for b in sp.bvals]
    bv, bvecs = _phantom_acquisition(b_unique, int(sp.n_directions))
    signal = _phantom_signal(roots, bv, bvecs, lin)
    sigma = 0.0
    if sp.noise:
        sigma = TISSUES[5][2] / float(sp.snr)
        n1 = rng.normal(0.0, sigma, signal.shape)
        n2 = rng.normal(0.0, sigma, signal.shape)
        signal = np.sqrt((signal + n1) ** 2 + n2**2)
    data = signal.reshape(shape + (bv.size,)).astype(sp.dtype)
    meta = {
        "Manufacturer": "dwi_toolkit synthetic phantom",
        "MagneticFieldStrength": 3,
        "SeriesDescription": "synthetic lumbar DWI (L1-S1 roots)",
        "EchoTime": 0.07,
        "RepetitionTime": 4.0,
    }
    series = DWISeries(data, affine, bv, bvecs, meta=meta)
    normal = rp @ np.array([1.0, 0.0, 0.0])
    return LumbarPhantom(
        series=series,
        adc_true=roots["adc"].reshape(shape),
        s0_true=roots["s0"].reshape(shape),
        labels=labels.reshape(shape),
        root_labels=roots["root_labels"].reshape(shape),
        segment_labels=roots["seg_labels"].reshape(shape),
        root_table=roots["root_table"],
        centerlines=roots["centerlines"],
        root_adc=adc_by_root,
        root_radius_mm=float(sp.root_radius_mm),
        midsagittal_plane=(tp.copy(), normal),
        sigma=sigma,
        fa_true=roots["fa_vox"].reshape(shape) if fa_by_root else None,
        root_fa=fa_by_root,
        params={
            "shape": list(shape), "voxel_size": vox.tolist(), "bvals": b_unique,
            "n_directions": int(sp.n_directions), "snr": float(sp.snr),
            "rotation_deg": list(map(float, sp.rotation_deg)),
            "translation_mm": tp.tolist(), "grid_rotation_deg": list(map(float, sp.grid_rotation_deg)),
            "root_radius_mm": float(sp.root_radius_mm), "noise": bool(sp.noise),
            "root_fa": None if sp.root_fa is None else (sp.root_fa if not isinstance(sp.root_fa, dict) else "per root"),
            "altered_fa": {f"{k[0]}_{k[1]}": float(v) for k, v in (sp.altered_fa or {}).items()},
        },
    )


def _phantom_grid(shape: tuple[int, ...], vox: NDArray, grid_rotation_deg: ArrayLike) -> tuple[NDArray, NDArray]:
    """Affine and its 3×3 part: LAS storage, centred on (0, 5, -10) mm, optionally rotated (oblique slices)."""
    base = np.diag([-vox[0], vox[1], vox[2]])
    lin = rotation_matrix(grid_rotation_deg) @ base
    centre_world = np.array([0.0, 5.0, -10.0])
    centre_vox = (np.asarray(shape) - 1) / 2.0
    affine = np.eye(4)
    affine[:3, :3] = lin
    affine[:3, 3] = centre_world - lin @ centre_vox
    return affine, lin


def _tissue_labels(p: NDArray) -> NDArray:
    """Tissue label (see :data:`TISSUES`) of each point `p` (patient coordinates, mm), roots not yet drawn."""
    labels = np.zeros(p.shape[0], dtype=np.int16)
    body = ((p[:, 0] / 70.0) ** 2 + ((p[:, 1] - 5.0) / 55.0) ** 2) <= 1.0
    labels[body] = 1
    zmin, zmax = _BODY_Z["S1"] - _BODY_HALF_HEIGHT - 14, _BODY_Z["L1"] + _BODY_HALF_HEIGHT + 14
    in_z = (p[:, 2] >= zmin) & (p[:, 2] <= zmax)
    column = _in_ellipse(p, 0.0, 22.0, 21.0, 15.0) & in_z
    labels[column] = 3  # discs by default; vertebral bodies below
    for lev, zc in _BODY_Z.items():
        labels[column & (np.abs(p[:, 2] - zc) <= _BODY_HALF_HEIGHT)] = 2
    posterior = (np.abs(p[:, 0]) <= 15) & (p[:, 1] >= -30) & (p[:, 1] <= -16) & in_z
    labels[posterior] = 2
    sac = _in_ellipse(p, 0.0, -4.0, 10.0, 8.0) & (p[:, 2] >= _BODY_Z["S1"] - 10) & (p[:, 2] <= zmax)
    labels[sac] = 4
    return labels


def _root_values(sp: PhantomSpec) -> tuple[dict[tuple[str, str], float], dict[tuple[str, str], float]]:
    """ADC (mm²/s) and FA of every (level, side) root from the spec's normal values and alterations."""
    adc_by_root = {(lev, side): NORMAL_ROOT_ADC[lev] for lev in LEVELS for side in SIDES}
    if sp.root_adc:
        adc_by_root.update({(k[0], k[1]): float(v) for k, v in sp.root_adc.items()})
    alt = {("L5", "left"): 1.65e-3} if sp.altered is None else sp.altered
    adc_by_root.update({(k[0], k[1]): float(v) for k, v in alt.items()})
    fa_by_root: dict[tuple[str, str], float] = {}
    if sp.root_fa is not None:
        base = (sp.root_fa if isinstance(sp.root_fa, dict)
                else {(lev, side): float(sp.root_fa) for lev in LEVELS for side in SIDES})
        fa_by_root = {(k[0], k[1]): float(v) for k, v in base.items()}
        fa_by_root.update({(k[0], k[1]): float(v) for k, v in (sp.altered_fa or {}).items()})
    return adc_by_root, fa_by_root


def _place_roots(p: NDArray, labels: NDArray, rp: NDArray, tp: NDArray, radius: float,
                 adc_by_root: dict, fa_by_root: dict) -> dict[str, Any]:
    """Draw the root tubes into `labels` (in place) and the per-point ADC, S0, FA and fibre axis."""
    n = p.shape[0]
    out: dict[str, Any] = {"root_labels": np.zeros(n, dtype=np.int16), "seg_labels": np.zeros(n, dtype=np.int16),
                           "fa_vox": np.zeros(n), "axis_world": np.zeros((n, 3)), "root_table": {},
                           "centerlines": {}}
    adc = np.array([TISSUES[int(t)][1] for t in range(6)])[labels]
    s0 = np.array([TISSUES[int(t)][2] for t in range(6)])[labels]
    lab = 0
    for lev in LEVELS:
        for side in SIDES:
            lab += 1
            line_p = _root_centerline(lev, side)
            out["root_table"][lab] = (lev, side)
            out["centerlines"][(lev, side)] = line_p @ rp.T + tp
            near = np.all((p >= line_p.min(0) - radius - 1) & (p <= line_p.max(0) + radius + 1), axis=1)
            idx = np.flatnonzero(near)
            dist, frac, axis_p = _dist_to_polyline(p[idx], line_p)
            inside = dist <= radius
            hit = idx[inside]
            out["root_labels"][hit] = lab
            labels[hit] = 5
            seg = np.ones(hit.size, dtype=np.int16)
            f = frac[inside]
            seg[f >= SEGMENT_BOUNDS["ganglion"][0]] = 2
            seg[f >= SEGMENT_BOUNDS["postganglionic"][0]] = 3
            out["seg_labels"][hit] = seg
            adc[hit] = adc_by_root[(lev, side)]
            s0[hit] = TISSUES[5][2]
            if fa_by_root:
                out["fa_vox"][hit] = fa_by_root.get((lev, side), 0.0)
                out["axis_world"][hit] = axis_p[inside] @ rp.T
    out["adc"], out["s0"] = adc, s0
    return out


def _phantom_acquisition(b_unique: list[float], n_directions: int) -> tuple[NDArray, NDArray]:
    """b-values (s/mm²) and image-frame b-vectors: b=0 once, each other b along every direction."""
    bl, vl = [], []
    dirs = gradient_directions(n_directions)
    for b in b_unique:
        if b == 0:
            bl.append(0.0)
            vl.append(np.zeros(3))
        else:
            for d in dirs:
                bl.append(b)
                vl.append(d)
    return np.array(bl), np.array(vl)


def _phantom_signal(roots: dict[str, Any], bv: NDArray, bvecs: NDArray, lin: NDArray) -> NDArray:
    """Noise-free signal (points × volumes): mono-exponential, axially symmetric tensors in anisotropic roots."""
    adc, s0, fa_vox = roots["adc"], roots["s0"], roots["fa_vox"]
    signal = s0[:, None] * np.exp(-bv[None, :] * adc[:, None])
    aniso = np.flatnonzero(fa_vox > 0)
    if aniso.size:
        # image-frame b-vectors (FSL convention) -> world directions: voxel axes of the affine,
        # with FSL's first-axis flip for a positive-determinant affine
        g_world = bvecs @ bvec_frame_to_world(lin).T
        t = np.array([fa_to_axial_factor(f) for f in fa_vox[aniso]])
        md = adc[aniso]
        lam_par, lam_perp = md * (1 + 2 * t), md * (1 - t)
        cos2 = (g_world @ roots["axis_world"][aniso].T).T ** 2  # (V, N)
        # g^T D g for an axially symmetric tensor: λ⊥ + (λ∥ − λ⊥) (g·u)²
        gdg = lam_perp[:, None] + (lam_par - lam_perp)[:, None] * cos2
        signal[aniso] = s0[aniso, None] * np.exp(-bv[None, :] * gdg)
    return signal
