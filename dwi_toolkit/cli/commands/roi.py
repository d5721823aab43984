"""``dwi-toolkit roi``: draw, show, measure, convert and mirror nerve-root ROIs.

Subcommands::

    dwi-toolkit roi draw    PATH -o rois.json [--rois START]      # interactive editor window
    dwi-toolkit roi show    PATH --rois FILE -o fig.png           # overlay montage
    dwi-toolkit roi stats   PATH --rois FILE [-o table.csv]       # fits ADC first for a DWI
    dwi-toolkit roi convert IN OUT [--reference IMAGE]            # JSON / .mrk.json / label map / ITK-SNAP
    dwi-toolkit roi mirror  PATH --rois FILE -o OUT               # add contralateral twins

PATH is a DWI series (NIfTI with .bval/.bvec, or DICOM) or a 3-D parameter map (e.g. an ADC
NIfTI in mm²/s). ROI files: dwi_toolkit ``.json``, 3D Slicer ``.mrk.json``, ``*_dseg.nii.gz``
label maps with ``.tsv`` (see docs/rois.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path

logger = logging.getLogger("dwi_toolkit.cli.roi")

_NON_INTERACTIVE = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}


def add_parser(sub, add_common) -> None:
    from .._options import add_backend, add_method, add_out

    p = sub.add_parser(
        "roi",
        help="nerve-root ROIs: draw, show, stats, convert, mirror",
        description="Work with nerve-root ROIs (L1-S1, left/right, pre-/ganglion/post-ganglionic). "
        "Coordinates are RAS+ mm; ADC in mm^2/s.",
    )
    rs = p.add_subparsers(dest="roi_command", metavar="ACTION")

    def image_args(q):
        q.add_argument("path", help="DWI series (NIfTI + .bval/.bvec, or DICOM) or a 3-D map NIfTI")
        q.add_argument("--bvals", help="b-value file when not beside the NIfTI")
        q.add_argument("--bvecs", help="b-vector file when not beside the NIfTI")
        q.add_argument("--series-uid", help="DICOM: which series when several are present")
        add_backend(q)

    d = rs.add_parser("draw", help="place ROIs interactively (needs a desktop matplotlib backend)",
                      description="Open the ROI editor on a DWI series or map; every change is saved to -o at once "
                      "(temp file, then rename), u undoes, h lists every key.")
    image_args(d)
    add_out(d, help="ROI file to write (.json, .mrk.json, .nii.gz)", old=("--output",))
    d.add_argument("--rois", help="start from these ROIs")
    d.add_argument("--fit-adc", action="store_true", help="also offer an ADC background (fits ADC first)")
    add_common(d)
    d.set_defaults(func=run_draw)

    s = rs.add_parser("show", help="overlay montage of ROIs on an image (PNG/PDF/SVG)")
    image_args(s)
    s.add_argument("--rois", required=True, help="ROI file")
    add_out(s, help="figure file (.png, .pdf, .svg)", old=("--output",))
    s.add_argument("--view", choices=["axial", "coronal", "sagittal"], default="axial")
    s.add_argument("--background", choices=["trace", "b0"], default="trace",
                   help="for a DWI: highest-b trace (default) or mean b0")
    s.add_argument("--dpi", type=int, default=150)
    add_common(s)
    s.set_defaults(func=run_show)

    t = rs.add_parser("stats", help="ROI statistics table (fits ADC first when PATH is a DWI)")
    image_args(t)
    t.add_argument("--rois", required=True, help="ROI file")
    add_out(t, required=False, help="write the table as CSV", old=("--output",))
    add_method(t, ("wls", "ols", "nlls"), "wls", "ADC fit method (DWI input)")
    t.add_argument("--parameter", help="name of the parameter (map input), or 's0' for a DWI fit")
    t.add_argument("--scale", type=float, default=None,
                   help="multiply map values by this (e.g. 1e-6 for scanner ADC maps stored in 10^-6 mm^2/s)")
    t.add_argument("--csf-threshold", type=float, default=None,
                   help="exclude voxels above this value (mm^2/s for ADC, e.g. 2.5e-3) as CSF")
    t.add_argument("--keep-failed", action="store_true", help="do not exclude failed-fit voxels")
    t.add_argument("--json", action="store_true", help="print JSON records instead of a text table")
    add_common(t)
    t.set_defaults(func=run_stats)

    c = rs.add_parser("convert", help="convert between ROI formats (by extension)")
    c.add_argument("input", help="ROI file (.json, .mrk.json, .nii.gz label map, ITK-SNAP .txt/.label)")
    c.add_argument("output", help="ROI file to write (.json, .mrk.json, .nii.gz label map + .tsv, ITK-SNAP "
                                  ".txt/.label + its .nii.gz label map)")
    c.add_argument("--reference", help="image defining the grid (needed to write a label map from shapes)")
    c.add_argument("--labels", help="label table for a label-map input (.tsv or ITK-SNAP .txt)")
    c.add_argument("--name", action="append", default=[], metavar="SLICER=ROOT",
                   help="root of a Slicer markup or point with a default name, e.g. OC=L5_left_ganglion "
                        "or F-1=L5_left (repeatable)")
    c.add_argument("--coordinate-system", choices=["LPS", "RAS"], default="LPS",
                   help="coordinate system of a Slicer output (default LPS, like Slicer)")
    c.add_argument("--default-radius", type=float, default=3.0,
                   help="radius (mm) of Slicer points without radius_mm (default 3)")
    add_common(c)
    c.set_defaults(func=run_convert)

    m = rs.add_parser("mirror", help="add the contralateral twin of each ROI")
    image_args(m)
    m.add_argument("--rois", required=True, help="ROI file")
    add_out(m, help="ROI file to write", old=("--output",))
    m.add_argument("--plane-points", nargs="+", metavar="X,Y,Z",
                   help="midline points in RAS+ mm instead of estimating the plane from the image")
    m.add_argument("--per-level", action="store_true", help="estimate one plane per level (curved spine)")
    m.add_argument("--no-snap", action="store_true", help="do not snap mirrored ROIs to the bright root")
    m.add_argument("--search-radius", type=float, default=3.0, help="largest snapping shift, mm (default 3)")
    m.add_argument("--overwrite", action="store_true", help="replace existing contralateral ROIs")
    add_common(m)
    m.set_defaults(func=run_mirror)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(p) -> int:
    p.print_help()
    return 2


# --------------------------------------------------------------------------------- helpers
def _load_image(args):
    """→ DWISeries or ParameterMap."""
    from ...errors import InputDataError
    from ...io.loading import is_nifti, load_dwi
    from ...io.nifti import load_map, nifti_shape

    path = Path(args.path)
    if not path.exists():
        raise InputDataError(f"not found: {path}")
    if is_nifti(path):
        shape = nifti_shape(path)
        if len(shape) == 3 or (len(shape) == 4 and shape[3] == 1):
            return load_map(path)
    return load_dwi(path, bvals=getattr(args, "bvals", None), bvecs=getattr(args, "bvecs", None),
                    series_uid=getattr(args, "series_uid", None), backend=getattr(args, "backend", "native"))


def _is_series(obj) -> bool:
    return hasattr(obj, "bvals") and hasattr(obj, "trace")


def _fit_adc(series, method: str):
    from ...errors import PipelineError

    try:
        from ...models.adc import fit_adc
    except ImportError as err:  # pragma: no cover - models land separately
        raise PipelineError(f"ADC fitting is not available in this installation: {err}") from err
    return fit_adc(series, method=method)


def _write_figure(fig, path: Path, dpi: int) -> None:
    from ...io._atomic import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")


def _fmt(v: float, scale: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v * scale:.3f}"


def _print_table(table) -> None:
    from ...units import DIFFUSIVITY_UNIT, DISPLAY_SCALE, DISPLAY_UNIT

    rows = list(table)
    unit = rows[0].unit if rows else ""
    scale, shown = (DISPLAY_SCALE, DISPLAY_UNIT) if unit == DIFFUSIVITY_UNIT else (1.0, unit or "-")
    param = rows[0].parameter if rows else ""
    print(f"{param} in {shown}")
    head = f"{'ROI':<26}{'n':>5}{'excl':>6}{'vol mm3':>9}{'mean':>9}{'median':>9}{'sd':>9}{'iqr':>9}{'p5':>9}{'p95':>9}"
    print(head)
    for r in rows:
        print(f"{r.name:<26}{r.n_voxels:>5}{r.n_excluded:>6}{r.volume_mm3:>9.1f}"
              + "".join(f"{_fmt(v, scale):>9}" for v in (r.mean, r.median, r.sd, r.iqr, r.p5, r.p95)))


# -------------------------------------------------------------------------------- handlers
def run_stats(args: argparse.Namespace) -> int:
    import numpy as np

    from ...analysis.roi_stats import roi_stats
    from ...core.image import ParameterMap
    from ...io.rois import load_rois
    from ...units import DIFFUSIVITY_UNIT

    rois = load_rois(args.rois)
    img = _load_image(args)
    if _is_series(img):
        target = _fit_adc(img, args.method)
        param = args.parameter
    else:
        data = img.data
        name = args.parameter or img.name or "value"
        unit = img.unit
        is_diffusivity = "adc" in name.lower() or unit == DIFFUSIVITY_UNIT
        if args.scale is not None:
            data = data * args.scale
        if is_diffusivity:
            name = "adc" if "adc" in name.lower() else name
            unit = DIFFUSIVITY_UNIT
            finite = data[np.isfinite(data) & (data != 0)]
            if args.scale is None and finite.size and float(np.abs(finite).max()) > 0.1:
                logger.warning("ADC values up to %.3g look like scanner units (10^-6 mm^2/s, "
                               "dwi_toolkit References §1.2); pass --scale 1e-6", float(np.abs(finite).max()))
        target = ParameterMap(data, img.affine, name, unit)
        param = name
    table = roi_stats(target, rois, exclude_status=not args.keep_failed,
                      csf_threshold=args.csf_threshold, parameter=param)
    if args.out:
        table.to_csv(Path(args.out))
        logger.info("wrote %s", args.out)
    if args.json:
        print(json.dumps(table.to_records(), indent=2, default=lambda v: None))
    else:
        _print_table(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ...io.rois import load_rois
    from ...reporting.roi_figures import roi_montage

    rois = load_rois(args.rois)
    img = _load_image(args)
    if _is_series(img) and args.background == "b0":
        bg, title = img.mean_b0(), f"{Path(args.path).name}: mean b0"
        fig = roi_montage(bg, img.affine, rois, view=args.view, title=title)
    else:
        fig = roi_montage(img, rois=rois, view=args.view, title=None)
    _write_figure(fig, Path(args.out), args.dpi)
    print(f"wrote {args.out}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from ...errors import InputDataError
    from ...io.rois import load_rois, save_rois

    names = dict(item.split("=", 1) for item in args.name if "=" in item)
    if len(names) != len(args.name):
        raise InputDataError(f"--name takes SLICER=ROOT pairs, got {args.name}")
    rois = load_rois(args.input, labels=names or args.labels, default_radius_mm=args.default_radius)
    out = save_rois(rois, args.output, reference=args.reference, coordinate_system=args.coordinate_system)
    print(f"wrote {len(rois)} ROIs to {out}")
    return 0


def _parse_points(items):
    from ...errors import InputDataError

    pts = []
    for it in items:
        try:
            xyz = [float(v) for v in it.replace(";", ",").split(",")]
        except ValueError as err:
            raise InputDataError(f"--plane-points: {it!r} is not X,Y,Z in mm") from err
        if len(xyz) != 3:
            raise InputDataError(f"--plane-points: {it!r} must have 3 numbers (X,Y,Z RAS+ mm)")
        pts.append(xyz)
    return pts


def run_mirror(args: argparse.Namespace) -> int:
    from ...io.rois import load_rois, save_rois
    from ...roi.mirror import estimate_midsagittal_plane, level_ranges_from_rois, mirror_rois, plane_from_points

    rois = load_rois(args.rois)
    img = _load_image(args)
    if _is_series(img):
        ref_vol = img.mean_b0() if img.b0_mask.any() else img.data[..., 0]
        snap = img
    else:
        ref_vol, snap = img.data, img
    if args.plane_points:
        plane = plane_from_points(_parse_points(args.plane_points))
    elif args.per_level:
        plane = estimate_midsagittal_plane(ref_vol, img.affine, per_level=level_ranges_from_rois(rois))
    else:
        plane = estimate_midsagittal_plane(ref_vol, img.affine)
    planes = plane if isinstance(plane, dict) else {"all levels": plane}
    for lv, pl in planes.items():
        print(f"mid-sagittal plane ({lv}): point {[round(v, 2) for v in pl.point.tolist()]} mm, "
              f"normal {[round(v, 4) for v in pl.normal.tolist()]}"
              + (f", similarity {pl.score:.3f}" if pl.score is not None else ""))
    out = mirror_rois(rois, plane, snap_to=None if args.no_snap else snap,
                      search_radius_mm=args.search_radius, overwrite=args.overwrite)
    path = save_rois(out, args.out, reference=(img.data.shape[:3], img.affine))
    print(f"mirrored {len([r for r in out if 'mirrored from' in r.notes])} ROIs; wrote {len(out)} ROIs to {path}")
    return 0


def run_draw(args: argparse.Namespace) -> int:
    import matplotlib

    from ...errors import DwiToolkitError
    from ...io.rois import load_rois, save_rois
    from ...viz.roi_editor import RoiEditor

    backend = matplotlib.get_backend().lower()
    if backend in _NON_INTERACTIVE or "inline" in backend:
        raise DwiToolkitError(
            f"`roi draw` needs an interactive matplotlib backend, but the backend is {backend!r}; "
            "run it on a desktop (e.g. MPLBACKEND=TkAgg or QtAgg) or use RoiEditor in Jupyter "
            "with %matplotlib widget."
        )
    import matplotlib.pyplot as plt

    rois = load_rois(args.rois) if args.rois else None
    img = _load_image(args)
    if _is_series(img):
        adc = _fit_adc(img, "wls") if args.fit_adc else None
        ed = RoiEditor.from_series(img, adc=adc, rois=rois, path=args.out, interactive=True)
    else:
        ed = RoiEditor({img.name or "map": img.data}, img.affine, rois=rois, path=args.out, interactive=True)
    plt.show()
    out = save_rois(ed.rois, args.out, reference=(ed.shape, ed.affine))
    print(f"wrote {len(ed.rois)} ROIs to {out}")
    return 0
