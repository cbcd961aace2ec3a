"""Publication figures (PNG, SVG, PDF) built with pyqtgraph, plus head-list and run-JSON exports.

Figure builders take plain numpy data, so the app (live state) and the CLI's ``export`` command
(a ``SessionReader``) share them. Every figure has a title, axis labels and a colour bar on a fixed
scale. The ``export_*`` functions at the bottom are the headless entry points for the CLI: they
create an offscreen QApplication if none exists.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.core.heads import HeadSet, choose_heads, save_head_list
from gaze_explorer.core.regions import ImageTokenGrid, Region
from gaze_explorer.core.scoring import overlay_heat, step_trajectory
from gaze_explorer.core.state_data import grid_corners
from gaze_explorer.qt.widgets.plot_style import plain_axis, thinned_token_ticks

FIGURE_SUFFIXES = (".png", ".svg", ".pdf")


def ensure_app():
    """The running QApplication, or a new offscreen one (for headless exports)."""
    from PySide6 import QtWidgets

    app = QtWidgets.QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QtWidgets.QApplication([])
    return app


def _figure(title: str, size: tuple[int, int]):
    import pyqtgraph as pg

    ensure_app()
    fig = pg.GraphicsLayoutWidget()
    fig.setBackground("w")
    fig.resize(*size)
    fig.addLabel(title, row=0, col=0, colspan=2, size="12pt", color="k")
    return fig


def _style_axes(plot, bottom: str, left: str) -> None:
    for name, text in (("bottom", bottom), ("left", left)):
        axis = plot.getAxis(name)
        axis.setLabel(text, color="k")
        axis.setPen("k")
        axis.setTextPen("k")
        plain_axis(axis)


def _colour_bar(fig, plot, items, cmap: str, levels: tuple[float, float], label: str) -> None:
    import pyqtgraph as pg

    bar = pg.ColorBarItem(values=levels, colorMap=pg.colormap.get(cmap), interactive=False, width=14)
    bar.setImageItem(items)
    bar.setLevels(levels)
    bar.axis.setLabel(label, color="k")
    bar.axis.setTextPen("k")
    plain_axis(bar.axis)
    fig.addItem(bar, row=1, col=1)


def grid_figure(scores: np.ndarray, title: str, active: HeadSet | None = None, label: str = "gaze score"):
    """The ``[layer, head]`` score grid (viridis), active heads outlined."""
    import pyqtgraph as pg
    from PySide6 import QtCore

    scores = np.asarray(scores, dtype=np.float64)
    fig = _figure(title, (620, 520))
    plot = fig.addPlot(row=1, col=0)
    plot.invertY(True)
    img = pg.ImageItem(scores, axisOrder="row-major")
    img.setRect(QtCore.QRectF(-0.5, -0.5, scores.shape[1], scores.shape[0]))
    plot.addItem(img)
    levels = (min(0.0, float(scores.min())), float(scores.max()) or 1.0)
    img.setLevels(levels)
    _colour_bar(fig, plot, img, "viridis", levels, label)
    from PySide6 import QtWidgets

    for layer, head in active.heads if active is not None else ():
        box = QtWidgets.QGraphicsRectItem(head - 0.45, layer - 0.45, 0.9, 0.9)
        box.setPen(pg.mkPen("#D55E00", width=3))
        plot.addItem(box)
    plot.setXRange(-0.5, scores.shape[1] - 0.5, padding=0.01)
    plot.setYRange(-0.5, scores.shape[0] - 0.5, padding=0.01)
    _style_axes(plot, "head", "layer")
    return fig


def trajectory_figure(
    traj: np.ndarray,
    title: str,
    region_names: Sequence[str],
    tokens: Sequence[str] = (),
    switches: Sequence[tuple[int, str]] = (),
):
    """The step x region staircase (inferno), with switch markers (▲ scheduled, ◆ live)."""
    import pyqtgraph as pg
    from PySide6 import QtCore

    data = np.nan_to_num(np.asarray(traj, dtype=np.float64)).T  # [region, step]
    fig = _figure(title, (max(700, 14 * data.shape[1] + 200), 120 + 34 * data.shape[0]))
    plot = fig.addPlot(row=1, col=0)
    plot.invertY(True)
    img = pg.ImageItem(data, axisOrder="row-major")
    img.setRect(QtCore.QRectF(-0.5, -0.5, data.shape[1], data.shape[0]))
    plot.addItem(img)
    levels = (0.0, float(data.max()) or 1.0)
    img.setLevels(levels)
    _colour_bar(fig, plot, img, "inferno", levels, "attention mass")
    for kind, symbol, colour in (("schedule", "t1", "#0072B2"), ("live", "d", "#D55E00")):
        xs = [s for s, k in switches if k == kind]
        if xs:
            plot.addItem(
                pg.ScatterPlotItem(xs, [-0.8] * len(xs), symbol=symbol, size=12, brush=colour, pen="w")
            )
    plot.getAxis("left").setTicks([[(i, n) for i, n in enumerate(region_names)]])
    if tokens:  # labels thinned so none overlaps, written as the app's chips (∅ end of sequence)
        from PySide6 import QtGui

        metrics = QtGui.QFontMetrics(plot.getAxis("bottom").style.get("tickFont") or QtGui.QFont())
        px_per_step = max(fig.width() - 200, 100) / max(data.shape[1], 1)
        ticks = thinned_token_ticks(tokens, px_per_step, metrics.horizontalAdvance)
        plot.getAxis("bottom").setTicks([ticks, []])
    plot.setYRange(-1.2, data.shape[0] - 0.5, padding=0)
    _style_axes(plot, "decode step (token)", "region")
    return fig


def overlay_figure(
    image: np.ndarray,
    grid: ImageTokenGrid,
    heat: np.ndarray,
    regions: Sequence[Region],
    title: str,
    colormap: str = "inferno",
    opacity: float = 0.6,
    levels: tuple[float, float] | None = None,
):
    """The image with the heat drawn on each token's pixel box and panel frames."""
    import pyqtgraph as pg
    from PySide6 import QtCore, QtWidgets

    h, w = image.shape[:2]
    fig = _figure(title, (min(1400, w + 200), min(900, h + 160)))
    plot = fig.addPlot(row=1, col=0)
    plot.invertY(True)
    plot.setAspectLocked(True)
    img = pg.ImageItem(np.asarray(image), axisOrder="row-major", levels=(0, 255))
    img.setRect(QtCore.QRectF(0, 0, w, h))
    plot.addItem(img)
    levels = levels or (0.0, float(heat.max()) or 1.0)
    x, y = grid_corners(grid)
    mesh = pg.PColorMeshItem(
        x, y, heat, colorMap=pg.colormap.get(colormap), levels=levels, enableAutoLevels=False
    )
    mesh.setOpacity(opacity)
    plot.addItem(mesh)
    for i, r in enumerate(rg for rg in regions if rg.box is not None):
        x0, y0, x1, y1 = r.box
        frame = QtWidgets.QGraphicsRectItem(x0, y0, x1 - x0, y1 - y0)
        frame.setPen(pg.mkPen("w", width=2))
        plot.addItem(frame)
        text = pg.TextItem(f"P{i + 1}" if r.kind == "panel" else r.name, color="w", anchor=(0, 0))
        text.setPos(x0 + 2, y0 + 2)
        plot.addItem(text)
    _colour_bar(fig, plot, mesh, colormap, levels, "attention")
    _style_axes(plot, "x (image pixels)", "y (image pixels)")
    return fig


