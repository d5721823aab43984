"""Registry of named pipeline steps: thin adapters over the public API.

A step is a function ``func(ctx, **params)`` that reads what earlier steps left in
``ctx.data`` (e.g. ``"series"``, ``"fit"``), calls the public API, stores its results back and
writes files into ``ctx.out_dir`` (the subject's temporary output folder), recording each file
with :meth:`SubjectContext.add_product`. Each step declares its parameters (type, default,
allowed values), what it ``requires`` and ``provides`` in ``ctx.data`` and which modules it
needs, so a pipeline file is validated completely before any work starts.

Built-in steps
--------------
``load``       DWI series (:func:`~dwi_toolkit.io.loading.load_dwi`) → ``series``
``adc``        ADC fit (:func:`~dwi_toolkit.models.adc.fit_adc`), NIfTI maps → ``fit``
``roi_stats``  ROI statistics (:func:`~dwi_toolkit.analysis.roi_stats.roi_stats`) → ``rois``, ``stats``
``compare``    side comparison (:func:`~dwi_toolkit.analysis.compare.compare_sides`) → ``comparison``
``assess``     indication + entrapment assessments → ``indication``, ``entrapment``
``report``     the subject report (report.json, CSV, report.html) → ``report``
``analyze``    all of the above in one call of :func:`dwi_toolkit.pipeline.analyze.run_analysis`
``ivim``       IVIM fit (D, f, D*), maps (+ ROI statistics) → ``ivim``
``dti``        tensor fit (FA, MD, AD, RD), maps (+ ROI statistics) → ``dti``
``check_gradients`` gradient-table check (and fix) → ``gradient_check`` (:mod:`.steps_qc`)
``track``      root tractography, along-root profiles → ``tractography`` (:mod:`.steps_tracts`)

Further steps are added with :func:`register_step` (in this module, or in a plugin module named
in the pipeline's ``plugins`` list)::

    @register_step("ivim", requires=("series",), provides=("ivim",),
                   modules=("dwi_toolkit.models.ivim",),
                   params={"method": Param(str, "map", choices=("segmented", "full", "map"))})
    def ivim_step(ctx, *, method):
        from ..models.ivim import fit_ivim
        ctx.data["ivim"] = fit_ivim(ctx.data["series"], method=method)
"""

from __future__ import annotations

import os

import importlib.util
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputDataError, PipelineError, RoiError

__all__ = ["Param", "StepDef", "SubjectContext", "STEPS", "BIDS_MAP_NAMES", "register_step", "get_step", "map_stem"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Param:
    """Declaration of one step parameter.

    ``types`` may be one type or a tuple; a ``float`` parameter also accepts integers. A default
    of ``None`` means "not set" (TOML has no null: leave the key out).

    Examples
    --------
    >>> p = Param(float, default=10.0, min=0.0, doc="threshold in %")
    >>> p.types, p.default
    ((<class 'float'>,), 10.0)
    """

    types: Any
    default: Any = None
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    doc: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.types, tuple):
            object.__setattr__(self, "types", (self.types,))


@dataclass(frozen=True)
class StepDef:
    """A registered step: its function and declarations.

    Examples
    --------
    >>> d = get_step("adc")
    >>> d.name, "method" in d.params, d.params["method"].choices
    ('adc', True, ('wls', 'ols', 'nlls'))
    """

    name: str
    func: Callable[..., Any]
    params: dict[str, Param]
    requires: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    check: Callable[[dict[str, Any]], str | None] | None = None
    doc: str = ""

    def missing_modules(self) -> list[str]:
        """Modules this step needs that cannot be imported here."""
        out = []
        for m in self.modules:
            try:
                found = importlib.util.find_spec(m) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                out.append(m)
        return out


