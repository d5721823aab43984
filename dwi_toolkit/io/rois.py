"""Nerve-root ROI files: dwi_toolkit JSON, NIfTI label maps, 3D Slicer markups, ITK-SNAP labels.

Formats (see ``docs/rois.md`` for the full description):

``*.json`` — dwi_toolkit ROI JSON, schema ``"dwi_toolkit.rois/1"``
    Shapes in RAS+ millimetres, with the frame and units written in the file.
``*_dseg.nii.gz`` + ``*_dseg.tsv`` — label map, BIDS-derivatives style
    Integer labels; the TSV table has ``index`` and ``name`` columns with names like
    ``L5_left_ganglion``. Labels become :class:`~dwi_toolkit.roi.model.VoxelMask` ROIs.
``*.mrk.json`` — 3D Slicer markups
    Point lists (``Fiducial``) ↔ spheres (radius from the control point's description
    ``radius_mm=3`` or a default), ``Curve``/``Line`` ↔ tubes, ``ClosedCurve`` ↔ polygons. The
    ``coordinateSystem`` field (``LPS`` or ``RAS``) is honoured; we write ``LPS`` like Slicer.
ITK-SNAP label description (``.txt``/``.label``)
    Names for the labels of a NIfTI label image (import).

:func:`load_rois` detects the format from content and extension; :func:`save_rois` chooses it
from the extension.
"""

from __future__ import annotations

import csv
import io as _io
import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..core import affines as _aff
from ..errors import InputDataError, RoiError
from ..roi.masks import grid_of, label_map
from ..roi.model import (
    Polygon, RootROI, RoiSet, Shape, Sphere, Tube, VoxelMask, parse_roi_name,
)
from ._atomic import atomic_path, atomic_write_text
from ._phi import strip_phi

__all__ = [
    "SCHEMA",
    "load_rois",
    "save_rois",
    "rois_to_json",
    "rois_from_json",
    "rois_to_slicer",
    "rois_from_slicer",
    "read_itksnap_labels",
    "format_itksnap_labels",
    "root_from_file_name",
    "load_label_map",
    "save_label_map",
]

logger = logging.getLogger(__name__)

#: Schema identifier written into (and required from) dwi_toolkit ROI JSON files.
SCHEMA = "dwi_toolkit.rois/1"
_SCHEMA_PREFIX = "dwi_toolkit.rois/"
_SLICER_SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/"
    "Schema/markups-schema-v1.0.3.json#"
)
#: RAS+ ↔ LPS: flip x and y.
_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
DEFAULT_RADIUS_MM = 3.0


# ---------------------------------------------------------------------------------- helpers
def _is_nifti(path: Path) -> bool:
    n = path.name.lower()
    return n.endswith(".nii") or n.endswith(".nii.gz")


def _stem(path: Path) -> Path:
    n = path.name
    for ext in (".nii.gz", ".nii", ".mrk.json", ".json", ".tsv", ".txt", ".label"):
        if n.lower().endswith(ext):
            return path.with_name(n[: -len(ext)])
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputDataError(f"ROI file not found: {path}") from err
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RoiError(f"cannot read {path} as JSON: {err}") from err


def _reference_grid(reference: Any) -> tuple[tuple[int, int, int], np.ndarray]:
    if isinstance(reference, (str, os.PathLike)):
        import nibabel as nib

        try:
            img = nib.load(str(reference))
        except Exception as err:  # nibabel raises many types
            raise InputDataError(f"cannot read reference image {reference}: {err}") from err
        return grid_of((img.shape, img.affine))
    return grid_of(reference)


# ------------------------------------------------------------------------- dwi_toolkit JSON
def rois_to_json(rois: RoiSet, *, reference: Any = None) -> dict[str, Any]:
    """The JSON document (a dict) for an ROI set, schema :data:`SCHEMA`.

    Parameters
    ----------
    rois : RoiSet
    reference : optional
        Image grid the ROIs were drawn on (``(shape, affine)``, an image object or a NIfTI path);
        stored as ``"reference"`` so readers can check the ROIs belong to a scan.

    Examples
    --------
    >>> doc = rois_to_json(RoiSet([RootROI("L5", "left", shape=Sphere([-20, 0, 0], 3))]))
    >>> doc["schema"], doc["coordinate_system"], doc["rois"][0]["name"]
    ('dwi_toolkit.rois/1', 'RAS+', 'L5_left_ganglion')
    """
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "coordinate_system": "RAS+",
        "units": {"coordinates": "mm", "radius_mm": "mm", "thickness_mm": "mm", "distance_mm": "mm"},
        "generator": f"dwi_toolkit {__version__}",
        "meta": strip_phi(dict(rois.meta)),
        "rois": [r.to_dict() for r in rois],
    }
    if reference is not None:
        shape, affine = _reference_grid(reference)
        doc["reference"] = {"shape": list(shape), "affine": np.asarray(affine).tolist()}
    return doc


