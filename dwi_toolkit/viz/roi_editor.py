"""Interactive nerve-root ROI editor on matplotlib (Jupyter with ipympl, or a desktop window).

The editor shows one slice of a background image (b0, high-b trace, ADC …) with the ROIs
outlined and labelled. Widgets on the right choose level, side, segment, view plane,
background and tool; buttons mirror, undo and save. Everything is also reachable from the
keyboard and from Python methods, and the editor is driven headlessly in tests by sending
matplotlib events to its canvas.

Mouse
    scroll: previous/next slice · left click: place a sphere (sphere tool), add a vertex
    (polygon tool) or add a midline point (midline tool) · right click / double click: close
    the polygon or finish the midline.
Keys
    ↑/↓ or PageUp/PageDown: slice · ``v``: next view plane · ``b``: next background ·
    ``1``–``6``: level L1–S1 · ``l``/``r``: side · ``g``: next segment · ``s``/``p``/``x``:
    sphere / polygon / midline tool · ``enter``: close polygon / finish midline · ``escape``:
    cancel · ``+``/``-``: sphere radius · ``m``: mirror the current ROI · ``delete``: remove it ·
    ``u`` or ``ctrl+z``: undo · ``w`` or ``ctrl+s``: save · ``t``: track the roots from the
    current ROIs and draw them (needs a tensor: ``dti=`` or a series with ≥ 6 directions) ·
    ``h``: show/hide the help overlay
    listing every key (the same in a Jupyter ``%matplotlib widget`` cell; :meth:`RoiEditor.help`
    returns the text).
Saving
    With a ``path``, every change (place, draw, mirror, delete, midline, undo) is autosaved to
    that path at once — a temporary file renamed into place (``dwi_toolkit.io._atomic``), so a
    crash or a killed kernel never loses more than the change in progress and never leaves a
    half-written file. Set ``editor.autosave = False`` to save only with ``w``.
Opening
    With ROIs given, the editor opens on the slice that shows the most of them.

Examples
--------
In a notebook (``%matplotlib widget``)::

    ed = RoiEditor.from_series(series, adc=fit, path="rois.json")
    # the editor appears below the cell; click away, ed.rois is the current RoiSet

Headless (what the tests do)::

    ed = RoiEditor({"b0": vol}, affine, interactive=False)
    ed.place_sphere(ed.voxel_to_world((30, 40, 5)))
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..core import affines as _aff
from ..errors import InputDataError, RoiError
from ..io.rois import save_rois
from ..reporting.roi_figures import (
    VIEWS, draw_roi_overlay, orientation_labels, roi_colors, slice_image, view_axis,
)
from ..roi.masks import rasterize
from ..roi.mirror import Plane, estimate_midsagittal_plane, mirror_roi, plane_from_points
from ..roi.model import LEVELS, SEGMENTS, SIDES, Polygon, RootROI, RoiSet, Sphere

__all__ = ["RoiEditor"]

logger = logging.getLogger(__name__)

TOOLS = ("sphere", "polygon", "midline")

#: Every key and mouse action of the editor (shown by ``h``; keep in step with ``_on_key``).
HELP_TEXT = """ROI editor keys (h: hide this help)
↑ / ↓, PageUp / PageDown, scroll   previous / next slice
v                                  next view plane (axial, coronal, sagittal)
b                                  next background image
1 2 3 4 5 6                        level L1 L2 L3 L4 L5 S1
l / r                              side left / right
g                                  next segment
s / p / x                          sphere / polygon / midline tool
left click                         place sphere · add polygon vertex · add midline point
right / double click, enter        close polygon / finish midline
escape                             cancel the polygon or midline in progress
+ / -                              sphere radius larger / smaller
m                                  mirror the current ROI across the midline
delete, backspace                  remove the current ROI
u, ctrl+z                          undo
w, ctrl+s                          save now (changes also autosave when a path is set)
t                                  track the roots from the current ROIs and draw them
h                                  show / hide this help"""


class RoiEditor:
    """Place, mirror, undo and save nerve-root ROIs by clicking on slices.

    Parameters
    ----------
    backgrounds : mapping of str to ndarray (X, Y, Z)
        Images to choose from, e.g. ``{"b0": …, "high-b trace": …, "ADC": …}``, all on one grid.
    affine : ndarray of shape (4, 4)
        Voxel → RAS+ mm of that grid.
    rois : RoiSet, optional
        ROIs to start from.
    path : path-like, optional
        Where ``save`` writes (format by extension, see :func:`dwi_toolkit.io.rois.save_rois`).
    view : {"axial", "coronal", "sagittal"}
    level, side, segment : str
        The label new ROIs get (changeable with the widgets/keys).
    radius_mm : float
        Sphere radius for new ROIs.
    plane : Plane, optional
        Mid-sagittal plane for mirroring; estimated from the first background on first use, or
        set with the midline tool.
    snap_background : str or None
        Background used to snap mirrored ROIs to the bright root (default: a background whose
        name contains "high", else none).
    search_radius_mm : float
        Largest snapping shift.
    interactive : bool
        Create the figure with pyplot (needed for ipympl/desktop windows). ``False`` makes a
        plain Agg-backed Figure (headless use and tests).
    figure : matplotlib.figure.Figure, optional
        Draw into this (empty) figure instead.
    tracts : RootTracts or mapping, optional
        Tracked roots to draw over the slices (:func:`dwi_toolkit.viz.tract_overlay.draw_tracts`);
        :meth:`track` replaces them.
    dti : DTIFit or DWISeries, optional
        What :meth:`track` tracks on: a tensor fit on the editor's grid, or a series (≥ 6
        directions, fitted on first use). :meth:`from_series` passes its series.
    mask : ndarray of bool, optional
        Body mask for tracking (default: the tracker's own, from the b=0 signal).
    """

    def __init__(
        self,
        backgrounds: Mapping[str, ArrayLike],
        affine: ArrayLike,
        *,
        rois: RoiSet | None = None,
        path: str | os.PathLike | None = None,
        view: str = "axial",
        level: str = "L5",
        side: str = "left",
        segment: str = "ganglion",
        radius_mm: float = 3.0,
        plane: Plane | None = None,
        snap_background: str | None = "auto",
        search_radius_mm: float = 3.0,
        interactive: bool = True,
        figure: Any = None,
        tracts: Any = None,
        dti: Any = None,
        mask: ArrayLike | None = None,
    ) -> None:
        if not backgrounds:
            raise InputDataError("the ROI editor needs at least one background image.")
        self.backgrounds: dict[str, NDArray] = {}
        for name, vol in backgrounds.items():
            v = np.asarray(vol, float)
            if v.ndim != 3:
                raise InputDataError(f"background {name!r} must be 3-D (X, Y, Z), got shape {v.shape}.")
            self.backgrounds[str(name)] = v
        shapes = {v.shape for v in self.backgrounds.values()}
        if len(shapes) != 1:
            raise InputDataError(f"all backgrounds must share one grid, got shapes {sorted(shapes)}.")
        self.shape: tuple[int, int, int] = shapes.pop()  # type: ignore[assignment]
        self.affine = _aff.check_affine(affine)
        self.rois = rois if rois is not None else RoiSet()
        self.path = Path(path) if path is not None else None
        self.level, self.side, self.segment = level, side, segment
        probe = RootROI(level, side, segment, Sphere([0, 0, 0], 1))
        self.level, self.side, self.segment = probe.level, probe.side, probe.segment
        self.radius_mm = float(radius_mm)
        self.plane = plane
        if snap_background == "auto":
            snap_background = next((k for k in self.backgrounds if "high" in k.lower()), None)
        self.snap_background = snap_background
        self.search_radius_mm = float(search_radius_mm)
        self.tool = "sphere"
        self.background = next(iter(self.backgrounds))
        self.view = view
        self.axis = view_axis(self.affine, view)
        self.index = self.shape[self.axis] // 2
        self.autosave = True
        self.help_visible = False
        self.pending: list[NDArray] = []  # polygon / midline points (world)
        self.history: list[tuple[RoiSet, Plane | None]] = []
        self.message = "ready"
        self._mask_cache: dict[str, tuple[RootROI, NDArray]] = {}
        self.tracts = tracts
        self._dti = dti
        self._body = None if mask is None else np.asarray(mask, bool)
        self._windows = {k: np.nanpercentile(v, (1, 99.5)) for k, v in self.backgrounds.items()}
        self.interactive = bool(interactive)
        self._build_figure(interactive, figure)
        self.index = self.busiest_slice()
        self.redraw()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_series(cls, series: Any, *, adc: Any = None, **kwargs: Any) -> RoiEditor:
        """Editor with b0, highest-b trace and (optionally) ADC backgrounds of a DWISeries.

        `adc` may be an ADCFit (its ``adc``), a ParameterMap or an array on the series grid.
        The series is also what :meth:`track` fits the tensor on, unless ``dti=`` is given.
        """
        kwargs.setdefault("dti", series)
        backgrounds: dict[str, NDArray] = {}
        bv, tr = series.trace()
        if np.any(series.b0_mask):
            backgrounds["b0"] = series.mean_b0()
        if bv[-1] > 0:
            backgrounds[f"high-b trace (b={bv[-1]:g})"] = tr[..., -1]
        if adc is not None:
            data = getattr(adc, "adc", None)
            if data is None:
                data = getattr(adc, "data", adc)
            backgrounds["ADC"] = np.nan_to_num(np.asarray(data, float))
        if not backgrounds:
            backgrounds["volume 0"] = series.data[..., 0]
        return cls(backgrounds, series.affine, **kwargs)

    def _build_figure(self, interactive: bool, figure: Any) -> None:
        from matplotlib.widgets import Button, RadioButtons

        if figure is None:
            if interactive:
                import matplotlib.pyplot as plt  # interactive window / ipympl widget

                figure = plt.figure(figsize=(11, 7.5))
            else:
                from matplotlib.backends.backend_agg import FigureCanvasAgg
                from matplotlib.figure import Figure

                figure = Figure(figsize=(11, 7.5))
                FigureCanvasAgg(figure)
        self.figure = figure
        manager = getattr(figure.canvas, "manager", None)
        if manager is not None and getattr(manager, "key_press_handler_id", None) is not None:
            figure.canvas.mpl_disconnect(manager.key_press_handler_id)  # our keys, not pyplot's
        self.ax = figure.add_axes((0.02, 0.08, 0.66, 0.86))
        self.status = figure.text(0.02, 0.015, "", fontsize=9, family="monospace")

        def radio(rect, title, labels, active):
            ax = figure.add_axes(rect)
            ax.set_title(title, fontsize=8, loc="left")
            w = RadioButtons(ax, labels, active=active)
            for t in w.labels:
                t.set_fontsize(8)
            return w

        x0, w = 0.71, 0.13
        self.w_level = radio((x0, 0.66, w, 0.28), "level", list(LEVELS), LEVELS.index(self.level))
        self.w_side = radio((x0 + w + 0.01, 0.82, w, 0.12), "side", list(SIDES), SIDES.index(self.side))
        self.w_segment = radio((x0 + w + 0.01, 0.62, w, 0.16), "segment", list(SEGMENTS),
                               SEGMENTS.index(self.segment))
        self.w_view = radio((x0, 0.44, w, 0.18), "view", list(VIEWS), list(VIEWS).index(self.view))
        self.w_tool = radio((x0 + w + 0.01, 0.44, w, 0.14), "tool", list(TOOLS), 0)
        names = list(self.backgrounds)
        self.w_background = radio((x0, 0.24, 2 * w + 0.01, 0.16), "background", names, 0)
        self.w_level.on_clicked(lambda lab: self.set_label(level=lab))
        self.w_side.on_clicked(lambda lab: self.set_label(side=lab))
        self.w_segment.on_clicked(lambda lab: self.set_label(segment=lab))
        self.w_view.on_clicked(self.set_view)
        self.w_tool.on_clicked(self.set_tool)
        self.w_background.on_clicked(self.set_background)
        bw = (2 * w + 0.01 - 0.03) / 4
        self.b_mirror = Button(figure.add_axes((x0, 0.14, bw, 0.06)), "Mirror")
        self.b_undo = Button(figure.add_axes((x0 + bw + 0.01, 0.14, bw, 0.06)), "Undo")
        self.b_save = Button(figure.add_axes((x0 + 2 * (bw + 0.01), 0.14, bw, 0.06)), "Save")
        self.b_track = Button(figure.add_axes((x0 + 3 * (bw + 0.01), 0.14, bw, 0.06)), "Track")
        self.b_mirror.on_clicked(lambda _e: self.mirror())
        self.b_undo.on_clicked(lambda _e: self.undo())
        self.b_save.on_clicked(lambda _e: self.save())
        self.b_track.on_clicked(lambda _e: self.track())
        figure.text(x0, 0.02, "h: help (every key)\nchanges autosave to the path",
                    fontsize=8, va="bottom")
        c = figure.canvas
        self._cids = [c.mpl_connect("button_press_event", self._on_click),
                      c.mpl_connect("scroll_event", self._on_scroll),
                      c.mpl_connect("key_press_event", self._on_key)]

    # ------------------------------------------------------------------ coordinates
    @property
    def inplane_axes(self) -> tuple[int, int]:
        """Voxel axes shown horizontally and vertically."""
        h, v = [k for k in range(3) if k != self.axis]
        return h, v

    def voxel_to_world(self, ijk: ArrayLike) -> NDArray[np.float64]:
        """Voxel coordinates (3,) → RAS+ mm."""
        return _aff.apply_affine(self.affine, np.asarray(ijk, float))

    def display_to_world(self, x: float, y: float) -> NDArray[np.float64]:
        """Data coordinates on the displayed slice → RAS+ mm."""
        h, v = self.inplane_axes
        ijk = np.zeros(3)
        ijk[h], ijk[v], ijk[self.axis] = x, y, self.index
        return self.voxel_to_world(ijk)

    def world_to_display(self, world: ArrayLike) -> tuple[float, float, float]:
        """RAS+ mm → (x, y, slice) in displayed voxel coordinates."""
        ijk = _aff.apply_affine(np.linalg.inv(self.affine), np.asarray(world, float))
        h, v = self.inplane_axes
        return float(ijk[h]), float(ijk[v]), float(ijk[self.axis])

    # ------------------------------------------------------------------ state changes
    def _push(self) -> None:
        self.history.append((self.rois, self.plane))
        del self.history[:-100]

    def _set_rois(self, rois: RoiSet, message: str) -> None:
        self._push()
        self.rois = rois
        self.message = message
        self._autosave()
        self.redraw()

    def _autosave(self) -> None:
        """Write the current state to the editor's path (atomic), when autosave is on."""
        if not (self.autosave and self.path is not None):
            return
        try:
            self.save(redraw=False)
        except RoiError as err:  # an ROI outside the grid etc.: keep editing, say why
            self.message += f" (not autosaved: {err})"
            return
        self.message += " · autosaved"

    def busiest_slice(self) -> int:
        """Index (along the current view axis) of the slice crossing the most ROIs.

        The middle slice when there are no ROIs.
        """
        rois = list(self.rois)
        if not rois:
            return self.shape[self.axis] // 2
        other = tuple(a for a in range(3) if a != self.axis)
        counts = sum(self._mask(r).any(axis=other).astype(int) for r in rois)
        return int(np.argmax(counts)) if np.max(counts) > 0 else self.shape[self.axis] // 2

    def help(self, show: bool | None = None) -> str:
        """Toggle (or set with `show`) the help overlay; returns the help text (every key)."""
        self.help_visible = (not self.help_visible) if show is None else bool(show)
        self.redraw()
        return HELP_TEXT

    def set_label(self, *, level: str | None = None, side: str | None = None, segment: str | None = None) -> None:
        """Choose the level/side/segment of the next ROI (names are normalised)."""
        probe = RootROI(level or self.level, side or self.side, segment or self.segment, Sphere([0, 0, 0], 1))
        self.level, self.side, self.segment = probe.level, probe.side, probe.segment
        for w, val, opts in ((self.w_level, self.level, LEVELS), (self.w_side, self.side, SIDES),
                             (self.w_segment, self.segment, SEGMENTS)):
            if w.value_selected != val:
                w.eventson = False
                w.set_active(list(opts).index(val))
                w.eventson = True
        self.message = f"label {probe.name}"
        self.redraw()

    def set_view(self, view: str) -> None:
        """Switch the slice plane (axial, coronal, sagittal); keeps the slice through the centre."""
        if view not in VIEWS:
            raise InputDataError(f"view must be one of {', '.join(VIEWS)}, got {view!r}.")
        self.view = view
        self.axis = view_axis(self.affine, view)
        self.index = self.shape[self.axis] // 2
        self.pending = []
        if self.w_view.value_selected != view:
            self.w_view.eventson = False
            self.w_view.set_active(list(VIEWS).index(view))
            self.w_view.eventson = True
        self.redraw()

    def set_background(self, name: str) -> None:
        """Show another background image."""
        if name not in self.backgrounds:
            raise InputDataError(f"no background {name!r}; have {', '.join(self.backgrounds)}.")
        self.background = name
        if self.w_background.value_selected != name:
            self.w_background.eventson = False
            self.w_background.set_active(list(self.backgrounds).index(name))
            self.w_background.eventson = True
        self.redraw()

    def set_tool(self, tool: str) -> None:
        """``"sphere"``, ``"polygon"`` or ``"midline"``."""
        if tool not in TOOLS:
            raise InputDataError(f"tool must be one of {', '.join(TOOLS)}, got {tool!r}.")
        self.tool = tool
        self.pending = []
        if self.w_tool.value_selected != tool:
            self.w_tool.eventson = False
            self.w_tool.set_active(TOOLS.index(tool))
            self.w_tool.eventson = True
        self.message = f"tool: {tool}"
        self.redraw()

    def set_slice(self, index: int) -> None:
        """Go to slice `index` (clipped to the volume)."""
        self.index = int(np.clip(index, 0, self.shape[self.axis] - 1))
        self.redraw()

    @property
    def current(self) -> RootROI | None:
        """The ROI with the selected level, side and segment, if any."""
        return self.rois.get(self.level, self.side, self.segment)

    def place_sphere(self, center: ArrayLike, radius_mm: float | None = None) -> RootROI:
        """Place (or move) the sphere ROI of the selected label at `center` (RAS+ mm)."""
        roi = RootROI(self.level, self.side, self.segment, Sphere(center, radius_mm or self.radius_mm))
        self._set_rois(self.rois.replace(roi), f"placed {roi.name}")
        return roi

    def add_polygon(self, points: ArrayLike) -> RootROI:
        """Set the ROI of the selected label to a polygon (K, 3) in RAS+ mm on one slice."""
        roi = RootROI(self.level, self.side, self.segment, Polygon(points))
        self._set_rois(self.rois.replace(roi), f"drew {roi.name}")
        return roi

    def set_midline(self, points: ArrayLike) -> Plane:
        """Define the mid-sagittal plane from ≥ 2 midline points (RAS+ mm)."""
        self._push()
        self.plane = plane_from_points(points)
        self.message = "midline set"
        self._autosave()
        self.redraw()
        return self.plane

    def remove_current(self) -> None:
        """Delete the ROI with the selected label."""
        if self.current is None:
            self.message = "nothing to delete"
            self.redraw()
            return
        self._set_rois(self.rois.remove(self.level, self.side, self.segment), "deleted")

    def estimate_plane(self) -> Plane:
        """Estimate (and keep) the mid-sagittal plane from the first background."""
        vol = next(iter(self.backgrounds.values()))
        self.plane = estimate_midsagittal_plane(vol, self.affine)  # type: ignore[assignment]
        return self.plane  # type: ignore[return-value]

    def mirror(self, roi: RootROI | None = None) -> RootROI | None:
        """Mirror the current ROI (or `roi`) to the other side; snaps when a high-b image exists."""
        roi = roi or self.current
        if roi is None:
            self.message = "no ROI to mirror: place one first"
            self.redraw()
            return None
        plane = self.plane or self.estimate_plane()
        snap = None
        if self.snap_background:
            snap = (self.backgrounds[self.snap_background], self.affine)
        twin = mirror_roi(roi, plane, snap_to=snap, search_radius_mm=self.search_radius_mm)
        self._set_rois(self.rois.replace(twin), f"mirrored {roi.name} -> {twin.name}")
        return twin

    def track(self, **params: Any) -> Any:
        """Track every root that has an ROI (:func:`dwi_toolkit.tracts.track_roots`, seeded
        from the ROIs) and draw the streamlines; keyword arguments go to
        :class:`~dwi_toolkit.tracts.TrackingParams`.

        Returns the :class:`~dwi_toolkit.tracts.RootTracts`, or ``None`` (with the reason in the
        status line) when there is nothing to track on or no ROI.
        """
        from ..errors import DwiToolkitError
        from ..tracts import TrackingParams, track_roots

        tracts = None
        if self._dti is None:
            self.message = "nothing to track on: open the editor with dti= (a tensor fit or a DWI series)"
        elif not len(self.rois):
            self.message = "place an ROI on each root to track (a sphere on the ganglion is enough)"
        else:
            try:
                if not hasattr(self._dti, "fa"):  # a series: fit the tensor once
                    from ..models.dti import fit_dti

                    self._dti = fit_dti(self._dti, mask=self._body)
                tracts = track_roots(self._dti, self.rois, params=TrackingParams(**params), mask=self._body,
                                     midsagittal_plane=self.plane)
                self.tracts = tracts
                self.message = "tracked: " + ", ".join(f"{b.level} {b.side} {b.n_kept}" for b in tracts) + " streamlines"
            except DwiToolkitError as err:
                self.message = f"tracking failed: {err}"
                logger.info("ROI editor: tracking failed: %s", err)
        self.redraw()
        return tracts

    def undo(self) -> None:
        """Undo the last change of the ROI set (or the midline)."""
        if self.pending:
            self.pending.pop()
        elif self.history:
            self.rois, self.plane = self.history.pop()
            self.message = "undone"
            self._autosave()
        else:
            self.message = "nothing to undo"
        self.redraw()

    def save(self, path: str | os.PathLike | None = None, *, redraw: bool = True) -> Path | None:
        """Write the ROIs to `path` (default: the editor's path), atomically."""
        target = Path(path) if path is not None else self.path
        if target is None:
            self.message = "no output path: call save(path)"
            self.redraw()
            return None
        rois = self.rois
        if self.plane is not None:
            rois = rois.with_meta(midsagittal_plane=self.plane.to_dict())
        try:
            out = save_rois(rois, target, reference=(self.shape, self.affine))
        except RoiError as err:
            self.message = f"not saved: {err}"
            self.redraw()
            raise
        self.path = target
        if redraw:
            self.message = f"saved {len(rois)} ROIs to {target.name}"
            self.redraw()
        return out

    # ------------------------------------------------------------------ events
    def _on_click(self, event) -> None:
        if event.inaxes is not self.ax or event.xdata is None:
            return
        world = self.display_to_world(event.xdata, event.ydata)
        finish = event.button == 3 or getattr(event, "dblclick", False)
        if self.tool == "sphere" and event.button == 1:
            self.place_sphere(world)
        elif self.tool in ("polygon", "midline"):
            if event.button == 1 and not getattr(event, "dblclick", False):
                self.pending.append(world)
                self.message = f"{len(self.pending)} points"
                self.redraw()
            if finish:
                self._finish_pending()

    def _finish_pending(self) -> None:
        pts = np.array(self.pending)
        self.pending = []
        try:
            if self.tool == "polygon":
                self.add_polygon(pts)
            elif self.tool == "midline":
                self.set_midline(pts)
        except RoiError as err:
            self.message = str(err)
            self.redraw()

    def _on_scroll(self, event) -> None:
        step = getattr(event, "step", 0) or (1 if event.button == "up" else -1)
        self.set_slice(self.index + int(np.sign(step)))

    def _on_key(self, event) -> None:
        key = event.key or ""
        if key in ("up", "pageup"):
            self.set_slice(self.index + 1)
        elif key in ("down", "pagedown"):
            self.set_slice(self.index - 1)
        elif key == "v":
            views = list(VIEWS)
            self.set_view(views[(views.index(self.view) + 1) % len(views)])
        elif key == "b":
            names = list(self.backgrounds)
            nxt = names[(names.index(self.background) + 1) % len(names)]
            self.w_background.set_active(names.index(nxt))  # fires set_background
        elif key in "123456" and len(key) == 1:
            self.set_label(level=LEVELS[int(key) - 1])
        elif key in ("l", "r"):
            self.set_label(side=key)
        elif key == "g":
            self.set_label(segment=SEGMENTS[(SEGMENTS.index(self.segment) + 1) % len(SEGMENTS)])
        elif key in ("s", "p", "x"):
            self.set_tool({"s": "sphere", "p": "polygon", "x": "midline"}[key])
        elif key == "enter":
            self._finish_pending()
        elif key == "escape":
            self.pending = []
            self.message = "cancelled"
            self.redraw()
        elif key in ("+", "="):
            self.radius_mm += 0.5
            self.message = f"radius {self.radius_mm:g} mm"
            self.redraw()
        elif key == "-":
            self.radius_mm = max(0.5, self.radius_mm - 0.5)
            self.message = f"radius {self.radius_mm:g} mm"
            self.redraw()
        elif key == "m":
            self.mirror()
        elif key in ("delete", "backspace"):
            self.remove_current()
        elif key in ("u", "ctrl+z"):
            self.undo()
        elif key == "h":
            self.help()
        elif key == "t":
            self.track()
        elif key in ("w", "ctrl+s"):
            try:
                self.save()
            except RoiError:
                pass  # message already shown

    # ------------------------------------------------------------------ drawing
    def _mask(self, roi: RootROI) -> NDArray:
        hit = self._mask_cache.get(roi.name)
        if hit is not None and hit[0] is roi:
            return hit[1]
        m = rasterize(roi, self.shape, self.affine)
        self._mask_cache[roi.name] = (roi, m)
        return m

    def redraw(self) -> None:
        """Redraw the slice, overlays and status line."""
        ax = self.ax
        # keep a zoom/pan made with the toolbar while the slice plane stays the same
        keep = (ax.get_xlim(), ax.get_ylim()) if getattr(self, "_drawn_axis", None) == self.axis else None
        ax.clear()
        vol = self.backgrounds[self.background]
        vmin, vmax = self._windows[self.background]
        h, v = self.inplane_axes
        vs = _aff.voxel_sizes(self.affine)
        aspect = vs[v] / vs[h]
        ax.imshow(slice_image(vol, self.axis, self.index), cmap="gray", vmin=vmin, vmax=vmax,
                  origin="lower", interpolation="nearest", aspect=aspect)
        rois = list(self.rois)
        masks = [slice_image(self._mask(r), self.axis, self.index) for r in rois]
        draw_roi_overlay(ax, masks, [r.name for r in rois], roi_colors(len(rois)), alpha=0.3, fontsize=8,
                         aspect=aspect)
        if self.tracts is not None:  # tracked roots (track(), or set by the user)
            from .tract_overlay import draw_tracts

            draw_tracts(ax, self.tracts, self.affine, self.axis, self.index)
        if self.pending:
            disp = np.array([self.world_to_display(p)[:2] for p in self.pending])
            ax.plot(disp[:, 0], disp[:, 1], "-o", color="cyan", ms=3, lw=1)
        if self.plane is not None and self.view == "axial":
            self._draw_plane_line(ax)
        lt, rt, bt, tp = orientation_labels(self.affine, self.axis)
        for x, y, t, ha, va in ((0.01, 0.5, lt, "left", "center"), (0.99, 0.5, rt, "right", "center"),
                                (0.5, 0.01, bt, "center", "bottom"), (0.5, 0.99, tp, "center", "top")):
            ax.text(x, y, t, transform=ax.transAxes, color="yellow", fontsize=9, ha=ha, va=va)
        if keep is not None:
            ax.set_xlim(*keep[0])
            ax.set_ylim(*keep[1])
        self._drawn_axis = self.axis
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{self.background} — {self.view} slice {self.index + 1}/{self.shape[self.axis]}",
                     fontsize=10)
        if self.help_visible:
            ax.text(0.5, 0.5, HELP_TEXT, transform=ax.transAxes, ha="center", va="center", fontsize=9,
                    family="monospace", color="black", gid="help-overlay",
                    bbox={"facecolor": "white", "alpha": 0.92, "pad": 8, "lw": 0})
        self.status.set_text(
            f"{self.level} {self.side} {self.segment} | tool {self.tool} r={self.radius_mm:g} mm | "
            f"{len(self.rois)} ROIs | {self.message}"
        )
        if self.interactive:
            self.figure.canvas.draw_idle()  # headless figures render when saved or drawn

    def _draw_plane_line(self, ax) -> None:
        h, v = self.inplane_axes
        n = self.shape
        corners = []
        for a in (0, n[h] - 1):
            for b in (0, n[v] - 1):
                ijk = np.zeros(3)
                ijk[h], ijk[v], ijk[self.axis] = a, b, self.index
                corners.append((a, b, self.plane.signed_distance(self.voxel_to_world(ijk))[0]))  # type: ignore[union-attr]
        # intersect the plane with the slice rectangle edges
        pts = []
        for (a1, b1, d1), (a2, b2, d2) in ((corners[0], corners[1]), (corners[1], corners[3]),
                                           (corners[3], corners[2]), (corners[2], corners[0])):
            if d1 == d2 or np.sign(d1) == np.sign(d2):
                continue
            t = d1 / (d1 - d2)
            pts.append((a1 + t * (a2 - a1), b1 + t * (b2 - b1)))
        if len(pts) >= 2:
            (x1, y1), (x2, y2) = pts[:2]
            ax.plot([x1, x2], [y1, y2], "--", color="orange", lw=0.8)

    def close(self) -> None:
        """Disconnect the event handlers."""
        for cid in self._cids:
            self.figure.canvas.mpl_disconnect(cid)