@dataclass
class SubjectContext:
    """What one subject's steps share.

    Attributes
    ----------
    subject : Subject
        Where the inputs are (:class:`dwi_toolkit.pipeline.layout.Subject`).
    out_dir : Path
        The subject's *temporary* output folder; it is moved into place when every step is done.
    data : dict
        Objects handed from step to step (``series``, ``fit``, ``stats`` ...).
    products : dict
        Name → path relative to `out_dir` of each file written (recorded in the manifest).
    progress : callable, optional
        ``progress(message)`` for progress within long steps.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dwi_toolkit.pipeline.layout import Subject
    >>> tmp = Path(tempfile.mkdtemp())
    >>> ctx = SubjectContext(Subject(label="sub-01", source="sub-01", root=tmp), out_dir=tmp / "out")
    >>> p = ctx.path("dwi", "x.json"); _ = p.write_text("{}")
    >>> ctx.add_product("x", p); ctx.prefix, ctx.products
    ('sub-01', {'x': 'dwi/x.json'})
    """

    subject: Any
    out_dir: Path
    data: dict[str, Any] = field(default_factory=dict)
    products: dict[str, str] = field(default_factory=dict)
    progress: Callable[[str], None] | None = None

    @property
    def prefix(self) -> str:
        """BIDS entity prefix of output file names, e.g. ``sub-01_ses-1``."""
        return self.subject.prefix

    def path(self, *parts: str) -> Path:
        """A path inside the output folder (parent folders are created)."""
        p = self.out_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def add_product(self, name: str, path: str | Path) -> None:
        """Record an output file (absolute or relative to `out_dir`)."""
        p = Path(path)
        if p.is_absolute() or p.parts[: len(self.out_dir.parts)] == self.out_dir.parts:
            # a path made by self.path(...) (absolute, or relative to the working directory)
            p = Path(os.path.relpath(p.resolve(), self.out_dir.resolve()))
        self.products[name] = p.as_posix()


#: Registered steps by name.
STEPS: dict[str, StepDef] = {}


def register_step(name: str, *, params: dict[str, Param] | None = None, requires: tuple[str, ...] = (),
                  provides: tuple[str, ...] = (), modules: tuple[str, ...] = (),
                  check: Callable[[dict[str, Any]], str | None] | None = None) -> Callable:
    """Decorator registering ``func(ctx, **params)`` as pipeline step `name`.

    Re-registering a name replaces the earlier step (plugins may override built-ins).

    Examples
    --------
    >>> @register_step("count_volumes", params={"label": Param(str, default="n")}, requires=("series",))
    ... def count_volumes(ctx, label):
    ...     ctx.data[label] = ctx.data["series"].n_volumes
    >>> get_step("count_volumes").requires
    ('series',)
    >>> _ = STEPS.pop("count_volumes")           # tidy up the registry
    """

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        STEPS[name] = StepDef(name=name, func=func, params=dict(params or {}), requires=tuple(requires),
                              provides=tuple(provides), modules=tuple(modules), check=check,
                              doc=(func.__doc__ or "").strip().splitlines()[0] if func.__doc__ else "")
        return func

    return deco


def get_step(name: str) -> StepDef:
    """The registered step `name`.

    Examples
    --------
    >>> get_step("report").name
    'report'
    >>> get_step("nope")
    Traceback (most recent call last):
    ...
    dwi_toolkit.errors.PipelineError: unknown step 'nope'; registered steps: ...
    """
    try:
        return STEPS[name]
    except KeyError:
        raise PipelineError(f"unknown step {name!r}; registered steps: {', '.join(sorted(STEPS))}.") from None


# ------------------------------------------------------------------------------ helpers
def _b_range_check(p: dict[str, Any]) -> str | None:
    lo, hi = p.get("b_min"), p.get("b_max")
    if lo is not None and hi is not None and lo >= hi:
        return f"b_min ({lo} s/mm^2) must be below b_max ({hi} s/mm^2)."
    return None


def _b_range(p: dict[str, Any]) -> tuple[float | None, float | None] | None:
    lo, hi = p.get("b_min"), p.get("b_max")
    return None if lo is None and hi is None else (lo, hi)


def _write_json(path: Path, doc: Any) -> None:
    from ..io._atomic import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=2, default=str, allow_nan=False) + "\n")


def _need_rois(ctx: SubjectContext) -> Path:
    if ctx.subject.rois is None:
        raise RoiError(
            f"subject {ctx.subject.key}: no ROI file found in {ctx.subject.source} (looked for rois.json, "
            "*.mrk.json and *_dseg.nii.gz at the top of the subject folder and in rois/); add one "
            "or use a pipeline without ROI steps (e.g. --pipeline adc-only)."
        )
    return Path(ctx.subject.rois)


