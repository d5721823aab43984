"""The subject report: one object, three renderings (JSON, CSV tables, self-contained HTML).

:class:`Report` gathers what one analysis produced — provenance, a de-identified acquisition
summary, ROI statistics, the side comparison, the indication and entrapment assessments, QC
flags and figures — and renders it:

- :meth:`Report.to_json` — schema ``dwi_toolkit.report/1`` (documented in ``docs/report.md``);
  every number carries its unit, either as ``{"value": ..., "unit": ...}`` or, in tables, through
  the table's ``columns`` map (``"{unit}"`` = the row's ``unit`` column). NaN is written as null.
- :meth:`Report.to_html` — one self-contained page (figures as base64 PNG, inline CSS, no
  scripts, no network).
- :meth:`Report.save` — ``report.json``, ``roi_stats.csv``, ``side_comparison.csv``,
  ``entrapment.csv``, ``figures/*.png`` and ``report.html``, each written atomically.

:func:`build_report` assembles a Report from in-memory results (series, fit, ROI masks, tables,
assessments); :func:`dwi_toolkit.pipeline.analyze.run_analysis` calls it for the CLI.

Patient identifiers never enter a report: the acquisition summary passes through
:func:`dwi_toolkit.io._phi.strip_phi`, input files are recorded by file name and SHA-256 only, and
the subject label is whatever pseudonym the caller passes.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as _dt
import hashlib
import io
import json
import logging
import math
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from .._options import with_settings
from ..io._atomic import atomic_write_bytes, atomic_write_text
from ..io._phi import strip_phi
from . import html as H
from . import presentation as P

__all__ = [
    "SCHEMA",
    "RESEARCH_NOTICE",
    "ReportFigure",
    "Report",
    "build_report",
    "ReportOptions",
    "make_provenance",
    "acquisition_summary",
    "file_checksum",
    "estimate_snr",
    "adjacent_comparison_section",
    "comparison_table_html",
    "interval_description",
]

logger = logging.getLogger(__name__)

SCHEMA = "dwi_toolkit.report/1"

RESEARCH_NOTICE = (
    "This report was produced by dwi_toolkit, research software that has not been cleared or "
    "approved as a medical device. Nerve-root diffusion MRI is a research technique: no guideline "
    "endorses an ADC or FA cut-off for nerve-root entrapment (dwi_toolkit References §0, §2.8, §4). "
    "The values are measurements with their uncertainty, not a diagnosis, and must not be used on "
    "their own for clinical decisions."
)

#: Units of known run parameters (value → {"value", "unit"} in the JSON).
PARAMETER_UNITS = {
    "b_min": "s/mm^2", "b_max": "s/mm^2", "b0_threshold": "s/mm^2", "threshold_pct": "%",
    "csf_threshold": "mm^2/s",
    "n_boot": "resamples", "ci": "1", "min_voxels": "voxels", "max_cv": "1",
    "snr_warn": "1",
}

ROI_STATS_UNITS: dict[str, str | None] = {
    "level": None, "side": None, "segment": None, "parameter": None, "unit": None,
    "n_voxels": "voxels", "n_excluded": "voxels", "n_excluded_fit": "voxels",
    "n_excluded_mask": "voxels", "n_excluded_csf": "voxels", "volume_mm3": "mm^3",
    "mean": "{unit}", "median": "{unit}", "sd": "{unit}", "iqr": "{unit}", "p5": "{unit}",
    "p95": "{unit}",
}

#: SNR below which the QC section flags an ROI [D] (rough b=0 SNR estimate, see estimate_snr).
DEFAULT_SNR_WARN = 10.0

_DIFFUSIVITY_UNITS = ("mm^2/s", "mm²/s")


# --------------------------------------------------------------------------- JSON helpers
def _jsonable(obj: Any) -> Any:
    """Convert to JSON-ready builtins; NaN/inf → None; numpy → Python; dataclasses → dicts."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.ndarray):
        return [_jsonable(x) for x in obj.tolist()]
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "value") and type(obj).__module__ != "builtins" and hasattr(type(obj), "__members__"):
        return _jsonable(obj.value)  # Enum
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return _jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})
    return str(obj)


def _q(value: Any, unit: str | None) -> dict[str, Any]:
    """A quantity: {"value": ..., "unit": ...}."""
    return {"value": _jsonable(value), "unit": unit}


def _as_dict(obj: Any) -> dict[str, Any] | None:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return dict(obj)
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return dict(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return {"value": str(obj)}


def _stats_records(stats: Any) -> list[dict[str, Any]]:
    if stats is None:
        return []
    if hasattr(stats, "to_records"):
        recs = list(stats.to_records())
    else:
        recs = []
        for r in getattr(stats, "rows", []):
            d = dataclasses.asdict(r) if dataclasses.is_dataclass(r) else dict(vars(r))
            recs.append(d)
    return [{k: v for k, v in rec.items() if k != "values"} for rec in recs]


# --------------------------------------------------------------------------- provenance
def file_checksum(path: str | os.PathLike, *, chunk: int = 1 << 20) -> dict[str, Any]:
    """SHA-256 of a file, or of a folder (every file, sorted by relative path, path and bytes).

    Returns
    -------
    dict
        ``name`` (file or folder name only — full paths may contain identifiers), ``kind``,
        ``sha256``, ``size_bytes`` and, for folders, ``n_files``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> p = Path(tempfile.mkdtemp()) / "a.txt"; _ = p.write_text("x")
    >>> file_checksum(p)["sha256"]
    '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881'
    """
    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        size = 0
        for f in files:
            h.update(f.relative_to(p).as_posix().encode() + b"\0")
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(chunk), b""):
                    h.update(block)
            size += f.stat().st_size
        return {"name": p.name, "kind": "folder", "sha256": h.hexdigest(),
                "size_bytes": _q(size, "bytes"), "n_files": len(files)}
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return {"name": p.name, "kind": "file", "sha256": h.hexdigest(),
            "size_bytes": _q(p.stat().st_size, "bytes")}


def _dependency_version(name: str) -> str | None:
    """Version of an installed dependency, without importing it when it is not imported yet.

    Importing matplotlib, dipy or pydicom only to read ``__version__`` would cost more than a
    small analysis; the installed distribution's metadata gives the same string.
    """
    import sys
    from importlib import metadata

    module = sys.modules.get(name)
    if module is not None and getattr(module, "__version__", None):
        return str(module.__version__)
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:  # pragma: no cover - optional in some installs
        return None


