"""Pipeline step ``track``: root tractography and along-root profiles (a thin layer over
:func:`dwi_toolkit.pipeline.tractography.run_tractography`).

Registered when :mod:`dwi_toolkit.pipeline.steps` is imported. The step tracks every root from the
subject's ROIs (the ``rois`` of an earlier ``roi_stats`` step, else the subject's ROI file), using
the tensor of an earlier ``dti`` step when there is one, and writes under ``tracts/``:
the streamlines (one file per root + index), the tube ROIs, the along-root profiles, the profile
comparison and a summary. A subject's junction file (``*junction*.json`` beside its ROIs,
:mod:`dwi_toolkit.pipeline.layout`) sets the roots' distance origins; otherwise the dural
junction is found from the CSF. The ``report`` step then adds the tractography section.
"""

from __future__ import annotations

from .steps import Param, SubjectContext, _auto_mask, _need_rois, register_step

__all__: list[str] = []  # the step is used through the registry (get_step("track"))


@register_step(
    "track",
    params={
        "method": Param(str, "det", choices=("det", "prob"), doc="deterministic (EuDX) or probabilistic tracking"),
        "format": Param(str, "tck", choices=("tck", "trk", "trx"), doc="streamline file format"),
        "fa_threshold": Param(float, 0.2, min=0.0, max=0.99, doc="stop tracking below this FA"),
        "max_angle_deg": Param(float, 40.0, min=1.0, max=90.0, doc="degrees; largest turn per step"),
        "seeds_per_root": Param(int, 40, min=1, doc="seeds drawn around each root's ROI"),
        "min_length_mm": Param(float, 15.0, min=0.0, doc="mm; shorter streamlines are rejected"),
        "tube_radius_mm": Param(float, 2.5, min=0.1, doc="mm; radius of the centre-line tube ROIs"),
        "mask": Param(str, "auto", choices=("auto", "none"), doc="body mask of the tensor fit"),
    },
    requires=("series",),
    provides=("tractography",),
    modules=("dwi_toolkit.tracts", "dwi_toolkit.pipeline.tractography"),
)
def track_step(ctx: SubjectContext, *, method: str, format: str, fa_threshold: float, max_angle_deg: float,
               seeds_per_root: int, min_length_mm: float, tube_radius_mm: float, mask: str) -> None:
    """Track each root from its ROI, profile FA/ADC along it and compare the sides (tracts/)."""
    from ..tracts import TrackingParams
    from .tractography import run_tractography

    rois = ctx.data.get("rois")
    if rois is None:
        from ..io.rois import load_rois

        rois = load_rois(_need_rois(ctx))
    series = ctx.data["series"]
    params = TrackingParams(method=method, fa_threshold=fa_threshold, max_angle_deg=max_angle_deg,
                            seeds_per_root=seeds_per_root, min_length_mm=min_length_mm, tube_radius_mm=tube_radius_mm)
    origins = None
    if ctx.subject.junctions is not None:  # dural junctions marked by hand (pipeline.layout)
        from ..io.rois import load_rois

        origins = load_rois(ctx.subject.junctions)
    res = run_tractography(series, rois, ctx.path("tracts", "x").parent, params=params, dti_fit=ctx.data.get("dti"),
                           mask=_auto_mask(series, mask), fmt=format, origins=origins)
    ctx.data["tractography"] = res
    for name, path in res.files.items():
        ctx.add_product(f"tracts_{name}", path)