def matrix_figure(matrix: np.ndarray, title: str):
    """A head's N x N queried-panel x attended-panel matrix."""
    import pyqtgraph as pg
    from PySide6 import QtCore

    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    fig = _figure(title, (560, 500))
    plot = fig.addPlot(row=1, col=0)
    plot.invertY(True)
    plot.setAspectLocked(True)
    img = pg.ImageItem(m, axisOrder="row-major")
    img.setRect(QtCore.QRectF(0.5, 0.5, n, n))
    plot.addItem(img)
    levels = (0.0, float(m.max()) or 1.0)
    img.setLevels(levels)
    _colour_bar(fig, plot, img, "inferno", levels, "attention mass")
    ticks = [[(k + 1, str(k + 1)) for k in range(n)]]
    plot.getAxis("bottom").setTicks(ticks)
    plot.getAxis("left").setTicks(ticks)
    plot.setRange(xRange=(0.5, n + 0.5), yRange=(0.5, n + 0.5), padding=0.01)
    _style_axes(plot, "attended panel", "queried panel")
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Write a figure as PNG, SVG or PDF according to the suffix."""
    from PySide6 import QtCore

    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise GazeExplorerError(f"cannot export a figure to {p.name}: use .png, .svg or .pdf")
    if not p.parent.exists():
        raise GazeExplorerError(f"folder {p.parent} does not exist")
    # lay the figure out without putting a window on screen
    fig.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    fig.show()
    try:
        _render(fig, p, suffix)
    finally:
        # hidden again: a shown top-level figure that someone still references (a caller, a
        # stored traceback) would be painted by any later event processing; a figure may be
        # saved again (it is shown again for that)
        fig.hide()
    if not p.exists() or p.stat().st_size == 0:
        raise GazeExplorerError(f"writing {p} failed")
    return p


def _render(fig, p: Path, suffix: str) -> None:
    """Draw the laid-out figure into ``p`` (PNG through pyqtgraph, SVG/PDF through Qt)."""
    import pyqtgraph.exporters as pge
    from PySide6 import QtCore, QtGui, QtWidgets

    QtWidgets.QApplication.processEvents()
    scene = fig.scene()
    # the layout's own rectangle: the scene rect can grow far past it while items lay out
    rect = fig.ci.sceneBoundingRect()
    if suffix == ".png":
        exporter = pge.ImageExporter(fig.ci)
        exporter.parameters()["width"] = max(int(rect.width() * 2), 800)
        exporter.parameters()["antialias"] = True
        exporter.export(str(p))
    else:
        # vector output through Qt's own paint devices (pyqtgraph's SVG exporter trips on some
        # paths that Qt 6 writes); text stays text, so titles and labels are searchable
        if suffix == ".svg":
            from PySide6.QtSvg import QSvgGenerator

            device = QSvgGenerator()
            device.setFileName(str(p))
            device.setSize(rect.size().toSize())
            device.setViewBox(QtCore.QRectF(0, 0, rect.width(), rect.height()))
            device.setTitle(p.stem)
        else:
            device = QtGui.QPdfWriter(str(p))
            device.setPageSize(
                QtGui.QPageSize(QtCore.QSizeF(rect.width(), rect.height()), QtGui.QPageSize.Unit.Point)
            )
            device.setPageMargins(QtCore.QMarginsF(0, 0, 0, 0))
            device.setResolution(72)
        painter = QtGui.QPainter(device)
        try:
            painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
            scene.render(painter, QtCore.QRectF(0, 0, rect.width(), rect.height()), rect)
        finally:
            painter.end()


def run_record(run, trajectory: np.ndarray | None, region_names: Sequence[str], heads: HeadSet) -> dict:
    """A run's tokens, trajectory and parameters as a JSON-ready dict."""
    return {
        "name": run.name,
        "status": run.status,
        "tokens": list(run.tokens),
        "text": "".join(run.tokens),
        "targets": [None if t is None else int(t) for t in run.targets],
        "switches": [
            {"step": s.step, "previous": s.previous, "to": s.to, "source": s.source} for s in run.switches
        ],
        "parameters": run.params,
        "trajectory": {
            "heads": [list(h) for h in heads.heads],
            "regions": list(region_names),
            "values": None
            if trajectory is None
            else np.where(np.isnan(trajectory), None, trajectory).tolist(),
        },
    }