def make_provenance(
    *,
    parameters: Mapping[str, Any] | None = None,
    inputs: Mapping[str, str | os.PathLike | Sequence[str | os.PathLike]] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Software version, parameters with units, input checksums and the UTC date.

    Parameters
    ----------
    parameters : mapping, optional
        Run options; known ones (``b_min``, ``threshold_pct`` ...) get their unit.
    inputs : mapping, optional
        Role (``"dwi"``, ``"rois"``, ``"clinical"``) → path or paths; each is checksummed
        (NIfTI inputs also checksum their ``.bval``/``.bvec``/``.json`` siblings when present).
    command : str, optional
        A description of how the run was started (no paths with identifiers, please).

    Examples
    --------
    >>> prov = make_provenance(parameters={"threshold_pct": 10})
    >>> prov["software"], prov["parameters"]                   # every parameter with its unit
    ('dwi_toolkit', {'threshold_pct': {'value': 10, 'unit': '%'}})
    """
    deps = {"numpy": np.__version__}
    deps.update({mod: _dependency_version(mod) for mod in ("scipy", "matplotlib", "nibabel", "dipy", "pydicom")})
    params = {}
    for k, v in (parameters or {}).items():
        params[k] = _q(v, PARAMETER_UNITS[k]) if k in PARAMETER_UNITS else _jsonable(v)
    files = []
    for role, paths in (inputs or {}).items():
        if paths is None:
            continue
        plist = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        for p in plist:
            p = Path(p)
            if not p.exists():
                continue
            files.append({"role": role, **file_checksum(p)})
            if role == "dwi" and p.is_file():
                stem = p.name[:-7] if p.name.endswith(".nii.gz") else p.stem
                for ext in (".bval", ".bvec", ".json"):
                    sib = p.with_name(stem + ext)
                    if sib.exists():
                        files.append({"role": f"dwi{ext}", **file_checksum(sib)})
    return {
        "software": "dwi_toolkit",
        "version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "python": platform.python_version(),
        "dependencies": deps,
        "command": command,
        "parameters": params,
        "inputs": files,
    }


def acquisition_summary(series: Any) -> dict[str, Any]:
    """De-identified acquisition facts of a DWISeries, every number with its unit.

    Examples
    --------
    >>> from dwi_toolkit.core.image import DWISeries
    >>> s = DWISeries(np.ones((4, 3, 2, 2)), np.diag([2.0, 2.0, 4.0, 1.0]), [0, 800], [[0, 0, 0], [0, 0, 1]])
    >>> acquisition_summary(s)["voxel_size"]
    {'value': [2.0, 2.0, 4.0], 'unit': 'mm'}
    """
    meta = strip_phi(dict(getattr(series, "meta", {}) or {}))
    shells = [{"bval": _q(round(float(s.bval), 3), "s/mm^2"), "n_volumes": s.n_volumes}
              for s in series.shells]
    out: dict[str, Any] = {
        "shape": _q(list(series.shape), "voxels x voxels x voxels x volumes"),
        "voxel_size": _q([round(float(v), 4) for v in series.voxel_sizes], "mm"),
        "orientation": series.orientation,
        "slice_orientation": series.slice_orientation,
        "bvals": _q([round(float(b), 3) for b in series.bvals], "s/mm^2"),
        "b0_threshold": _q(float(series.b0_threshold), "s/mm^2"),
        "shells": shells,
    }
    units = {"MagneticFieldStrength": "T", "EchoTime": "s", "RepetitionTime": "s",
             "FlipAngle": "deg", "SliceThickness": "mm", "PixelBandwidth": "Hz/pixel"}
    for key in ("Manufacturer", "ManufacturersModelName", "MagneticFieldStrength", "EchoTime",
                "RepetitionTime", "FlipAngle", "SliceThickness", "PhaseEncodingDirection",
                "SeriesDescription", "PixelBandwidth"):
        if key in meta:
            out[key] = _q(meta[key], units[key]) if key in units else _jsonable(meta[key])
    return out


def estimate_snr(series: Any, rois: Sequence[tuple[str, np.ndarray]], *,
                 mean_b0: np.ndarray | None = None) -> dict[str, Any]:
    """Rough b=0 SNR per ROI: mean b=0 signal in the ROI over the noise SD (`mean_b0`: the
    series' mean b=0 image when the caller has it already).

    The noise SD comes from two or more b=0 volumes when available (SD of the difference of the
    first two inside the ROIs, divided by √2); otherwise from the image corners (eight blocks of
    1/8 of each dimension) assuming a Rayleigh-distributed magnitude background,
    ``σ = mean / √(π/2)``. This is a QC indication, not a calibrated measurement.

    Examples
    --------
    >>> from dwi_toolkit.phantom import make_lumbar_phantom
    >>> ph = make_lumbar_phantom(shape=(36, 28, 24), voxel_size=(4.0, 4.0, 8.0))
    >>> snr = estimate_snr(ph.series, [("L5 left", ph.root_labels == 9)])
    >>> 30 < snr["per_roi"][0]["snr"]["value"] < 50        # the phantom was made with SNR 40
    True
    """
    b0 = np.nonzero(series.b0_mask)[0]
    if b0.size == 0:
        return {"method": "none (no b=0 volume)", "noise_sd": _q(None, "a.u."), "per_roi": []}
    mean_b0 = (series.mean_b0() if mean_b0 is None else mean_b0).astype(float)
    union = _roi_union(series.spatial_shape, rois)
    sigma = math.nan
    method = ""
    if b0.size >= 2 and union.any():
        d = series.data[..., b0[0]].astype(float) - series.data[..., b0[1]].astype(float)
        sigma = float(np.std(d[union], ddof=1) / math.sqrt(2.0)) if union.sum() > 2 else math.nan
        method = "difference of two b=0 volumes within the ROIs"
    if not (math.isfinite(sigma) and sigma > 0):
        X, Y, Z = series.spatial_shape
        bx, by, bz = max(1, X // 8), max(1, Y // 8), max(1, Z // 8)
        blocks = []
        for xs in (slice(0, bx), slice(X - bx, X)):
            for ys in (slice(0, by), slice(Y - by, Y)):
                for zs in (slice(0, bz), slice(Z - bz, Z)):
                    blocks.append(mean_b0[xs, ys, zs].ravel())
        bg = np.concatenate(blocks)
        bg = bg[np.isfinite(bg)]
        sigma = float(bg.mean() / math.sqrt(math.pi / 2.0)) if bg.size else math.nan
        method = "image-corner background, Rayleigh assumption"
    per = []
    for label, m in rois:
        m = np.asarray(m, bool)
        sig = float(mean_b0[m].mean()) if m.any() else math.nan
        snr = sig / sigma if (math.isfinite(sigma) and sigma > 0) else math.nan
        per.append({"roi": str(label), "mean_b0": _q(sig, "a.u."), "snr": _q(snr, "1")})
    return {"method": method, "noise_sd": _q(sigma, "a.u."), "per_roi": per}


# --------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class ReportFigure:
    """A rendered figure: a short name, a caption and PNG bytes.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> r = Report(provenance=make_provenance(), acquisition={})
    >>> fig = Figure(figsize=(1, 1)); _ = fig.subplots().plot([0, 1])
    >>> r.add_figure("demo", fig, "A line.", dpi=40)
    >>> r.figures[0].name, r.figures[0].caption, r.figures[0].png[1:4]
    ('demo', 'A line.', b'PNG')
    """

    name: str
    caption: str
    png: bytes


@dataclass
class Report:
    """Everything one subject analysis produced, ready to render.

    Attributes
    ----------
    provenance : dict
        From :func:`make_provenance` (software version, parameters with units, input checksums,
        UTC date).
    acquisition : dict
        From :func:`acquisition_summary` (no patient identifiers).
    roi_stats : RoiStatsTable, optional
    comparison : SideComparison, optional
    indication : object or dict, optional
        Indication assessment (class, decisive rules, citations ...), rendered generically.
    entrapment : EntrapmentAssessment, optional
    qc : dict
        QC facts and ``flags`` (list of plain-language strings).
    figures : list of ReportFigure
    sections : list of ReportSection
        Optional sections (tractography ...): JSON block under their key, HTML, figures, tables.
    subject : str, optional
        A pseudonymous label chosen by the user (never taken from DICOM).
    notice : str
        The research-use notice shown on top of every rendering.

    Examples
    --------
    >>> r = Report(provenance=make_provenance(), acquisition={}, subject="demo-01")
    >>> r.to_dict()["schema"]
    'dwi_toolkit.report/1'
    >>> "<!DOCTYPE html>" in r.to_html()
    True
    """

    provenance: dict[str, Any]
    acquisition: dict[str, Any]
    roi_stats: Any = None
    comparison: Any = None
    indication: Any = None
    entrapment: Any = None
    qc: dict[str, Any] = field(default_factory=dict)
    figures: list[ReportFigure] = field(default_factory=list)
    sections: list[Any] = field(default_factory=list)
    subject: str | None = None
    notice: str = RESEARCH_NOTICE

    # ---------------------------------------------------------------- building
    def add_figure(self, name: str, fig: Any, caption: str, *, dpi: int = 110) -> None:
        """Render a matplotlib Figure to PNG and append it (the Figure is not kept)."""
        self.figures.append(ReportFigure(name, caption, H.figure_to_png(fig, dpi=dpi)))

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready builtins (schema ``dwi_toolkit.report/1``)."""
        from ..analysis.compare import FIELD_UNITS as CMP_UNITS
        from ..analysis.compare import INDEX_FORMULAS
        from ..clinical.entrapment import FIELD_UNITS as ENT_UNITS

        cmp = None
        if self.comparison is not None:
            cmp = {
                "symptomatic_side": self.comparison.symptomatic_side,
                "convention": getattr(self.comparison, "convention", None),
                "indices": {k: {"formula": f, "unit": "%", "source": "dwi_toolkit References §2.8"}
                            for k, f in INDEX_FORMULAS.items()},
                "settings": dict(getattr(self.comparison, "settings", {})),
                "notes": list(getattr(self.comparison, "notes", ())),
                "columns": CMP_UNITS,
                "rows": self.comparison.to_records(),
            }
        ent = None
        if self.entrapment is not None:
            ent = self.entrapment.to_dict() if hasattr(self.entrapment, "to_dict") else _as_dict(self.entrapment)
            ent["columns"] = ENT_UNITS
        d = {
            "schema": SCHEMA,
            "subject": self.subject,
            "notice": self.notice,
            "provenance": self.provenance,
            "acquisition": self.acquisition,
            "roi_stats": None if self.roi_stats is None else
            {"columns": ROI_STATS_UNITS, "rows": _stats_records(self.roi_stats)},
            "side_comparison": cmp,
            "indication": _as_dict(self.indication),
            "entrapment": ent,
            "qc": self.qc,
            "figures": [{"name": f.name, "caption": f.caption, "file": f"figures/{f.name}.png"}
                        for f in self.figures],
        }
        d.update({s.key: s.to_dict() for s in self.sections})
        return _jsonable(d)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The report as a JSON string (strict JSON: NaN written as null)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    # ---------------------------------------------------------------- CSV
    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Tidy tables (one row per observation) keyed by CSV file stem."""
        out: dict[str, list[dict[str, Any]]] = {}
        if self.roi_stats is not None:
            out["roi_stats"] = _stats_records(self.roi_stats)
        if self.comparison is not None:
            out["side_comparison"] = self.comparison.to_records()
        if self.entrapment is not None and hasattr(self.entrapment, "levels"):
            out["entrapment"] = [lv.to_record() for lv in self.entrapment.levels]
        for s in self.sections:
            out.update(s.tables)
        return out

    @staticmethod
    def _csv_text(records: list[dict[str, Any]]) -> str:
        buf = io.StringIO()
        if not records:
            return ""
        cols = list(records[0].keys())
        w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for rec in records:
            w.writerow({k: ("" if (isinstance(v, float) and not math.isfinite(v)) or v is None else v)
                        for k, v in rec.items()})
        return buf.getvalue()

    # ---------------------------------------------------------------- HTML
    def _sections(self) -> list[tuple[str, str, str]]:
        secs: list[tuple[str, str, str]] = [("summary", "Summary", self._html_summary())]
        figs = {f.name: f for f in self.figures}
        if self.indication is not None:
            secs.append(("indication", "Indication assessment (guideline criteria)", self._html_indication()))
        if self.entrapment is not None:
            secs.append(("entrapment", "Nerve-root entrapment assessment", self._html_entrapment()))
        cmp_figs = [f for n, f in figs.items() if n.startswith("side_comparison")]
        if self.comparison is not None or cmp_figs:
            secs.append(("comparison", "Side-to-side comparison", self._html_comparison(cmp_figs)))
        if "adc_montage" in figs:
            f = figs["adc_montage"]
            secs.append(("montage", "ADC map with ROIs", H.img_tag(f.png, alt="ADC montage with ROI outlines", caption=f.caption)))
        if "signal_decay" in figs:
            f = figs["signal_decay"]
            secs.append(("decay", "Signal decay and fit", H.img_tag(f.png, alt="signal decay curves", caption=f.caption)))
        others = [f for n, f in figs.items()
                  if n not in ("adc_montage", "signal_decay") and not n.startswith("side_comparison")]
        if others:
            secs.append(("figures", "Other figures", "".join(H.img_tag(f.png, alt=f.name, caption=f.caption) for f in others)))
        if self.roi_stats is not None:
            secs.append(("roistats", "ROI statistics", self._html_roi_stats()))
        secs += [(s.key, s.title, s.html) for s in self.sections]
        secs.append(("qc", "Quality control", self._html_qc()))
        secs.append(("acquisition", "Acquisition", self._html_acquisition()))
        secs.append(("provenance", "Provenance", self._html_provenance()))
        return secs

    def _html_summary(self) -> str:
        from .first_screen import glance_table_html, qc_flags_html

        parts = [glance_table_html(self.comparison, self.entrapment)]
        ind = _as_dict(self.indication)
        if ind is not None:
            cls = _indication_class(ind)
            parts.append(f'<p>Indication of the MRI (guideline criteria): <span class="badge {H.esc(cls)}">'
                         f"{H.esc(P.label(cls) if cls else 'not assessed')}</span></p>")
        if getattr(self.entrapment, "indication_class", None) == "inappropriate":
            from ..clinical.entrapment import NOT_INDICATED_STATEMENT

            parts.append(f'<div class="warn">{H.esc(NOT_INDICATED_STATEMENT)}</div>')
        parts.append(qc_flags_html(self.qc.get("flags") or []))
        mask = self.qc.get("analysis_mask")
        if mask:
            parts.append(f'<p class="meta">Fits ran inside the analysis mask: '
                         f"{H.esc('the body (voxels above the background on the mean b=0 image)' if mask == 'auto' else mask)}."
                         "</p>")
        parts.append(_scanner_summary_html(self.qc.get("scanner_adc")))
        if self.entrapment is not None and getattr(self.entrapment, "levels", None):
            st = "".join(f"<li>{H.esc(P.prose(lv.statement))}</li>" for lv in self.entrapment.levels)
            parts.append(f"<details><summary>Per-level statements in words</summary><ul>{st}</ul></details>")
        if not any(parts[:-1]) and self.comparison is None and ind is None:
            parts.append("<p>No assessments in this report.</p>")
        return "".join(x for x in parts if x)

    def _html_indication(self) -> str:
        ind = _jsonable(_as_dict(self.indication) or {})
        cls = _indication_class(ind)
        out = (f'<p>Class: <span class="badge {H.esc(cls)}">{H.esc(P.label(cls))}</span></p>' if cls else "")
        if ind.get("explanation"):
            out += f'<div class="callout">{H.esc(P.prose(ind["explanation"]))}</div>'
        from .indication_section import SECTION_KEYS, guideline_table_html

        out += guideline_table_html(ind)
        out += H.definition_list(_indication_items(ind, skip={
            "classification", "explanation", "kovacs2013_risk_factors", "rule_trace", *SECTION_KEYS}))
        rf = ind.get("kovacs2013_risk_factors")
        if isinstance(rf, list) and rf and isinstance(rf[0], dict):
            out += H.table([{"risk factor": P.prose(x.get("description")) or P.label(x.get("name")),
                             "status": P.label(x.get("status")),
                             "odds ratio (95 % CI)": f"{x.get('odds_ratio')} ({', '.join(str(c) for c in x.get('ci95') or [])})"}
                            for x in rf], caption="Kovacs 2013 risk factors for an inappropriate request "
                           "(reported, never deciding)")
        trace = ind.get("rule_trace")
        if isinstance(trace, list) and trace and isinstance(trace[0], dict):
            out += ("<details><summary>Rule trace (rules checked in order)</summary><ol>"
                    + "".join(f"<li>{H.esc(P.label(t.get('rule')))}: {H.esc(P.label(t.get('decides')))}</li>"
                              for t in trace) + "</ol></details>")
        return out

    def _html_entrapment(self) -> str:
        e = self.entrapment
        st = "".join(f"<li>{H.esc(P.prose(x))}</li>" for x in e.statements)
        recs = [{"level": f"{lv.level} {lv.segment}", "class": P.label(lv.classification),
                 "why": "; ".join(P.label(x) for x in lv.reasons) or None,
                 "difference": P._value_ci(lv.index_value, lv.ci_low, lv.ci_high, "%", signed=True),
                 "direction": P.label(lv.direction), "expected": P.label(lv.literature_direction),
                 "suspected": P.label(lv.suspected), "voxels": f"{lv.n_s}/{lv.n_c}"} for lv in e.levels]
        for rec, lv in zip(recs, e.levels):  # combined assessment: components and Holm p (issue #13)
            if getattr(lv, "components", ()):
                rec["components"] = "; ".join(lv.components)
                rec["Holm p"] = P.fmt(getattr(lv, "p_holm", None), "1")
        tbl = H.table(recs, headers={
            "difference": f"{P.label(e.index)}, % (95 % interval)", "why": "reason",
            "direction": "measured direction (symptomatic side)", "expected": "direction in meta-analyses",
            "suspected": "clinically suspected", "voxels": "voxels symptomatic/other"},
            caption=f"Per-level classes ({P.label(e.parameter)}, threshold ±{P.fmt(e.threshold_pct, '%')} %)")
        cav = "".join(f"<li>{H.esc(P.prose(c))}</li>" for c in e.caveats)
        return (f'{tbl}<details><summary>Statements and caveats</summary><div class="callout"><ul>{st}</ul>'
                f"</div><h3>Caveats</h3><ul>{cav}</ul></details>")

    def _html_comparison(self, figs: list[ReportFigure]) -> str:
        from ..analysis.compare import INDEX_FORMULAS

        parts = [H.img_tag(f.png, alt=f"per-level side comparison plot ({f.name})", caption=f.caption)
                 for f in figs]
        c = self.comparison
        if c is not None:
            parts.append(comparison_table_html(c, "side_comparison.csv"))
            parts.append("<details><summary>Indices, conventions and flags</summary><ul>"
                         + "".join(f"<li>{H.esc(P.label(k))} = {H.esc(v)} (%)</li>" for k, v in INDEX_FORMULAS.items())
                         + f"</ul><p>{H.esc(P.prose(c.convention))} Flags: too few voxels = fewer than "
                         f"{H.esc(c.settings.get('min_voxels'))} voxels on a side; noisy = coefficient of "
                         f"variation above {H.esc(c.settings.get('max_cv'))}; a side without usable voxels = no ROI value "
                         "on at least one side.</p>"
                         + "".join(f'<p class="callout">{H.esc(P.prose(n))}</p>' for n in getattr(c, "notes", ()))
                         + "</details>")
        return "".join(parts)

    def _html_roi_stats(self) -> str:
        recs = []
        for r in _stats_records(self.roi_stats):
            u = r.get("unit")
            recs.append({"ROI": " ".join(str(r.get(k) or "") for k in ("level", "side", "segment")).strip(),
                         "parameter": P.label(r.get("parameter")), "unit": P.display_unit(u),
                         "voxels": r.get("n_voxels"), "excluded (mask/fit/CSF)":
                         f"{r.get('n_excluded_mask') or 0}/{r.get('n_excluded_fit') or 0}/"
                         f"{r.get('n_excluded_csf') or 0}",
                         "volume (mm³)": P.fmt(r.get("volume_mm3"), "mm^3"),
                         **{k: P.fmt(r.get(k), u) for k in ("mean", "median", "sd", "iqr", "p5", "p95")}})
        return H.table(recs, headers={"sd": "SD", "iqr": "IQR", "p5": "5th pct", "p95": "95th pct"},
                       caption="Included voxels only (failed fits and voxels above the CSF threshold removed)")

    def _html_qc(self) -> str:
        qc = dict(self.qc)
        flags = qc.pop("flags", []) or []
        out = ""
        from .first_screen import qc_flags_html

        out += qc_flags_html(flags)
        if flags:
            out += H.table([{"check": P.label(f["code"]), "about": f.get("subject"),
                             "measured": P.with_unit(f.get("measured"), f.get("unit")),
                             "limit": P.with_unit(f.get("limit"), f.get("unit"))} for f in flags],
                           caption="Measured values and limits (thresholds: docs/report.md, QC flags)")
        snr = qc.pop("snr", None)
        fit_status = qc.pop("fit_status", None)
        scanner = qc.pop("scanner_adc", None)
        items = [(P.label(k), _fmt_q(v)) for k, v in qc.items()]
        if fit_status:
            items.append(("Failed fits", f"{fit_status['failed_voxels']['value']} of "
                          f"{fit_status['attempted_voxels']['value']} voxels in the mask, "
                          f"{fit_status['in_rois_failed']['value']} inside the ROIs; "
                          f"{fit_status['in_rois_outside_mask']['value']} ROI voxels outside the mask (not fitted)"))
        if scanner:
            items.append((P.label("scanner_adc_source"), _scanner_source_text(scanner)))
        out += H.definition_list(items)
        if snr:
            recs = [{"ROI": p["roi"], "mean b=0 signal (a.u.)": P.fmt(p["mean_b0"]["value"], "1"),
                     "SNR": P.fmt(p["snr"]["value"], "1")} for p in snr.get("per_roi", [])]
            out += (f"<p>SNR (b=0) estimate: {H.esc(snr.get('method'))}; noise SD "
                    f"{H.esc(P.fmt((snr.get('noise_sd') or {}).get('value'), '1'))} (arbitrary units).</p>")
            if recs:
                out += H.table(recs)
        if scanner and scanner.get("agreement"):
            out += H.table([{"region": a["region"], "voxels compared": a["n_voxels"],
                             "our ADC (×10⁻³ mm²/s)": P.fmt(a["median_adc"], "mm^2/s"),
                             "scanner ADC (×10⁻³ mm²/s)": P.fmt(a["median_scanner_adc"], "mm^2/s"),
                             "difference (%)": P.fmt(a["median_rel_diff_pct"], "%", signed=True)}
                            for a in scanner["agreement"]],
                           caption=f"Our ADC against the scanner's ADC map (medians; difference = median of "
                                   f"(ours − scanner)/scanner; limit ±{P.fmt(scanner['limit_pct'], '%')} % "
                                   f"over the {'ROIs' if scanner['judged_on'] == 'ROIs' else 'body'})")
        return out

    def _html_acquisition(self) -> str:
        acq = dict(self.acquisition)
        shells = acq.pop("shells", None)
        out = H.definition_list((P.label(k), _fmt_q(v)) for k, v in acq.items())
        if shells:
            out += H.table([{"b (s/mm²)": s["bval"]["value"], "volumes": s["n_volumes"]} for s in shells],
                           caption="Shells")
        return out + "<p>No patient identifiers are stored in this report.</p>"

    def _html_provenance(self) -> str:
        p = self.provenance
        out = H.definition_list([
            ("software", f"{p.get('software')} {p.get('version')}"),
            ("created (UTC)", p.get("created_utc")),
            ("python", p.get("python")),
            ("dependencies", ", ".join(f"{k} {v}" for k, v in (p.get("dependencies") or {}).items())),
            ("command", p.get("command")),
        ])
        params = [_parameter_item(k, v) for k, v in (p.get("parameters") or {}).items()]
        if params:
            out += "<h3>Parameters</h3>" + H.definition_list(params)
        inputs = p.get("inputs") or []
        if inputs:
            out += H.table([{"role": f["role"], "name": f["name"], "kind": f.get("kind"),
                             "SHA-256": " ".join(f["sha256"][i:i + 16] for i in range(0, 64, 16)), "size (bytes)": (f.get("size_bytes") or {}).get("value")}
                            for f in inputs], caption="Input files (name and checksum only)")
        return out

    def to_html(self) -> str:
        """The report as one self-contained HTML page (no scripts, no network)."""
        when = self.provenance.get("created_utc", "")
        subtitle = (f"Subject: {self.subject or 'unnamed'} · created {when} UTC · "
                    f"dwi_toolkit {self.provenance.get('version', __version__)} · schema {SCHEMA}")
        return H.document(
            "Lumbar nerve-root DWI report", self._sections(), subtitle=subtitle, notice=self.notice,
            footer=f"Generated by dwi_toolkit {__version__}. Sources: the "
                   "References page of the dwi_toolkit documentation (docs/references.md), by section. " + self.notice,
        )

    def _repr_html_(self) -> str:
        body = "".join(f"<h3>{H.esc(h)}</h3>{b}" for _, h, b in self._sections())
        return (f'<div class="dwi-report"><style>{H.SCOPED_CSS}</style><div class="notice">'
                f"<strong>Research use only.</strong> {H.esc(self.notice)}</div>{body}</div>")

    def __repr__(self) -> str:
        n_rows = len(getattr(self.comparison, "rows", ()) or ())
        return (f"Report(subject={self.subject!r}, comparisons={n_rows}, figures={len(self.figures)}, "
                f"schema={SCHEMA!r})")

    # ---------------------------------------------------------------- files
    def save(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``report.json``, the CSV tables, ``figures/*.png`` and ``report.html`` into `out_dir`.

        Each file is written atomically (a temporary file renamed into place), so a reader never
        sees a half-written file; report.html is written last. Existing files of the same names
        are replaced; other files in `out_dir` are left alone.

        Returns
        -------
        dict
            Name → path of every file written.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written: dict[str, Path] = {}
        written["report.json"] = atomic_write_text(out / "report.json", self.to_json() + "\n")
        for stem, recs in self.tables().items():
            written[f"{stem}.csv"] = atomic_write_text(out / f"{stem}.csv", self._csv_text(recs))
        for f in [*self.figures, *(f for s in self.sections for f in s.figures)]:
            written[f"figures/{f.name}.png"] = atomic_write_bytes(out / "figures" / f"{f.name}.png", f.png)
        written["report.html"] = atomic_write_text(out / "report.html", self.to_html())
        logger.info("report written to %s", out)
        return written


def interval_description(comparison: Any) -> str:
    """One sentence on how a side comparison's intervals were computed (method, noise FWHM, level).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> c = NS(settings={"interval": "effective-n", "ci": 0.95, "noise": {"adc": {
    ...     "source": "roi-moments", "fwhm_mm": [1.8, 1.7, 0.0]}}})
    >>> interval_description(c)
    '95 % Welch t intervals with effective voxel counts under the spatial noise correlation (ADC: noise FWHM 1.8 × 1.7 × 0.0 mm along voxel axes i, j, k, moment estimate from the ROI voxels).'
    """
    st = dict(getattr(comparison, "settings", {}) or {})
    ci = P.fmt(100.0 * float(st.get("ci", 0.95)), "%").replace(".0", "")
    if st.get("interval", "iid-bootstrap") == "iid-bootstrap":
        return (f"{ci} % percentile bootstrap intervals over voxels resampled independently "
                f"({st.get('n_boot')} resamples; too narrow when the noise is spatially correlated).")
    sources = {"roi-moments": "moment estimate from the ROI voxels",
               "roi-reml": "REML estimate from the ROI voxels", "matrix": "from the acquisition/reconstruction "
               "matrix (phase-encoding axis only)", "option": "given as an option", "given": "given"}
    noise = []
    for param, m in (st.get("noise") or {}).items():
        fw = [P.fmt(v, "mm") for v in m.get("fwhm_mm", ())]
        noise.append(f"{P.label(param)}: noise FWHM {' × '.join(fw)} mm along voxel axes i, j, k, "
                     f"{sources.get(m.get('source'), m.get('source'))}")
    return (f"{ci} % Welch t intervals with effective voxel counts under the spatial noise correlation"
            + (f" ({'; '.join(noise)})." if noise else "."))


def _interval_name(comparison: Any) -> str:
    """Short name of the comparison's interval method for figure captions."""
    st = getattr(comparison, "settings", {}) or {}
    return ("independent-voxel bootstrap interval" if st.get("interval") == "iid-bootstrap"
            else "95 % interval (effective voxel count)")


