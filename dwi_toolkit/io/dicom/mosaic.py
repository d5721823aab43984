"""MOSAIC images: one 2-D image holding all slices of a volume as tiles.

Siemens: tiles fill a square grid of ``ceil(sqrt(N))`` tiles per side, row by row; tile k is
slice k in acquisition-space order, ascending along the CSA ``SliceNormalVector``.
United Imaging "VFRAME" files (one file per volume, ``(0065,1050)`` images in the grid): the grid
has ``ceil(sqrt(N))`` columns but only ``ceil(N / columns)`` rows (dcm2niix ``nii_demosaic``,
issue 225); each tile's ImagePositionPatient is in the private sequence ``(0065,1051)``.
For Siemens, ImagePositionPatient of a
mosaic refers to the top-left corner of the *whole* mosaic as if it were one slice, so the first
tile's position is shifted by half the mosaic/tile size difference (as nibabel and dcm2niix do).
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import DicomError

__all__ = ["grid_of", "tile_shape", "detile", "tile_positions"]


def grid_of(n_images: int, layout: str = "siemens") -> tuple[int, int]:
    """(tile rows, tile columns) of the mosaic grid: square for Siemens, trimmed rows for UIH.

    Examples
    --------
    >>> grid_of(20), grid_of(20, "uih")
    ((5, 5), (4, 5))
    """
    n_cols = int(math.ceil(math.sqrt(n_images)))
    n_rows = int(math.ceil(n_images / n_cols)) if layout == "uih" else n_cols
    return n_rows, n_cols


def tile_shape(rows: int, cols: int, n_images: int, layout: str = "siemens") -> tuple[int, int, int]:
    """(tiles per side, tile rows, tile cols) of a mosaic (tiles per row of the grid for UIH).

    Examples
    --------
    >>> tile_shape(816, 816, 60)
    (8, 102, 102)
    >>> tile_shape(256, 320, 20, "uih")
    (5, 64, 64)
    """
    n_rows, n_cols = grid_of(n_images, layout)
    if rows % n_rows or cols % n_cols:
        raise DicomError(
            f"MOSAIC of {rows}x{cols} pixels cannot hold {n_images} equal tiles "
            f"({n_rows}x{n_cols} grid); the number of images in the mosaic is inconsistent with "
            "the image size."
        )
    return n_cols, rows // n_rows, cols // n_cols


def detile(mosaic: np.ndarray, n_images: int, layout: str = "siemens") -> np.ndarray:
    """Split a (rows, cols) mosaic into (n_images, tile_rows, tile_cols).

    Examples
    --------
    >>> m = np.arange(16).reshape(4, 4)
    >>> detile(m, 3)[1].tolist()
    [[2, 3], [6, 7]]
    """
    rows, cols = mosaic.shape
    n_rows, n_cols = grid_of(n_images, layout)
    _, tr, tc = tile_shape(rows, cols, n_images, layout)
    t = mosaic.reshape(n_rows, tr, n_cols, tc).transpose(0, 2, 1, 3).reshape(n_rows * n_cols, tr, tc)
    return t[:n_images]


def tile_positions(ipp, iop, pixel_spacing, rows: int, cols: int, n_images: int,
                   slice_normal, spacing: float) -> np.ndarray:
    """ImagePositionPatient (LPS mm) of each tile, shape (n_images, 3).

    Examples
    --------
    >>> pos = tile_positions([0, 0, 0], [1, 0, 0, 0, 1, 0], (2.0, 2.0), rows=128, cols=128, n_images=4,
    ...                      slice_normal=[0, 0, 1], spacing=4.0)
    >>> pos.shape, pos[:, 2].tolist()                  # LPS mm
    ((4, 3), [0.0, 4.0, 8.0, 12.0])
    """
    _, tr, tc = tile_shape(rows, cols, n_images)
    iop = np.asarray(iop, dtype=float)
    row, col = iop[:3], iop[3:]
    dr, dc = float(pixel_spacing[0]), float(pixel_spacing[1])
    first = (np.asarray(ipp, dtype=float) + row * dc * (cols - tc) / 2.0 + col * dr * (rows - tr) / 2.0)
    nvec = np.asarray(slice_normal, dtype=float)
    nvec = nvec / np.linalg.norm(nvec)
    return first[None, :] + np.arange(n_images)[:, None] * spacing * nvec[None, :]
