"""Command-line options shared by the subcommands: one spelling for one idea, declared once.

======================  =====================================================================
idea                    option (every subcommand that has the idea)
======================  =====================================================================
input series            ``PATH`` ``--bvals`` ``--bvecs`` ``--series-uid`` ``--b0-threshold``
output folder / file    ``-o/--out``
figures                 ``--no-figures``
analysis mask           ``--mask none|auto|PATH`` (default ``auto`` everywhere)
b-value range           ``--b-range B_MIN B_MAX`` (s/mm²; ``-`` for an open end)
fit method              ``--method`` (case-insensitive)
fit chunk size          ``--chunk-size VOXELS`` (``adc``, ``ivim``, ``dti``, ``analyze``)
tensor in the analysis  ``--dti/--no-dti`` (``analyze``)
======================  =====================================================================

Old spellings (``--out-dir``, ``--outdir``, ``--output``, ``--no-figure``, ``--no-png``,
``--b-min``, ``--b-max``, ``--auto-mask``) still work for one release: they are hidden from
``--help`` and print a deprecation message on stderr.

Private to the CLI (the leading underscore keeps it out of subcommand discovery).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

__all__ = [
    "add_input", "add_out", "add_no_figures", "add_mask", "add_b_range", "add_method",
    "add_analysis_options", "analysis_options", "b_range", "check_required", "add_chunk_size", "chunk_kw",
    "input_paths", "check_outputs", "add_scrub_text", "scrub_text",
]


class _Deprecated(argparse.Action):
    """A hidden old spelling: prints a deprecation message on stderr, then acts like the new one."""

    def __init__(self, option_strings, dest, *, new: str, value: Any = None, **kw):
        self.new, self.value = new, value
        if value is not None:
            kw["nargs"] = 0
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated and will be removed; use {self.new}",
              file=sys.stderr)
        if self.dest == "b_range":  # --b-min / --b-max set one end of --b-range
            lo, hi = getattr(namespace, "b_range", None) or (None, None)
            lo, hi = (float(values), hi) if option_string == "--b-min" else (lo, float(values))
            setattr(namespace, "b_range", (lo, hi))
            return
        setattr(namespace, self.dest, self.value if self.value is not None else values)


def _deprecated(p, *flags: str, dest: str, new: str, value: Any = None, **kw) -> None:
    p.add_argument(*flags, dest=dest, action=_Deprecated, new=new, value=value, **kw)


def add_input(p, *, what: str = "DWI series: NIfTI (with .bval/.bvec beside it), DICOM file or folder",
              series_uid: bool = True) -> None:
    """``PATH --bvals --bvecs [--series-uid] --b0-threshold``: where the DWI series comes from."""
    p.add_argument("path", help=what)
    p.add_argument("--bvals", help="b-value file when not beside the NIfTI")
    p.add_argument("--bvecs", help="b-vector file when not beside the NIfTI")
    if series_uid:
        p.add_argument("--series-uid", help="DICOM: which series to use when several are present")
    p.add_argument("--b0-threshold", type=float, default=50.0,
                   help="s/mm^2; volumes at or below count as b=0 (default 50)")
    add_backend(p)


def add_backend(p) -> None:
    """``--backend native|dcm2niix``: which DICOM reader loads the series."""
    from ..analysis.options import BACKENDS

    p.add_argument("--backend", choices=BACKENDS, default="native",
                   help="DICOM reader: 'native' (built in) or 'dcm2niix' (convert with the dcm2niix program, "
                   "for a series the built-in reader refuses; needs: pip install dcm2niix)")


def add_out(p, *, required: bool = True, help: str = "output folder (created if missing)",
            old: tuple[str, ...] = ("--out-dir", "--outdir", "--output")) -> None:
    """``-o/--out``: the output folder (or file); `old` spellings are hidden deprecated aliases.

    A required ``-o`` is checked after parsing (:func:`check_required`), so an old spelling
    satisfies it too.
    """
    p.add_argument("-o", "--out", dest="out", help=help + (" (required)" if required else ""))
    if old:
        _deprecated(p, *old, dest="out", new="-o/--out")
    if required:
        p.set_defaults(_out_required=p.prog)


def check_required(args: argparse.Namespace) -> str | None:
    """The usage error for a missing required ``-o/--out`` (None when everything is there)."""
    prog = getattr(args, "_out_required", None)
    if prog and getattr(args, "out", None) is None:
        return f"{prog}: error: the following arguments are required: -o/--out"
    return None


#: Argument names that hold input paths / output paths, in every subcommand.
INPUT_DESTS = ("path", "bvals", "bvecs", "rois", "clinical", "mask", "baseline", "follow_up", "input", "reference",
               "labels", "audit", "table", "retest_table", "participants")
OUTPUT_DESTS = ("out", "output")


def input_paths(args: argparse.Namespace) -> list[str]:
    """Every input path given to the command (values of :data:`INPUT_DESTS`)."""
    return [v for d in INPUT_DESTS if isinstance(v := getattr(args, d, None), str)]


def check_outputs(args: argparse.Namespace) -> str | None:
    """The error for an output in an input folder or on an input file (None when safe); ``run``
    checks its own output folder (:func:`dwi_toolkit.pipeline.runner.run_pipeline`)."""
    from ..errors import InputDataError
    from ..io._outputs import check_output_target

    if getattr(args, "command", None) == "run":
        return None
    for dest in OUTPUT_DESTS:
        if isinstance(out := getattr(args, dest, None), str):
            try:
                check_output_target(out, input_paths(args))
            except InputDataError as err:
                return str(err)
    return None


def add_scrub_text(p) -> None:
    """``--scrub-text/--no-scrub-text``: mask identifiers typed into free-text header fields."""
    p.add_argument("--scrub-text", dest="scrub_text", action=argparse.BooleanOptionalAction, default=None,
                   help="mask names, dates and ID numbers typed into free-text fields (SeriesDescription, "
                   "ProtocolName, ...) in sidecars and reports (default: on; off with --keep-phi unless "
                   "--scrub-text is given)")


def scrub_text(args: argparse.Namespace) -> bool:
    """The free-text scrubbing policy: ``--scrub-text/--no-scrub-text`` when given, else not ``--keep-phi``."""
    v = getattr(args, "scrub_text", None)
    return (not getattr(args, "keep_phi", False)) if v is None else bool(v)


def add_no_figures(p, *, help: str = "skip the figures (faster)") -> None:
    """``--no-figures`` (old: ``--no-figure``, ``--no-png``)."""
    p.add_argument("--no-figures", dest="no_figures", action="store_true", help=help)
    _deprecated(p, "--no-figure", "--no-png", dest="no_figures", new="--no-figures", value=True)


def add_mask(p) -> None:
    """``--mask none|auto|PATH`` (default auto), the one analysis-mask policy (old: ``--auto-mask``)."""
    p.add_argument("--mask", default="auto", metavar="none|auto|PATH",
                   help="analysis mask: 'auto' (default: voxels above the background on the mean b=0), "
                   "'none' (every voxel), 'otsu' (dipy median_otsu on the mean b=0) or a NIfTI mask on "
                   "the DWI grid (non-zero = analysed)")
    _deprecated(p, "--auto-mask", dest="mask", new="--mask otsu", value="otsu")


def _b_end(text: str) -> float | None:
    if text.strip().lower() in ("-", "none", ""):
        return None
    return float(text)


def add_b_range(p, *, help: str = "fit only b-values in this range, s/mm^2 ('-' for an open end); "
                "b=0 volumes are kept for models that need them") -> None:
    """``--b-range B_MIN B_MAX`` in s/mm² (old: ``--b-min``, ``--b-max``)."""
    p.add_argument("--b-range", nargs=2, type=_b_end, metavar=("B_MIN", "B_MAX"), help=help)
    _deprecated(p, "--b-min", dest="b_range", new="--b-range B_MIN -")
    _deprecated(p, "--b-max", dest="b_range", new="--b-range - B_MAX")


def b_range(args: argparse.Namespace) -> tuple[float | None, float | None] | None:
    """The ``--b-range`` value as ``(b_min, b_max)`` (either may be None), or None when not given."""
    rng = getattr(args, "b_range", None)
    if rng is None or (rng[0] is None and rng[1] is None):
        return None
    return (rng[0], rng[1])


def add_method(p, choices: tuple[str, ...], default: str, help: str) -> None:
    """``--method``, case-insensitive; the value is the canonical spelling of `choices`."""
    canon = {c.lower(): c for c in choices}

    def method(text: str) -> str:
        try:
            return canon[text.lower()]
        except KeyError:
            raise argparse.ArgumentTypeError(f"invalid choice {text!r} (choose from {', '.join(choices)}; "
                                             "any case)") from None

    p.add_argument("--method", type=method, default=default, metavar="{" + ",".join(choices) + "}",
                   help=f"{help} (default {default}; case-insensitive)")


def add_chunk_size(p) -> None:
    """``--chunk-size VOXELS``: voxels per chunk of the model fits (bounds their working memory)."""
    p.add_argument("--chunk-size", dest="chunk_size", type=int, default=None, metavar="VOXELS",
                   help="voxels fitted per chunk: lower it to bound the fit's working memory on a large "
                   "series (default: the fit's own; a fit that cannot fit in memory stops with a message "
                   "before allocating)")


def chunk_kw(args: argparse.Namespace) -> dict[str, int]:
    """``{"chunk_size": n}`` when ``--chunk-size`` was given, else ``{}`` (the fit's default)."""
    n = getattr(args, "chunk_size", None)
    return {} if n is None else {"chunk_size": n}


# ------------------------------------------------------------------------------ AnalysisOptions
def add_analysis_options(p) -> None:
    """Every :class:`~dwi_toolkit.analysis.options.AnalysisOptions` field as an option of `p`.

    Fields marked ``cli="shared"`` use the shared groups above; ``cli="auto"`` fields become
    ``--name-with-dashes`` with the field's help, unit, choices and type; ``cli=None`` ones are not
    on the command line. Defaults are not repeated here: an option not given keeps the field's.
    """
    from ..analysis.options import ADC_METHODS, AnalysisOptions

    add_input(p, series_uid=False)
    add_method(p, ADC_METHODS, AnalysisOptions.method, "ADC fit: log-linear WLS, OLS or nonlinear LS")
    add_b_range(p)
    add_mask(p)
    add_no_figures(p)
    add_chunk_size(p)
    p.add_argument("--dti", dest="dti", action=argparse.BooleanOptionalAction, default=None,
                   help="also fit the tensor and compare FA and MD (default: when there are >= 6 "
                   "directions; --dti requires it, --no-dti skips it)")
    for f in dataclasses.fields(AnalysisOptions):
        meta = f.metadata
        if meta.get("cli") != "auto":
            continue
        kind = AnalysisOptions.value_type(f.name)
        unit = f", {meta['unit']}" if meta.get("unit") else ""
        default = "" if f.default is None else f" (default {f.default:g})" if isinstance(f.default, float) \
            else f" (default {f.default})"
        if kind is bool:  # a switch: --track
            p.add_argument(f"--{f.name.replace('_', '-')}", dest=f"opt_{f.name}", action="store_const", const=True,
                           default=None, help=meta["help"].replace("%", "%%"))
            continue
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f"opt_{f.name}", metavar=None if meta.get("choices") else f.name.upper(), type=kind,
                       choices=meta.get("choices"), default=None,
                       help=f"{meta['help']}{unit}{default}".replace("%", "%%"))


def analysis_options(args: argparse.Namespace):
    """The :class:`~dwi_toolkit.analysis.options.AnalysisOptions` of parsed ``analyze`` arguments.

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_analysis_options(p)
    >>> o = analysis_options(p.parse_args(["dwi.nii.gz", "--b-range", "100", "-", "--method", "OLS", "--seed", "2"]))
    >>> o.method, o.b_min, o.b_max, o.seed, o.mask
    ('ols', 100.0, None, 2, 'auto')
    >>> o = analysis_options(p.parse_args(["dwi.nii.gz", "--no-dti", "--chunk-size", "4096"]))
    >>> o.dti, o.chunk_size
    (False, 4096)
    """
    from ..analysis.options import AnalysisOptions

    values: dict[str, Any] = {"method": args.method, "b0_threshold": args.b0_threshold, "mask": args.mask,
                              "figures": not args.no_figures, "backend": args.backend}
    rng = b_range(args)
    if rng is not None:
        values["b_min"], values["b_max"] = rng
    for name in ("chunk_size", "dti"):
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    for name in AnalysisOptions.names():
        v = getattr(args, f"opt_{name}", None)
        if v is not None:
            values[name] = v
    return AnalysisOptions(**values)
