"""Thin containers that carry data with its affine and acquisition scheme.

:class:`DWISeries` is the object every module passes around: a 4-D signal, the voxel → RAS+ mm
affine, b-values (s/mm²) and b-vectors (unit vectors in the image frame, FSL convention), and a
de-identified, BIDS-sidecar-style ``meta`` dict. :class:`ParameterMap` is one fitted map (ADC,
S0, FA, ...) with its affine, name and unit.

Objects validate on construction (an object that exists is valid), never modify their inputs,
and return new objects from every transforming method.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import InputDataError
from . import affines as _aff
from . import gradients as _grad
from . import signal as _sig

__all__ = ["DWISeries", "ParameterMap"]


def _as_array(x: Any, name: str, dtype=None) -> np.ndarray:
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise InputDataError(f"{name} could not be converted to an array: {err}") from err


@dataclass(frozen=True, eq=False, repr=False)
class DWISeries:
    """A diffusion-weighted series: signal, voxel → RAS+ mm affine, and acquisition scheme.

    Parameters
    ----------
    data : ndarray of shape (X, Y, Z, N)
        Signal; the last axis holds the diffusion volumes (dipy convention). Any real dtype; it is
        not rescaled or cast.
    affine : ndarray of shape (4, 4)
        Voxel → RAS+ mm (nibabel convention).
    bvals : ndarray of shape (N,)
        b-values in s/mm², finite and ≥ 0.
    bvecs : ndarray of shape (N, 3)
        Unit gradient directions in the **image (voxel-axis) frame**, as in FSL ``.bvec`` files;
        zero for b=0 volumes (and for direction-free trace volumes). Norms within 0.1 of 1 are
        renormalised with a :class:`~dwi_toolkit.errors.GradientWarning`; others are rejected.
    meta : mapping, optional
        De-identified acquisition facts, BIDS-sidecar style (``Manufacturer``, ``EchoTime`` in s,
        ``RepetitionTime`` in s, ``PhaseEncodingDirection`` ...). Never patient identifiers unless
        the user asked for them when loading.
    b0_threshold : float, optional
        s/mm²; volumes with ``b <= b0_threshold`` count as b=0 (default 50). Reported in every
        fit and report.

    Raises
    ------
    InputDataError
        If the data is not 4-D real numbers, the affine is not a valid 4×4 matrix.
    GradientError
        If the gradients do not match the data or are invalid.

    Examples
    --------
    >>> import numpy as np
    >>> s = DWISeries(np.ones((2, 2, 1, 3)), np.eye(4), [0, 500, 1000], np.eye(3))
    >>> s
    DWISeries(shape=(2, 2, 1, 3), voxel_mm=(1, 1, 1), orientation='RAS', shells=[0 x1, 500 x1, 1000 x1])
    """

    data: np.ndarray
    affine: np.ndarray
    bvals: np.ndarray
    bvecs: np.ndarray
    meta: Mapping[str, Any] = field(default_factory=dict)
    b0_threshold: float = _grad.DEFAULT_B0_THRESHOLD

    def __post_init__(self) -> None:
        data = self.data if isinstance(self.data, np.ndarray) else _as_array(self.data, "data")
        if data.ndim != 4:
            raise InputDataError(
                f"DWI data must be 4-D (X, Y, Z, N volumes), got {data.ndim}-D shape {data.shape}. "
                "A 3-D image holds a single volume: load the whole diffusion series."
            )
        if not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
            raise InputDataError(f"DWI data must be real numbers, got dtype {data.dtype}.")
        affine = _aff.check_affine(self.affine)
        bvals = _as_array(self.bvals, "bvals", float).reshape(-1)
        bvecs = _as_array(self.bvecs, "bvecs", float)
        thr = float(self.b0_threshold)
        if not np.isfinite(thr) or thr < 0:
            raise InputDataError(f"b0_threshold must be a finite value >= 0 s/mm^2, got {thr}.")
        _grad.check_gradients(bvals, bvecs, n_volumes=data.shape[-1], b0_threshold=thr)
        bvecs = _grad.normalize_bvecs(bvecs, bvals, b0_threshold=thr)
        bvals = bvals.copy()
        affine = affine.copy()
        for arr in (bvals, bvecs, affine):
            arr.setflags(write=False)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "affine", affine)
        object.__setattr__(self, "bvals", bvals)
        object.__setattr__(self, "bvecs", bvecs)
        object.__setattr__(self, "meta", dict(self.meta))
        object.__setattr__(self, "b0_threshold", thr)

    # ----------------------------------------------------------------- properties (never raise)
    @property
    def shape(self) -> tuple[int, ...]:
        """Data shape (X, Y, Z, N)."""
        return tuple(self.data.shape)

    @property
    def spatial_shape(self) -> tuple[int, int, int]:
        """Shape of one volume (X, Y, Z)."""
        return tuple(self.data.shape[:3])  # type: ignore[return-value]

    @property
    def n_volumes(self) -> int:
        """Number of diffusion volumes N."""
        return int(self.data.shape[3])

    @property
    def voxel_sizes(self) -> NDArray[np.float64]:
        """Voxel edge lengths in mm."""
        return _aff.voxel_sizes(self.affine)

    @property
    def orientation(self) -> str:
        """Axis codes of the voxel axes in RAS+ world space, e.g. ``"LPS"``."""
        return _aff.orientation_codes(self.affine)

    @property
    def slice_orientation(self) -> str:
        """``"axial"``, ``"sagittal"``, ``"coronal"`` or ``"oblique"``."""
        return _aff.slice_orientation(self.affine)

    @property
    def b0_mask(self) -> NDArray[np.bool_]:
        """Boolean mask of b=0 volumes (``b <= b0_threshold``)."""
        return _grad.b0_mask(self.bvals, b0_threshold=self.b0_threshold)

    @property
    def shells(self) -> list[_grad.Shell]:
        """b-value shells (b=0 first), see :func:`dwi_toolkit.core.gradients.find_shells`."""
        return _grad.find_shells(self.bvals, b0_threshold=self.b0_threshold)

    # ----------------------------------------------------------------- methods
    def replace(self, **changes: Any) -> DWISeries:
        """Return a new series with some fields replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def select(self, volumes: Sequence[int] | NDArray) -> DWISeries:
        """Return a new series holding only `volumes` (indices or a boolean mask of length N).

        Examples
        --------
        >>> s = DWISeries(np.ones((1, 1, 1, 3)), np.eye(4), [0, 500, 1000], np.eye(3))
        >>> s.select([0, 2]).bvals.tolist()
        [0.0, 1000.0]
        """
        idx = np.asarray(volumes)
        if idx.dtype == bool:
            if idx.shape != (self.n_volumes,):
                raise InputDataError(
                    f"volume mask must have {self.n_volumes} entries, got {idx.shape}."
                )
            idx = np.flatnonzero(idx)
        idx = idx.astype(int).reshape(-1)
        if idx.size == 0:
            raise InputDataError("select() needs at least one volume.")
        if idx.min() < -self.n_volumes or idx.max() >= self.n_volumes:
            raise InputDataError(f"volume index out of range 0..{self.n_volumes - 1}: {idx.tolist()}")
        return dataclasses.replace(
            self, data=self.data[..., idx], bvals=self.bvals[idx], bvecs=self.bvecs[idx]
        )

    def select_b(self, b_min: float | None = None, b_max: float | None = None) -> DWISeries:
        """Return a new series with the volumes whose b-value lies in ``[b_min, b_max]`` (s/mm²).

        The range is literal: ``b_min=200`` leaves out the b=0 volumes too.
        """
        return self.select(self.b_indices(b_min, b_max))

    def b_mask(self, b_min: float | None = None, b_max: float | None = None) -> NDArray[np.bool_]:
        """Which volumes have a b-value in ``[b_min, b_max]`` (s/mm²; open ends when None) — the one
        b-range rule of the fits (may select none).

        Examples
        --------
        >>> DWISeries(np.ones((1, 1, 1, 3)), np.eye(4), [0, 500, 1000], np.eye(3)).b_mask(None, 500).tolist()
        [True, True, False]
        """
        keep = np.ones(self.n_volumes, dtype=bool)
        if b_min is not None:
            keep &= self.bvals >= b_min - 1e-9
        if b_max is not None:
            keep &= self.bvals <= b_max + 1e-9
        return keep

    def b_indices(self, b_min: float | None = None, b_max: float | None = None) -> np.ndarray:
        """Indices of the volumes whose b-value lies in ``[b_min, b_max]`` (s/mm²), without copying data.

        Raises
        ------
        InputDataError
            No volume in the range (the b-values present are listed).

        Examples
        --------
        >>> s = DWISeries(np.ones((1, 1, 1, 3)), np.eye(4), [0, 500, 1000], np.eye(3))
        >>> s.b_indices(400).tolist()
        [1, 2]
        """
        keep = self.b_mask(b_min, b_max)
        if not keep.any():
            raise InputDataError(
                f"no volume has a b-value in [{b_min}, {b_max}] s/mm^2; b-values present: "
                f"{sorted(set(np.round(self.bvals, 3).tolist()))}."
            )
        return np.flatnonzero(keep)

    def mean_b0(self) -> NDArray[np.float32]:
        """Arithmetic mean of the b=0 volumes, shape (X, Y, Z).

        Raises
        ------
        InputDataError
            If the series has no b=0 volume.
        """
        m = self.b0_mask
        if not m.any():
            raise InputDataError(
                f"the series has no b=0 volume (b <= {self.b0_threshold:g} s/mm^2); "
                f"lowest b-value is {self.bvals.min():g}."
            )
        return _sig.mean_b0(self.data, m)

    def trace(self) -> tuple[NDArray[np.float64], NDArray[np.floating]]:
        """Direction-averaged (trace) image per shell, as the geometric mean over directions.

        Returns
        -------
        bvals : ndarray of shape (M,)
            Shell b-values in s/mm² (0 for the b=0 shell).
        data : ndarray of shape (X, Y, Z, M)
            b=0 shell: arithmetic mean of the b=0 volumes; other shells: geometric mean of their
            volumes (what scanners store as TRACEW).
        """
        shells = self.shells
        dtype = np.float64 if self.data.dtype == np.float64 else np.float32
        out = np.empty(self.spatial_shape + (len(shells),), dtype=dtype)
        for k, sh in enumerate(shells):
            if sh.bval == 0.0:
                out[..., k] = _sig.mean_b0(self.data, np.isin(np.arange(self.n_volumes), sh.indices))
            else:
                out[..., k] = _sig.geometric_mean(self.data, sh.indices)
        return np.array([s.bval for s in shells]), out

    def trace_series(self) -> DWISeries:
        """The trace image per shell as a new series (b-vectors zero)."""
        bv, tr = self.trace()
        return DWISeries(
            tr, self.affine, bv, np.zeros((bv.size, 3)), meta=self.meta, b0_threshold=self.b0_threshold
        )

    def to_nifti(self):
        """The signal as a :class:`nibabel.Nifti1Image` with this affine."""
        import nibabel as nib

        img = nib.Nifti1Image(self.data, self.affine)
        img.header.set_xyzt_units("mm", "sec")
        return img

    def save(self, path) -> dict[str, Any]:
        """Write NIfTI + ``.bval`` + ``.bvec`` + ``.json`` sidecar next to `path`.

        See :func:`dwi_toolkit.io.nifti.save_dwi`.
        """
        from .writers import get_writer  # io sits above core: its writer is registered, not imported

        return get_writer("dwi")(self, path)

    # ----------------------------------------------------------------- display
    def _shell_summary(self) -> str:
        return ", ".join(f"{s.bval:g} x{s.n_volumes}" for s in self.shells)

    def __repr__(self) -> str:
        vs = ", ".join(f"{v:.3g}" for v in self.voxel_sizes)
        return (
            f"DWISeries(shape={self.shape}, voxel_mm=({vs}), orientation={self.orientation!r}, "
            f"shells=[{self._shell_summary()}])"
        )

    def _repr_html_(self) -> str:
        rows = [
            ("shape", str(self.shape)),
            ("voxel size (mm)", " × ".join(f"{v:.3g}" for v in self.voxel_sizes)),
            ("orientation", f"{self.orientation} ({self.slice_orientation})"),
            ("shells (b s/mm² × volumes)", self._shell_summary()),
            ("b0 threshold", f"{self.b0_threshold:g} s/mm²"),
            ("dtype", str(self.data.dtype)),
        ]
        for key in ("Manufacturer", "ManufacturersModelName", "MagneticFieldStrength", "SeriesDescription"):
            if key in self.meta:
                rows.append((key, str(self.meta[key])))
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        return f"<table><caption>DWISeries</caption>{body}</table>"


