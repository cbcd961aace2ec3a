"""Exports from the running app: the current figure, head list or run, with or without a dialog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6 import QtWidgets

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.core.heads import HeadSet, choose_heads
from gaze_explorer.qt import export

FIGURES = ("grid", "timeline", "overlay", "panel matrix")
HEAD_LISTS = ("active", "top-K", "custom")


def current_figure(window, kind: str, head: tuple[int, int] | None = None):
    """Build the ``kind`` figure from the window's current state."""
    s = window.state
    model = s.status.model
    if kind == "grid":
        scores, title = window.grid_view.compute_scores()
        if scores is None:
            raise GazeExplorerError(f"the grid has nothing to export ({title})")
        return export.grid_figure(scores, f"{model} · {title}", s.heads.active, label=title)
    run = s.session.shown_run
    if kind in ("timeline", "overlay") and (run is None or run.n_steps == 0):
        raise GazeExplorerError("no run to export; generate or open one first")
    if kind == "timeline":
        traj = window.timeline_view.cache.get(s, s.session.shown)
        if traj is None:
            raise GazeExplorerError("the run has no trajectory for the selected heads")
        regions = run.regions or s.session.regions
        names = [f"P{i + 1}" if r.kind == "panel" else r.name for i, r in enumerate(regions)]
        switches = [(sw.step, sw.source) for sw in run.switches] + [(st, "schedule") for st in run.scheduled
                                                                     if all(st != sw.step for sw in run.switches)]
        title = f"{model} · {run.name} · {s.heads.active.name} ({len(s.heads.active)} heads)"
        return export.trajectory_figure(traj, title, names, run.tokens, switches)
    if kind == "overlay":
        heat = window.overlay_view.current_heat()
        if heat is None:
            raise GazeExplorerError("no attention to draw at this step (select heads first)")
        title = f"{model} · {run.name} · step {s.step.step} {run.tokens[s.step.step]!r} · {s.heads.active.name}"
        return export.overlay_figure(s.session.image, s.session.grid, heat, run.regions or s.session.regions,
                                     title, s.overlay.colormap, s.overlay.opacity,
                                     levels=window.overlay_view.heat_item.getLevels())
    if kind == "panel matrix":
        matrices = getattr(window.controller, "panel_matrices", None)
        if matrices is None:
            raise GazeExplorerError("no panel matrices yet: run discovery first")
        layer, h = head or (s.heads.active.heads[0] if s.heads.active.heads else (0, 0))
        return export.matrix_figure(np.asarray(matrices)[layer, h], f"{model} · panel matrix · L{layer}H{h}")
    raise GazeExplorerError(f"unknown figure {kind!r}; choose one of {', '.join(FIGURES)}")


def export_current_figure(window, kind: str, path: str | Path, head: tuple[int, int] | None = None) -> Path:
    return export.save_figure(current_figure(window, kind, head), path)


def current_heads(window, which: str) -> HeadSet:
    heads = window.state.heads
    if which == "active":
        return heads.active
    if which == "custom":
        return HeadSet("custom", tuple(heads.custom))
    if heads.gaze_scores is None:
        raise GazeExplorerError("no gaze scores yet: run discovery first")
    k = min(heads.k, int(np.count_nonzero(~np.isnan(heads.gaze_scores))))
    return choose_heads(f"gaze:{k}", heads.n_layers, heads.n_heads, scores=heads.gaze_scores).heads


def export_current_heads(window, which: str, path: str | Path) -> Path:
    return export.write_head_list(path, current_heads(window, which), window.state.heads.gaze_scores)


def export_current_run(window, path: str | Path) -> Path:
    s = window.state
    run = s.session.shown_run
    if run is None:
        raise GazeExplorerError("no run to export")
    traj = window.timeline_view.cache.get(s, s.session.shown)
    regions = run.regions or s.session.regions
    return export.write_json(path, export.run_record(run, traj, [r.name for r in regions], s.heads.active))


def _ask(window, title: str, items: tuple[str, ...], filters: str) -> tuple[str, str] | None:
    kind, ok = QtWidgets.QInputDialog.getItem(window, title, "What to export:", list(items), 0, False)
    if not ok:
        return None
    path, _ = QtWidgets.QFileDialog.getSaveFileName(window, title, "", filters)
    return (kind, path) if path else None


def _guarded(window, fn, *args) -> None:
    try:
        out = fn(window, *args)
    except (GazeExplorerError, OSError) as err:
        window.show_message(str(err), True)
    else:
        window.show_message(f"exported {out}")


def export_figure_dialog(window) -> None:
    choice = _ask(window, "Export figure", FIGURES, "PNG (*.png);;SVG (*.svg);;PDF (*.pdf)")
    if choice:
        _guarded(window, export_current_figure, *choice)


def export_heads_dialog(window) -> None:
    choice = _ask(window, "Export head list", HEAD_LISTS, "JSON (*.json);;CSV (*.csv)")
    if choice:
        _guarded(window, export_current_heads, *choice)


def export_run_dialog(window) -> None:
    path, _ = QtWidgets.QFileDialog.getSaveFileName(window, "Export run", "", "JSON (*.json)")
    if path:
        _guarded(window, export_current_run, path)