def _load_clinical(ctx: SubjectContext) -> Any:
    if "clinical" in ctx.data:
        return ctx.data["clinical"]
    clinical = None
    if ctx.subject.clinical is not None:
        from ..io.clinical import load_clinical

        clinical = load_clinical(ctx.subject.clinical)
    ctx.data["clinical"] = clinical
    return clinical


_METHODS = ("wls", "ols", "nlls")
_TABLE_FORMATS = ("tsv", "csv")
_TABLE_DOC = "tsv (BIDS: tab-separated, n/a for missing, JSON data dictionary beside it) or csv"
_SIDES = ("clinical", "left", "right", "unknown")


# ------------------------------------------------------------------------------ built-ins
def _option_param(name: str) -> Param:
    """The step parameter of analysis option `name`, declared once in AnalysisOptions."""
    from ..analysis.options import AnalysisOptions

    rec = {r["name"]: r for r in AnalysisOptions.describe()}[name]
    doc = rec["help"] + (f" ({rec['unit']})" if rec.get("unit") else "")
    return Param(AnalysisOptions.value_type(name), rec["default"], choices=rec.get("choices"), min=rec.get("min"),
                 doc=doc)


@register_step(
    "load",
    params={
        "b0_threshold": Param(float, 50.0, min=0.0, doc="s/mm^2; volumes at or below count as b=0"),
        "backend": _option_param("backend"),
        "require_rois": Param(bool, False, doc="fail the subject when it has no ROI file"),
        "require_clinical": Param(bool, False, doc="fail the subject when it has no clinical.json"),
        "scrub_text": Param(bool, True, doc="mask identifiers typed into free-text header fields "
                            "(SeriesDescription, ProtocolName, ...); docs/robustness.md"),
    },
    provides=("series",),
    modules=("dwi_toolkit.io.loading",),
)
def load_step(ctx: SubjectContext, *, b0_threshold: float, require_rois: bool, require_clinical: bool,
              scrub_text: bool = True, backend: str = "native") -> None:
    """Load the DWI series (NIfTI + .bval/.bvec, or DICOM) into ``series``."""
    from ..io.loading import load_dwi

    subj = ctx.subject
    if require_rois:
        _need_rois(ctx)
    if require_clinical and subj.clinical is None:
        raise InputDataError(f"subject {subj.key}: no clinical.json found in {subj.source}.")
    if subj.dwi is None:
        raise InputDataError(f"subject {subj.key}: {subj.problem or 'no DWI series found'}")
    ctx.data["series"] = load_dwi(subj.dwi, bvals=subj.bvals, bvecs=subj.bvecs, b0_threshold=b0_threshold,
                                  scrub_text=scrub_text, backend=backend)


@register_step(
    "adc",
    params={
        "method": Param(str, "wls", choices=_METHODS, doc="log-linear WLS, OLS or nonlinear LS"),
        "b_min": Param(float, None, min=0.0, doc="s/mm^2; leave out b-values below (b=0 too if > 0)"),
        "b_max": Param(float, None, min=0.0, doc="s/mm^2; leave out b-values above"),
        "mask": Param(str, "auto", choices=("auto", "none"), doc="auto: voxels above background on b=0"),
        "save_maps": Param(bool, True, doc="write ADC/S0/R^2/status NIfTI maps"),
        "chunk_size": Param(int, 16384, min=256, doc="voxels per chunk (bounds memory)"),
    },
    requires=("series",),
    provides=("fit",),
    modules=("dwi_toolkit.models.adc",),
    check=_b_range_check,
)
def adc_step(ctx: SubjectContext, *, method: str, b_min: float | None, b_max: float | None, mask: str,
             save_maps: bool, chunk_size: int) -> None:
    """Fit the mono-exponential ADC (mm^2/s) and write BIDS-derivative maps under dwi/."""
    from ..models.adc import fit_adc

    series = ctx.data["series"]
    m = _auto_mask(series, mask)
    fit = fit_adc(series, method=method, b_range=_b_range({"b_min": b_min, "b_max": b_max}), mask=m,
                  chunk_size=chunk_size)
    ctx.data["fit"] = fit
    summary = {**fit.summary(), "mask": mask, "mask_voxels": None if m is None else int(m.sum()),
               "units": {"adc": "mm^2/s", "bvals": "s/mm^2"}}
    if save_maps:
        _save_model_maps(ctx, fit, "adc", extra={"adc": {"FitSummary": summary}})
    # the fit summary is the ADC map's sidecar (a file of its own when the maps are not written)
    side = ctx.path("dwi", f"{ctx.prefix}_ADC.json" if save_maps else f"{ctx.prefix}_model-adc_dwimap.json")
    if not save_maps:
        _write_json(side, summary)
    ctx.add_product("adc_summary", side)


