"""Assemble frames (slices of classic files, tiles of mosaics, frames of enhanced objects) into
a 4-D volume series with affine, b-values and image-frame b-vectors."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ...errors import DicomError
from ._files import DicomFile, read_pixels
from ._fast import get_float, get_floats, get_int, get_str
from .csa import csa_floats
from .geometry import check_orientation, dicom_affine, group_positions, normal_of, slice_spacing
from .mosaic import detile, tile_positions
from .vendors import (
    Diffusion,
    classic_diffusion,
    frame_diffusion,
    mosaic_count,
    phase_rc_of,
    rescale_of,
    to_image_frame,
    vendor_of,
)

logger = logging.getLogger(__name__)

__all__ = ["Frame", "expand_file", "Assembled", "assemble", "fill_missing_b0"]


@dataclass(eq=False)
class Frame:
    """One 2-D slice image and everything needed to place it.

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
    >>> from dwi_toolkit.io.dicom.discovery import scan_files
    >>> frame = expand_file(scan_files(tmp / "dicom")[0])[0]
    >>> frame.rows, frame.cols, frame.pixel_spacing
    (3, 4, (2.0, 2.0))
    """

    file: DicomFile
    index: int  # frame of a multi-frame file, tile of a mosaic, else 0
    n_tiles: int  # >0 for a mosaic tile
    ipp: np.ndarray
    iop: np.ndarray
    pixel_spacing: tuple[float, float]
    rows: int
    cols: int
    diff: Diffusion
    order: tuple
    slope: float = 1.0
    inter: float = 0.0
    mosaic_normal: np.ndarray | None = None  # CSA SliceNormalVector of a mosaic tile
    layout: str = "siemens"  # mosaic grid layout (see mosaic.grid_of)

    def describe(self) -> str:
        extra = f" frame {self.index + 1}" if get_int(self.file.ds, 0x00280008, 1) > 1 else ""
        extra = f" tile {self.index + 1}" if self.n_tiles else extra
        return f"{self.file.path.name}{extra}"


def _f(v, default=None):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


_SEQ_TAGS = {
    "PlanePositionSequence": 0x00209113, "PlaneOrientationSequence": 0x00209116,
    "PixelMeasuresSequence": 0x00289110, "MRDiffusionSequence": 0x00189117,
    "FrameContentSequence": 0x00209111, "PixelValueTransformationSequence": 0x00289145,
}


def _seq_item(pf, shared, keyword):
    """First item of a functional-group sequence, per-frame first, then shared."""
    tag = _SEQ_TAGS.get(keyword, keyword) if isinstance(keyword, str) else keyword
    for grp in (pf, shared):
        if grp is not None:
            try:
                el = grp.get_item(tag) if isinstance(tag, int) else None
            except KeyError:
                el = None
            if el is None and isinstance(tag, str):
                seq = grp.get(tag)
            else:
                seq = el.value if el is not None else None
            if seq:
                return seq[0]
    return None


_TAGS = {"Rows": 0x00280010, "Columns": 0x00280011, "ImagePositionPatient": 0x00200032,
         "ImageOrientationPatient": 0x00200037, "PixelSpacing": 0x00280030}
_EXPECT = {"Rows": 1, "Columns": 1, "ImagePositionPatient": 3, "ImageOrientationPatient": 6, "PixelSpacing": 2}


def _require(ds, kw: str, f: DicomFile) -> list[float]:
    v = get_floats(ds, _TAGS[kw])
    if not v or len(v) < _EXPECT[kw]:
        raise DicomError(
            f"{f.path}: required attribute {kw} {_TAGS[kw] >> 16:04X},{_TAGS[kw] & 0xFFFF:04X} is "
            f"{'missing' if not v else 'malformed'}; the slice cannot be placed in space."
        )
    return v


def expand_file(f: DicomFile) -> list[Frame]:
    """All frames of one file (header only; no pixel data is read; cached on the file).

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
    >>> from dwi_toolkit.io.dicom.discovery import scan_files
    >>> [len(expand_file(f)) for f in scan_files(tmp / "dicom")]      # one frame per classic file
    [1, 1, 1, 1]
    """
    if f.frames is None:
        from .._guard import reading

        with reading(f.path, "a DICOM image header", error=DicomError,
                     hint="a header value is malformed (damaged or non-conformant file); re-export the "
                     "series, or remove this file"):
            f.frames = _expand(f)
    return f.frames


def _expand(f: DicomFile) -> list[Frame]:
    ds = f.ds
    vendor = vendor_of(ds)
    if "PerFrameFunctionalGroupsSequence" in ds:
        return _expand_enhanced(f, vendor)
    if vendor == "siemens" and not f.csa and (0x0029, 0x1010) in ds:
        from .csa import parse_csa

        f.csa = parse_csa(ds[0x0029, 0x1010].value)
    rows, cols = int(_require(ds, "Rows", f)[0]), int(_require(ds, "Columns", f)[0])
    iop = np.asarray(_require(ds, "ImageOrientationPatient", f)[:6], dtype=float)
    ps = _require(ds, "PixelSpacing", f)
    if vendor == "uih" and 0x00200032 not in ds and _uih_grid_items(ds):
        ipp = np.zeros(3)  # VFRAME file: positions are per tile, in (0065,1051)
    else:
        ipp = np.asarray(_require(ds, "ImagePositionPatient", f)[:3], dtype=float)
    spacing = (float(ps[0]), float(ps[1]))
    diff = classic_diffusion(ds, vendor, f.csa)
    order = _classic_order(ds, vendor, f)
    slope, inter = rescale_of(ds, vendor)
    n = mosaic_count(ds, f.csa)
    if n and not 1 < n <= min(rows * cols, 4096):
        raise DicomError(f"{f.path}: NumberOfImagesInMosaic {n} is implausible for a {rows} x {cols} mosaic; "
                         "the Siemens CSA header is damaged.")
    if vendor == "uih" and not n:
        uih = _expand_uih_grid(f, iop, spacing, rows, cols, diff, order, slope, inter)
        if uih is not None:
            return uih
    if n:
        normal = csa_floats(f.csa, "SliceNormalVector") or normal_of(iop)
        sp = get_float(ds, 0x00180088) or get_float(ds, 0x00180050) or 1.0
        pos = tile_positions(ipp, iop, spacing, rows, cols, n, normal, sp)
        from .mosaic import tile_shape

        _, tr, tc = tile_shape(rows, cols, n)
        nvec = np.asarray(normal, dtype=float)
        return [Frame(f, k, n, pos[k], iop, spacing, tr, tc, diff, order, slope, inter, nvec) for k in range(n)]
    return [Frame(f, 0, 0, ipp, iop, spacing, rows, cols, diff, order, slope, inter)]


def _uih_grid_items(ds):
    """Items of the UIH VFRAME sequence (0065,1051) with an ImagePositionPatient, or []."""
    el = ds.get((0x0065, 0x1051))
    items = el.value if el is not None else None
    if not items or isinstance(items, (bytes, bytearray)):
        return []
    return [it for it in items if get_floats(it, 0x00200032)]


def _expand_uih_grid(f, iop, spacing, rows, cols, diff, order, slope, inter):
    """United Imaging VFRAME storage: one file per volume, (0065,1050) slices tiled in one frame.

    Tile k (row-major in a grid of ``ceil(sqrt(N))`` columns) is the slice whose position is item
    k of (0065,1051), as dcm2niix reads it (``nii_demosaic`` with ``isUIH``).
    """
    n = int(get_float(f.ds, 0x00651050, 0) or 0)
    items = _uih_grid_items(f.ds)
    if n < 2 or len(items) != n:
        return None
    from .mosaic import tile_shape

    _, tr, tc = tile_shape(rows, cols, n, "uih")
    return [Frame(f, k, n, np.asarray(get_floats(it, 0x00200032)[:3], float), iop, spacing, tr, tc, diff,
                  order, slope, inter, None, "uih") for k, it in enumerate(items)]


def _classic_order(ds, vendor, f):
    first = 0.0
    if vendor == "philips":
        for tag in ((0x2005, 0x1596), (0x2005, 0x1412)):
            el = ds.get(tag)
            if el is not None:
                first = _f(el.value, 0.0) * 1e6
                if tag == (0x2005, 0x1412):
                    g = ds.get((0x2005, 0x1413))
                    first += _f(g.value, 0.0) if g is not None else 0.0
                break
    inst = get_float(ds, 0x00200013, 0.0)
    t = get_str(ds, 0x00080032)
    return (first, inst, t, str(f.path))


def _expand_enhanced(f: DicomFile, vendor: str) -> list[Frame]:
    ds = f.ds
    sh = ds.get("SharedFunctionalGroupsSequence")
    shared = sh[0] if sh else None
    rows, cols = int(_require(ds, "Rows", f)[0]), int(_require(ds, "Columns", f)[0])
    inst = get_float(ds, 0x00200013, 0.0)
    out = []
    for i, pf in enumerate(ds.PerFrameFunctionalGroupsSequence):
        pos = _seq_item(pf, shared, "PlanePositionSequence")
        ori = _seq_item(pf, shared, "PlaneOrientationSequence")
        meas = _seq_item(pf, shared, "PixelMeasuresSequence")
        ipp = get_floats(pos, 0x00200032) if pos is not None else None
        iop = get_floats(ori, 0x00200037) if ori is not None else None
        ps = get_floats(meas, 0x00280030) if meas is not None else None
        if not ipp or not iop or not ps or len(ipp) < 3 or len(iop) < 6 or len(ps) < 2:
            raise DicomError(
                f"{f.path} frame {i + 1}: ImagePositionPatient/ImageOrientationPatient/PixelSpacing "
                "missing from the functional groups (PlanePositionSequence, PlaneOrientationSequence, "
                "PixelMeasuresSequence); the frame cannot be placed in space."
            )
        dif_item = _seq_item(pf, shared, "MRDiffusionSequence")
        diff = frame_diffusion(dif_item) if dif_item is not None else Diffusion(None)
        if dif_item is None and vendor == "philips":
            diff = classic_diffusion(pf, vendor, {})
        content = _seq_item(pf, None, "FrameContentSequence")
        tpi = get_float(content, 0x00209128, 0.0) if content is not None else 0.0
        pvt = _seq_item(pf, shared, "PixelValueTransformationSequence")
        slope, inter = (1.0, 0.0)
        if pvt is not None:
            slope = get_float(pvt, 0x00281053, 1.0)
            inter = get_float(pvt, 0x00281052, 0.0)
        if vendor == "philips":
            priv = _seq_item(pf, shared, (0x2005, 0x140F))
            if priv is not None:
                ss = _f(priv.get((0x2005, 0x100E)).value if priv.get((0x2005, 0x100E)) is not None else None)
                if ss and slope:
                    slope, inter = 1.0 / ss, inter / (slope * ss)
        out.append(Frame(f, i, 0, np.asarray(ipp[:3], float), np.asarray(iop[:6], float),
                         (float(ps[0]), float(ps[1])),
                         rows, cols, diff, (tpi, inst, "", str(f.path), i), slope, inter))
    return out


@dataclass
class Assembled:
    """Result of :func:`assemble` before wrapping into a DWISeries/ParameterMap.

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
    >>> from dwi_toolkit.io.dicom.discovery import scan_files
    >>> res = assemble([fr for f in scan_files(tmp / "dicom") for fr in expand_file(f)])
    >>> res.data.shape, res.bvals.tolist()
    ((4, 3, 2, 2), [0.0, 800.0])
    """

    data: np.ndarray  # (X, Y, Z, N)
    affine: np.ndarray
    bvals: np.ndarray | None
    bvecs: np.ndarray | None
    first: DicomFile
    n_dropped_isotropic: int


def _dedupe(frames: list[Frame]) -> list[Frame]:
    seen: dict = {}
    dup: list[str] = []
    out = []
    for fr in frames:
        uid = get_str(fr.file.ds, 0x00080018) or str(fr.file.path)
        key = (uid, fr.index)
        if key in seen:
            dup.append(fr.file.path.name)
            continue
        seen[key] = fr
        out.append(fr)
    if dup:
        import warnings

        from ...errors import DicomWarning

        warnings.warn(
            f"{len(dup)} duplicate DICOM image(s) (same SOPInstanceUID) ignored: "
            f"{', '.join(sorted(set(dup))[:5])}{' ...' if len(set(dup)) > 5 else ''}",
            DicomWarning, stacklevel=4,
        )
    return out


def fill_missing_b0(frames: list[Frame]) -> int:
    """Frames without a b-value in a series where others have one are b=0 frames; returns how many.

    Toshiba and Canon (and GE from software 27) fill (0018,9087) only for diffusion-weighted
    images (dcm2niix Canon/README.md); the b=0 images carry no diffusion tags at all.

    Examples
    --------
    >>> fill_missing_b0([])
    0
    """
    rules = [fr.diff.rule for fr in frames if fr.diff.bval is not None]
    if not rules:
        return 0
    n = 0
    for fr in frames:
        if fr.diff.bval is None:
            fr.diff = Diffusion(0.0, None, "lps", False, rules[0])
            n += 1
    return n


def _same_diffusion(a: Diffusion, b: Diffusion) -> bool:
    if (a.bval is None) != (b.bval is None):
        return False
    if a.bval is not None and abs(a.bval - b.bval) > max(1.0, 1e-3 * abs(a.bval)):
        return False
    if a.vec is not None and b.vec is not None:
        va, vb = np.asarray(a.vec), np.asarray(b.vec)
        na, nb = np.linalg.norm(va), np.linalg.norm(vb)
        if na > 0 and nb > 0 and abs(va @ vb) / (na * nb) < 0.999:
            return False
    return True


def assemble(frames: list[Frame], *, diffusion: bool = True, workers: int | None = None) -> Assembled:
    """Place frames on a regular grid and read their pixels.

    Parameters
    ----------
    frames : list of Frame
        Every frame of one series.
    diffusion : bool
        Require and return b-values/b-vectors (False for scanner maps such as ADC).
    workers : int, optional
        Threads for pixel reads (default: up to 4).

    Raises
    ------
    DicomError
        Inconsistent orientation, missing or duplicated slices, non-uniform spacing, volumes that
        cannot be told apart, missing b-values.

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
    >>> from dwi_toolkit.io.dicom.discovery import scan_files
    >>> res = assemble([fr for f in scan_files(tmp / "dicom") for fr in expand_file(f)])
    >>> np.linalg.norm(res.affine[:3, :3], axis=0).round(3).tolist()     # voxel sizes, mm
    [2.0, 2.0, 4.0]
    """
    frames = _dedupe(frames)
    n_iso = 0
    if diffusion:
        fill_missing_b0(frames)
        iso = [fr for fr in frames if fr.diff.isotropic]
        if iso and len(iso) < len(frames):
            n_iso = len(iso)
            logger.info("dropping %d scanner-computed isotropic (trace) frame(s) from the DWI", n_iso)
            frames = [fr for fr in frames if not fr.diff.isotropic]
    if not frames:
        raise DicomError("no image frames to assemble.")
    shapes = {(fr.rows, fr.cols) for fr in frames}
    if len(shapes) > 1:
        raise DicomError(f"frames of different sizes {sorted(shapes)} in one series; cannot stack them.")
    names = [fr.describe() for fr in frames]
    iop = check_orientation(np.stack([fr.iop for fr in frames]), names)
    n = normal_of(iop)
    dist = np.array([fr.ipp @ n for fr in frames])
    labels, centers = group_positions(dist)
    nz = centers.size
    by_slice: list[list[Frame]] = [[] for _ in range(nz)]
    for fr, lab in zip(frames, labels):
        by_slice[lab].append(fr)
    for lst in by_slice:
        lst.sort(key=lambda fr: fr.order)
    nvol = _volumes_per_slice(by_slice, centers)
    ds0 = frames[0].file.ds
    spacing = slice_spacing(centers, default=get_float(ds0, 0x00180088) or get_float(ds0, 0x00180050))
    # Siemens mosaics whose CSA slice normal opposes row x col (typically sagittal): dcm2niix keeps
    # the mosaic (CSA-normal ascending) slice order on disk, so the affine's z axis is -n and its
    # determinant positive; it then writes b-vectors with y negated ("negative determinant" case).
    mosaic_flip = bool(
        all(fr.n_tiles for fr in frames)
        and frames[0].mosaic_normal is not None
        and np.linalg.det(np.stack([iop[:3], iop[3:], frames[0].mosaic_normal])) < 0
    )
    if mosaic_flip:
        by_slice = by_slice[::-1]
        spacing = -spacing
    # volume v = v-th frame (in acquisition order) at every slice position
    grid = [[by_slice[z][v] for z in range(nz)] for v in range(nvol)]
    bvals = bvecs = None
    if diffusion:
        bvals, bvecs = _diffusion_table(grid, frames, iop, n, mosaic_flip)
    data = _read_grid(grid, nz, nvol, workers)
    first_ipp = np.mean([fr.ipp for fr in by_slice[0]], axis=0)
    affine = dicom_affine(iop, frames[0].pixel_spacing, first_ipp, spacing, frames[0].rows)
    return Assembled(data, affine, bvals, bvecs, grid[0][0].file, n_iso)


def _volumes_per_slice(by_slice, centers) -> int:
    """Images per slice position (= volumes); every position must have the same number."""
    counts = np.array([len(lst) for lst in by_slice])
    nvol = int(counts.max())
    if np.any(counts != nvol):
        k = int(np.argmin(counts))
        full = by_slice[int(np.argmax(counts))]
        have = by_slice[k]
        missing = []
        for fr in full:
            if not any(_same_diffusion(fr.diff, h.diff) for h in have):
                missing.append(fr.diff)
        what = ""
        if missing and missing[0].bval is not None:
            what = f" (e.g. the volume with b={missing[0].bval:g} s/mm^2)"
        raise DicomError(
            f"slice at position {centers[k]:.2f} mm along the normal has {counts[k]} image(s) but "
            f"other slices have {nvol}: {nvol - counts[k]} slice image(s) missing{what}, or "
            "duplicated images elsewhere. Copy the complete series from the scanner/PACS."
        )
    return nvol


def _diffusion_table(grid, frames, iop, n, mosaic_flip: bool):
    """(b-values s/mm², FSL image-frame b-vectors) of the volumes in `grid`."""
    nvol = len(grid)
    bvals = np.zeros(nvol)
    bvecs = np.zeros((nvol, 3))
    ds0 = frames[0].file.ds
    phase_rc = phase_rc_of(ds0) or "C"
    slice_axis = int(np.argmax(np.abs(n)))
    canon_logical = _canon_logical(grid[0][0])
    if canon_logical or any(fr.diff.frame == "ge" for fr in frames):
        pp = str(ds0.get("PatientPosition", "") or "").upper()
        if pp and pp != "HFS":
            import warnings

            from ...errors import DicomWarning

            warnings.warn(
                f"GE/Canon image-frame diffusion directions with PatientPosition {pp}: converted "
                "with the same (position-independent) logical-frame rule as for HFS; dcm2niix "
                "leaves such vectors unconverted. Check the directions on a phantom.",
                DicomWarning, stacklevel=4,
            )
    for v, vol in enumerate(grid):
        ref = vol[0].diff
        for fr in vol[1:]:
            if not _same_diffusion(ref, fr.diff):
                raise DicomError(
                    f"cannot group slices into volumes: {vol[0].describe()} (b={ref.bval}) and "
                    f"{fr.describe()} (b={fr.diff.bval}) fall in volume {v + 1} but differ in "
                    "diffusion encoding; slices are missing or the acquisition order is ambiguous."
                )
        if ref.bval is None:
            raise DicomError(
                f"{vol[0].file.path}: no diffusion b-value found (looked for (0018,9087), Siemens "
                "CSA B_value, GE (0043,1039), Philips (2001,1003), UIH (0065,1009), Canon/Toshiba "
                "ImageComments); this does "
                "not look like a diffusion series. Pass the DWI series (series_uid)."
            )
        bvals[v] = ref.bval
        vec = next((fr.diff.vec for fr in vol if fr.diff.vec is not None), None)
        if vec is not None and ref.bval > 0:
            frame = "ge" if (canon_logical and ref.rule == "standard") else ref.frame
            bvecs[v] = to_image_frame(vec, frame, iop, phase_rc=phase_rc, slice_axis=slice_axis)
            if mosaic_flip:
                bvecs[v, 1] = -bvecs[v, 1] + 0.0
    return bvals, bvecs


def _canon_logical(first: Frame) -> bool:
    """Canon classic series whose first image has no (0018,9089): directions in the logical frame.

    dcm2niix takes the frame of a whole Canon series from its first image: (0018,9089) present
    (V6.1 exports write it on b=0 images too, as zeros) means patient frame; absent means
    image (logical) space, converted with the GE rule (``geCorrectBvecs``). Enhanced objects
    always use the patient frame.
    """
    ds = first.file.ds
    return (vendor_of(ds) == "canon" and first.n_tiles == 0 and "PerFrameFunctionalGroupsSequence" not in ds
            and 0x00189089 not in ds)


def _read_grid(grid, nz: int, nvol: int, workers: int | None) -> np.ndarray:
    files: dict[int, DicomFile] = {}
    for vol in grid:
        for fr in vol:
            files.setdefault(id(fr.file), fr.file)
    flist = list(files.values())
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if workers > 1 and len(flist) > 4:
        with ThreadPoolExecutor(max_workers=workers) as ex:
            arrays = list(ex.map(read_pixels, flist))
    else:
        arrays = [read_pixels(f) for f in flist]
    pix = {id(f): a for f, a in zip(flist, arrays)}
    tiles: dict[int, np.ndarray] = {}
    fr0 = grid[0][0]
    dtype = pix[id(fr0.file)].dtype
    rows, cols = fr0.rows, fr0.cols
    raw = np.empty((nvol, nz, rows, cols), dtype=dtype)
    slopes = np.ones((nvol, nz))
    inters = np.zeros((nvol, nz))
    for v, vol in enumerate(grid):
        for z, fr in enumerate(vol):
            arr = pix[id(fr.file)]
            if fr.n_tiles:
                t = tiles.get(id(fr.file))
                if t is None:
                    t = tiles[id(fr.file)] = detile(arr[0], fr.n_tiles, fr.layout)
                raw[v, z] = t[fr.index]
            else:
                if fr.index >= arr.shape[0]:
                    raise DicomError(f"{fr.file.path}: frame {fr.index + 1} missing from the pixel data.")
                raw[v, z] = arr[fr.index]
            slopes[v, z] = fr.slope
            inters[v, z] = fr.inter
    if np.all(slopes == 1.0) and np.all(inters == 0.0):
        out = raw
    else:
        out = raw.astype(np.float32)
        out *= slopes[:, :, None, None].astype(np.float32)
        out += inters[:, :, None, None].astype(np.float32)
    # (N, Z, rows, cols) -> (X=cols, Y=rows bottom-up, Z, N)
    return out.transpose(3, 2, 1, 0)[:, ::-1, :, :]
