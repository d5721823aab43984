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
from ._guard import check_array_size, reading
from ._phi import strip_phi
from .gradients import find_gradient_files, read_bvals, read_bvecs, write_bvals, write_bvecs

__all__ = ["load_nifti_dwi", "save_dwi", "save_map", "load_map", "nifti_stem", "read_sidecar", "dcm2niix_header",
           "nifti_shape"]

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


def read_sidecar(path: str | os.PathLike, *, scrub_text: bool = True) -> dict[str, Any]:
    """Read a BIDS JSON sidecar and drop patient identifiers (free text scrubbed unless `scrub_text` is False).

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
    except (OSError, ValueError, RecursionError) as err:
        raise InputDataError(f"cannot read JSON sidecar {p}: {err}") from err
    if not isinstance(meta, dict):
        raise InputDataError(f"JSON sidecar {p} must hold an object, not {type(meta).__name__}.")
    if not scrub_text:
        return strip_phi(meta)
    from ._scrub import scrub_meta

    return scrub_meta(strip_phi(meta), meta)  # free text scrubbed with the names the sidecar held


def _load_image(path: Path):
    import nibabel as nib

    try:
        return nib.load(str(path))
    except FileNotFoundError as err:
        raise InputDataError(f"file not found: {path}") from err
    except Exception as err:  # nibabel raises many types for corrupt files
        why = _gzip_problem(path)
        if why:
            raise InputDataError(f"cannot read {path}: {why}") from err
        raise InputDataError(
            f"cannot read {path} as NIfTI ({type(err).__name__}: {err}); check the file is a "
            "complete .nii or .nii.gz image."
        ) from err


def _gzip_problem(path: Path) -> str | None:
    """Why a gzip-compressed file cannot be decompressed (None when it can, or is not gzip)."""
    import gzip
    import zlib

    try:
        with open(path, "rb") as fh:
            if fh.read(2) != b"\x1f\x8b":
                return None
        with gzip.open(path, "rb") as gz:
            while gz.read(1 << 22):
                pass
    except EOFError:
        return ("the gzip stream ends early, so the file is truncated (an interrupted copy or a full "
                "disk?); copy or export it again.")
    except (OSError, zlib.error) as err:
        return f"the gzip stream is damaged ({err}); copy or export the file again."
    return None


def nifti_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The array shape a NIfTI header declares (no voxel data read).

    Raises
    ------
    InputDataError
        Missing, truncated or non-NIfTI file (the message says which).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.core.image import ParameterMap
    >>> p = save_map(ParameterMap(np.zeros((2, 3, 1)), np.eye(4), "adc", "mm^2/s"), Path(tempfile.mkdtemp()) / "m.nii")
    >>> nifti_shape(p)
    (2, 3, 1)
    """
    p = Path(path)
    img = _load_image(p)
    with reading(p, "a NIfTI image", hint="its header is damaged; copy or export it again"):
        return tuple(int(d) for d in img.header.get_data_shape())


def _read_data(path: Path, img) -> np.ndarray:
    """The voxel array, refusing implausible header sizes before allocating; read errors become ours."""
    with reading(path, "a NIfTI image", hint="its header is damaged; copy or export it again"):
        shape = tuple(int(d) for d in img.header.get_data_shape())
        check_array_size(path, shape, max(np.dtype(img.header.get_data_dtype()).itemsize, 8))
    try:
        with reading(path, "a NIfTI image", hint="the file is damaged or incomplete (an interrupted copy, a "
                     "full disk?): copy or export it again"):
            return _read_array(img, path)
    except InputDataError as err:
        why = _gzip_problem(path)
        if why:
            raise InputDataError(f"cannot read {path}: {why}") from err.__cause__
        raise