@register_step(
    "roi_stats",
    params={
        "exclude_status": Param(bool, True, doc="leave out voxels whose fit failed (status != 0)"),
        "csf_threshold": Param(float, None, min=0.0, doc="mm^2/s; leave out voxels above (CSF)"),
        "if_no_rois": Param(str, "fail", choices=("fail", "skip"), doc="subject without ROI file"),
        "table_format": Param(str, "tsv", choices=_TABLE_FORMATS, doc=_TABLE_DOC),
    },
    requires=("fit",),
    provides=("rois", "stats"),
    modules=("dwi_toolkit.io.rois", "dwi_toolkit.analysis.roi_stats"),
)
def roi_stats_step(ctx: SubjectContext, *, exclude_status: bool, csf_threshold: float | None,
                   if_no_rois: str, table_format: str) -> None:
    """Load the subject's ROIs and compute ADC statistics per root (``<prefix>_desc-roistats.tsv``)."""
    if ctx.subject.rois is None and if_no_rois == "skip":
        logger.info("%s: no ROI file; roi_stats skipped", ctx.subject.key)
        ctx.data["rois"] = ctx.data["stats"] = None
        return
    from ..analysis.roi_stats import roi_stats
    from ..io.rois import load_rois

    rois = load_rois(_need_rois(ctx))
    stats = roi_stats(ctx.data["fit"], rois, exclude_status=exclude_status, csf_threshold=csf_threshold)
    ctx.data["rois"], ctx.data["stats"] = rois, stats
    p = _write_table(ctx, f"{ctx.prefix}_desc-roistats", stats.to_records(), table_format)
    ctx.add_product(f"roi_stats_{table_format}", p)


@register_step(
    "compare",
    params={
        "symptomatic_side": Param(str, "clinical", choices=_SIDES,
                                  doc="'clinical' = radicular_side of clinical.json"),
        "n_boot": Param(int, 2000, min=0, doc="bootstrap resamples"),
        "ci": Param(float, 0.95, min=0.5, max=0.999, doc="confidence level"),
        "min_voxels": Param(int, 5, min=1, doc="fewer voxels on a side flags the ROI as too small"),
        "seed": Param(int, 0, doc="bootstrap seed"),
        **{k: _option_param(k) for k in ("interval", "reference", "noise")},
    },
    requires=("stats",),
    provides=("comparison", "clinical"),
    modules=("dwi_toolkit.analysis.compare",),
)
def compare_step(ctx: SubjectContext, *, symptomatic_side: str, n_boot: int, ci: float, min_voxels: int,
                 seed: int, interval: str, reference: str, noise: str) -> None:
    """Compare each root on the symptomatic side with its contralateral twin (§2.8 indices).

    ``reference = "adjacent"`` (or ``"auto"`` with an unknown/bilateral side) adds the comparison
    with the adjacent levels (``adjacent_comparison``, its own report section)."""
    from ..analysis.options import AnalysisOptions
    from .analyze import side_comparisons

    stats = ctx.data.get("stats")
    if stats is None:
        ctx.data["comparison"] = None
        return
    clinical = _load_clinical(ctx)
    if symptomatic_side == "clinical":
        side = getattr(clinical, "radicular_side", None) if clinical is not None else None
        side = side if side in ("left", "right") else None
    else:
        side = None if symptomatic_side == "unknown" else symptomatic_side
    ctx.data["symptomatic_side"] = side
    ctx.data["compare_params"] = {"n_boot": n_boot, "ci": ci, "min_voxels": min_voxels, "seed": seed,
                                  "symptomatic_side": side, "symptomatic_side_source": symptomatic_side,
                                  "interval": interval, "reference": reference, "noise": noise}
    opts = AnalysisOptions(n_boot=n_boot, ci=ci, min_voxels=min_voxels, seed=seed, interval=interval,
                           reference=reference, noise=noise)
    series = ctx.data.get("series")
    ctx.data["comparison"], ctx.data["adjacent_comparison"] = side_comparisons(
        stats, side, opts, getattr(series, "meta", None))


