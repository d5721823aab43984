"""Make the pictures of docs/rois.md from the synthetic lumbar phantom (deterministic).

Run from the repository root:  python docs/examples/roi_figures.py
Writes docs/images/rois_montage.png and docs/images/roi_editor.png.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from dwi_toolkit.models.adc import fit_adc  # noqa: E402
from dwi_toolkit.reporting.roi_figures import roi_montage  # noqa: E402
from dwi_toolkit.roi.mirror import estimate_midsagittal_plane, mirror_rois  # noqa: E402
from dwi_toolkit.roi.sample import DEFAULT_POSITIONS, sample_rois  # noqa: E402
from dwi_toolkit.sample_data import make_sample_phantom  # noqa: E402
from dwi_toolkit.viz.roi_editor import RoiEditor  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "images"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    ph = make_sample_phantom()
    s = ph.series
    # left roots drawn (here: from the centre-lines), right roots mirrored and snapped
    left = sample_rois(ph, positions=DEFAULT_POSITIONS).select(side="left").select(level="L5")
    left = left.add(sample_rois(ph).get("L4", "left"))
    plane = estimate_midsagittal_plane(s.mean_b0(), s.affine)
    rois = mirror_rois(left, plane, snap_to=s)
    fig = roi_montage(s, rois=rois, view="axial", max_panels=8, ncols=4, crop_mm=12,
                      title="L4/L5 root ROIs on the high-b trace (left drawn, right mirrored + snapped)")
    fig.savefig(OUT / "rois_montage.png", dpi=90)
    fit = fit_adc(s)
    ed = RoiEditor.from_series(s, adc=fit, rois=rois, plane=plane, interactive=False)
    roi = rois.get("L5", "left", "ganglion")
    ed.set_slice(int(round(ed.world_to_display(roi.shape.center)[2])))
    ed.set_background("ADC")
    ed.message = "L5 left ganglion placed, mirrored"
    ed.redraw()
    x, y, _ = ed.world_to_display(plane.point)
    ed.ax.set_xlim(x - 25, x + 25)  # zoom as with the toolbar's zoom tool
    ed.ax.set_ylim(y - 20, y + 15)
    ed.figure.savefig(OUT / "roi_editor.png", dpi=80)


if __name__ == "__main__":
    main()
