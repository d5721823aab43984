"""Tracked roots drawn on the ROI editor's slice (viz.tract_overlay)."""

from __future__ import annotations

import numpy as np

from dwi_toolkit.viz.tract_overlay import SIDE_COLORS, draw_tracts, slice_segments


def test_slice_segments_on_an_oblique_grid():
    """A line along x at z = 6 mm crosses axial slice 3 of a 2 mm grid, in display coordinates."""
    aff = np.diag([2.0, 2.0, 2.0, 1.0])
    aff[:3, 3] = (-10, -10, 0)
    line = np.column_stack([np.linspace(-10, 10, 21), np.full(21, 0.0), np.full(21, 6.0)])
    (seg,) = slice_segments([line], aff, axis=2, index=3)
    np.testing.assert_allclose(seg[:, 0], (line[:, 0] + 10) / 2)   # i
    np.testing.assert_allclose(seg[:, 1], 5.0)                      # j
    assert slice_segments([line], aff, axis=2, index=5) == []


def test_editor_draws_tracked_roots():
    from dwi_toolkit.phantom_roots import make_root_phantom
    from dwi_toolkit.tracts import track_roots
    from dwi_toolkit.viz.roi_editor import RoiEditor

    ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30)
    tracts = track_roots(ph.series, ph.seeds, mask=ph.body_mask)
    ed = RoiEditor({"fa": ph.fa_true}, ph.series.affine, interactive=False)
    ed.tracts = tracts
    seed = ph.seeds[("L5", "left")]
    ed.set_view("coronal")
    ed.set_slice(int(round(ed.world_to_display(seed)[2])))
    ed.redraw()
    colours = [ln.get_color() for ln in ed.ax.get_lines()]
    assert SIDE_COLORS["left"] in colours and SIDE_COLORS["right"] in colours
    # the same count as drawing directly with the same slice
    from matplotlib.figure import Figure

    n = draw_tracts(Figure().subplots(), tracts, ph.series.affine, ed.axis, ed.index)
    assert n == sum(c in SIDE_COLORS.values() for c in colours) and n > 0


def test_editor_tracks_from_its_rois_with_a_key():
    """``t`` (or the Track button, or ``track()``) fits the tensor of the editor's series once,
    tracks every root with an ROI and draws it; without a tensor or ROIs it says why."""
    from matplotlib.backend_bases import KeyEvent

    from dwi_toolkit.phantom_roots import make_root_phantom
    from dwi_toolkit.roi.model import RootROI, RoiSet, Sphere
    from dwi_toolkit.viz.roi_editor import RoiEditor

    ph = make_root_phantom(levels=("L5",), voxel_size=2.5, n_directions=12, snr=30)
    ed = RoiEditor.from_series(ph.series, interactive=False, mask=ph.body_mask)
    assert ed.track() is None and "place an ROI" in ed.message
    for (lv, sd), p in ph.seeds.items():
        ed.rois = RoiSet([*ed.rois, RootROI(lv, sd, shape=Sphere(p, 2.0))])
    KeyEvent("key_press_event", ed.figure.canvas, "t", 10, 10)._process()
    assert ed.tracts is not None and sorted(ed.tracts.keys()) == sorted(ph.seeds)
    assert ed.message.startswith("tracked: L5 left") and hasattr(ed._dti, "fa")  # fitted once, kept
    ed.set_view("coronal")
    ed.set_slice(int(round(ed.world_to_display(ph.seeds[("L5", "left")])[2])))
    assert any(ln.get_color() == SIDE_COLORS["left"] for ln in ed.ax.get_lines())
    bare = RoiEditor({"b0": ph.fa_true}, ph.series.affine, interactive=False, rois=ed.rois)
    assert bare.track() is None and "dti=" in bare.message
    few = RoiEditor.from_series(make_root_phantom(levels=("L5",), voxel_size=3.0, n_directions=4, snr=30).series,
                                interactive=False, rois=ed.rois)
    assert few.track() is None and few.message.startswith("tracking failed")