@register_step(
    "assess",
    params={
        "threshold_pct": Param(float, 10.0, min=0.0,
                               doc="% side difference called an asymmetry (not a diagnostic cut-off)"),
        "parameter": Param(str, "adc", doc="parameter assessed for entrapment"),
        "entrapment_parameters": _option_param("entrapment_parameters"),
    },
    requires=("comparison",),
    provides=("indication", "entrapment"),
    modules=("dwi_toolkit.clinical.indication", "dwi_toolkit.clinical.entrapment"),
)
def assess_step(ctx: SubjectContext, *, threshold_pct: float, parameter: str, entrapment_parameters: str) -> None:
    """Indication (rule set v1, §3.10) and entrapment concordance assessments."""
    from ..clinical.entrapment import assess_entrapment

    clinical = _load_clinical(ctx)
    indication = None
    if clinical is not None:
        from ..clinical.indication import assess_indication

        indication = assess_indication(clinical)
    ctx.data["indication"] = indication
    ctx.data["assess_params"] = {"threshold_pct": threshold_pct, "parameter": parameter,
                                 "entrapment_parameters": entrapment_parameters}
    from ..analysis.options import AnalysisOptions

    params = AnalysisOptions(parameter=parameter, entrapment_parameters=entrapment_parameters)
    comparison = ctx.data.get("comparison")
    ctx.data["entrapment"] = None if comparison is None else assess_entrapment(
        comparison, clinical, indication=indication, threshold_pct=threshold_pct,
        parameter=params.entrapment_parameter_list)


@register_step(
    "report",
    params={"figures": Param(bool, True, doc="render the figures (slower)")},
    requires=("series", "fit"),
    provides=("report",),
    modules=("dwi_toolkit.reporting.report", "dwi_toolkit.pipeline.analyze"),
)
def report_step(ctx: SubjectContext, *, figures: bool) -> None:
    """Write report.json, the CSV tables and report.html under report/."""
    from ..reporting.report import build_report
    from .analyze import roi_masks

    d = ctx.data
    series, rois = d["series"], d.get("rois")
    masks = roi_masks(rois, series.spatial_shape, series.affine) if rois is not None else []
    fit = d["fit"]
    params = {"method": fit.method, "b_min": fit.params.get("b_range", [None, None])[0],
              "b_max": fit.params.get("b_range", [None, None])[1], "b0_threshold": fit.b0_threshold,
              **d.get("compare_params", {}), **d.get("assess_params", {})}
    s = ctx.subject
    inputs = {"dwi": s.dwi, "rois": s.rois, "clinical": s.clinical, "bvals": s.bvals, "bvecs": s.bvecs}
    report = build_report(series=series, fit=fit, roi_masks=masks, stats=d.get("stats"),
                          comparison=d.get("comparison"), indication=d.get("indication"),
                          entrapment=d.get("entrapment"), parameters=params, inputs=inputs,
                          subject=ctx.prefix, command="dwi-toolkit run", figures=figures)
    from .subject_sections import add_report_sections

    add_report_sections(report, adjacent_comparison=d.get("adjacent_comparison"),
                        gradient_check=d.get("gradient_check"), tractography=d.get("tractography"),
                        figures=figures, out_dir=ctx.out_dir)
    out = ctx.out_dir / "report"
    report.save(out)
    d["report"] = report
    _record_report(ctx, out)


def _record_report(ctx: SubjectContext, out: Path) -> None:
    for name in ("report.json", "report.html", "roi_stats.csv", "side_comparison.csv", "entrapment.csv"):
        if (out / name).is_file():
            ctx.add_product(name.replace(".", "_"), out / name)