def comparison_table_html(c: Any, csv_name: str) -> str:
    """The HTML table of a side comparison (contralateral or adjacent) with its interval method.

    Columns: values per side with intervals, relative difference, smallest detectable difference,
    effective voxel counts, voxels and flags; adjacent-level comparisons add the reference levels.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> row = NS(level="L5", segment="ganglion", parameter="adc", unit="mm^2/s", value_left=1.6e-3,
    ...          value_right=1.3e-3, left_ci_low=1.5e-3, left_ci_high=1.7e-3, right_ci_low=1.2e-3,
    ...          right_ci_high=1.4e-3, rel_diff_pct=23.1, rel_diff_pct_ci_low=10.2, rel_diff_pct_ci_high=35.0,
    ...          n_left=12, n_right=11, flags=(), n_eff_left=4.2, n_eff_right=3.9, reference="contralateral")
    >>> html = comparison_table_html(NS(rows=[row], symptomatic_side="left", settings={"ci": 0.95}), "x.csv")
    >>> "effective voxels L/R" in html, "4.2/3.9" in html
    (True, True)
    """
    recs = P.comparison_records(c)
    rows = list(getattr(c, "rows", ()))
    adjacent = any(getattr(r, "reference", "") == "adjacent" for r in rows)
    for rec, r in zip(recs, rows):
        rec["n_eff"] = "/".join(P.fmt(getattr(r, f"n_eff_{s}", None), "%") for s in ("left", "right"))
        rec["reference_levels"] = getattr(r, "reference_levels", "") or None
        if adjacent:
            rec["side"] = getattr(r, "symptomatic_side", None)
            rec["difference"] = P._value_ci(getattr(r, "rel_diff_pct", None), getattr(r, "rel_diff_pct_ci_low", None),
                                            getattr(r, "rel_diff_pct_ci_high", None), "%", signed=True)
            rec["root"] = rec["left"] if rec["side"] == "left" else rec["right"]
    cols = ["level", "segment", "parameter", "unit"]
    cols += ["side", "root", "reference_levels", "difference"] if adjacent else ["left", "right", "difference"]
    cols += ["detectable"] if any(rc["detectable"] is not None for rc in recs) else []
    cols += ["n_eff"] if any(not rc["n_eff"].startswith(P.EMPTY) for rc in recs) else []
    cols += ["n"] + (["flags"] if any(rc["flags"] for rc in recs) else [])
    lead = ("Each root against the mean of the adjacent levels on the same side (assumed intact). "
            if adjacent else f"Symptomatic side: {getattr(c, 'symptomatic_side', None) or 'unknown'}. ")
    return H.table(recs, columns=cols, headers={
        "left": "left (95 % interval)", "right": "right (95 % interval)", "root": "root (95 % interval)",
        "reference_levels": "reference levels", "difference": "relative difference, % (95 % interval)",
        "detectable": "smallest detectable difference (80 % power), %", "n_eff": "effective voxels L/R",
        "n": "voxels L/R"},
        caption=(lead + interval_description(c) + f" Every column of {csv_name} is in report.json."))


