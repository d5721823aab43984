"""dwi_toolkit: diffusion-weighted MRI of the lumbar nerve roots (L1–S1).

Load DWI from DICOM or NIfTI, fit ADC (and IVIM/DTI), place nerve-root ROIs, compare the
symptomatic with the asymptomatic side, and report.

Units: b-values in s/mm², diffusivities in mm²/s (displayed as ×10⁻³ mm²/s), world coordinates
in RAS+ mm, affines 4×4 voxel → RAS+ mm.

The names below are imported lazily, so ``import dwi_toolkit`` stays fast and never pulls in
matplotlib, pydicom or dipy.

Workflow (the same steps as ``dwi-toolkit analyze``)::

    import dwi_toolkit as dt
    series = dt.load_dwi("sub-01_dwi.nii.gz")                  # + .bval/.bvec beside it
    rois = dt.load_rois("sub-01_rois.json")                    # or place them: viz.roi_editor
    report = dt.run_analysis("sub-01_dwi.nii.gz", "sub-01_rois.json",
                             clinical_path="clinical.json", out_dir="out/sub-01", b_min=100)
    str(report.roi_stats)               # aligned table, ADC in ×10⁻³ mm²/s
    report.qc["flags"]                  # QC flags: measured value, limit, advice
    # out/sub-01/report.html: one row per level at the top; report.json keeps every number

Examples
--------
>>> import dwi_toolkit as dt
>>> dt.__version__
'0.1.0'
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from ._version import __version__

logging.getLogger(__name__).addHandler(logging.NullHandler())

from .reporting._display import enable_inline_figures as _enable_inline_figures  # noqa: E402

_enable_inline_figures()  # figures display as images in Jupyter, no magic needed (no-op elsewhere)

#: Public name -> module that defines it (imported on first access).
_LAZY = {
    # core
    "DWISeries": "dwi_toolkit.core.image",
    "ParameterMap": "dwi_toolkit.core.image",
    # io
    "load_dwi": "dwi_toolkit.io.loading",
    "save_dwi": "dwi_toolkit.io.nifti",
    "save_map": "dwi_toolkit.io.nifti",
    "load_map": "dwi_toolkit.io.nifti",
    "find_dwi_series": "dwi_toolkit.io.dicom",
    "load_scanner_adc": "dwi_toolkit.io.dicom",
    "load_rois": "dwi_toolkit.io.rois",
    "load_clinical": "dwi_toolkit.io.clinical",
    # models
    "fit_adc": "dwi_toolkit.models.adc",
    "ADCFit": "dwi_toolkit.models.adc",
    "AdcModel": "dwi_toolkit.models.adc",
    "fit_ivim": "dwi_toolkit.models.ivim",
    "IVIMFit": "dwi_toolkit.models.ivim",
    "fit_dti": "dwi_toolkit.models.dti",
    "DTIFit": "dwi_toolkit.models.dti",
    # roi
    "RootROI": "dwi_toolkit.roi.model",
    "RoiSet": "dwi_toolkit.roi.model",
    "mirror_roi": "dwi_toolkit.roi.mirror",
    # analysis
    "roi_stats": "dwi_toolkit.analysis.roi_stats",
    "compare_sides": "dwi_toolkit.analysis.compare",
    # tracts
    "track_roots": "dwi_toolkit.tracts.tracking",
    "along_root_profiles": "dwi_toolkit.tracts.profiles",
    "compare_profiles": "dwi_toolkit.tracts.profiles",
    # clinical
    "assess_indication": "dwi_toolkit.clinical.indication",
    "assess_entrapment": "dwi_toolkit.clinical.entrapment",
    "audit_referrals": "dwi_toolkit.clinical.audit",
    # reporting
    "Report": "dwi_toolkit.reporting.report",
    # pipeline
    "run_analysis": "dwi_toolkit.pipeline.analyze",
    "AnalysisOptions": "dwi_toolkit.analysis.options",
    "run_pipeline": "dwi_toolkit.pipeline.runner",
}

__all__ = ["__version__", *sorted(_LAZY)]

# Composition root: the data objects of core/roi/models/analysis save themselves through writers
# that io provides; io is wired in here (resolved on first use) so the lower layers never import it.
from .core.writers import register_writer as _register_writer  # noqa: E402

for _name, _target in (
    ("dwi", "dwi_toolkit.io.nifti:save_dwi"),
    ("map", "dwi_toolkit.io.nifti:save_map"),
    ("rois", "dwi_toolkit.io.rois:save_rois"),
    ("csv", "dwi_toolkit.io.tables:write_csv"),
    ("atomic_path", "dwi_toolkit.io._atomic:atomic_path"),
    # readable text of result objects (their __str__/to_csv), from reporting.presentation
    ("comparison_str", "dwi_toolkit.reporting.presentation:comparison_str"),
    ("comparison_csv", "dwi_toolkit.reporting.presentation:comparison_to_csv"),
    ("entrapment_str", "dwi_toolkit.reporting.presentation:entrapment_str"),
    ("records_csv", "dwi_toolkit.reporting.presentation:records_to_csv"),
):
    _register_writer(_name, _target)
del _name, _target, _register_writer


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'dwi_toolkit' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