def _analysis_params() -> dict[str, Param]:
    """The ``analyze`` step's parameters: every field of AnalysisOptions, declared there once."""
    from ..analysis.options import AnalysisOptions

    params = {name: _option_param(name) for name in AnalysisOptions.names()}
    params["symptomatic_side"] = Param(str, "clinical", choices=("clinical", "left", "right"),
                                       doc="'clinical' = radicular_side of clinical.json")
    return params


@register_step(
    "analyze",
    params=_analysis_params(),
    provides=("report",),
    modules=("dwi_toolkit.pipeline.analyze",),
    check=_b_range_check,
)
def analyze_step(ctx: SubjectContext, **params: Any) -> None:
    """The whole single-subject analysis in one call of ``run_analysis`` (writes report/).

    Its parameters are the fields of :class:`~dwi_toolkit.analysis.options.AnalysisOptions`.
    """
    from ..analysis.options import AnalysisOptions
    from .analyze import run_analysis

    s = ctx.subject
    if s.dwi is None:
        raise InputDataError(f"subject {s.key}: {s.problem or 'no DWI series found'}")
    if params.get("symptomatic_side") not in ("left", "right"):
        params["symptomatic_side"] = None
    opts = AnalysisOptions.from_mapping(params, where="analyze step")
    if opts.track and opts.track_origins is None and s.junctions is not None:
        opts = opts.replace(track_origins=str(s.junctions))  # the subject's junction file (pipeline.layout)
    out = ctx.out_dir / "report"
    ctx.data["report"] = run_analysis(s.dwi, _need_rois(ctx), s.clinical, out, options=opts, bvals=s.bvals,
                                      bvecs=s.bvecs, subject=ctx.prefix, command="dwi-toolkit run")
    _record_report(ctx, out)


# ------------------------------------------------------------------------------ other models
def _auto_mask(series: Any, mode: str) -> Any:
    """The analysis mask of a model step: the one policy of every command (``auto`` | ``none``)."""
    from ..io.loading import load_analysis_mask

    return load_analysis_mask(mode, series)


#: BIDS 1.11 names (desc entity, suffix) of the model maps that have one; the other maps keep the
#: BEP016 draft name ``<prefix>_model-<model>_param-<name>_dwimap`` (declared in .bidsignore).
BIDS_MAP_NAMES: dict[tuple[str, str], tuple[str | None, str]] = {
    ("adc", "adc"): (None, "ADC"), ("adc", "s0"): (None, "S0map"), ("adc", "status"): ("adcfit", "dseg"),
    ("ivim", "s0"): ("ivim", "S0map"), ("ivim", "status"): ("ivimfit", "dseg"),
    ("tensor", "fa"): ("dti", "FA"), ("tensor", "md"): ("dti", "ADC"), ("tensor", "s0"): ("dti", "S0map"),
    ("tensor", "status"): ("dtifit", "dseg"),
}


def map_stem(prefix: str, model: str, name: str) -> str:
    """File stem of a model map: the BIDS 1.11 name when one fits, else the BEP016 draft name.

    Examples
    --------
    >>> map_stem("sub-01", "adc", "adc"), map_stem("sub-01", "tensor", "fa")
    ('sub-01_ADC', 'sub-01_desc-dti_FA')
    >>> map_stem("sub-01", "ivim", "dstar")                  # no BIDS suffix for D*: BEP016 draft name
    'sub-01_model-ivim_param-dstar_dwimap'
    """
    desc, suffix = BIDS_MAP_NAMES.get((model, name), (None, None))
    if suffix is None:
        return f"{prefix}_model-{model}_param-{name}_dwimap"
    return f"{prefix}{'' if desc is None else '_desc-' + desc}_{suffix}"


def _status_codes(fit: Any) -> dict[int, str]:
    import sys

    codes = getattr(sys.modules.get(type(fit).__module__), "STATUS_CODES", None)
    return dict(codes) if codes else {0: "ok"}