def adjacent_comparison_section(adjacent: Any) -> Any:
    """The report section of an adjacent-level comparison (``compare_sides(reference="adjacent")``).

    JSON block ``side_comparison_adjacent`` (settings, notes, rows with ``reference="adjacent"``),
    CSV ``side_comparison_adjacent.csv`` and its own HTML table with its own intervals.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> adj = NS(rows=[], symptomatic_side=None, settings={"reference": "adjacent", "ci": 0.95},
    ...          notes=("n",), to_records=lambda: [])
    >>> sec = adjacent_comparison_section(adj)
    >>> sec.key, sorted(sec.data), list(sec.tables)
    ('side_comparison_adjacent', ['columns', 'notes', 'rows', 'settings'], ['side_comparison_adjacent'])
    """
    from ..analysis.compare import FIELD_UNITS
    from .sections import ReportSection

    recs = adjacent.to_records()
    notes = "".join(f'<p class="callout">{H.esc(P.prose(n))}</p>' for n in getattr(adjacent, "notes", ()))
    body = comparison_table_html(adjacent, "side_comparison_adjacent.csv") + notes
    data = {"settings": dict(getattr(adjacent, "settings", {})), "notes": list(getattr(adjacent, "notes", ())),
            "columns": FIELD_UNITS, "rows": recs}
    return ReportSection("side_comparison_adjacent", "Comparison with the adjacent levels", data, body,
                         tables={"side_comparison_adjacent": recs})


