"""Root tractography of one subject, end to end: tensor fit → tracking → profiles → files.

:func:`run_tractography` is what the pipeline's ``track`` step, ``dwi-toolkit analyze --track``
and ``dwi-toolkit track`` call. It only uses the public API:
:func:`~dwi_toolkit.models.dti.fit_dti`, :func:`~dwi_toolkit.tracts.track_roots`,
:func:`~dwi_toolkit.tracts.along_root_profiles`, :func:`~dwi_toolkit.tracts.compare_profiles`,
:func:`~dwi_toolkit.tracts.find_lesions`, the writers of :mod:`dwi_toolkit.io` and the report
section of :mod:`dwi_toolkit.reporting.tracts_section`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TractographyResult", "run_tractography", "TRACT_FILES"]

logger = logging.getLogger(__name__)

#: Output name → file (relative to the tractography folder) written by :func:`run_tractography`.
TRACT_FILES = {"streamline_index": "streamlines/roots_index.json", "tract_rois": "tract_rois.json",
               "profiles": "along_root_profiles.csv", "comparison": "profile_comparison.csv",
               "summary": "track_summary.json"}


@dataclass
class TractographyResult:
    """What :func:`run_tractography` produced.

    Attributes
    ----------
    tracts : RootTracts
    fit : DTIFit
        The tensor fit tracked (FA, MD ... in mm²/s).
    profiles : ProfileTable
    comparisons : list of ProfileComparison
    lesions : list of dict
    files : dict
        Output name → path of every file written (empty without an output folder).

    Examples
    --------
    >>> TractographyResult(None, None, [], [], []).files
    {}
    """

    tracts: Any
    fit: Any
    profiles: Any
    comparisons: list[Any]
    lesions: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)

    def section(self, *, figures: bool = True, relative_to: str | os.PathLike | None = None) -> Any:
        """The report section (:func:`dwi_toolkit.reporting.tracts_section.tract_section`).

        `relative_to`: list the files relative to this folder (the subject's output).
        """
        from ..reporting.tracts_section import tract_section

        files = {k: (os.path.relpath(v, relative_to) if relative_to else str(v)) for k, v in self.files.items()}
        return tract_section(self.tracts, self.profiles, self.comparisons, self.lesions, fa=self.fit.fa,
                             files=files, figures=figures)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: per-root counts, lesions, settings."""
        return {"roots": self.tracts.summary(), "lesions": self.lesions,
                "params": dict(self.tracts.params.__dict__)}


def run_tractography(series: Any, rois: Any, out_dir: str | os.PathLike | None = None, *, params: Any = None,
                     dti_fit: Any = None, mask: Any = None, fmt: str = "tck",
                     figures: bool = False, origins: Any = None) -> TractographyResult:
    """Track every root from its ROI, profile FA/ADC/MD/AD/RD along it and compare the sides.

    Parameters
    ----------
    series : DWISeries
        ≥ 6 directions and a b=0 volume (b in s/mm²).
    rois : RoiSet
        Seed ROIs per root (any shape); their ``midsagittal_plane`` meta is used when present.
    out_dir : path-like, optional
        Write the files of :data:`TRACT_FILES` (and the streamline files, one per root) here.
    params : TrackingParams, optional
        Tracking settings (default :class:`~dwi_toolkit.tracts.TrackingParams`).
    dti_fit : DTIFit, optional
        An existing tensor fit of `series` (fitted in `mask` otherwise).
    mask : ndarray of bool, optional
        Analysis/body mask on the DWI grid.
    fmt : {"tck", "trk", "trx"}, optional
        Streamline file format.
    origins : mapping or RoiSet, optional
        Dural-junction points set by hand for some or all roots (see
        :func:`~dwi_toolkit.tracts.tracking.track_roots`); the others are found from the CSF.
    figures : bool, optional
        Also write ``tracts_coronal.png`` and ``profiles.png`` (default False; the report embeds them).

    Returns
    -------
    TractographyResult

    Examples
    --------
    >>> import tempfile
    >>> from dwi_toolkit.phantom_roots import make_root_phantom
    >>> from dwi_toolkit.roi.model import RoiSet, RootROI, Sphere
    >>> ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30)
    >>> rois = RoiSet([RootROI(lv, sd, shape=Sphere(p, 2.0)) for (lv, sd), p in ph.seeds.items()])
    >>> res = run_tractography(ph.series, rois, tempfile.mkdtemp(), mask=ph.body_mask)
    >>> [(r["level"], r["side"], r["n_kept"] > 0) for r in res.summary()["roots"]]
    [('L5', 'left', True), ('L5', 'right', True)]
    >>> sorted(res.files)[:3]
    ['comparison', 'profiles', 'streamline_index']
    """
    from ..models.dti import fit_dti
    from ..tracts import TrackingParams, along_root_profiles, compare_profiles, find_lesions, track_roots

    params = params if params is not None else TrackingParams()
    fit = dti_fit if dti_fit is not None else fit_dti(series, mask=mask)
    plane = getattr(rois, "meta", {}).get("midsagittal_plane") if hasattr(rois, "meta") else None
    logger.info("tracking %d ROI(s) (%s)", len(rois), params.method)
    tracts = track_roots(fit, rois, params=params, mask=mask, midsagittal_plane=plane, origins=origins)
    profiles = along_root_profiles(tracts, fit)
    comps = compare_profiles(profiles)
    res = TractographyResult(tracts, fit, profiles, comps, find_lesions(comps))
    if out_dir is not None:
        res.files = _write(res, Path(out_dir), fmt=fmt, figures=figures)
    return res


def _write(res: TractographyResult, out: Path, *, fmt: str, figures: bool) -> dict[str, Path]:
    """Streamlines (+ index), tube ROIs, profiles, comparison, summary (and figures)."""
    import json

    from ..io._atomic import atomic_path, atomic_write_text
    from ..io.rois import save_rois
    from ..io.streamlines import save_root_tracts
    from ..io.tables import write_csv
    from ..tracts.profiles import COMPARISON_COLUMNS

    files = {"streamline_index": Path(save_root_tracts(res.tracts, out / "streamlines", fmt=fmt)),
             "tract_rois": Path(save_rois(res.tracts.rois(), out / TRACT_FILES["tract_rois"])),
             "profiles": Path(res.profiles.save(out / TRACT_FILES["profiles"])),
             "comparison": Path(write_csv(out / TRACT_FILES["comparison"], [c.to_record() for c in res.comparisons],
                                          columns=COMPARISON_COLUMNS))}
    if figures:
        from ..reporting.tracts_section import profiles_figure, tracts_figure

        for name, fig in (("tracts_png", tracts_figure(res.tracts, res.fit.fa)),
                          ("profiles_png", profiles_figure(res.profiles, res.comparisons))):
            path = out / ("tracts_coronal.png" if name == "tracts_png" else "profiles.png")
            with atomic_path(path) as tmp:
                fig.savefig(tmp)
            files[name] = path
    doc = {**res.summary(), "outputs": {k: os.path.relpath(v, out) for k, v in files.items()},
           "units": {"centerline_length_mm": "mm", "origin_sd_mm": "mm", "distance_mm": "mm", "diffusivity": "mm^2/s"}}
    files["summary"] = Path(atomic_write_text(out / TRACT_FILES["summary"],
                                              json.dumps(doc, indent=2, default=str) + "\n"))
    return files