@dataclass(frozen=True, eq=False, repr=False)
class ParameterMap:
    """One parameter map with its geometry and unit.

    Parameters
    ----------
    data : ndarray of shape (X, Y, Z)
        Values; NaN where not fitted.
    affine : ndarray of shape (4, 4)
        Voxel → RAS+ mm.
    name : str
        Parameter name from the toolkit's vocabulary (``"adc"``, ``"s0"``, ``"fa"``, ...).
    unit : str, optional
        Unit of `data` (``"mm^2/s"`` for diffusivities, ``""`` for unitless).

    Examples
    --------
    >>> m = ParameterMap(np.full((2, 2, 1), 1.1e-3), np.eye(4), "adc", "mm^2/s")
    >>> m
    ParameterMap(name='adc', unit='mm^2/s', shape=(2, 2, 1))
    """

    data: np.ndarray
    affine: np.ndarray
    name: str
    unit: str = ""

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 3:
            raise InputDataError(f"a parameter map must be 3-D (X, Y, Z), got shape {data.shape}.")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "affine", _aff.check_affine(self.affine))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Map shape (X, Y, Z)."""
        return tuple(self.data.shape)  # type: ignore[return-value]

    def to_nifti(self):
        """The map as a :class:`nibabel.Nifti1Image` with this affine."""
        import nibabel as nib

        img = nib.Nifti1Image(np.asarray(self.data), self.affine)
        img.header.set_xyzt_units("mm")
        if self.unit:
            img.header["descrip"] = f"{self.name} [{self.unit}]".encode()[:79]
        return img

    def __repr__(self) -> str:
        return f"ParameterMap(name={self.name!r}, unit={self.unit!r}, shape={self.shape})"

    def _repr_html_(self) -> str:
        from ._display import html_table, thumbnail_img

        data = np.asarray(self.data)
        finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data.ravel()
        diffusivity = self.unit in ("mm^2/s", "mm²/s")
        scale, unit = (1e3, "×10⁻³ mm²/s") if diffusivity else (1.0, self.unit)
        rows = [
            ("name", self.name),
            ("unit", self.unit or "(unitless)"),
            ("shape", str(self.shape)),
            ("voxel size (mm)", " × ".join(f"{v:.3g}" for v in _aff.voxel_sizes(self.affine))),
            ("orientation", "".join(_aff.orientation_codes(self.affine))),
            ("finite voxels", f"{finite.size} / {data.size}"),
        ]
        if finite.size:
            p5, med, p95 = np.percentile(finite.astype(np.float64), [5, 50, 95]) * scale
            rows.append((f"median [p5, p95] ({unit})".replace(" ()", ""), f"{med:.4g} [{p5:.4g}, {p95:.4g}]"))
        return html_table("ParameterMap", rows, image=thumbnail_img(data))
