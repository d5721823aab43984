"""Streamline files of tracked roots: TCK, TRK (nibabel.streamlines) and TRX (trx-python, optional).

Per-root grouping is kept by writing one file per root, ``<prefix><level>_<side>.<ext>``
(e.g. ``roots_L5_left.tck``), plus a JSON index (``<prefix>index.json``) listing level, side,
file, streamline counts and the reference grid. One file per root opens directly in MRtrix3
(``mrview -tractography.load``), DSI Studio, dipy (``load_tractogram``) and 3D Slicer
(SlicerDMRI), which all read TCK/TRK. Points are RAS+ mm world coordinates (TCK stores them as
is; TRK stores them in its voxmm space with the reference affine in the header, and nibabel
converts back to RAS+ mm on load). TRX needs the optional extra ``pip install
dwi-toolkit[tracts]``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..errors import InputDataError
from ._atomic import atomic_path, atomic_write_text

__all__ = ["FORMATS", "save_streamlines", "load_streamlines", "save_root_tracts", "load_root_tracts"]

#: Streamline formats written by :func:`save_streamlines`.
FORMATS = ("tck", "trk", "trx")


def _header(affine: NDArray, shape: tuple) -> dict[str, Any]:
    from nibabel.streamlines import Field

    vox = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(0))
    return {Field.VOXEL_TO_RASMM: np.asarray(affine, float), Field.DIMENSIONS: np.asarray(shape[:3], np.int16),
            Field.VOXEL_SIZES: vox.astype(np.float32), Field.VOXEL_ORDER: "".join(
                __import__("nibabel").orientations.aff2axcodes(affine))}


def save_streamlines(path: str | os.PathLike, streamlines: list, affine: NDArray, shape: tuple) -> Path:
    """Write streamlines (list of (K, 3) RAS+ mm arrays) as TCK, TRK or TRX (by extension), atomically.

    Parameters
    ----------
    path : path
        ``.tck``, ``.trk`` or ``.trx``.
    streamlines : list of ndarray (K, 3)
        RAS+ mm.
    affine : ndarray (4, 4)
        Voxel → RAS+ mm affine of the reference image (stored in TRK/TRX headers).
    shape : tuple
        Reference grid shape (X, Y, Z).

    Examples
    --------
    >>> import tempfile
    >>> p = save_streamlines(Path(tempfile.mkdtemp()) / "r.tck", [np.array([[0.0, 0, 0], [1, 2, 3]])], np.eye(4), (4, 4, 4))
    >>> load_streamlines(p)[0].tolist()
    [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]
    """
    import nibabel as nib
    from nibabel.streamlines import Tractogram

    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext not in FORMATS:
        raise InputDataError(f"unknown streamline format {path.suffix!r}; use one of {['.' + f for f in FORMATS]}.")
    sl = [np.asarray(s, np.float32) for s in streamlines]
    if ext == "trx":
        return _save_trx(path, sl, affine, shape)
    tg = Tractogram(sl, affine_to_rasmm=np.eye(4))
    with atomic_path(path) as tmp:
        if ext == "tck":
            nib.streamlines.TckFile(tg).save(str(tmp))
        else:
            nib.streamlines.TrkFile(tg, header=_header(affine, shape)).save(str(tmp))
    return path


def _save_trx(path: Path, sl: list, affine: NDArray, shape: tuple) -> Path:
    try:
        from trx.trx_file_memmap import TrxFile, save
    except ImportError as err:
        raise ImportError("TRX needs trx-python: pip install 'dwi-toolkit[tracts]' (or write .tck/.trk).") from err
    import nibabel as nib
    from dipy.io.stateful_tractogram import Space, StatefulTractogram

    ref = nib.Nifti1Image(np.zeros(tuple(shape[:3]), np.uint8), np.asarray(affine, float))
    trx = TrxFile.from_sft(StatefulTractogram(sl, ref, Space.RASMM))
    with atomic_path(path) as tmp:
        save(trx, str(tmp))
    return path


def load_streamlines(path: str | os.PathLike) -> list[NDArray[np.float32]]:
    """Streamlines of a TCK/TRK (nibabel) or TRX (trx-python) file, in RAS+ mm.

    Examples
    --------
    >>> import tempfile
    >>> p = save_streamlines(Path(tempfile.mkdtemp()) / "r.trk", [np.array([[1.0, 1, 1], [2, 2, 2]])], np.eye(4), (4, 4, 4))
    >>> load_streamlines(p)[0].tolist()
    [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]
    """
    path = Path(path)
    if path.suffix.lower() == ".trx":
        from trx.trx_file_memmap import load

        trx = load(str(path))
        return [np.asarray(s, np.float32) for s in trx.streamlines]
    import nibabel as nib

    return [np.asarray(s, np.float32) for s in nib.streamlines.load(str(path)).streamlines]


def save_root_tracts(tracts: Any, out_dir: str | os.PathLike, *, fmt: str = "tck", prefix: str = "roots_") -> Path:
    """One streamline file per root plus ``<prefix>index.json``; returns the index path.

    Parameters
    ----------
    tracts : RootTracts
        From :func:`dwi_toolkit.tracts.track_roots`.
    out_dir : path
        Created if needed.
    fmt : {"tck", "trk", "trx"}, optional
    prefix : str, optional

    Examples
    --------
    >>> import tempfile
    >>> from dwi_toolkit.phantom_roots import make_root_phantom
    >>> from dwi_toolkit.tracts import track_roots
    >>> ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30)
    >>> idx = save_root_tracts(track_roots(ph.series, ph.seeds, mask=ph.body_mask), tempfile.mkdtemp())
    >>> sorted(load_root_tracts(idx))
    [('L5', 'left'), ('L5', 'right')]
    """
    fmt = fmt.lower().lstrip(".")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    roots = []
    for b in tracts:
        name = f"{prefix}{b.level}_{b.side}.{fmt}"
        save_streamlines(out / name, b.streamlines, tracts.affine, tracts.shape)
        roots.append({"level": b.level, "side": b.side, "file": name, "n_streamlines": b.n_kept,
                      "n_seeds": b.n_seeds, "n_tracked": b.n_tracked, "rejected": dict(b.rejected),
                      "centerline_ras_mm": np.round(b.centerline, 3).tolist(),
                      "origin_arc_mm": b.origin_arc_mm, "origin": b.origin_source,
                      "origin_sd_mm": b.origin_sd_mm})
    doc = {"format": fmt, "frame": "RAS+ mm", "affine": np.asarray(tracts.affine).tolist(),
           "shape": list(tracts.shape[:3]), "orientation": "proximal (midline) to distal",
           "params": dict(tracts.params.__dict__), "roots": roots}
    return atomic_write_text(out / f"{prefix}index.json", json.dumps(doc, indent=1))


def load_root_tracts(index: str | os.PathLike) -> dict[tuple[str, str], list[NDArray[np.float32]]]:
    """(level, side) → streamlines, from an index written by :func:`save_root_tracts`.

    Examples
    --------
    >>> load_root_tracts.__name__
    'load_root_tracts'
    """
    index = Path(index)
    try:
        doc = json.loads(index.read_text(encoding="utf-8"))
        roots: list[Mapping[str, Any]] = doc["roots"]
    except (OSError, ValueError, KeyError) as err:
        raise InputDataError(f"{index}: not a root-tract index ({err}); expected the JSON written by "
                             "save_root_tracts.") from err
    return {(r["level"], r["side"]): load_streamlines(index.parent / r["file"]) for r in roots}
