"""Find the DICOM series under a folder tree and say what each one is (header-only reads)."""

from __future__ import annotations

import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import DicomError, DicomWarning
from ._fast import get_str, get_strs
from ._files import CorruptDicom, DicomFile, NotDicom, read_header
from .geometry import group_positions, normal_of, orientation_label
from .vendors import vendor_of

logger = logging.getLogger(__name__)

__all__ = ["DicomSeriesInfo", "find_dwi_series", "scan_files", "ROLES"]

#: Roles a series can have.
ROLES = ("dwi", "trace", "adc", "fa", "other")

#: File name endings that are never DICOM (skipped without opening them).
_SKIP_SUFFIXES = (".nii", ".nii.gz", ".json", ".bval", ".bvec", ".txt", ".md", ".csv", ".png",
                  ".jpg", ".jpeg", ".html", ".xml", ".py", ".pdf", ".zip", ".tsv", ".mat")


@dataclass(frozen=True)
class DicomSeriesInfo:
    """What one series in a folder is (no patient identifiers).

    Attributes
    ----------
    series_uid : str
        SeriesInstanceUID (pass it as ``series_uid=`` / ``--series-uid`` to pick the series).
    description : str
        SeriesDescription.
    series_number : int or None
    vendor : str
        ``siemens``, ``ge``, ``philips``, ``canon``, ``uih``, ``hitachi`` or ``other``.
    n_files : int
    n_volumes : int
        Volumes once assembled (frames / slice positions).
    orientation : str
        ``axial``, ``sagittal``, ``coronal`` or ``oblique``.
    patient_position : str
        e.g. ``HFS``, ``FFS``.
    bvals : tuple of float
        Distinct b-values in s/mm² (empty when the series has no diffusion information).
    role : str
        ``dwi`` (raw diffusion-weighted), ``trace`` (scanner TRACEW/isotropic), ``adc``
        (scanner ADC map), ``fa`` (scanner FA map) or ``other``.
    rule : str
        Vendor rule the diffusion encoding was read with (key of
        :data:`dwi_toolkit.io.dicom.vendors.RULES`, e.g. ``siemens-csa``, ``ge``, ``uih``).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.core.image import DWISeries
    >>> from dwi_toolkit.io.dicom_write import write_dicom_series
    >>> tmp = Path(tempfile.mkdtemp())
    >>> b = np.array([0.0, 800.0])
    >>> s = DWISeries(np.full((4, 3, 2, 2), 100.0) * np.exp(-b * 1e-3), np.diag([2.0, 2.0, 4.0, 1.0]), b,
    ...               [[0, 0, 0], [0, 0, 1]])
    >>> files = write_dicom_series(s, tmp / "dicom")
    >>> (info,) = find_dwi_series(tmp / "dicom")
    >>> info.role, info.n_volumes, info.bvals, info.orientation
    ('dwi', 2, (0.0, 800.0), 'axial')
    """

    series_uid: str
    description: str
    series_number: int | None
    vendor: str
    n_files: int
    n_volumes: int
    orientation: str
    patient_position: str
    bvals: tuple[float, ...]
    role: str
    files: tuple[Path, ...] = field(default=(), repr=False, compare=False)
    rule: str = ""
    _headers: tuple = field(default=(), repr=False, compare=False)

    def _repr_html_(self) -> str:
        from ...core._display import fmt_seq, html_table

        return html_table(f"DICOM series #{self.series_number if self.series_number is not None else '?'}", [
            ("description", self.description), ("role", self.role), ("vendor", self.vendor),
            ("volumes", str(self.n_volumes)), ("files", str(self.n_files)),
            ("b-values (s/mm²)", fmt_seq(self.bvals) or "—"),
            ("orientation", f"{self.orientation}, patient position {self.patient_position}"),
            ("vendor rule", self.rule or "—"),
            ("series UID", self.series_uid),
        ])

    def summary(self) -> str:
        """One line: uid, description, role, volumes, b-values."""
        b = ", ".join(f"{x:g}" for x in self.bvals) or "-"
        return (f"{self.series_uid}  #{self.series_number if self.series_number is not None else '?'} "
                f"'{self.description}'  role={self.role}  volumes={self.n_volumes}  b=[{b}]  "
                f"{self.orientation} {self.patient_position} ({self.n_files} files)"
                + (f"  rule={self.rule}" if self.rule else ""))


def _candidate_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            low = name.lower()
            if name.startswith(".") or low == "dicomdir" or low.endswith(_SKIP_SUFFIXES):
                continue
            out.append(Path(dirpath) / name)
    return out