def rois_from_json(doc: Mapping[str, Any], *, source: str = "ROI JSON") -> RoiSet:
    """Build an ROI set from a dwi_toolkit ROI JSON document (see :func:`rois_to_json`).

    Raises
    ------
    RoiError
        Missing or newer schema, unknown coordinate system, malformed ROI entries (the message
        names the entry).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere
    >>> tmp = Path(tempfile.mkdtemp())
    >>> rois = RoiSet([RootROI("L5", "left", shape=Sphere([-20, 0, 0], 3.0)), RootROI("L5", "right", shape=Sphere([20, 0, 0], 3.0))])
    >>> rois_from_json(rois_to_json(rois)) == rois
    True
    """
    if not isinstance(doc, Mapping):
        raise RoiError(f"{source}: expected a JSON object, got {type(doc).__name__}.")
    schema = str(doc.get("schema", ""))
    if not schema.startswith(_SCHEMA_PREFIX):
        raise RoiError(
            f"{source}: not a dwi_toolkit ROI file (schema {schema or 'missing'!r}, expected "
            f"{SCHEMA!r})."
        )
    if schema != SCHEMA:
        raise RoiError(
            f"{source}: schema {schema!r} is not supported by dwi_toolkit {__version__} (reads "
            f"{SCHEMA!r}); update dwi_toolkit."
        )
    frame = str(doc.get("coordinate_system", "RAS+")).upper().rstrip("+")
    if frame not in ("RAS", "LPS"):
        raise RoiError(f"{source}: coordinate_system {doc.get('coordinate_system')!r} must be 'RAS+' or 'LPS'.")
    entries = doc.get("rois")
    if not isinstance(entries, list):
        raise RoiError(f"{source}: 'rois' must be a list of ROI objects.")
    rois = []
    for i, entry in enumerate(entries):
        try:
            roi = RootROI.from_dict(entry)
        except RoiError as err:
            raise RoiError(f"{source}: ROI #{i + 1}: {err}") from err
        if frame == "LPS":
            roi = roi.replace(shape=roi.shape.transformed(_LPS))  # type: ignore[union-attr]
        rois.append(roi)
    meta = dict(doc.get("meta") or {})
    if "reference" in doc:
        meta.setdefault("reference", doc["reference"])
    try:
        return RoiSet(rois, meta)
    except RoiError as err:
        raise RoiError(f"{source}: {err}") from err


# ---------------------------------------------------------------------------- 3D Slicer
def _fmt_description(roi: RootROI, extra: Mapping[str, Any]) -> str:
    # repr() of a float round-trips exactly
    parts = [f"{k}={float(v)!r}" for k, v in extra.items() if v is not None]
    if roi.distance_mm is not None:
        parts.append(f"distance_mm={float(roi.distance_mm)!r}")
    if roi.notes:
        parts.append(f"notes={roi.notes}")
    return "; ".join(parts)


