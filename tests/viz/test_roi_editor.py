"""Drive the ROI editor headlessly with matplotlib events on an Agg canvas."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.backend_bases import KeyEvent, MouseEvent

from dwi_toolkit.io.rois import load_rois
from dwi_toolkit.roi.model import Polygon, Sphere
from dwi_toolkit.viz.roi_editor import RoiEditor

from tests.roi.synthetic import make_volume


def click(ed, ax, xd, yd, button=1, dblclick=False):
    x, y = ax.transData.transform((xd, yd))
    MouseEvent("button_press_event", ed.figure.canvas, x, y, button=button, dblclick=dblclick)._process()
    MouseEvent("button_release_event", ed.figure.canvas, x, y, button=button)._process()


def click_axes(ed, ax, fx=0.5, fy=0.5):
    x, y = ax.transAxes.transform((fx, fy))
    MouseEvent("button_press_event", ed.figure.canvas, x, y, button=1)._process()
    MouseEvent("button_release_event", ed.figure.canvas, x, y, button=1)._process()


def click_radio(ed, widget, label):
    ed.figure.canvas.draw()
    text = next(t for t in widget.labels if t.get_text() == label)
    bb = text.get_window_extent()
    MouseEvent("button_press_event", ed.figure.canvas, (bb.x0 + bb.x1) / 2, (bb.y0 + bb.y1) / 2, button=1)._process()


def key(ed, k):
    KeyEvent("key_press_event", ed.figure.canvas, k, 10, 10)._process()


def scroll(ed, step):
    x, y = ed.ax.transAxes.transform((0.5, 0.5))
    MouseEvent("scroll_event", ed.figure.canvas, x, y, button="up" if step > 0 else "down", step=step)._process()


@pytest.fixture
def editor(tmp_path):
    vol, aff, p_true, n_true, roots = make_volume(yaw_deg=6.0, shift_x=1.5, noise=0.02, seed=4)
    ed = RoiEditor({"b0": vol, "high-b trace": vol}, aff, path=tmp_path / "rois.json", interactive=False)
    yield ed, roots
    ed.close()


def test_place_mirror_save_round_trip(editor, tmp_path):
    ed, roots = editor
    a, b = roots["left"]
    target = a + 0.5 * (b - a)
    x, y, z = ed.world_to_display(target)
    # go to the slice of the target with scroll events
    for _ in range(abs(int(round(z)) - ed.index)):
        scroll(ed, 1 if round(z) > ed.index else -1)
    assert ed.index == int(round(z))
    click_radio(ed, ed.w_level, "L4")
    key(ed, "l")
    click(ed, ed.ax, x, y)
    roi = ed.rois.get("L4", "left", "ganglion")
    assert roi is not None and isinstance(roi.shape, Sphere)
    assert np.linalg.norm(roi.shape.center - target) < 2.1  # within half a slice (4 mm) of the click target
    key(ed, "m")
    twin = ed.rois.get("L4", "right", "ganglion")
    assert twin is not None and "mirrored" in twin.notes
    ra, rb = roots["right"]
    t = np.clip((twin.shape.center - ra) @ (rb - ra) / ((rb - ra) @ (rb - ra)), 0, 1)
    assert np.linalg.norm(twin.shape.center - (ra + t * (rb - ra))) < 1.5  # on the true right root
    key(ed, "w")
    saved = load_rois(tmp_path / "rois.json")
    assert saved == ed.rois
    assert saved.meta["midsagittal_plane"]["frame"] == "RAS+ mm"
    # undo removes the mirror, the Undo button likewise the placed sphere
    key(ed, "u")
    assert ed.rois.names == ["L4_left_ganglion"]
    click_axes(ed, ed.b_undo.ax)
    assert len(ed.rois) == 0
    assert "undone" in ed.status.get_text()


def test_polygon_views_backgrounds_and_keys(editor, tmp_path):
    ed, _ = editor
    key(ed, "p")
    assert ed.tool == "polygon"
    key(ed, "5")
    key(ed, "r")
    key(ed, "g")  # ganglion -> postganglionic
    for xd, yd in ((20, 20), (30, 20), (30, 30)):
        click(ed, ed.ax, xd, yd)
    click(ed, ed.ax, 20, 30, button=3)  # right click adds nothing and closes
    roi = ed.rois.get("L5", "right", "postganglionic")
    assert isinstance(roi.shape, Polygon) and roi.shape.points.shape == (3, 3)
    # the polygon lies on the displayed slice
    assert np.allclose([ed.world_to_display(p)[2] for p in roi.shape.points], ed.index)
    key(ed, "v")
    assert ed.view == "coronal" and ed.axis == 1
    key(ed, "b")
    assert ed.background == "high-b trace"
    click_radio(ed, ed.w_view, "sagittal")
    assert ed.view == "sagittal"
    key(ed, "+")
    assert ed.radius_mm == 3.5
    key(ed, "delete")
    assert ed.rois.get("L5", "right", "postganglionic") is None
    # midline tool: two clicks + enter define the plane used for mirroring
    ed.set_view("axial")
    key(ed, "x")
    click(ed, ed.ax, 32, 10)
    click(ed, ed.ax, 32, 50)
    key(ed, "enter")
    assert ed.plane is not None and ed.plane.method.startswith("points")
    click_axes(ed, ed.b_save.ax)
    assert (tmp_path / "rois.json").exists()


def test_mirror_without_roi_and_save_without_path(tmp_path):
    vol = np.random.default_rng(0).random((20, 20, 6))
    ed = RoiEditor({"b0": vol}, np.eye(4), interactive=False)
    key(ed, "m")
    assert "no ROI to mirror" in ed.status.get_text()
    assert ed.save() is None and "no output path" in ed.status.get_text()
    ed.place_sphere([10, 10, 3])
    out = ed.save(tmp_path / "r.mrk.json")
    assert load_rois(out).names == ["L5_left_ganglion"]


def test_phantom_place_mirror_save(tmp_path):
    """On the lumbar phantom: click the left L4 ganglion, mirror it, save, reload."""
    from dwi_toolkit.models.adc import fit_adc
    from dwi_toolkit.phantom import make_lumbar_phantom

    ph = make_lumbar_phantom(seed=11, rotation_deg=(0, 0, 6), translation_mm=(2, 0, 0))
    ed = RoiEditor.from_series(ph.series, adc=fit_adc(ph.series), path=tmp_path / "roots.mrk.json",
                               interactive=False, radius_mm=2.6)
    assert list(ed.backgrounds)[0] == "b0" and "ADC" in ed.backgrounds
    assert any(k.startswith("high-b") for k in ed.backgrounds) and ed.snap_background.startswith("high-b")
    target = ph.segment_point("L4", "left")
    x, y, z = ed.world_to_display(target)
    while ed.index != int(round(z)):
        scroll(ed, 1 if round(z) > ed.index else -1)
    key(ed, "4")
    key(ed, "l")
    click(ed, ed.ax, x, y)
    placed = ed.rois.get("L4", "left")
    assert np.linalg.norm(placed.shape.center - target) <= 2.0 + 1e-9  # clicked point is on the slice centre
    click_axes(ed, ed.b_mirror.ax)
    twin = ed.rois.get("L4", "right")
    line = ph.centerlines[("L4", "right")]
    d = min(np.linalg.norm(twin.shape.center - (a + np.clip((twin.shape.center - a) @ (b - a) / ((b - a) @ (b - a)), 0, 1) * (b - a)))
            for a, b in zip(line[:-1], line[1:]))
    assert d < 2.0  # within one voxel of the true right L4 root
    key(ed, "ctrl+s")
    back = load_rois(tmp_path / "roots.mrk.json")
    assert back.names == ed.rois.names
    for r in ed.rois:
        np.testing.assert_allclose(back[r.name].shape.center, r.shape.center, atol=1e-9)
        assert back[r.name].shape.radius_mm == 2.6
    ed.close()


def test_pyplot_figure_keys_are_ours():
    """With a pyplot figure (as in Jupyter/desktop), pyplot's default key bindings are removed
    so that e.g. 's' picks the sphere tool instead of opening a save dialog."""
    import matplotlib.pyplot as plt

    vol = np.random.default_rng(1).random((16, 16, 4))
    ed = RoiEditor({"b0": vol}, np.eye(4), interactive=True)
    try:
        key(ed, "p")
        key(ed, "s")
        assert ed.tool == "sphere"
        key(ed, "l")  # pyplot would toggle a log y-scale
        assert ed.ax.get_yscale() == "linear"
    finally:
        plt.close(ed.figure)


def _saved(path):
    return {r.name: tuple(np.round(r.shape.center, 6)) for r in load_rois(path)}


def _state(ed):
    return {r.name: tuple(np.round(r.shape.center, 6)) for r in ed.rois}


def test_autosave_after_every_change_and_undo(editor, tmp_path):
    """Each change is on disk (loadable) the moment it is made: a crash loses nothing."""
    ed, roots = editor
    path = tmp_path / "rois.json"
    assert not path.exists()                                   # nothing changed yet
    a, b = roots["left"]
    ed.place_sphere(a + 0.5 * (b - a))
    assert _saved(path) == _state(ed) and len(_state(ed)) == 1
    ed.mirror()
    assert _saved(path) == _state(ed) and len(_state(ed)) == 2
    key(ed, "u")                                               # undo the mirror
    assert _saved(path) == _state(ed) and len(_state(ed)) == 1
    key(ed, "delete")
    assert _saved(path) == {} and "autosaved" in ed.message
    assert not list(tmp_path.glob("*.tmp*"))                  # atomic: no temporary left behind
    ed.autosave = False
    ed.place_sphere(a)
    assert _saved(path) == {}                                   # autosave off: disk unchanged


def test_killed_editor_keeps_last_change(tmp_path):
    """A process killed right after a change (no close, no save call) leaves that change on disk."""
    import os
    import signal
    import subprocess
    import sys

    path = tmp_path / "rois.json"
    code = (
        "import os, signal, numpy as np\n"
        "from dwi_toolkit.viz.roi_editor import RoiEditor\n"
        f"ed = RoiEditor({{'b0': np.ones((12, 12, 6))}}, np.eye(4), path={str(path)!r}, interactive=False)\n"
        "ed.set_label(level='L4', side='right'); ed.place_sphere([5.0, 6.0, 3.0], 2.0)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "MPLBACKEND": "Agg"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    back = load_rois(path)
    assert [r.name for r in back] == ["L4_right_ganglion"]
    np.testing.assert_allclose(back[0].shape.center, [5.0, 6.0, 3.0])


def test_opens_on_the_slice_with_most_rois(editor, tmp_path):
    ed, _ = editor
    from dwi_toolkit.roi.model import RoiSet, RootROI

    z_many = 2 if ed.shape[ed.axis] // 2 != 2 else 3
    rois = RoiSet([RootROI("L4", "left", shape=Sphere(ed.voxel_to_world(_ijk(ed, 5, 5, z_many)), 1.0)),
                   RootROI("L4", "right", shape=Sphere(ed.voxel_to_world(_ijk(ed, 12, 5, z_many)), 1.0)),
                   RootROI("L5", "left", shape=Sphere(ed.voxel_to_world(_ijk(ed, 5, 12, z_many)), 1.0))])
    ed2 = RoiEditor({"b0": ed.backgrounds["b0"]}, ed.affine, rois=rois, interactive=False)
    try:
        assert ed2.index == z_many
        assert ed2.busiest_slice() == z_many
    finally:
        ed2.close()


def _ijk(ed, i, j, k):
    """Voxel index with the slice coordinate `k` on the editor's view axis."""
    h, v = ed.inplane_axes
    out = [0, 0, 0]
    out[h], out[v], out[ed.axis] = i, j, k
    return out


def test_help_overlay_lists_every_key(editor):
    import inspect
    import re

    from dwi_toolkit.viz import roi_editor

    ed, _ = editor
    src = inspect.getsource(roi_editor.RoiEditor._on_key)
    lines = [ln for ln in src.splitlines() if re.search(r"\bkey (==|in) ", ln)]
    handled = {k for ln in lines for k in re.findall(r'"([^"]+)"', ln)} | set("123456")
    handled.discard("123456")
    text = roi_editor.HELP_TEXT
    aliases = {"up": "↑", "down": "↓", "pageup": "PageUp", "pagedown": "PageDown", "=": "+"}
    missing = sorted(k for k in handled if k not in text and aliases.get(k, "\0") not in text)
    assert len(handled) > 20 and not missing, f"keys missing from the help: {missing}"
    key(ed, "h")
    assert ed.help_visible and any(t.get_gid() == "help-overlay" for t in ed.ax.texts)
    key(ed, "h")
    assert not ed.help_visible and not any(t.get_gid() == "help-overlay" for t in ed.ax.texts)
