"""The options of a single-subject analysis as one typed, documented object.

:class:`AnalysisOptions` is what :func:`dwi_toolkit.pipeline.analyze.run_analysis` takes, what
``dwi-toolkit analyze`` builds from its arguments (:func:`dwi_toolkit.cli._options.analysis_options`)
and what the pipeline's ``analyze`` step builds from its TOML table
(:meth:`AnalysisOptions.from_mapping`); the report's provenance prints :meth:`AnalysisOptions.to_dict`.
Defaults live here and nowhere else.

Adding an option is a one-place change: add a field with :func:`option` metadata (help text,
unit, choices, lower bound). The ``analyze`` command gains ``--the-name``, the pipeline step
gains ``the_name``, and the provenance records it, all from the field; then use it in
``run_analysis``. Options with a shared spelling across commands (the b-value range, the mask,
figures, the fit method) are declared once in :mod:`dwi_toolkit.cli._options` instead.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputDataError

__all__ = ["AnalysisOptions", "option", "ADC_METHODS", "MASK_POLICIES", "INTERVALS", "REFERENCE_POLICIES",
           "NOISE_SOURCES"]

#: ADC fit methods (case-insensitive on input, stored lower case).
ADC_METHODS = ("wls", "ols", "nlls")
#: Analysis-mask policies; anything else is a path to a NIfTI mask on the DWI grid.
MASK_POLICIES = ("auto", "none", "otsu")
#: Interval methods of the side comparison (:func:`dwi_toolkit.analysis.compare.compare_sides`).
INTERVALS = ("effective-n", "iid-bootstrap")
#: Reference policies of the side comparison (``auto``: adjacent levels too when the side is unknown).
REFERENCE_POLICIES = ("contralateral", "adjacent", "auto")
#: DICOM readers of ``load_dwi(backend=...)``: the built-in one, or the dcm2niix program.
BACKENDS = ("native", "dcm2niix")
#: Noise-correlation sources besides a FWHM number (voxels).
NOISE_SOURCES = ("roi", "metadata")


def option(default: Any, help: str, *, unit: str = "", choices: tuple | None = None,
           min: float | None = None, cli: str | None = "auto") -> Any:
    """A dataclass field of :class:`AnalysisOptions` with the facts the CLI, the pipeline and the docs need.

    Parameters
    ----------
    default : object
        The default value (the only place it is written).
    help : str
        One line for ``--help``, the pipeline step documentation and the provenance.
    unit : str, optional
        Physical unit of the value (``"s/mm^2"``, ``"mm^2/s"``, ``"%"``).
    choices : tuple, optional
        Allowed values.
    min : float, optional
        Lowest allowed value.
    cli : str or None, optional
        ``"auto"``: the ``analyze`` command gets ``--name-with-dashes``; ``"shared"``: declared by a
        shared CLI option group (:mod:`dwi_toolkit.cli._options`); None: not on the command line.

    Examples
    --------
    >>> f = option(5, "fewest voxels per side")
    >>> f.default, f.metadata["help"]
    (5, 'fewest voxels per side')
    """
    return field(default=default, metadata={"help": help, "unit": unit, "choices": choices, "min": min,
                                            "cli": cli})


@dataclass(frozen=True)
class AnalysisOptions:
    """Every option of the single-subject analysis (``dwi-toolkit analyze``, ``run_analysis``).

    Units: b-values in s/mm², ADC in mm²/s, percentages in %.

    Examples
    --------
    >>> opts = AnalysisOptions(b_min=100, method="WLS")
    >>> opts.method, opts.b_range, opts.mask
    ('wls', (100.0, None), 'auto')
    >>> opts.replace(n_boot=200).n_boot
    200
    >>> AnalysisOptions.from_mapping({"seed": 3, "threshold_pct": 15}).to_dict()["threshold_pct"]
    15.0
    """

    method: str = option("wls", "ADC fit: log-linear WLS, OLS or nonlinear least squares",
                         choices=ADC_METHODS, cli="shared")
    b_min: float | None = option(None, "lowest b-value used by the fits (default all)", unit="s/mm^2",
                                 min=0.0, cli="shared")
    b_max: float | None = option(None, "highest b-value used by the fits (default all)", unit="s/mm^2",
                                 min=0.0, cli="shared")
    b0_threshold: float = option(50.0, "volumes at or below count as b=0", unit="s/mm^2", min=0.0,
                                 cli="shared")
    backend: str = option("native", "DICOM reader: 'native' (built in) or 'dcm2niix' (the dcm2niix program, "
                          "for a series the built-in reader refuses)", choices=BACKENDS, cli="shared")
    mask: str = option("auto", "analysis mask: 'auto' (voxels above the background on the mean b=0), "
                       "'none' (every voxel), 'otsu' (dipy median_otsu) or a NIfTI mask path on the DWI grid",
                       cli="shared")
    symptomatic_side: str | None = option(None, "override radicular_side of the clinical file",
                                          choices=("left", "right"))
    threshold_pct: float = option(10.0, "side-difference threshold on rel_diff_pct (a measurement "
                                  "threshold, not a diagnostic cut-off)", unit="%", min=0.0)
    parameter: str = option("adc", "parameter assessed for entrapment", cli=None)
    entrapment_parameters: str = option(
        "adc", "parameters assessed for entrapment: 'adc', 'combined' (ADC, FA, MD, RD present, Holm-corrected) "
        "or a comma-separated list such as 'adc,fa'")
    interval: str = option("effective-n", "side-comparison intervals: 'effective-n' (Welch t with effective "
                           "voxel counts under the estimated noise correlation) or 'iid-bootstrap' (voxels "
                           "treated as independent; too narrow on correlated images)", choices=INTERVALS)
    reference: str = option("contralateral", "reference of the side comparison: 'contralateral' (the other "
                            "side, same level), 'adjacent' (also compare each root with the adjacent levels on "
                            "the same side, own table) or 'auto' (adjacent too when the symptomatic side is "
                            "unknown or bilateral)", choices=REFERENCE_POLICIES)
    noise: str = option("roi", "spatial noise correlation of the intervals: 'roi' (moment estimate from the "
                        "ROI voxels), 'metadata' (phase-encoding FWHM from AcquisitionMatrixPE/ReconMatrixPE; "
                        "ROI estimate when absent) or a FWHM in voxels on every in-plane axis, e.g. '1.5'")
    n_boot: int = option(2000, "bootstrap resamples", min=0)
    ci: float = option(0.95, "confidence level of the bootstrap intervals", min=0.5, cli=None)
    min_voxels: int = option(5, "fewer voxels on a side flags the ROI as too small", min=1, cli=None)
    seed: int = option(0, "bootstrap seed")
    stenosis_policy: str | None = option(
        None, "indication rules: failed-conservative-care threshold for suspected stenosis "
        "(kovacs2013 = 12 weeks, the rule set's default; acr2021 = 6 weeks)", choices=("kovacs2013", "acr2021"))
    dti: bool | None = option(None, "also fit the tensor and compare FA and MD: None = when the "
                              "directions allow it (>= 6), True = required, False = never", cli="shared")
    csf_threshold: float | None = option(None, "leave out ROI voxels with ADC above this as CSF "
                                         "contamination, e.g. 2.5e-3 (default: none)", unit="mm^2/s", min=0.0)
    scanner_adc: str = option("auto", "scanner ADC map compared with ours in the ROIs (QC flag): 'auto' (a "
                              "DICOM ADC series beside the DICOM DWI), 'none', or a DICOM folder or NIfTI map "
                              "(10^-6 mm^2/s integers are scaled)")
    figures: bool = option(True, "render the figures", cli="shared")
    check_gradients: bool = option(False, "check the b-vector table for a flipped or permuted axis (QC line "
                                   "in the report; needs >= 6 directions)")
    fix_gradients: bool = option(False, "check the b-vector table and apply the best one before fitting "
                                 "when the given one looks wrong (recorded in the provenance)")
    track: bool = option(False, "also track each root from its ROI and compare FA/ADC along the root "
                         "(tractography section; needs >= 6 directions)")
    track_origins: str | None = option(None, "with track: dural-junction points per root, where distance along "
                                       "it is 0 (an ROI file, e.g. Slicer points labelled L5_left; default: "
                                       "found from the CSF)")
    chunk_size: int | None = option(None, "voxels per chunk of the ADC and tensor fits: bounds their "
                                    "working memory (default: each fit's own, 16384 ADC, 32768 tensor)",
                                    min=256, cli="shared")

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "method", str(self.method).lower())
        for name in ("b_min", "b_max", "csf_threshold", "threshold_pct", "b0_threshold", "ci"):
            v = getattr(self, name)
            if v is not None:
                set_(self, name, float(v))
        if isinstance(self.mask, os.PathLike):
            set_(self, "mask", os.fspath(self.mask))
        elif str(self.mask).lower() in MASK_POLICIES:
            set_(self, "mask", str(self.mask).lower())
        for name in ("scanner_adc", "track_origins"):
            if isinstance(getattr(self, name), os.PathLike):
                set_(self, name, os.fspath(getattr(self, name)))
        self._check()

    def _check(self) -> None:
        for f in dataclasses.fields(self):
            v, meta = getattr(self, f.name), f.metadata
            if v is None:
                continue
            if meta.get("choices") and v not in meta["choices"]:
                raise InputDataError(f"{f.name} must be one of {', '.join(meta['choices'])}; got {v!r}.")
            if meta.get("min") is not None and v < meta["min"]:
                raise InputDataError(f"{f.name} must be >= {meta['min']:g} {meta.get('unit', '')}; got {v!r}.")
        self._check_noise_and_parameters()
        if self.b_min is not None and self.b_max is not None and self.b_min >= self.b_max:
            raise InputDataError(f"b_min ({self.b_min:g} s/mm^2) must be below b_max ({self.b_max:g} s/mm^2).")

    def _check_noise_and_parameters(self) -> None:
        noise = str(self.noise).strip().lower()
        if noise not in NOISE_SOURCES:
            try:
                fwhm = float(noise)
            except ValueError:
                fwhm = -1.0
            if not (fwhm >= 0.0 and fwhm < 50.0):
                raise InputDataError(f"noise must be 'roi', 'metadata' or a FWHM in voxels between 0 and 50 "
                                     f"(e.g. '1.5'); got {self.noise!r}.")
            noise = f"{fwhm:g}"
        object.__setattr__(self, "noise", noise)
        params = self.entrapment_parameter_list
        if not params:
            raise InputDataError("entrapment_parameters must name at least one parameter ('adc', 'combined' "
                                 f"or e.g. 'adc,fa'); got {self.entrapment_parameters!r}.")

    @property
    def entrapment_parameter_list(self) -> str | list[str]:
        """``entrapment_parameters`` as :func:`~dwi_toolkit.clinical.entrapment.assess_entrapment` takes it.

        The legacy option ``parameter`` wins when it was changed from ``"adc"`` and this one was not.

        Examples
        --------
        >>> AnalysisOptions(entrapment_parameters="ADC, fa").entrapment_parameter_list
        ['adc', 'fa']
        >>> AnalysisOptions().entrapment_parameter_list, AnalysisOptions(parameter="fa").entrapment_parameter_list
        ('adc', 'fa')
        """
        text = str(self.entrapment_parameters).strip().lower()
        if text == "adc" and self.parameter != "adc":
            return self.parameter
        names = [p.strip() for p in text.split(",") if p.strip()]
        if len(names) == 1:
            return names[0]
        return names

    @property
    def b_range(self) -> tuple[float | None, float | None] | None:
        """``(b_min, b_max)`` in s/mm², or None when neither is set."""
        return None if self.b_min is None and self.b_max is None else (self.b_min, self.b_max)

    def replace(self, **changes: Any) -> AnalysisOptions:
        """A copy with `changes` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-ready dict (the report's provenance)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, where: str = "options") -> AnalysisOptions:
        """Options from a mapping (a pipeline step's TOML table, JSON); None values mean "default".

        Raises
        ------
        InputDataError
            An unknown key (with the known ones listed) or an invalid value.
        """
        known = cls.names()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InputDataError(f"{where}: unknown analysis option(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(known)}.")
        return cls(**{k: v for k, v in values.items() if v is not None})

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Names of every option, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def value_type(cls, name: str) -> type:
        """The Python type of option `name` (``float`` for ``float | None``)."""
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        text = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        return {"float": float, "int": int, "str": str, "bool": bool}[text.split("|")[0].strip()]

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """One record per option: name, default, unit, choices, help (for docs and ``--help``)."""
        return [{"name": f.name, "default": f.default, **{k: v for k, v in f.metadata.items()}}
                for f in dataclasses.fields(cls)]