def _num(fmt: str):
    def f(v: Any) -> str:
        return "–" if not isinstance(v, (int, float)) or not math.isfinite(v) else format(v, fmt)
    return f


def _cmp_formatters(scaled: list[dict[str, Any]]) -> dict[str, Any]:
    """Fixed decimals for the comparison table (values in ×10⁻³ mm²/s for diffusivities)."""
    diffusivity = bool(scaled) and all(r.get("unit") == "×10⁻³ mm²/s" for r in scaled)
    val = _num(".3f") if diffusivity else _num(".4g")
    out = {k: val for k in ("xs", "xc", "value_left", "value_right")}
    out.update({k: (_num("+.3f") if diffusivity else _num("+.4g"))
                for k in ("difference", "difference_ci_low", "difference_ci_high")})
    out.update({"ratio_pct": _num(".1f"), "rel_diff_pct": _num("+.1f"),
                "asymmetry_index_pct": _num("+.1f"), "abs_asymmetry_index_pct": _num(".1f")})
    return out


def _fmt_q(v: Any) -> str:
    """A JSON quantity ({"value", "unit"}) or plain value as display text (presentation rules)."""
    if isinstance(v, Mapping) and "value" in v and "unit" in v:
        val, unit = v["value"], v["unit"]
        if isinstance(val, list):
            text = ", ".join(P.fmt(x, unit) for x in val)
            return f"{text} {P.display_unit(unit)}".strip() if text else P.EMPTY
        if isinstance(val, str):
            return val
        return P.with_unit(val, unit)
    if isinstance(v, Mapping):
        return "; ".join(f"{P.label(k)}: {_fmt_q(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt_q(x) for x in v) or P.EMPTY
    if isinstance(v, float):
        return P.fmt(v, "1")
    return P.label(v) if isinstance(v, bool) or v is None or v in P.LABELS else str(v)


def _indication_items(ind: Mapping[str, Any], *, skip: set[str]) -> list[tuple[str, str]]:
    """Readable (label, value) pairs of the indication dict: empty fields left out, codes in words,
    the stenosis policy only when a stenosis rule decided the class."""
    decisive = " ".join(str(x) for x in ind.get("decisive_rules") or [])
    items = []
    for k, v in ind.items():
        if k in skip or v in (None, "", [], {}) or k == "research_use_notice":
            continue
        if k == "stenosis_policy" and "STEN" not in decisive:
            continue
        if isinstance(v, dict):
            v = P.label(v.get("name")) if "name" in v else ", ".join(f"{P.label(a)}: {b}" for a, b in v.items())
        elif isinstance(v, list):
            v = ", ".join(P.label(x) if isinstance(x, str) else str(x) for x in v)
        elif isinstance(v, (bool, type(None))) or (isinstance(v, str) and "_" in v and " " not in v):
            v = P.label(v)
        key = P.label(k)
        items.append((key[:1].upper() + key[1:], v))
    return items


def _indication_class(ind: Mapping[str, Any] | None) -> str | None:
    if not ind:
        return None
    for k in ("classification", "class", "class_", "category", "result", "label"):
        v = ind.get(k)
        v = getattr(v, "value", v)
        if isinstance(v, str):
            return v
    return None


# --------------------------------------------------------------------------- assembly
@dataclass(frozen=True)
class ReportOptions:
    """The provenance and presentation settings of :func:`build_report`.

    Attributes
    ----------
    parameters, inputs : mapping, optional
        Analysis parameters and input files, passed to :func:`make_provenance`.
    command : str, optional
        The command line, passed to :func:`make_provenance`.
    subject : str, optional
        Pseudonymous subject label.
    figures : bool
        Render figures (default True).
    snr_warn : float
        ROI b=0 SNR below which a QC flag is raised (default 10 [D]).
    scanner_adc : ParameterMap or ndarray (X, Y, Z), optional
        The scanner's ADC map on the DWI grid in mm²/s, compared with ours in the ROIs (QC flag
        ``scanner_adc``); see :func:`dwi_toolkit.io.scanner_adc.scanner_adc_on_grid`.
    scanner_adc_info : mapping, optional
        Where the scanner map came from (``source``, ``description``, ``note``), for the report.

    Examples
    --------
    >>> ReportOptions(subject="demo-01", figures=False).figures
    False
    """

    parameters: Mapping[str, Any] | None = None
    inputs: Mapping[str, Any] | None = None
    subject: str | None = None
    command: str | None = None
    figures: bool = True
    snr_warn: float = DEFAULT_SNR_WARN
    scanner_adc: Any = None
    scanner_adc_info: Mapping[str, Any] | None = None


def build_report(
    *,
    series: Any = None,
    fit: Any = None,
    roi_masks: Sequence[tuple[str, np.ndarray]] | None = None,
    stats: Any = None,
    comparison: Any = None,
    indication: Any = None,
    entrapment: Any = None,
    options: ReportOptions | None = None,
    **settings: Any,
) -> Report:
    """Assemble a :class:`Report` from in-memory results, with QC and figures.

    Parameters
    ----------
    series : DWISeries, optional
        For the acquisition summary, SNR and signal-decay curves.
    fit : ADCFit, optional
        For the ADC montage and the fit QC (``status`` codes, ``bvals_used``, ``b0_threshold``,
        ``method``).
    roi_masks : sequence of (label, bool ndarray (X, Y, Z)), optional
        ROIs on the image grid, for overlays, SNR and decay curves.
    stats, comparison, indication, entrapment : optional
        Results of ``roi_stats``, ``compare_sides``, ``assess_indication``, ``assess_entrapment``.
    options : ReportOptions, optional
        Provenance inputs (``parameters``, ``inputs``, ``command``), ``subject``, ``figures`` and
        ``snr_warn``.
    **settings
        Any :class:`ReportOptions` field by name (``subject="demo-01"``, ``figures=False`` ...),
        applied on top of `options`; an unknown name raises :class:`~dwi_toolkit.errors.InputDataError`.

    Returns
    -------
    Report

    Examples
    --------
    >>> from dwi_toolkit.phantom import make_lumbar_phantom
    >>> ph = make_lumbar_phantom(shape=(36, 28, 24), voxel_size=(4.0, 4.0, 8.0))
    >>> from dwi_toolkit.models.adc import fit_adc
    >>> fit = fit_adc(ph.series)
    >>> rep = build_report(series=ph.series, fit=fit, subject="demo-01", figures=False)
    >>> rep.to_dict()["acquisition"]["bvals"]
    {'value': [0.0, 100.0, 100.0, 100.0, 400.0, 400.0, 400.0, 800.0, 800.0, 800.0], 'unit': 's/mm^2'}
    """
    opt = with_settings(ReportOptions, options, settings, where="build_report")
    subject, figures, snr_warn = opt.subject, opt.figures, opt.snr_warn
    roi_masks = list(roi_masks or [])
    params = dict(opt.parameters or {})
    params.setdefault("snr_warn", snr_warn)
    prov = make_provenance(parameters=params, inputs=opt.inputs, command=opt.command)
    acq = acquisition_summary(series) if series is not None else {}
    qc: dict[str, Any] = {"analysis_mask": params.get("mask", "auto")}
    if fit is not None:
        qc["method"] = getattr(fit, "method", None)
        bu = getattr(fit, "bvals_used", None)
        if bu is not None:
            qc["bvals_used"] = _q([round(float(b), 3) for b in np.asarray(bu).ravel()], "s/mm^2")
        b0t = getattr(fit, "b0_threshold", None)
        if b0t is None and series is not None:
            b0t = series.b0_threshold
        qc["b0_threshold"] = _q(b0t, "s/mm^2")
        status = getattr(fit, "status", None)
        if status is not None:
            qc["fit_status"] = _fit_status_summary(np.asarray(status), roi_masks)
    elif series is not None:
        qc["b0_threshold"] = _q(series.b0_threshold, "s/mm^2")
    if stats is not None:
        recs = _stats_records(stats)
        excl = sum(int(r.get("n_excluded") or 0) for r in recs)
        qc["excluded_voxels"] = _q(excl, "voxels")
        qc["included_voxels"] = _q(sum(int(r.get("n_voxels") or 0) for r in recs), "voxels")
    # the mean b=0 image once, for the SNR and the signal checks (none without a b=0 volume)
    b0_mean = series.mean_b0() if series is not None and np.any(series.b0_mask) else None
    if series is not None and roi_masks:
        qc["snr"] = estimate_snr(series, roi_masks, mean_b0=b0_mean)
    scanner = _scanner_adc_qc(fit, roi_masks, opt.scanner_adc, opt.scanner_adc_info)
    if scanner is not None:
        qc["scanner_adc"] = scanner[0]
    qc["flags"] = [f.to_dict() for f in _qc_flags(series, fit, roi_masks, stats, qc.get("snr"),
                                                  snr_warn=snr_warn, params=params, b0_mean=b0_mean,
                                                  scanner_adc=None if scanner is None else scanner[1])]

    rep = Report(provenance=prov, acquisition=acq, roi_stats=stats, comparison=comparison,
                 indication=indication, entrapment=entrapment, qc=qc, subject=subject)
    if figures:
        _add_figures(rep, series=series, fit=fit, roi_masks=roi_masks, comparison=comparison,
                     entrapment=entrapment)
    return rep


def _scanner_adc_qc(fit: Any, roi_masks: Sequence[tuple[str, np.ndarray]], scanner_adc: Any,
                    info: Mapping[str, Any] | None) -> tuple[dict[str, Any], list[Any]] | None:
    """The scanner-ADC record of report.json (source, agreement per ROI, all ROIs, body) and its flags.

    Our ADC counts only where the fit succeeded (status 0). The flag is judged over the voxels of
    every ROI together, or over the body when no ROI voxel can be compared (report.md §4.1).
    """
    if scanner_adc is None:
        return None if not info else ({k: v for k, v in info.items() if v is not None}, [])
    from ..qc import flags as Q

    ours = np.asarray(getattr(fit, "adc", None), float)
    status = getattr(fit, "status", None)
    body = np.isfinite(ours) if status is None else np.asarray(status) == 0
    ours = np.where(body, ours, np.nan)
    theirs = np.asarray(getattr(scanner_adc, "data", scanner_adc), float)
    union = _roi_union(ours.shape, roi_masks)
    regions = [*roi_masks, ("all ROIs", union), ("body", body)]
    agreement = Q.scanner_adc_agreement(ours, theirs, regions)
    where = ("ROIs", union) if agreement[-2]["n_voxels"] else ("body", body)
    flags = Q.scanner_adc_flags(ours, theirs, where[1], subject=where[0])
    record = {**{k: v for k, v in (info or {}).items() if v is not None}, "limit_pct": 100 * Q.MAX_SCANNER_ADC_DIFF,
              "judged_on": where[0], "agreement": agreement}
    return record, flags


def _roi_union(shape: tuple, rois: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
    """Voxels in any of the ROI masks."""
    union = np.zeros(shape, bool)
    for _, m in rois:
        union |= np.asarray(m, bool)
    return union


def _no_attenuation(series: Any, b0: np.ndarray, body: np.ndarray | None) -> list[Any]:
    """The no-attenuation check at the series' highest b-value, judged inside the fitted (body) voxels."""
    from ..qc import flags as Q

    bvals = np.asarray(series.bvals, float)
    if bvals.size < 2 or not bvals.max() > 0:
        return []
    high = np.flatnonzero(bvals == bvals.max())
    mean_high = np.zeros(series.spatial_shape)  # one volume at a time: no (X, Y, Z, n) float copy
    for i in high:
        mean_high += series.data[..., int(i)]
    mean_high /= high.size
    return Q.no_attenuation_flags(b0, mean_high, float(bvals.max()), body)


def _qc_flags(series: Any, fit: Any, roi_masks: Sequence[tuple[str, np.ndarray]], stats: Any,
              snr: Mapping[str, Any] | None, *, snr_warn: float, params: Mapping[str, Any],
              b0_mean: np.ndarray | None = None, scanner_adc: Sequence[Any] | None = None) -> list[Any]:
    """Every QC flag the inputs allow (:mod:`dwi_toolkit.qc.flags`), most serious first;
    `b0_mean` is the series' mean b=0 image (the signal checks need one)."""
    from ..qc import flags as Q

    out: list[Any] = list(scanner_adc or [])
    status = getattr(fit, "status", None) if fit is not None else None
    body = None if status is None else np.asarray(status) != 1
    if series is not None and b0_mean is not None:
        out += Q.no_signal_flags(b0_mean)
        out += _no_attenuation(series, b0_mean, body)
    if status is not None:
        out += Q.fit_failure_flags(np.asarray(status), roi_masks)
    if snr:
        out += Q.snr_flags({p["roi"]: p["snr"]["value"] for p in snr.get("per_roi", [])}, limit=snr_warn)
    if stats is not None:
        min_vox = int(params.get("min_voxels") or Q.MIN_VOXELS)
        out += Q.voxel_count_flags({" ".join(str(r.get(k) or "") for k in ("level", "side", "segment")).strip():
                                    r.get("n_voxels") for r in _stats_records(stats)}, limit=min_vox)
    bu = getattr(fit, "bvals_used", None) if fit is not None else None
    if bu is not None and np.size(bu):
        out += Q.b_range_flags(np.asarray(bu, float).ravel())
    if series is not None:
        b0 = np.nonzero(series.b0_mask)[0]
        if b0.size >= 2:
            out += Q.motion_flags(series.data[..., b0], body)
        if roi_masks:
            out += Q.side_label_flags(roi_masks, series.affine, midline_x=params.get("midsagittal_x_mm"),
                                      body_mask=body)
    order = {s: i for i, s in enumerate(Q.SEVERITIES)}
    return sorted(out, key=lambda f: order.get(f.severity, 9))


def _scanner_summary_html(scanner: Mapping[str, Any] | None) -> str:
    """One line of the first screen: how our ADC compares with the scanner's map (when there is one)."""
    judged = [a for a in (scanner or {}).get("agreement") or []
              if a["region"] == ("all ROIs" if scanner.get("judged_on") == "ROIs" else "body")]
    if not judged or judged[0]["median_rel_diff_pct"] is None:
        return ""
    a = judged[0]
    return (f'<p class="meta">Scanner ADC map ({H.esc(scanner.get("description") or "given")}): our ADC differs by '
            f'{H.esc(P.fmt(a["median_rel_diff_pct"], "%", signed=True))} % (median over {a["n_voxels"]} voxels of '
            f'the {"ROIs" if a["region"] == "all ROIs" else "body"}; limit ±{H.esc(P.fmt(scanner["limit_pct"], "%"))} %).</p>')


def _parameter_item(key: str, value: Any) -> tuple[str, str]:
    """(label, value) of one run parameter in the provenance; the scanner-ADC option shares its code with
    the QC flag, so it gets its own words (and only the file name of a given map)."""
    if key == "scanner_adc":
        words = {"auto": "automatic (an ADC series beside the DICOM DWI)", "none": "not compared"}
        return "scanner ADC map (QC comparison)", words.get(str(value), Path(str(value)).name)
    return P.label(key), _fmt_q(value)


def _scanner_source_text(scanner: Mapping[str, Any]) -> str:
    """Where the scanner ADC map came from, in words."""
    if not scanner.get("found"):
        return str(scanner.get("note") or "not compared")
    what = f"series {scanner['description']}" if scanner.get("description") else "the given map"
    how = "found beside the DWI series" if scanner.get("source") == "auto" else "given by the user"
    return f"{what}, {how}, {scanner.get('note', '')}".rstrip(", ")


def _status_codes() -> dict[int, str]:
    try:
        from ..models.adc import STATUS_CODES

        return {int(k): str(v) for k, v in STATUS_CODES.items()}
    except ImportError:
        return {0: "ok", 1: "outside mask", 2: "invalid signal", 3: "negative ADC", 4: "not converged"}


def _fit_status_summary(status: np.ndarray, roi_masks: Sequence[tuple[str, np.ndarray]]) -> dict[str, Any]:
    codes = _status_codes()
    st = status.astype(int)
    counts = np.bincount(st.ravel(), minlength=max(codes) + 1 if codes else 1)
    overall = {codes.get(c, f"code {c}"): _q(int(n), "voxels") for c, n in enumerate(counts) if n}
    union = np.zeros(st.shape, bool)
    for _, m in roi_masks:
        m = np.asarray(m, bool)
        if m.shape == st.shape:
            union |= m
    in_roi = st[union]
    roi_counts = np.bincount(in_roi.ravel(), minlength=len(counts)) if in_roi.size else np.zeros(len(counts), int)
    fitted = int(np.sum(st != 1))
    failed = int(np.sum((st != 0) & (st != 1)))
    return {
        "codes": {str(k): v for k, v in codes.items()},
        "all_voxels": overall,
        "attempted_voxels": _q(fitted, "voxels"),
        "failed_voxels": _q(failed, "voxels"),
        "failed_fraction": _q(failed / fitted if fitted else None, "1"),
        "in_rois": {codes.get(c, f"code {c}"): _q(int(n), "voxels") for c, n in enumerate(roi_counts) if n},
        "in_rois_failed": _q(int(np.sum((in_roi != 0) & (in_roi != 1))), "voxels"),
        "in_rois_outside_mask": _q(int(np.sum(in_roi == 1)), "voxels"),
    }


def _compared_masks(roi_masks, comparison, entrapment=None) -> list[tuple[str, np.ndarray]]:
    """ROIs for the decay plot: both sides of the levels that matter, so the plot stays legible.

    Levels that matter: clinically suspected levels and levels not classed ``no_asymmetry``; when
    that leaves nothing (or there is no assessment), every compared level.
    """
    if comparison is None:
        return list(roi_masks)
    levels = {r.level for r in comparison.rows if "missing_side" not in r.flags}
    if entrapment is not None and getattr(entrapment, "levels", None):
        focus = {lv.level for lv in entrapment.levels
                 if lv.classification != "no_asymmetry" or lv.suspected}
        if focus & levels:
            levels &= focus
    keep = [(lab, m) for lab, m in roi_masks if str(lab).split(" ")[0] in levels]
    return keep or list(roi_masks)


def _add_figures(rep: Report, *, series, fit, roi_masks, comparison, entrapment) -> None:
    from . import figures as F
    from .figure_worker import figure_job

    jobs = []  # (name, FigureJob, caption): all sent first (a figure worker draws them meanwhile), then taken
    thr = getattr(entrapment, "threshold_pct", None)
    if comparison is not None and len(comparison.rows):
        present = list(dict.fromkeys(r.parameter for r in comparison.rows))
        # ADC first (the entrapment parameter by default), then FA when DTI was fitted
        for param in [p for p in ("adc", "fa") if p in present] or present[:1]:
            name = "side_comparison" if param == present[0] or param == "adc" else f"side_comparison_{param}"
            fig = figure_job(F.side_comparison_figure, comparison, parameter=param,
                             threshold_pct=thr if param == getattr(entrapment, "parameter", "adc") else None)
            jobs.append((name, fig,
                           f"{param.upper()}. Left: ROI mean per side with its {_interval_name(comparison)}. Right: "
                           "relative difference 100·(Xs−Xc)/Xc (%) with its CI"
                           + (f"; dashed lines ±{thr:g} % (user threshold, not a diagnostic cut-off)."
                              if thr and param == getattr(entrapment, "parameter", "adc") else ".")))
    if fit is not None and getattr(fit, "adc", None) is not None:
        fig = figure_job(F.adc_montage, fit, rois=roi_masks)
        bu = getattr(fit, "bvals_used", None)
        bs = ", ".join(P.fmt(float(b), "s/mm^2") for b in sorted(set(np.asarray(bu).ravel().tolist()))) if bu is not None else ""
        jobs.append(("adc_montage", fig,
                       f"ADC{f' from b = {bs} s/mm²' if bs else ''}, window 0–3.0 ×10⁻³ mm²/s (grey scale, "
                       "black = no fit), on the slices that contain ROIs; coloured outlines and labels "
                       "mark the ROIs (leader lines where a label is moved to avoid another); edge "
                       "letters (L/R, P/A, I/S) give the patient directions from the affine."))
    if series is not None and roi_masks:
        bu = getattr(fit, "bvals_used", None) if fit is not None else None
        b_range = (float(np.min(bu)), float(np.max(bu))) if bu is not None and np.size(bu) else None
        curves = F.roi_decay_curves(series, _compared_masks(roi_masks, comparison, entrapment),
                                    b_range=b_range)
        jobs.append(("signal_decay", figure_job(F.signal_decay_figure, curves),
                       "Mean trace signal per b-value (± SD over voxels) in both roots of the suspected "
                       "levels and of levels with a finding (all levels when there are none), and the "
                       "mono-exponential fit S0·exp(−b·ADC) of the ROI-mean signal over the b-values "
                       "used by the voxel fit (dwi_toolkit References §1.1)."))
    for name, job, caption in jobs:
        rep.figures.append(ReportFigure(name, caption, job.png()))
