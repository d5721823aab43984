"""Synthetic DICOM DWI test series (tests, benchmarks, examples) in vendor styles.

Classic series are written by the toolkit's one DICOM writer,
:func:`dwi_toolkit.io.dicom_write.write_dicom_series` (vendor encodings through
:class:`~dwi_toolkit.io.dicom_write.DicomStyle`); the Siemens MOSAIC and enhanced multi-frame
variants use its dataset steps. Pixel values encode (column, row, slice, volume) so a reader's voxel placement can be
checked: ``value = (c + 3*r + 17*k + 101*v) % 4000`` with ``k`` the slice index along the slice
normal (``row × col``) in the order the slices were *written to space*, not file order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["write_series", "write_mosaic_series", "write_enhanced_series", "pixel_value", "rotation", "csa2_blob"]


def pixel_value(c, r, k, v):
    """Synthetic stored value at column c, row r, slice k (ascending along the normal), volume v."""
    return (np.asarray(c) + 3 * np.asarray(r) + 17 * np.asarray(k) + 101 * np.asarray(v)) % 4000


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation matrix from angles in degrees about x, then y, then z."""
    from ...core.affines import rotation_matrix

    return rotation_matrix([ax, ay, az])


def write_series(
    folder: str | os.PathLike,
    *,
    iop=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    rows: int = 8,
    cols: int = 10,
    n_slices: int = 5,
    bvals=(0.0, 1000.0, 1000.0, 1000.0),
    bvecs_lps=((0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)),
    pixel_spacing=(2.0, 1.5),
    slice_spacing: float = 3.0,
    origin=(-10.0, -20.0, 30.0),
    patient_position: str = "HFS",
    manufacturer: str = "SyntheticVendor",
    descending: bool = False,
    shuffle_names: bool = False,
    drop: tuple[tuple[int, int], ...] = (),
    duplicate: tuple[tuple[int, int], ...] = (),
    series_uid: str = "1.2.826.0.1.3680043.8.498.1",
    series_number: int = 3,
    description: str = "synthetic DWI",
    image_type=("ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"),
    seed: int = 0,
    encoding: str = "standard",
    phase: str = "COL",
    philips_scaling: tuple[float, float, float] | None = None,
) -> list[Path]:
    """Write a classic series; return the written paths.

    Parameters
    ----------
    iop : 6 floats
        ImageOrientationPatient (LPS).
    descending : bool
        Acquire (number instances) from the highest slice position down.
    drop, duplicate : tuples of (slice k, volume v)
        Leave out, or write twice under another name (same SOPInstanceUID), those images.
    encoding : {"standard", "ge", "philips"}
        Where the diffusion encoding goes: standard (0018,9087)/(0018,9089) in the patient frame;
        GE private (0043,1039)/(0019,10BB..BD) with `bvecs_lps` taken as GE *logical-frame*
        vectors (written as given); Philips private (2001,1003)/(2005,10B0..B2).
    phase : {"COL", "ROW"}
        InPlanePhaseEncodingDirection.
    philips_scaling : (rescale slope, rescale intercept, scale slope), optional
        Write Philips RescaleSlope/Intercept and private ScaleSlope (2005,100E).
    """
    from ...core.image import DWISeries
    from ..dicom_write import DicomStyle, write_dicom_series

    folder = Path(folder)
    iop = np.asarray(iop, float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    # voxel -> LPS affine of the grid, then RAS for the DWISeries the one writer takes
    a_lps = np.eye(4)
    a_lps[:3, 0] = row * pixel_spacing[1]
    a_lps[:3, 1] = col * pixel_spacing[0]
    a_lps[:3, 2] = normal * slice_spacing
    a_lps[:3, 3] = origin
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ a_lps
    nvol = len(bvals)
    c, r, k, v = np.meshgrid(np.arange(cols), np.arange(rows), np.arange(n_slices), np.arange(nvol), indexing="ij")
    series = DWISeries(pixel_value(c, r, k, v).astype(np.uint16), affine, np.asarray(bvals, float),
                       np.zeros((nvol, 3)), meta={"EchoTime": 0.08, "RepetitionTime": 4.0, "FlipAngle": 90},
                       b0_threshold=0.0)
    style = DicomStyle(encoding=encoding, vectors=tuple(tuple(float(x) for x in g) for g in bvecs_lps),
                       patient_position=patient_position, phase=phase, image_type=tuple(image_type),
                       descending=descending, series_uid=series_uid, philips_scaling=philips_scaling)
    written = write_dicom_series(series, folder, series_number=series_number, description=description,
                                 patient_name="Synthetic^Patient", patient_id="SYN001",
                                 study_seed=f"synthetic-{series_uid}", manufacturer=manufacturer, style=style)
    return _finish_files(written, n_slices, drop, duplicate, np.random.default_rng(seed) if shuffle_names else None)


def _finish_files(written, n_slices, drop, duplicate, rng) -> list[Path]:
    """Remove dropped (slice, volume) images, add same-UID duplicates, optionally shuffle names."""
    paths = []
    for i, path in enumerate(written):
        v, k = divmod(i, n_slices)
        if (k, v) in drop:
            path.unlink()
            continue
        if rng is not None:
            path = path.rename(path.with_name(f"{rng.integers(1 << 40):012x}"))
        paths.append(path)
        if (k, v) in duplicate:
            dup = path.with_name(path.name + "_copy")
            dup.write_bytes(path.read_bytes())
            paths.append(dup)
    return paths


def csa2_blob(tags: dict) -> bytes:
    """A Siemens CSA2 ("SV10") header holding `tags` (name -> list of item strings)."""
    import struct

    out = b"SV10\x04\x03\x02\x01" + struct.pack("<2I", len(tags), 77)
    for name, items in tags.items():
        out += name.encode().ljust(64, b"\0") + struct.pack("<i4siii", 1, b"FD\0\0", 4, len(items), 77)
        for it in items:
            v = str(it).encode() + b"\0"
            out += struct.pack("<4i", len(v), len(v), 77, len(v)) + v.ljust((len(v) + 3) // 4 * 4, b"\0")
    return out


def write_mosaic_series(
    folder: str | os.PathLike,
    *,
    iop=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    normal_sign: float = 1.0,
    tile: tuple[int, int] = (6, 8),
    n_slices: int = 5,
    bvals=(0.0, 1000.0, 1000.0),
    bvecs_lps=((0, 0, 0), (1, 0, 0), (0.6, 0.0, 0.8)),
    pixel_spacing=(2.0, 1.5),
    slice_spacing: float = 3.0,
    first_tile=(-10.0, -20.0, 30.0),
    patient_position: str = "HFS",
) -> list[Path]:
    """Write a Siemens-style MOSAIC series (one file per volume, CSA header with diffusion).

    Tile k holds slice k at ``first_tile + k * slice_spacing * normal``, where the CSA
    SliceNormalVector is ``normal_sign * (row x col)``; pixel values follow :func:`pixel_value`
    with ``k`` the tile index.
    """
    from ..dicom_write import _new_dataset, _put_pixel_module, _save

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    iop = np.asarray(iop, float)
    row, col = iop[:3], iop[3:]
    normal = normal_sign * np.cross(row, col)
    tr, tc = tile
    per_side = int(np.ceil(np.sqrt(n_slices)))
    rows, cols = per_side * tr, per_side * tc
    dr, dc = pixel_spacing
    ipp = np.asarray(first_tile, float) - row * dc * (cols - tc) / 2.0 - col * dr * (rows - tr) / 2.0
    cc, rr = np.meshgrid(np.arange(tc), np.arange(tr))
    paths = []
    for v, b in enumerate(bvals):
        mosaic = np.zeros((rows, cols), dtype="<u2")
        for k in range(n_slices):
            gr, gc = divmod(k, per_side)
            mosaic[gr * tr:(gr + 1) * tr, gc * tc:(gc + 1) * tc] = pixel_value(cc, rr, k, v)
        path = folder / f"MR{v + 1:04d}.dcm"
        ds = _new_dataset(path, "1.2.840.10008.5.1.4.1.1.4", f"1.2.826.0.1.3680043.8.498.7.{v + 1}")
        ds.Manufacturer = "SIEMENS"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE", "ND", "MOSAIC"]
        ds.PatientPosition = patient_position
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.6"
        ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.7"
        ds.SeriesNumber = 7
        ds.SeriesDescription = "synthetic mosaic"
        ds.InstanceNumber = v + 1
        ds.AcquisitionNumber = v + 1
        ds.EchoTime, ds.RepetitionTime, ds.FlipAngle = 80, 4000, 90
        ds.InPlanePhaseEncodingDirection = "COL"
        ds.SliceThickness = slice_spacing
        ds.SpacingBetweenSlices = slice_spacing
        ds.ImageOrientationPatient = [float(x) for x in iop]
        ds.ImagePositionPatient = [round(float(x), 6) for x in ipp]
        ds.PixelSpacing = [float(dr), float(dc)]
        _put_pixel_module(ds, rows, cols)
        tags = {"NumberOfImagesInMosaic": [n_slices], "SliceNormalVector": [f"{x:.8f}" for x in normal],
                "B_value": [int(b)], "PhaseEncodingDirectionPositive": [1]}
        if b > 0:
            tags["DiffusionGradientDirection"] = [f"{x:.8f}" for x in bvecs_lps[v]]
        ds.add_new((0x0029, 0x0010), "LO", "SIEMENS CSA HEADER")
        ds.add_new((0x0029, 0x1010), "OB", csa2_blob(tags))
        ds.PixelData = mosaic.tobytes()
        paths.append(_save(ds, path))
    return paths


def write_enhanced_series(
    path: str | os.PathLike,
    *,
    iop=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
    rows: int = 8,
    cols: int = 10,
    n_slices: int = 4,
    bvals=(0.0, 1000.0, 1000.0),
    bvecs_lps=((0, 0, 0), (1, 0, 0), (0.0, 0.6, 0.8)),
    pixel_spacing=(2.0, 1.5),
    slice_spacing: float = 3.0,
    origin=(-10.0, -20.0, 30.0),
    slice_major: bool = True,
    rescale: tuple[float, float] = (1.0, 0.0),
    manufacturer: str = "SyntheticVendor",
) -> Path:
    """Write one Enhanced MR Image Storage file holding every slice of every volume.

    Frames are stored slice by slice (all volumes of slice 0, then slice 1, ...) when
    `slice_major`, else volume by volume; diffusion per frame in MRDiffusionSequence, rescale in
    PixelValueTransformationSequence. Pixel values follow :func:`pixel_value`.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from ..dicom_write import _new_dataset, _put_pixel_module, _save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iop = np.asarray(iop, float)
    normal = np.cross(iop[:3], iop[3:])
    ds = _new_dataset(path, "1.2.840.10008.5.1.4.1.1.4.1", "1.2.826.0.1.3680043.8.498.9.1")
    ds.Manufacturer = manufacturer
    ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.8"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.9"
    ds.SeriesNumber = 9
    ds.SeriesDescription = "synthetic enhanced"
    ds.InstanceNumber = 1
    _put_pixel_module(ds, rows, cols)
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [float(pixel_spacing[0]), float(pixel_spacing[1])]
    pm.SliceThickness = slice_spacing
    pm.SpacingBetweenSlices = slice_spacing
    shared.PixelMeasuresSequence = Sequence([pm])
    po = Dataset()
    po.ImageOrientationPatient = [float(x) for x in iop]
    shared.PlaneOrientationSequence = Sequence([po])
    tim = Dataset()
    tim.RepetitionTime, tim.FlipAngle = 4000.0, 90.0
    shared.MRTimingAndRelatedParametersSequence = Sequence([tim])
    pvt = Dataset()
    pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = rescale[0], rescale[1], "US"
    shared.PixelValueTransformationSequence = Sequence([pvt])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    order = ([(k, v) for k in range(n_slices) for v in range(len(bvals))] if slice_major
             else [(k, v) for v in range(len(bvals)) for k in range(n_slices)])
    frames, pixels = [], []
    cc, rr = np.meshgrid(np.arange(cols), np.arange(rows))
    for k, v in order:
        fr = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [round(float(x), 6) for x in np.asarray(origin) + k * slice_spacing * normal]
        fr.PlanePositionSequence = Sequence([pp])
        fc = Dataset()
        fc.StackID = "1"
        fc.InStackPositionNumber = k + 1
        fc.TemporalPositionIndex = v + 1
        fc.DimensionIndexValues = [1, k + 1, v + 1]
        fr.FrameContentSequence = Sequence([fc])
        md = Dataset()
        md.DiffusionBValue = float(bvals[v])
        if bvals[v] > 0:
            md.DiffusionDirectionality = "DIRECTIONAL"
            gd = Dataset()
            gd.DiffusionGradientOrientation = [float(x) for x in bvecs_lps[v]]
            md.DiffusionGradientDirectionSequence = Sequence([gd])
        else:
            md.DiffusionDirectionality = "NONE"
        fr.MRDiffusionSequence = Sequence([md])
        ec = Dataset()
        ec.EffectiveEchoTime = 80.0
        fr.MREchoSequence = Sequence([ec])
        frames.append(fr)
        pixels.append(pixel_value(cc, rr, k, v).astype("<u2"))
    dims = []
    for ptr, grp in ((0x00209056, 0x00209111), (0x00209057, 0x00209111), (0x00209128, 0x00209111)):
        d = Dataset()
        d.DimensionIndexPointer = ptr
        d.FunctionalGroupPointer = grp
        dims.append(d)
    ds.DimensionIndexSequence = Sequence(dims)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = np.stack(pixels).tobytes()
    return _save(ds, path)