def _read_array(img, path: Path) -> np.ndarray:
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
    scrub_text: bool = True,
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
    scrub_text : bool, optional
        Mask identifiers typed into the sidecar's free-text fields (default True).

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
    data = _read_data(p, img)
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
                "pass bvals=... (command line: --bvals; dwi-toolkit run only reads a .bval beside the NIfTI)."
            )
        bvals = auto_bval
    if bvecs is None:
        if auto_bvec is None:
            raise GradientError(
                f"no .bvec file found beside {p} (looked for {nifti_stem(p).name}.bvec and bvecs); "
                "pass bvecs=... (command line: --bvecs; dwi-toolkit run only reads a .bvec beside the NIfTI)."
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
        meta = read_sidecar(side, scrub_text=scrub_text)
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
        nib.save(dcm2niix_header(series.to_nifti(), series.meta), str(tmp))
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


def _dim_info(meta: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    """(freq, phase, slice) axes (0-based) from the sidecar's phase-encoding axis, as dcm2niix sets dim_info."""
    pe = str(meta.get("PhaseEncodingDirection") or meta.get("PhaseEncodingAxis") or "")[:1]
    if not pe:
        rc = meta.get("InPlanePhaseEncodingDirectionDICOM")
        pe = {"COL": "j", "ROW": "i"}.get(str(rc), "")
    if pe == "i":
        return 1, 0, 2
    if pe == "j":
        return 0, 1, 2
    return None, None, 2


def _descrip(meta: dict[str, Any]) -> str:
    """dcm2niix's ``descrip``: ``TE=<ms, 2 digits>;phase=<polarity>;mb=<factor>`` (no acquisition time)."""
    parts = []
    te = meta.get("EchoTime")
    if isinstance(te, (int, float)) and te > 0:
        parts.append(f"TE={te * 1000:.2g}")
    pe = str(meta.get("PhaseEncodingDirection") or "")
    if pe[:1] in ("i", "j"):
        negative = pe.endswith("-")
        parts.append(f"phase={int(negative) if pe[0] == 'j' else int(not negative)}")
    mb = meta.get("MultibandAccelerationFactor")
    if isinstance(mb, int) and mb > 1:
        parts.append(f"mb={mb}")
    return ";".join(parts)


def dcm2niix_header(img: Any, meta: dict[str, Any] | None = None) -> Any:
    """Set the NIfTI header of a DWI image as dcm2niix writes it (returns a new image).

    qform = sform = the affine with code 1 (scanner), integer voxels stored as int16 when every
    value fits (lossless), TR (s) in ``pixdim[4]``, units mm and s, ``dim_info`` from the sidecar's
    phase-encoding axis (slice axis 3) and ``descrip`` ``TE=..;phase=..;mb=..``. The
    acquisition time that dcm2niix also puts in ``descrip`` is left out (no identifying
    details in outputs).

    Parameters
    ----------
    img : nibabel.Nifti1Image
    meta : dict, optional
        BIDS sidecar of the image (``RepetitionTime`` s, ``EchoTime`` s, ``PhaseEncodingDirection``).

    Returns
    -------
    nibabel.Nifti1Image

    Examples
    --------
    >>> import nibabel as nib
    >>> img = nib.Nifti1Image(np.arange(24, dtype=np.uint16).reshape(2, 3, 2, 2), np.eye(4))
    >>> h = dcm2niix_header(img, {"RepetitionTime": 3.5, "EchoTime": 0.068, "PhaseEncodingDirection": "j-"}).header
    >>> int(h["qform_code"]), int(h["sform_code"]), h.get_data_dtype().name, float(h["pixdim"][4])
    (1, 1, 'int16', 3.5)
    >>> h.get_dim_info(), h["descrip"].item().decode()
    ((0, 1, 2), 'TE=68;phase=1')
    """
    import nibabel as nib

    meta = meta or {}
    data = np.asanyarray(img.dataobj)
    if data.dtype.kind in "ui" and data.size and data.min() >= -32768 and data.max() <= 32767:
        data = data.astype(np.int16)
    out = nib.Nifti1Image(data, img.affine)
    out.set_qform(img.affine, code=1)
    out.set_sform(img.affine, code=1)
    out.header.set_xyzt_units("mm", "sec")
    tr = meta.get("RepetitionTime")
    if isinstance(tr, (int, float)) and tr > 0 and data.ndim == 4:
        out.header["pixdim"][4] = float(tr)
    freq, phase, slc = _dim_info(meta)
    out.header.set_dim_info(freq=freq, phase=phase, slice=slc)
    out.header["descrip"] = _descrip(meta).encode()[:79]
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
    data = _read_data(p, img)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputDataError(f"{p} must hold a 3-D map, got shape {data.shape}.")
    descrip = img.header.get("descrip")
    text = bytes(descrip).split(b"\0")[0].decode(errors="replace") if descrip is not None else ""
    if not unit and "[" in text and text.endswith("]"):
        unit = text[text.index("[") + 1 : -1]
    return ParameterMap(data, img.affine, name or nifti_stem(p).name, unit)