def write_json(path: str | Path, data: dict) -> Path:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    tmp.replace(p)
    return p


def write_head_list(path: str | Path, heads: HeadSet, scores: np.ndarray | None = None) -> Path:
    """JSON (the authors' list of ``{layer, head, score}``) or CSV, by suffix."""
    if not heads.heads:
        raise GazeExplorerError("the head set is empty; nothing to export")
    return save_head_list(path, heads, scores)


# ---- headless entry points (the CLI's ``export`` command) -------------------------------------------
# ``discovery`` is the key of one of the session's stored discoveries (``SessionReader.discoveries``;
# None: the newest), read through ``SessionReader.discovery_array``.
def heads_or_top(reader, heads: HeadSet | None, k: int = 10, *, discovery: str | None = None) -> HeadSet:
    """``heads``, or by default the top ``k`` heads by gaze score of the session's discovery
    ``discovery``."""
    if heads is not None:
        return heads
    scores = reader.discovery_array("gaze_scores", discovery)
    if scores is None:
        raise GazeExplorerError("the session has no gaze scores; pass a head set or run discovery first")
    scores = np.asarray(scores, dtype=np.float64)
    k = min(k, int(np.count_nonzero(~np.isnan(scores))))
    return choose_heads(f"gaze:{k}", *scores.shape, scores=scores).heads