def _save_model_maps(ctx: SubjectContext, fit: Any, model: str, extra: dict[str, dict] | None = None) -> None:
    """Every map of `fit` under dwi/, BIDS-named with a JSON sidecar (status: a dseg + its .tsv)."""
    from ..core.image import ParameterMap
    from ..io._atomic import atomic_write_text
    from ..io.nifti import save_map

    ref = _spatial_reference(ctx.subject)
    for name, pmap in fit.to_maps().items():
        stem = map_stem(ctx.prefix, model, name)
        if name == "status":
            pmap = ParameterMap(fit.status.astype("uint8"), fit.affine, "status", "")
            levels = "".join(f"{k}\t{v}\n" for k, v in sorted(_status_codes(fit).items()))
            atomic_write_text(ctx.path("dwi", f"{stem}.tsv"), "index\tname\n" + levels)
        p = save_map(pmap, ctx.path("dwi", f"{stem}.nii.gz"))
        side = {"Description": f"{model} fit: {name}" + ("" if name != "status" else " (per-voxel fit status)"),
                "Units": pmap.unit or "arbitrary" if name != "status" else None, "SkullStripped": False,
                "SpatialReference": ref, **(extra or {}).get(name, {})}
        _write_json(ctx.path("dwi", f"{stem}.json"), {k: v for k, v in side.items() if v is not None})
        ctx.add_product(f"{model}_{name}", p)


def _spatial_reference(subject: Any) -> str | None:
    """The input the maps are aligned with, relative to the input dataset (BIDS ``SpatialReference``)."""
    dwi, root = getattr(subject, "dwi", None), getattr(subject, "root", None)
    if dwi is None or root is None:
        return None
    dwi, root = Path(dwi), Path(root)
    return dwi.relative_to(root).as_posix() if dwi.is_relative_to(root) else dwi.name


def _write_table(ctx: SubjectContext, stem: str, rows: list[dict[str, Any]], fmt: str) -> Path:
    """A table under dwi/ as BIDS TSV (+ JSON data dictionary) or CSV; returns its path."""
    from ..io._atomic import atomic_write_text
    from ..io.tables import format_csv

    columns = list(rows[0]) if rows else []
    text = format_csv(rows, columns=columns)
    if fmt == "csv":
        return atomic_write_text(ctx.path("dwi", f"{stem}.csv"), text)
    import csv
    import io

    body = io.StringIO()
    w = csv.writer(body, delimiter="\t", lineterminator="\n")
    for rec in csv.reader(io.StringIO(text)):
        w.writerow([c if c != "" else "n/a" for c in rec])
    _write_json(ctx.path("dwi", f"{stem}.json"), {c: _COLUMN_DOC.get(c, {"Description": c}) for c in columns})
    return atomic_write_text(ctx.path("dwi", f"{stem}.tsv"), body.getvalue())


#: JSON data dictionary of the ROI statistics tables (BIDS "Tabular files").
_COLUMN_DOC: dict[str, dict[str, str]] = {
    "level": {"Description": "lumbar nerve-root level (L1-S1)"},
    "side": {"Description": "side of the root", "Levels": {"left": "left", "right": "right"}},
    "segment": {"Description": "segment of the root (e.g. foraminal, extraforaminal), n/a when whole root"},
    "parameter": {"Description": "map the statistics are computed on (adc, fa, md, d, f, dstar ...)"},
    "unit": {"Description": "unit of mean, median, sd, iqr, p5, p95 (mm^2/s for diffusivities)"},
    "n_voxels": {"Description": "voxels of the ROI used"},
    "n_excluded": {"Description": "voxels of the ROI left out (fit status or CSF threshold)"},
    "n_excluded_fit": {"Description": "voxels left out because their fit failed"},
    "n_excluded_mask": {"Description": "voxels left out because they lie outside the analysis mask (not fitted)"},
    "n_excluded_csf": {"Description": "voxels left out above the CSF threshold"},
    "volume_mm3": {"Description": "volume of the voxels used", "Units": "mm^3"},
    "mean": {"Description": "mean of the voxel values", "Units": "see unit"},
    "median": {"Description": "median of the voxel values", "Units": "see unit"},
    "sd": {"Description": "standard deviation of the voxel values", "Units": "see unit"},
    "iqr": {"Description": "interquartile range of the voxel values", "Units": "see unit"},
    "p5": {"Description": "5th percentile of the voxel values", "Units": "see unit"},
    "p95": {"Description": "95th percentile of the voxel values", "Units": "see unit"},
}