def _parse_description(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    head, sep, notes = (text or "").partition("notes=")
    for key in ("radius_mm", "thickness_mm", "distance_mm"):
        m = re.search(rf"{key}\s*=\s*([-+0-9.eEinfa]+)", head)
        if m:
            try:
                out[key] = float(m.group(1))
            except ValueError:
                pass
    if sep:
        out["notes"] = notes
    return out


def _control_point(idx: int, label: str, pos_lps: np.ndarray, description: str = "") -> dict[str, Any]:
    return {
        "id": str(idx), "label": label, "description": description, "associatedNodeID": "",
        "position": [float(v) for v in pos_lps],
        "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
        "selected": True, "locked": False, "visibility": True, "positionStatus": "defined",
    }


def _markup(kind: str, points: list[dict[str, Any]], frame: str, name: str | None = None) -> dict[str, Any]:
    m: dict[str, Any] = {
        "type": kind, "coordinateSystem": frame, "coordinateUnits": "mm", "locked": False,
        "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d",
        "lastUsedControlPointNumber": len(points), "controlPoints": points, "measurements": [],
    }
    if name is not None:
        m["name"] = name
    return m


def rois_to_slicer(rois: RoiSet, *, coordinate_system: str = "LPS") -> dict[str, Any]:
    """A 3D Slicer markups document (``.mrk.json``) for an ROI set.

    Spheres go into one point list (``Fiducial``): each control point is labelled with the ROI
    name and carries ``radius_mm=…`` in its description. Tubes become ``Curve`` markups and
    polygons ``ClosedCurve`` markups, each labelled ``<name>-<k>``.

    Raises
    ------
    RoiError
        For voxel-mask ROIs (no markups equivalent: save a label map instead).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere
    >>> tmp = Path(tempfile.mkdtemp())
    >>> rois = RoiSet([RootROI("L5", "left", shape=Sphere([-20, 0, 0], 3.0)), RootROI("L5", "right", shape=Sphere([20, 0, 0], 3.0))])
    >>> doc = rois_to_slicer(rois)                       # LPS: x is negated
    >>> [cp["position"][0] for cp in doc["markups"][0]["controlPoints"]]
    [20.0, -20.0]
    """
    frame = coordinate_system.upper().rstrip("+")
    if frame not in ("LPS", "RAS"):
        raise RoiError(f"Slicer coordinateSystem must be 'LPS' or 'RAS', got {coordinate_system!r}.")
    to_frame = _LPS if frame == "LPS" else np.eye(4)
    spheres: list[dict[str, Any]] = []
    markups: list[dict[str, Any]] = []
    for roi in rois:
        shape = roi.shape
        if isinstance(shape, Sphere):
            pos = _aff.apply_affine(to_frame, shape.center)
            spheres.append(_control_point(len(spheres) + 1, roi.name, pos,
                                          _fmt_description(roi, {"radius_mm": shape.radius_mm})))
        elif isinstance(shape, (Tube, Polygon)):
            pts = _aff.apply_affine(to_frame, shape.points)
            extra = ({"radius_mm": shape.radius_mm} if isinstance(shape, Tube)
                     else {"thickness_mm": shape.thickness_mm})
            desc = _fmt_description(roi, extra)
            cps = [_control_point(k + 1, f"{roi.name}-{k + 1}", p, desc if k == 0 else "")
                   for k, p in enumerate(pts)]
            markups.append(_markup("Curve" if isinstance(shape, Tube) else "ClosedCurve", cps, frame, roi.name))
        else:
            raise RoiError(
                f"ROI {roi.name} is a {shape.kind}, which 3D Slicer markups cannot hold; save it "  # type: ignore[union-attr]
                "as a label map (*_dseg.nii.gz) instead."
            )
    if spheres:
        markups.insert(0, _markup("Fiducial", spheres, frame))
    return {"@schema": _SLICER_SCHEMA, "markups": markups}


def _roi_from_label(label: str, source: str) -> tuple[str, str, str]:
    text = re.sub(r"-\d+$", "", str(label).strip())
    try:
        return parse_roi_name(text)
    except RoiError as err:
        raise RoiError(
            f"{source}: control point label {label!r} does not name a nerve root ({err}) Rename "
            "it in Slicer to e.g. 'L5_left_ganglion' (level, side, optional segment)."
        ) from err


def root_from_file_name(path: str | os.PathLike) -> str | None:
    """The nerve-root name a file name carries (``L5_left.mrk.json`` → ``"L5_left_ganglion"``), or None.

    3D Slicer never stores a markup's name in its ``.mrk.json`` files, so a single ROI saved from
    Slicer is often named by its file. Leading entities such as ``sub-01_`` are skipped.

    Examples
    --------
    >>> root_from_file_name("sub-01_L5_left.mrk.json"), root_from_file_name("OC.mrk.json")
    ('L5_left_ganglion', None)
    """
    tokens = _stem(Path(path)).name.split("_")
    for start in range(len(tokens)):
        try:
            return "_".join(parse_roi_name("_".join(tokens[start:])))
        except RoiError:
            continue
    return None


def _slicer_root(keys: list[str], labels: Mapping[str, str] | None, fallback: str | None,
                 source: str) -> tuple[str, str, str]:
    """(level, side, segment) of a Slicer markup or point from its labels ``keys``: the user's
    mapping (by label or by Slicer's default name, e.g. ``"OC-1"`` or ``"OC"``), else a label that
    names a root, else the root named by the file (`fallback`); a clear error otherwise."""
    keys = [str(k).strip() for k in keys if k and str(k).strip()]
    bare = [re.sub(r"-\d+$", "", k) for k in keys]
    for key in (*keys, *bare):
        if labels and key in labels:
            return _roi_from_label(str(labels[key]), f"{source} (labels[{key!r}])")
    for key in bare:
        try:
            return parse_roi_name(key)
        except RoiError:
            continue
    if fallback is not None:
        return parse_roi_name(fallback)
    default = bare[0] if bare else "F-1"
    raise RoiError(
        f"{source}: markup labelled {keys[0] if keys else '(no label)'!r} does not name a nerve root, "
        "and 3D Slicer does not store the markup's name in the file. Say which root it is: rename "
        "the control points in Slicer (e.g. 'L5_left_ganglion'), name the file after the root (e.g. "
        f"'L5_left_ganglion.mrk.json', one ROI per file), or map Slicer's names: load_rois(path, "
        f"labels={{{default!r}: 'L5_left_ganglion'}}) (CLI: --name {default}=L5_left_ganglion)."
    )


def rois_from_slicer(doc: Mapping[str, Any], *, default_radius_mm: float = DEFAULT_RADIUS_MM,
                     source: str = "Slicer markups", labels: Mapping[str, str] | None = None,
                     file_root: str | None = None) -> RoiSet:
    """Build an ROI set from a 3D Slicer markups document (as Slicer 4.11–5.x writes them).

    The root of each point (point lists) or markup (curves) comes from, in order: `labels`, a
    mapping from Slicer's label or default name to a root (``{"OC-1": "L5_left_ganglion"}`` or
    ``{"OC": ...}``; Slicer's defaults are ``F``, ``L``, ``OC``/``C``, ``CC`` with points
    ``F-1``, ``OC-1`` …); a control-point label (or the markup's ``name``) that names the root,
    e.g. ``"L5_left_ganglion"`` or ``"L5 lt DRG"``; `file_root`, the root named by the file,
    when the document holds a single ROI. Point radii come from ``radius_mm=…`` in the
    control point's description, else `default_radius_mm`. Positions in ``LPS`` are converted
    to RAS+ (x and y negated). Unsupported markup types (angles, planes, ROI boxes) are skipped
    with a log message; points not ``defined`` are skipped.

    Raises
    ------
    RoiError
        Unnamed/unknown roots (the message says how to name them), malformed markups, or no
        usable markup at all.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere
    >>> tmp = Path(tempfile.mkdtemp())
    >>> rois = RoiSet([RootROI("L5", "left", shape=Sphere([-20, 0, 0], 3.0)), RootROI("L5", "right", shape=Sphere([20, 0, 0], 3.0))])
    >>> back = rois_from_slicer(rois_to_slicer(rois))
    >>> back.names, back.get("L5", "left").shape.center.tolist()
    (['L5_left_ganglion', 'L5_right_ganglion'], [-20.0, 0.0, 0.0])
    """
    markups = doc.get("markups") if isinstance(doc, Mapping) else None
    if not isinstance(markups, list):
        raise RoiError(f"{source}: not a 3D Slicer markups file (no 'markups' list).")
    rois: list[RootROI] = []
    n_rois = sum(sum(cp.get("positionStatus", "defined") == "defined" for cp in mk.get("controlPoints") or [])
                 if mk.get("type") in ("Fiducial", "PointList") else 1 for mk in markups if isinstance(mk, Mapping))
    fallback = file_root if n_rois == 1 else None
    for mk in markups:
        kind = str(mk.get("type", ""))
        frame = str(mk.get("coordinateSystem", "")).upper()
        if frame not in ("LPS", "RAS"):
            if frame:
                raise RoiError(f"{source}: coordinateSystem {frame!r} is not LPS or RAS.")
            logger.warning("%s: markup without coordinateSystem; assuming LPS (Slicer >= 4.11)", source)
            frame = "LPS"
        to_ras = _LPS if frame == "LPS" else np.eye(4)
        units = str(mk.get("coordinateUnits", "mm"))
        if units not in ("mm", ""):
            raise RoiError(f"{source}: coordinateUnits {units!r}; only mm is supported.")
        cps = [cp for cp in mk.get("controlPoints") or []
               if cp.get("positionStatus", "defined") == "defined" and cp.get("position") is not None]
        if not cps:
            continue
        try:
            pos = _aff.apply_affine(to_ras, np.array([cp["position"] for cp in cps], dtype=float))
        except (ValueError, TypeError) as err:
            raise RoiError(f"{source}: malformed control point positions in a {kind} markup: {err}") from err
        if kind in ("Fiducial", "PointList"):
            for cp, p in zip(cps, pos):
                level, side, segment = _slicer_root([cp.get("label", "")], labels, fallback, source)
                desc = _parse_description(cp.get("description", ""))
                shape = Sphere(p, desc.get("radius_mm", default_radius_mm))
                rois.append(RootROI(level, side, segment, shape, desc.get("notes", ""), desc.get("distance_mm")))
        elif kind in ("Curve", "OpenCurve", "Line", "ClosedCurve"):
            keys = [mk.get("name", ""), *(cp.get("label", "") for cp in cps)]
            level, side, segment = _slicer_root(keys, labels, fallback, source)
            desc = {}
            for cp in cps:
                desc.update({k: v for k, v in _parse_description(cp.get("description", "")).items()
                             if k not in desc})
            if kind == "ClosedCurve":
                shape: Shape = Polygon(pos, desc.get("thickness_mm"))
            else:
                shape = Tube(pos, desc.get("radius_mm", default_radius_mm))
            rois.append(RootROI(level, side, segment, shape, desc.get("notes", ""), desc.get("distance_mm")))
        else:
            logger.warning("%s: skipping a %s markup (only point lists, curves and closed curves "
                           "map to nerve-root ROIs)", source, kind)
    if not rois:
        raise RoiError(f"{source}: no point list, curve or closed curve with defined points found.")
    try:
        return RoiSet(rois, {"source_format": "slicer_markups"})
    except RoiError as err:
        raise RoiError(f"{source}: {err}") from err


# ------------------------------------------------------------------------------- ITK-SNAP
_ITK_LINE = re.compile(
    r'^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([0-9.eE+-]+)\s+(\d+)\s+(\d+)\s+"(.*)"\s*$'
)


def read_itksnap_labels(text: str, *, source: str = "ITK-SNAP labels") -> dict[int, str]:
    """Parse an ITK-SNAP label description file → ``{index: name}`` (index 0 omitted).

    Lines have the form ``IDX R G B A VIS MSH "LABEL"``; ``#`` lines are comments.

    Examples
    --------
    >>> read_itksnap_labels('0 0 0 0 0 0 0 "Clear Label"\\n3 255 0 0 1 1 1 "L5_left_ganglion"')
    {3: 'L5_left_ganglion'}
    """
    table: dict[int, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _ITK_LINE.match(line)
        if not m:
            raise RoiError(f"{source}, line {n}: not an ITK-SNAP label line (IDX R G B A VIS MSH \"LABEL\"): {line!r}")
        idx = int(m.group(1))
        if idx:
            table[idx] = m.group(8)
    return table


def format_itksnap_labels(table: Mapping[int, str]) -> str:
    """ITK-SNAP label description text for ``{index: name}``.

    Examples
    --------
    >>> line = format_itksnap_labels({1: "L5_left_ganglion"}).splitlines()[-1]
    >>> line.split()[0], line.split()[-1]
    ('1', '"L5_left_ganglion"')
    """
    import colorsys

    lines = ["################################################",  # the header ITK-SNAP itself writes
             "# ITK-SnAP Label Description File", "# File format: ",
             "# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL", "# Fields: ",
             "#    IDX:   Zero-based index ", "#    -R-:   Red color component (0..255)",
             "#    -G-:   Green color component (0..255)", "#    -B-:   Blue color component (0..255)",
             "#    -A-:   Label transparency (0.00 .. 1.00)", "#    VIS:   Label visibility (0 or 1)",
             "#    MSH:   Label mesh visibility (0 or 1)", "#  LABEL:   Label description ",
             "################################################",
             '    0     0    0    0        0  0  0    "Clear Label"']
    for k, name in sorted(table.items()):
        r, g, b = (int(255 * c) for c in colorsys.hsv_to_rgb((k * 0.618) % 1.0, 0.8, 1.0))
        lines.append(f'{k:5d} {r:5d} {g:4d} {b:4d}        1  1  1    "{name}"')
    return "\n".join(lines) + "\n"


def _looks_like_itksnap(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return bool(lines) and all(_ITK_LINE.match(ln) for ln in lines)


# ---------------------------------------------------------------------------- label maps
def _read_tsv_table(path: Path) -> dict[int, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InputDataError(f"cannot read label table {path}: {err}") from err
    rows = list(csv.DictReader(_io.StringIO(text), delimiter="\t"))
    if not rows or "index" not in rows[0] or "name" not in rows[0]:
        raise RoiError(f"label table {path} must be a TSV with 'index' and 'name' columns (BIDS dseg).")
    try:
        return {int(r["index"]): r["name"] for r in rows if int(r["index"]) != 0}
    except (TypeError, ValueError) as err:
        raise RoiError(f"label table {path}: non-integer index ({err}).") from err


def _find_label_table(image_path: Path) -> Path | None:
    stem = _stem(image_path)
    for ext in (".tsv", ".txt", ".label"):
        cand = stem.with_name(stem.name + ext)
        if cand.is_file():
            return cand
    return None


def _read_label_table(path: Path) -> dict[int, str]:
    if path.suffix.lower() == ".tsv":
        return _read_tsv_table(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise InputDataError(f"cannot read label description {path}: {err}") from err
    return read_itksnap_labels(text, source=str(path))


def load_label_map(path: str | os.PathLike, *, labels: str | os.PathLike | Mapping[int, str] | None = None) -> RoiSet:
    """Read a NIfTI label image as voxel-mask ROIs.

    Parameters
    ----------
    path : path-like
        Integer label image (``*_dseg.nii.gz``).
    labels : path-like or mapping, optional
        Label names: a BIDS ``.tsv`` (``index``, ``name``), an ITK-SNAP label description, or a
        dict ``{index: name}``. By default ``<stem>.tsv`` (or ``<stem>.txt``/``.label``) beside
        the image.

    Raises
    ------
    RoiError
        No label table, names that are not nerve roots, labels present in the image but missing
        from the table, or an image without any label.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere
    >>> tmp = Path(tempfile.mkdtemp())
    >>> rois = RoiSet([RootROI("L5", "left", shape=Sphere([-20, 0, 0], 3.0)), RootROI("L5", "right", shape=Sphere([20, 0, 0], 3.0))])
    >>> ref = ((30, 10, 10), np.array([[2.0, 0, 0, -30], [0, 2, 0, -10], [0, 0, 2, -10], [0, 0, 0, 1]]))
    >>> files = save_label_map(rois, tmp / "sub-01_dseg.nii.gz", reference=ref)
    >>> back = load_label_map(files["nifti"])
    >>> back.names, back.get("L5", "left").shape.kind
    (['L5_left_ganglion', 'L5_right_ganglion'], 'voxel_mask')
    """
    import nibabel as nib

    p = Path(path)
    try:
        img = nib.load(str(p))
    except FileNotFoundError as err:
        raise InputDataError(f"label map not found: {p}") from err
    except Exception as err:  # nibabel raises many types for corrupt files
        raise RoiError(f"cannot read label map {p}: {err}") from err
    from ._guard import check_array_size, reading

    with reading(p, "a label map", error=RoiError, hint="copy or export the label image again"):
        check_array_size(p, img.header.get_data_shape(), 8, error=RoiError)
        data = np.asanyarray(img.dataobj)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise RoiError(f"label map {p} must be 3-D, got shape {data.shape}.")
    if np.issubdtype(data.dtype, np.floating):
        if not np.all(np.isfinite(data)) or not np.array_equal(data, np.round(data)):
            raise RoiError(f"label map {p} holds non-integer values; expected integer labels.")
    data = np.asarray(data).astype(np.int64)
    if isinstance(labels, Mapping):
        table = {int(k): str(v) for k, v in labels.items()}
        src = "given labels"
    else:
        tpath = Path(labels) if labels is not None else _find_label_table(p)
        if tpath is None:
            raise RoiError(
                f"no label table for {p}: put {_stem(p).name}.tsv (columns index, name) or an "
                "ITK-SNAP label description beside it, or pass labels=..."
            )
        table = _read_label_table(tpath)
        src = str(tpath)
    present = [int(v) for v in np.unique(data) if v != 0]
    if not present:
        raise RoiError(f"label map {p} is empty (all voxels 0).")
    missing = [v for v in present if v not in table]
    if missing:
        raise RoiError(f"label map {p} has labels {missing} that the table {src} does not name.")
    rois = []
    for idx in present:
        try:
            level, side, segment = parse_roi_name(table[idx])
        except RoiError as err:
            raise RoiError(f"{src}, label {idx}: {err}") from err
        rois.append(RootROI(level, side, segment, VoxelMask(data == idx, img.affine)))
    absent = sorted(set(table) - set(present))
    if absent:
        logger.info("%s: labels %s are named in the table but absent from the image", p.name, absent)
    try:
        return RoiSet(rois, {"source_format": "label_map"})
    except RoiError as err:
        raise RoiError(f"label map {p}: {err}") from err


def save_label_map(rois: RoiSet, path: str | os.PathLike, *, reference: Any = None,
                   overlap: str = "error", itksnap: bool = False) -> dict[str, Path]:
    """Write an ROI set as a NIfTI label map plus its BIDS ``.tsv`` table (atomically).

    Parameters
    ----------
    rois : RoiSet
    path : path-like
        ``*_dseg.nii.gz`` (recommended BIDS-derivatives name) or any ``.nii``/``.nii.gz``.
    reference : optional
        Grid to rasterise on: ``(shape, affine)``, a DWISeries/ParameterMap/nibabel image, or a
        NIfTI path. May be omitted when every ROI is a voxel mask on one grid.
    overlap : {"error", "first", "last"}
        See :func:`dwi_toolkit.roi.masks.label_map`.
    itksnap : bool
        Also write an ITK-SNAP label description ``<stem>.txt``.

    Returns
    -------
    dict
        Paths written: ``"nifti"``, ``"tsv"`` (and ``"itksnap"``).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere
    >>> tmp = Path(tempfile.mkdtemp())
    >>> rois = RoiSet([RootROI("L5", "left", shape=Sphere([-20, 0, 0], 3.0)), RootROI("L5", "right", shape=Sphere([20, 0, 0], 3.0))])
    >>> ref = ((30, 10, 10), np.array([[2.0, 0, 0, -30], [0, 2, 0, -10], [0, 0, 2, -10], [0, 0, 0, 1]]))
    >>> sorted(p.name for p in save_label_map(rois, tmp / "sub-01_dseg.nii.gz", reference=ref).values())
    ['sub-01_dseg.nii.gz', 'sub-01_dseg.tsv']
    """
    import nibabel as nib

    if reference is None:
        grids = {(r.shape.mask.shape, r.shape.affine.tobytes()) for r in rois if isinstance(r.shape, VoxelMask)}
        if len(grids) != 1 or not all(isinstance(r.shape, VoxelMask) for r in rois):
            raise RoiError(
                "a label map needs an image grid: pass reference= (the DWI or map the ROIs belong "
                "to, a NIfTI path, or (shape, affine))."
            )
        vm = next(iter(rois)).shape
        reference = (vm.mask.shape, vm.affine)  # type: ignore[union-attr]
    if len(rois) == 0:
        raise RoiError("cannot write an empty ROI set as a label map.")
    shape, affine = _reference_grid(reference)
    labels, table = label_map(rois, shape, affine, overlap=overlap)
    target = Path(path)
    if not _is_nifti(target):
        target = target.with_name(target.name + ".nii.gz")
    img = nib.Nifti1Image(labels, affine)
    img.header.set_xyzt_units("mm")
    img.header["descrip"] = b"dwi_toolkit nerve-root labels"
    with atomic_path(target) as tmp:
        nib.save(img, str(tmp))
    stem = _stem(target)
    buf = _io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(["index", "name", "level", "side", "segment"])
    for k, name in table.items():
        w.writerow([k, name, *parse_roi_name(name)])
    out = {"nifti": target, "tsv": atomic_write_text(stem.with_name(stem.name + ".tsv"), buf.getvalue())}
    if itksnap:
        out["itksnap"] = atomic_write_text(stem.with_name(stem.name + ".txt"), format_itksnap_labels(table))
    logger.info("wrote label map %s with %d ROIs", target, len(table))
    return out


# ------------------------------------------------------------------------ load / save
def load_rois(path: str | os.PathLike, *,
              labels: str | os.PathLike | Mapping[int, str] | Mapping[str, str] | None = None,
              default_radius_mm: float = DEFAULT_RADIUS_MM) -> RoiSet:
    """Read nerve-root ROIs from any supported file.

    Parameters
    ----------
    path : path-like
        dwi_toolkit ROI JSON, 3D Slicer ``.mrk.json``, a NIfTI label map (with its ``.tsv`` or
        ITK-SNAP table), or an ITK-SNAP label description / ``.tsv`` next to a label image of
        the same stem.
    labels : path-like or mapping, optional
        Label names for a label map (see :func:`load_label_map`); for a Slicer file, a mapping
        from Slicer's labels or default names to roots, e.g. ``{"OC-1": "L5 left ganglion"}``
        (see :func:`rois_from_slicer`; a single ROI may also be named by the file name,
        ``L5_left.mrk.json``).
    default_radius_mm : float, optional
        Radius of Slicer points without ``radius_mm`` in their description (default 3 mm).

    Returns
    -------
    RoiSet
        Shapes in RAS+ mm.

    Raises
    ------
    RoiError
        Unknown format, unknown level/side names, malformed content.
    InputDataError
        Missing file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rois = RoiSet([RootROI("L5", "left", shape=Sphere([-20, 0, 0], 3))])
    >>> _ = save_rois(rois, d / "rois.json")
    >>> load_rois(d / "rois.json") == rois
    True
    """
    from ._guard import reading

    p = Path(path)
    if not p.exists():
        raise InputDataError(f"ROI file not found: {p}")
    with reading(p, "an ROI file", error=RoiError, hint="check it is a complete dwi_toolkit ROI JSON, 3D "
                 "Slicer markups file or NIfTI label map"):
        return _load_rois(p, labels=labels, default_radius_mm=default_radius_mm)


def _load_rois(p: Path, *, labels, default_radius_mm: float) -> RoiSet:
    """Body of :func:`load_rois` (dispatch on the file format)."""
    name = p.name.lower()
    if _is_nifti(p):
        return load_label_map(p, labels=labels)
    if name.endswith((".tsv", ".txt", ".label")):
        stem = _stem(p)
        for ext in (".nii.gz", ".nii"):
            img = stem.with_name(stem.name + ext)
            if img.is_file():
                return load_label_map(img, labels=p)
        raise RoiError(
            f"{p} is a label table; load the label image it describes (e.g. "
            f"{stem.name}.nii.gz) with load_rois(image, labels={p.name!r})."
        )
    doc = _read_json(p)
    if isinstance(doc, Mapping):
        if "markups" in doc or "slicer" in str(doc.get("@schema", "")).lower():
            if labels is not None and not isinstance(labels, Mapping):
                raise RoiError(f"{p}: labels for a Slicer file map Slicer names to roots, e.g. "
                               "{'OC-1': 'L5_left_ganglion'}; a label table only names a label map.")
            rois = rois_from_slicer(doc, default_radius_mm=default_radius_mm, source=str(p),
                                    labels=labels, file_root=root_from_file_name(p))
        elif str(doc.get("schema", "")).startswith(_SCHEMA_PREFIX):
            rois = rois_from_json(doc, source=str(p))
        else:
            raise RoiError(
                f"{p}: unknown ROI format (a JSON object with neither 'schema': {SCHEMA!r} nor "
                "Slicer 'markups')."
            )
        return rois.with_meta(source=p.name)
    raise RoiError(f"{p}: unknown ROI format (expected a JSON object).")


def save_rois(rois: RoiSet, path: str | os.PathLike, *, reference: Any = None,
              coordinate_system: str = "LPS", overlap: str = "error", itksnap: bool = False) -> Path:
    """Write an ROI set; the format follows the extension (atomic writes).

    ``.mrk.json`` → 3D Slicer markups (`coordinate_system` LPS or RAS); other ``.json`` →
    dwi_toolkit ROI JSON (`reference` stored when given); ``.nii``/``.nii.gz`` → label map plus
    ``.tsv`` (needs `reference` unless all ROIs are voxel masks on one grid; see
    :func:`save_label_map`); ``.txt``/``.label`` → ITK-SNAP label description plus the label
    image ``<stem>.nii.gz`` (and ``.tsv``) it describes. Every format :func:`load_rois` reads.

    Returns
    -------
    Path
        The main file written.

    Raises
    ------
    RoiError
        Unsupported extension, or content the format cannot hold.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere
    >>> tmp = Path(tempfile.mkdtemp())
    >>> rois = RoiSet([RootROI("L5", "left", shape=Sphere([-20, 0, 0], 3.0)), RootROI("L5", "right", shape=Sphere([20, 0, 0], 3.0))])
    >>> p = save_rois(rois, tmp / "sub-01_rois.json")
    >>> load_rois(p).names
    ['L5_left_ganglion', 'L5_right_ganglion']
    """
    if not isinstance(rois, RoiSet):
        rois = RoiSet(list(rois))
    p = Path(path)
    name = p.name.lower()
    if _is_nifti(p):
        return save_label_map(rois, p, reference=reference, overlap=overlap, itksnap=itksnap)["nifti"]
    if name.endswith((".txt", ".label")):  # ITK-SNAP: label image <stem>.nii.gz + its label description
        stem = _stem(p)
        files = save_label_map(rois, stem.with_name(stem.name + ".nii.gz"), reference=reference, overlap=overlap)
        return atomic_write_text(p, format_itksnap_labels(_read_tsv_table(files["tsv"])))
    if name.endswith(".mrk.json"):
        doc = rois_to_slicer(rois, coordinate_system=coordinate_system)
    elif name.endswith(".json"):
        doc = rois_to_json(rois, reference=reference)
    else:
        raise RoiError(
            f"cannot tell the ROI format from {p.name!r}; use .json (dwi_toolkit), .mrk.json "
            "(3D Slicer), .nii.gz (label map) or .txt/.label (ITK-SNAP label description + label map)."
        )
    out = atomic_write_text(p, json.dumps(doc, indent=2) + "\n")
    logger.info("wrote %d ROIs to %s", len(rois), p)
    return out