def export_grid(
    reader, out: str | Path, *, heads: HeadSet | None = None, discovery: str | None = None
) -> Path:
    """The gaze-score grid of the session's discovery ``discovery`` as a figure."""
    scores = reader.discovery_array("gaze_scores", discovery)
    if scores is None:
        raise GazeExplorerError("the session has no gaze scores (run discovery first)")
    model = reader.meta.get("model_id", "model")
    which = f" · {discovery}" if discovery else ""
    return save_figure(grid_figure(np.asarray(scores), f"Gaze scores · {model}{which}", heads), out)


def export_overlay(
    reader,
    out: str | Path,
    *,
    run: str,
    step: int,
    heads: HeadSet | None = None,
    colormap: str = "inferno",
    discovery: str | None = None,
) -> Path:
    """The image the run was made on, with the heads' attention at ``step`` of ``run``."""
    heads = heads_or_top(reader, heads, discovery=discovery)
    info = reader.run_info(run)
    image, grid, regions, _ = reader.image_set(info.image_key)  # the run's own image
    heat = overlay_heat(reader.step_rows(run, step), grid, heads)
    model = reader.meta.get("model_id", "model")
    # the run as the app names it: the user's name, else the label derived from what happened
    title = f"{model} · {info.display_name} · step {step} · {heads.name} ({len(heads)} heads)"
    return save_figure(overlay_figure(np.asarray(image), grid, heat, regions, title, colormap), out)


def export_timeline(
    reader, out: str | Path, *, run: str, heads: HeadSet | None = None, discovery: str | None = None
) -> Path:
    """A run's step x region trajectory (on its own image's panels) with its tokens and switch markers."""
    heads = heads_or_top(reader, heads, discovery=discovery)
    tokens = list(reader.tokens(run))
    info = reader.run_info(run)
    _, grid, image_regions, _ = reader.image_set(info.image_key)  # the run's own image
    regions = [r for r in image_regions if r.kind == "panel"] or list(image_regions)
    traj = step_trajectory(lambda s: reader.step_rows(run, s), len(tokens), grid, regions, heads)
    switches = [(s.step, s.source) for s in getattr(info, "switches", [])]
    title = f"Trajectory · {info.display_name} · {heads.name} ({len(heads)} heads)"
    return save_figure(
        trajectory_figure(traj, title, [f"P{i + 1}" for i in range(len(regions))], tokens, switches), out
    )


def export_panel_matrix(
    reader, out: str | Path, *, layer: int, head: int, discovery: str | None = None
) -> Path:
    """One head's N x N queried x attended panel matrix from the session's discovery ``discovery``."""
    matrices = reader.discovery_array("panel_matrices", discovery)
    if matrices is None:
        raise GazeExplorerError("the session has no panel matrices (run discovery first)")
    m = np.asarray(matrices)
    if not (0 <= layer < m.shape[0] and 0 <= head < m.shape[1]):
        raise GazeExplorerError(
            f"L{layer}H{head} is out of range for {m.shape[0]} layers x {m.shape[1]} heads"
        )
    return save_figure(matrix_figure(m[layer, head], f"Panel matrix · L{layer}H{head}"), out)