def _read_one(p: Path):
    try:
        return read_header(p)
    except NotDicom:
        return None
    except CorruptDicom as err:
        return (p, str(err))
    except Exception as err:  # any parser failure on a damaged file: skip it with the others
        return (p, f"{type(err).__name__}: {err}")


def scan_files(path: str | os.PathLike, *, workers: int | None = None) -> list[DicomFile]:
    """Header-only parse of every DICOM file under `path` (any depth, gzip allowed).

    Corrupt or truncated DICOM files are skipped with one :class:`DicomWarning` naming them;
    non-DICOM files are skipped silently.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.core.image import DWISeries
    >>> from dwi_toolkit.io.dicom_write import write_dicom_series
    >>> tmp = Path(tempfile.mkdtemp())
    >>> b = np.array([0.0, 800.0])
    >>> s = DWISeries(np.full((4, 3, 2, 2), 100.0) * np.exp(-b * 1e-3), np.diag([2.0, 2.0, 4.0, 1.0]), b,
    ...               [[0, 0, 0], [0, 0, 1]])
    >>> files = write_dicom_series(s, tmp / "dicom")
    >>> len(scan_files(tmp / "dicom"))       # 2 slices x 2 volumes, headers only
    4
    """
    root = Path(path)
    if not root.exists():
        raise DicomError(f"no such file or folder: {root}")
    paths = _candidate_files(root)
    if workers is None:
        # Parsing is pure Python (GIL-bound); a second thread overlaps file reads and gunzip,
        # more only add contention when files are in the page cache.
        workers = 2 if (os.cpu_count() or 1) > 1 else 1
    if workers > 1 and len(paths) > 64:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            results = list(ex.map(_read_one, paths, chunksize=16))
    else:
        results = [_read_one(p) for p in paths]
    files = [r for r in results if isinstance(r, DicomFile)]
    bad = [r for r in results if isinstance(r, tuple)]
    if bad:
        names = "; ".join(f"{p} ({why})" for p, why in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        warnings.warn(f"skipped {len(bad)} unreadable DICOM file(s): {names}{more}", DicomWarning, stacklevel=3)
    return files


def _tokens(ds) -> set[str]:
    toks = {x.upper() for x in get_strs(ds, 0x00080008)}
    if 0x52009229 not in ds:  # no SharedFunctionalGroupsSequence: classic image
        return toks
    sh = ds.get("SharedFunctionalGroupsSequence")
    pf = ds.get("PerFrameFunctionalGroupsSequence")
    for grp in (sh[0] if sh else None, pf[0] if pf else None):
        if grp is None:
            continue
        seq = grp.get("MRImageFrameTypeSequence")
        if seq and "FrameType" in seq[0]:
            toks |= {x.upper() for x in get_strs(seq[0], 0x00089007)}
    return toks


def _image_role(ds) -> str | None:
    """Role from ImageType/FrameType/description alone (None: decide from diffusion tags)."""
    toks = _tokens(ds)
    desc = get_str(ds, 0x0008103E).upper()
    # Siemens/Philips: ADC in ImageType; GE: DERIVED\SECONDARY\PROCESSED named "Apparent Diffusion Coefficient"
    if "ADC" in toks or ("DERIVED" in toks and ("ADC" in desc.replace("_", " ").split()
                                               or "APPARENT DIFFUSION COEFFICIENT" in desc)):
        return "adc"
    if "FA" in toks or "COLFA" in toks:
        return "fa"
    if toks & {"TRACEW", "TRACE", "ISOTROPIC", "ISODWI", "CDWI"}:
        return "trace"
    if "DERIVED" in toks and toks & {"EXP", "EADC", "TENSOR", "TENSOR_B0", "EXPADC"}:
        return "other"
    return None


def _group_key(f: DicomFile):
    ds = f.ds
    # a series exported twice (classic and enhanced, e.g. Canon) keeps one UID: two groups
    storage = "enhanced" if 0x52009230 in ds else "classic"
    return (get_str(ds, 0x0020000E) or f"nouid:{f.path.parent}", _image_role(ds) or "", storage)


def describe_series(files: list[DicomFile], *, b0_threshold: float = 50.0) -> DicomSeriesInfo:
    """Summarise one group of files (same series UID and image role)."""
    from .series import expand_file, fill_missing_b0

    ds = files[0].ds
    role = _image_role(ds)
    frames = []
    for f in files:
        try:
            frames.extend(expand_file(f))
        except DicomError as err:
            logger.debug("cannot place %s: %s", f.path, err)
    fill_missing_b0(frames)
    bvals = sorted({round(fr.diff.bval, 3) for fr in frames if fr.diff.bval is not None
                    and not fr.diff.isotropic})
    iso_bvals = sorted({round(fr.diff.bval, 3) for fr in frames if fr.diff.bval is not None})
    has_dir = any(fr.diff.vec is not None and (fr.diff.bval or 0) > 0 for fr in frames)
    iso_only = frames and all(fr.diff.isotropic for fr in frames)
    if role is None:
        if iso_only:
            role = "trace"
        elif bvals and (has_dir or (max(bvals) > 0 and "DERIVED" not in _tokens(ds))
                        or (max(bvals) > b0_threshold and len(bvals) > 1)):
            role = "dwi"  # any recorded diffusion weighting, even one volume at b = 5 s/mm^2
        elif bvals and "DERIVED" in _tokens(ds):
            role = "trace"
        else:
            role = "other"
    n_vol = 0
    orientation = "unknown"
    if frames:
        try:
            iop = frames[0].iop
            n = normal_of(iop)
            nondrop = [fr for fr in frames if not (role == "dwi" and fr.diff.isotropic)]
            _, centers = group_positions(np.array([fr.ipp @ n for fr in nondrop]))
            n_vol = len(nondrop) // max(1, centers.size)
            orientation = orientation_label(iop)
        except DicomError:
            pass
    sn = ds.get("SeriesNumber")
    try:
        sn = int(sn) if sn is not None and str(sn) != "" else None
    except (TypeError, ValueError):
        sn = None
    return DicomSeriesInfo(
        series_uid=str(ds.get("SeriesInstanceUID", "") or ""),
        description=_scrubbed_description(ds),
        series_number=sn,
        vendor=vendor_of(ds),
        n_files=len(files),
        n_volumes=n_vol,
        orientation=orientation,
        patient_position=str(ds.get("PatientPosition", "") or ""),
        bvals=tuple(float(b) for b in (iso_bvals if role == "trace" else bvals)),
        role=role,
        files=tuple(f.path for f in files),
        rule=_rule_of(frames),
        _headers=tuple(files),
    )


def _scrubbed_description(ds) -> str:
    """SeriesDescription without identifiers typed into it (it names files and appears in listings)."""
    from .._scrub import header_identifiers, scrub_text

    try:
        text = str(ds.get("SeriesDescription", "") or "")
    except ValueError:
        return ""
    names, ids = header_identifiers(ds)
    return scrub_text(text, names=names, identifiers=ids)


def _rule_of(frames) -> str:
    rules = sorted({fr.diff.rule for fr in frames if fr.diff.bval is not None and fr.diff.bval > 0}
                   or {fr.diff.rule for fr in frames if fr.diff.bval is not None})
    return "+".join(rules) if rules else "none"


def find_dwi_series(path: str | os.PathLike, *, b0_threshold: float = 50.0) -> list[DicomSeriesInfo]:
    """Describe every DICOM series under a folder (or the series of one file).

    Walks any depth; any file names, with or without ``.dcm``, gzip-compressed or not; DICOMDIR
    and non-DICOM files are ignored. Only headers are read (no pixel data).

    Parameters
    ----------
    path : path-like
        Folder (or one DICOM file).
    b0_threshold : float
        s/mm²; a series counts as raw DWI when some b-value exceeds it.

    Returns
    -------
    list of DicomSeriesInfo
        Sorted by series number, then description. Raw DWI series have ``role == "dwi"``.

    Raises
    ------
    DicomError
        When `path` does not exist.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from dwi_toolkit.core.image import DWISeries
    >>> from dwi_toolkit.io.dicom_write import write_dicom_series
    >>> tmp = Path(tempfile.mkdtemp())
    >>> b = np.array([0.0, 800.0])
    >>> s = DWISeries(np.full((4, 3, 2, 2), 100.0) * np.exp(-b * 1e-3), np.diag([2.0, 2.0, 4.0, 1.0]), b,
    ...               [[0, 0, 0], [0, 0, 1]])
    >>> files = write_dicom_series(s, tmp / "dicom")
    >>> [(i.role, i.n_files) for i in find_dwi_series(tmp / "dicom")]
    [('dwi', 4)]
    """
    from .._guard import reading

    with reading(path, "a DICOM folder", error=DicomError,
                 hint="a file in it is damaged or non-conformant; re-export it from the scanner/PACS"):
        files = scan_files(path)
        groups: dict = {}
        for f in files:
            groups.setdefault(_group_key(f), []).append(f)
        infos = [describe_series(g, b0_threshold=b0_threshold) for g in groups.values()]
    infos.sort(key=lambda s: (s.series_number if s.series_number is not None else 1 << 30, s.description, s.role))
    return infos
