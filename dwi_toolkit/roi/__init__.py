"""Nerve-root regions of interest as values in world space (RAS+ mm), and operations on them.

- :mod:`dwi_toolkit.roi.model`: :class:`RootROI`, :class:`RoiSet` and the shapes
  (:class:`Sphere`, :class:`Tube`, :class:`Polygon`, :class:`VoxelMask`).
- :mod:`dwi_toolkit.roi.masks`: rasterise ROIs onto any image grid (boolean or partial-volume).
- :mod:`dwi_toolkit.roi.mirror`: mid-sagittal plane estimation and contralateral mirroring.
- :mod:`dwi_toolkit.roi.sample`: ROI sets built from root centre-lines (phantom, sample data).

No file I/O here: formats live in :mod:`dwi_toolkit.io.rois`.
"""
