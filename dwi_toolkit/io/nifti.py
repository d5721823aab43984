"""NIfTI DWI with FSL ``.bval``/``.bvec`` and BIDS JSON sidecars, and NIfTI parameter maps.

b-vectors are stored exactly as in the FSL ``.bvec`` file: unit vectors in the image frame. Note
FSL's convention (which dcm2niix and dipy follow): when the affine has a positive determinant
(neurological voxel order, e.g. RAS), the first bvec component is flipped relative to the first
voxel axis. dwi_toolkit keeps FSL's numbers unchanged so files round-trip and agree with
dcm2niix, FSL and dipy.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..core.gradients import DEFAULT_B0_THRESHOLD
from ..core.image import DWISeries, ParameterMap
from ..errors import GradientError, InputDataError
from ._atomic import atomic_path, atomic_write_text
from ._phi import strip_phi
from .gradients import find_gradient_files, read_bvals, read_bvecs, write_bvals, write_bvecs

__all__ = ["load_nifti_dwi", "save_dwi", "save_map", "load_map", "nifti_stem", "read_sidecar"]

logger = logging.getLogger(__name__)


def nifti_stem(path: str | os.PathLike) -> Path:
    """``path`` without its ``.nii``/``.nii.gz`` extension.

    Examples
    --------
    >>> nifti_stem("sub-01_dwi.nii.gz").name
    'sub-01_dwi'
    """
    p = Path(path)
    for ext in (".nii.gz", ".nii"):
        if p.name.endswith(ext):
            return p.with_name(p.name[: -len(ext)])
    return p


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """Read a BIDS JSON sidecar and drop patient identifiers.

    Raises
    ------
    InputDataError
        If the file is not valid JSON or not a JSON object.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> p = Path(tempfile.mkdtemp()) / "dwi.json"
    >>> _ = p.write_text(json.dumps({"EchoTime": 0.068, "PatientName": "Doe^Jane"}))
    >>> read_sidecar(p)                                  # identifiers dropped
    {'EchoTime': 0.068}
    """
    p = Path(path)
    try:
        meta = json.loads(p.read_text())
    except (OSError, ValueError) as err:
        raise InputDataError(f"cannot read JSON sidecar {p}: {err}") from err
    if not isinstance(meta, dict):
        raise InputDataError(f"JSON sidecar {p} must hold an object, not {type(meta).__name__}.")
    return strip_phi(meta)


def _load_image(path: Path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except FileNotFoundError as err:
        raise InputDataError(f"file not found: {path}") from err
    except Exception as err:  # nibabel raises many types for corrupt files
        raise InputDataError(
            f"cannot read {path} as NIfTI ({type(err).__name__}: {err}); check the file is a "
            "complete .nii or .nii.gz image."
        ) from err


def _read_data(img, path: Path) -> np.ndarray:
    """``np.asanyarray(img.dataobj)`` (on-disk dtype), reading a ``.nii.gz`` chunk by chunk.

    nibabel decompresses a gzipped image in one call, so a temporary as large as the data exists
    next to the result: the load peaks at twice the data (issue 21). Reading 16 MiB at a time
    into the final (Fortran-ordered) array keeps the peak at the data itself. Anything else
    (uncompressed, scaled, other compressions) is left to nibabel.
    """
    proxy = img.dataobj
    fname = getattr(proxy, "file_like", None)
    if (not isinstance(fname, (str, os.PathLike)) or not str(fname).endswith(".gz")
            or getattr(proxy, "slope", 1.0) != 1.0 or getattr(proxy, "inter", 0.0) != 0.0
            or getattr(proxy, "order", "F") != "F"):
        return np.asanyarray(proxy)
    import gzip

    out = np.empty(proxy.shape, dtype=proxy.dtype, order="F")
    buf = memoryview(out.reshape(-1, order="F").view(np.uint8))
    step, pos = 16 * 2**20, 0
    try:
        with gzip.open(fname, "rb") as f:
            f.seek(int(proxy.offset))
            while pos < len(buf):
                n = f.readinto(buf[pos:pos + step])
                if not n:
                    break
                pos += n
    except (OSError, EOFError) as err:
        raise InputDataError(f"cannot read {path}: {err}; check the file is a complete .nii.gz image.") from err
    if pos < len(buf):
        raise InputDataError(f"{path} is truncated: expected {len(buf)} bytes of image data, got {pos}; "
                             "check the file is a complete .nii.gz image.")
    return out


def load_nifti_dwi(
    path: str | os.PathLike,
    *,
    bvals: str | os.PathLike | np.ndarray | None = None,
    bvecs: str | os.PathLike | np.ndarray | None = None,
    sidecar: str | os.PathLike | None = None,
    b0_threshold: float = DEFAULT_B0_THRESHOLD,
) -> DWISeries:
    """Load a 4-D NIfTI DWI with its gradients (and BIDS sidecar when present).

    Parameters
    ----------
    path : path-like
        ``.nii`` or ``.nii.gz`` file.
    bvals, bvecs : path-like or array, optional
        Gradient files or arrays; by default ``<stem>.bval``/``<stem>.bvec`` beside the image
        (or FSL's ``bvals``/``bvecs`` in the same folder).
    sidecar : path-like, optional
        BIDS JSON sidecar; by default ``<stem>.json`` when it exists.
    b0_threshold : float, optional
        s/mm²; volumes at or below count as b=0.

    Returns
    -------
    DWISeries

    Raises
    ------
    InputDataError
        Unreadable image, 3-D data, NaN/inf voxels.
    GradientError
        Missing or mismatched gradient files.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.core.image import DWISeries
    >>> tmp = Path(tempfile.mkdtemp())
    >>> b = np.array([0.0, 800.0])
    >>> s = DWISeries(np.full((4, 3, 2, 2), 100.0) * np.exp(-b * 1e-3), np.diag([2.0, 2.0, 4.0, 1.0]), b,
    ...               [[0, 0, 0], [0, 0, 1]])
    >>> _ = save_dwi(s, tmp / "dwi.nii.gz")
    >>> back = load_nifti_dwi(tmp / "dwi.nii.gz")
    >>> back.bvals.tolist(), np.allclose(back.affine, s.affine)
    ([0.0, 800.0], True)
    """
    p = Path(path)
    img = _load_image(p)
    data = _read_data(img, p)
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if data.ndim != 4:
        raise InputDataError(
            f"{p} holds {data.ndim}-D data of shape {data.shape}; a DWI series must be 4-D "
            "(X, Y, Z, volumes). Did you pick a single volume or a derived map?"
        )
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        n_bad = int((~np.isfinite(data)).sum())
        logger.warning("%s: %d NaN/inf samples; those voxels will not be fitted", p.name, n_bad)

    auto_bval, auto_bvec = find_gradient_files(p)
    n = data.shape[3]
    if bvals is None:
        if auto_bval is None:
            raise GradientError(
                f"no .bval file found beside {p} (looked for {nifti_stem(p).name}.bval and bvals); "
                "pass bvals=... (or --bvals on the command line)."
            )
        bvals = auto_bval
    if bvecs is None:
        if auto_bvec is None:
            raise GradientError(
                f"no .bvec file found beside {p} (looked for {nifti_stem(p).name}.bvec and bvecs); "
                "pass bvecs=... (or --bvecs on the command line)."
            )
        bvecs = auto_bvec
    b = read_bvals(bvals) if isinstance(bvals, (str, os.PathLike)) else np.asarray(bvals, float)
    if b.size != n:
        raise GradientError(
            f"{p.name} has {n} volumes but the b-values list {b.size}; check that the .bval file "
            "belongs to this image."
        )
    v = read_bvecs(bvecs, n) if isinstance(bvecs, (str, os.PathLike)) else np.asarray(bvecs, float)
    meta: dict[str, Any] = {}
    side = Path(sidecar) if sidecar is not None else nifti_stem(p).with_suffix(".json")
    if sidecar is not None or side.is_file():
        meta = read_sidecar(side)
    return DWISeries(data, img.affine, b, v, meta=meta, b0_threshold=b0_threshold)


def _nifti_target(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not (p.name.endswith(".nii") or p.name.endswith(".nii.gz")):
        p = p.with_name(p.name + ".nii.gz")
    return p


def save_dwi(series: DWISeries, path: str | os.PathLike) -> dict[str, Path]:
    """Write a series as NIfTI + ``.bval`` + ``.bvec`` + ``.json`` sidecar, each atomically.

    Parameters
    ----------
    series : DWISeries
    path : path-like
        Target image, ``.nii`` or ``.nii.gz`` (``.nii.gz`` is appended when absent).

    Returns
    -------
    dict
        Paths written, keyed ``"nifti"``, ``"bval"``, ``"bvec"``, ``"json"``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.core.image import DWISeries
    >>> tmp = Path(tempfile.mkdtemp())
    >>> b = np.array([0.0, 800.0])
    >>> s = DWISeries(np.full((4, 3, 2, 2), 100.0) * np.exp(-b * 1e-3), np.diag([2.0, 2.0, 4.0, 1.0]), b,
    ...               [[0, 0, 0], [0, 0, 1]])
    >>> sorted(p.name for p in save_dwi(s, tmp / "dwi.nii.gz").values())
    ['dwi.bval', 'dwi.bvec', 'dwi.json', 'dwi.nii.gz']
    """
    import nibabel as nib

    target = _nifti_target(path)
    stem = nifti_stem(target)
    with atomic_path(target) as tmp:
        nib.save(series.to_nifti(), str(tmp))
    out = {
        "nifti": target,
        "bval": write_bvals(stem.with_suffix(".bval"), series.bvals),
        "bvec": write_bvecs(stem.with_suffix(".bvec"), series.bvecs),
    }
    meta = dict(series.meta)
    meta.setdefault("ConversionSoftware", "dwi_toolkit")
    meta.setdefault("ConversionSoftwareVersion", __version__)
    out["json"] = atomic_write_text(
        stem.with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"
    )
    logger.info("wrote %s (+ .bval/.bvec/.json)", target)
    return out


def save_map(pmap: ParameterMap, path: str | os.PathLike) -> Path:
    """Write a parameter map as NIfTI (float32), atomically; its unit goes into ``descrip``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.core.image import ParameterMap
    >>> p = save_map(ParameterMap(np.full((2, 2, 1), 1.1e-3), np.eye(4), "adc", "mm^2/s"),
    ...              Path(tempfile.mkdtemp()) / "adc.nii.gz")
    >>> load_map(p).unit
    'mm^2/s'
    """
    import nibabel as nib

    target = _nifti_target(path)
    data = np.asarray(pmap.data)
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    img = nib.Nifti1Image(data, pmap.affine)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = f"{pmap.name} [{pmap.unit}]".encode()[:79]
    with atomic_path(target) as tmp:
        nib.save(img, str(tmp))
    return target


def load_map(path: str | os.PathLike, *, name: str | None = None, unit: str = "") -> ParameterMap:
    """Read a 3-D NIfTI parameter map (e.g. one written by :func:`save_map`).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.core.image import ParameterMap
    >>> p = save_map(ParameterMap(np.full((2, 2, 1), 1.1e-3), np.eye(4), "adc", "mm^2/s"),
    ...              Path(tempfile.mkdtemp()) / "adc.nii.gz")
    >>> m = load_map(p, name="adc")
    >>> m, round(float(m.data.mean()) * 1e3, 3)
    (ParameterMap(name='adc', unit='mm^2/s', shape=(2, 2, 1)), 1.1)
    """
    p = Path(path)
    img = _load_image(p)
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputDataError(f"{p} must hold a 3-D map, got shape {data.shape}.")
    descrip = img.header.get("descrip")
    text = bytes(descrip).split(b"\0")[0].decode(errors="replace") if descrip is not None else ""
    if not unit and "[" in text and text.endswith("]"):
        unit = text[text.index("[") + 1 : -1]
    return ParameterMap(data, img.affine, name or nifti_stem(p).name, unit)