def _model_roi_stats(ctx: SubjectContext, fit: Any, names: tuple[str, ...], model: str,
                     table_format: str = "tsv") -> None:
    """Statistics of some maps of a model fit in the subject's ROIs (when ROIs were loaded)."""
    rois = ctx.data.get("rois")
    if rois is None:
        return
    from ..analysis.roi_stats import roi_stats

    rows: list[dict[str, Any]] = []
    tables = [roi_stats(fit.map(name, ok_only=True), rois, exclude_status=False, parameter=name)
              for name in names]
    for table in tables:
        rows += table.to_records()
    stats = ctx.data.get("stats")
    if stats is not None:
        # one statistics table for the later compare/assess/report steps (FA compared like ADC)
        ctx.data["stats"] = type(stats)(rows=[*stats.rows, *(r for t in tables for r in t.rows)])
    if rows:
        p = _write_table(ctx, f"{ctx.prefix}_model-{model}_desc-roistats", rows, table_format)
        ctx.add_product(f"{model}_roi_stats_{table_format}", p)


@register_step(
    "ivim",
    params={
        "method": Param(str, "map", choices=("segmented", "full", "map"),
                        doc="segmented, joint, or joint with a D* prior (map)"),
        "b_threshold": Param(float, 200.0, min=0.0, doc="s/mm^2; b-values at or above fit D (segmented)"),
        "mask": Param(str, "auto", choices=("auto", "none")),
        "roi_stats": Param(bool, True, doc="D, f, D* statistics in the ROIs when a roi_stats step ran"),
        "table_format": Param(str, "tsv", choices=_TABLE_FORMATS, doc=_TABLE_DOC),
    },
    requires=("series",),
    provides=("ivim",),
    modules=("dwi_toolkit.models.ivim",),
)
def ivim_step(ctx: SubjectContext, *, method: str, b_threshold: float, mask: str, roi_stats: bool,
              table_format: str) -> None:
    """Fit the IVIM model (D, f, D*; needs >= 4 b-values) and write its maps under dwi/."""
    from ..models.ivim import fit_ivim

    series = ctx.data["series"]
    fit = fit_ivim(series, method=method, b_threshold=b_threshold, mask=_auto_mask(series, mask))
    ctx.data["ivim"] = fit
    _save_model_maps(ctx, fit, "ivim")
    if roi_stats:
        _model_roi_stats(ctx, fit, ("d", "f", "dstar"), "ivim", table_format)


@register_step(
    "dti",
    params={
        "method": Param(str, "WLS", choices=("WLS", "OLS", "NLLS", "RESTORE"), doc="dipy fit method"),
        "b_min": Param(float, None, min=0.0, doc="s/mm^2 (b=0 volumes are always kept)"),
        "b_max": Param(float, None, min=0.0, doc="s/mm^2"),
        "mask": Param(str, "auto", choices=("auto", "none")),
        "roi_stats": Param(bool, True, doc="FA, MD statistics in the ROIs when a roi_stats step ran"),
        "table_format": Param(str, "tsv", choices=_TABLE_FORMATS, doc=_TABLE_DOC),
    },
    requires=("series",),
    provides=("dti",),
    modules=("dwi_toolkit.models.dti",),
    check=_b_range_check,
)
def dti_step(ctx: SubjectContext, *, method: str, b_min: float | None, b_max: float | None, mask: str,
             roi_stats: bool, table_format: str) -> None:
    """Fit the diffusion tensor (needs >= 6 directions) and write FA/MD/AD/RD maps under dwi/."""
    from ..models.dti import fit_dti

    series = ctx.data["series"]
    fit = fit_dti(series, method=method, b_range=_b_range({"b_min": b_min, "b_max": b_max}),
                  mask=_auto_mask(series, mask))
    ctx.data["dti"] = fit
    _save_model_maps(ctx, fit, "tensor")
    if roi_stats:
        _model_roi_stats(ctx, fit, ("fa", "md"), "tensor", table_format)
