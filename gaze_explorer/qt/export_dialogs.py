"""Exports from the running app: the current figure, head list or run, with or without a dialog.

The dialogs propose a file name from the figure and the run, take the extension from the chosen
filter when the name has none, remember the last folder (QSettings), and confirm in the status bar.
The panel-matrix export asks which head, the inspected one (else the best-scoring one) first.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtWidgets

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
        switches = [(sw.step, sw.source) for sw in run.switches] + [
            (st, "schedule") for st in run.scheduled if all(st != sw.step for sw in run.switches)
        ]
        title = f"{model} · {run.name} · {s.heads.active.name} ({len(s.heads.active)} heads)"
        return export.trajectory_figure(traj, title, names, run.tokens, switches)
    if kind == "overlay":
        heat = window.overlay_view.current_heat()
        if heat is None:
            raise GazeExplorerError("no attention to draw at this step (select heads first)")
        title = (
            f"{model} · {run.name} · step {s.step.step} {run.tokens[s.step.step]!r} · {s.heads.active.name}"
        )
        return export.overlay_figure(
            s.session.image,
            s.session.grid,
            heat,
            run.regions or s.session.regions,
            title,
            s.overlay.colormap,
            s.overlay.opacity,
            levels=window.overlay_view.heat_item.getLevels(),
        )
    if kind == "panel matrix":
        matrices = s.discovery.matrices
        if matrices is None:
            raise GazeExplorerError("no panel matrices yet: run discovery first")
        layer, h = head or default_matrix_head(window)
        return export.matrix_figure(np.asarray(matrices)[layer, h], f"{model} · panel matrix · L{layer}H{h}")
    raise GazeExplorerError(f"unknown figure {kind!r}; choose one of {', '.join(FIGURES)}")


def default_matrix_head(window) -> tuple[int, int]:
    """The head a panel-matrix export shows unless told: the one open in the head inspector, else
    the best-scoring one (as ``gaze-explorer export`` defaults it)."""
    inspected = window.state.inspector.head
    if inspected is not None:
        return int(inspected[0]), int(inspected[1])
    best = window.state.discovery.best_head()
    if best is None:
        raise GazeExplorerError("no gaze scores yet: run discovery first")
    return best


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


FOLDER_KEY = "export/last_folder"


def settings() -> QtCore.QSettings:
    return QtCore.QSettings("gaze-explorer", "gaze-explorer")


def default_file_name(window, what: str, suffix: str) -> str:
    """``<what>_<run>_step<N><suffix>`` (the run and step only when there is a run), filesystem-safe."""
    s = window.state
    parts = [what]
    run = s.session.shown_run
    if run is not None and what not in ("grid", "panel matrix", "top-K", "custom", "active"):
        parts.append(run.name)
        if what == "overlay":
            parts.append(f"step{s.step.step}")
    stem = re.sub(r"[^A-Za-z0-9.+-]+", "_", "_".join(parts)).strip("_")
    return stem + suffix


def path_with_suffix(path: str, name_filter: str, filters: str = "") -> str:
    """``path`` with the extension of the chosen filter (``"PNG (*.png)"``) unless it already ends in
    one the export writes (any extension in ``filters``)."""
    chosen = re.search(r"\*(\.[A-Za-z0-9]+)", name_filter).group(1)
    allowed = {m.lower() for m in re.findall(r"\*(\.[A-Za-z0-9]+)", filters or name_filter)}
    p = Path(path)
    return str(p) if p.suffix.lower() in allowed else str(p.with_name(p.name + chosen))


def save_path(window, title: str, what: str, filters: str) -> str | None:
    """Ask where to save (the dialog opens in the last folder, on a default name); None if cancelled."""
    first_suffix = re.search(r"\*(\.[A-Za-z0-9]+)", filters).group(1)
    folder = str(settings().value(FOLDER_KEY, "") or Path.cwd())
    dialog = QtWidgets.QFileDialog(
        window, title, str(Path(folder) / default_file_name(window, what, first_suffix))
    )
    dialog.setAcceptMode(QtWidgets.QFileDialog.AcceptMode.AcceptSave)
    dialog.setNameFilters(filters.split(";;"))

    def on_filter(name_filter: str) -> None:  # the proposed name follows the chosen format
        suffix = re.search(r"\*(\.[A-Za-z0-9]+)", name_filter).group(1)
        dialog.selectFile(default_file_name(window, what, suffix))

    dialog.filterSelected.connect(on_filter)
    if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted or not dialog.selectedFiles():
        return None
    path = path_with_suffix(dialog.selectedFiles()[0], dialog.selectedNameFilter(), filters)
    settings().setValue(FOLDER_KEY, str(Path(path).parent))
    return path


def ask_matrix_head(window) -> tuple[int, int] | None:
    """Which head's panel matrix to export: the ranked heads, best first; the one proposed is
    :func:`default_matrix_head` (the inspected head, else the best)."""
    ranked = window.state.discovery.ranked()
    if not ranked:
        raise GazeExplorerError("no panel matrices yet: run discovery first")
    items = [f"L{r['layer']}H{r['head']}  (gaze score {r['score']:.3f})" for r in ranked]
    inspected = window.state.inspector.head
    proposed = default_matrix_head(window)
    current = next((i for i, r in enumerate(ranked) if (r["layer"], r["head"]) == proposed), 0)
    item, ok = QtWidgets.QInputDialog.getItem(
        window,
        "Export panel matrix",
        "Head (best first" + (f"; inspecting L{inspected[0]}H{inspected[1]}" if inspected else "") + "):",
        items,
        current,
        False,
    )
    if not ok:
        return None
    r = ranked[items.index(item)]
    return r["layer"], r["head"]


def _guarded(window, fn, *args) -> None:
    try:
        out = fn(window, *args)
    except (GazeExplorerError, OSError) as err:
        window.show_message(str(err), True)
    else:
        window.show_message(f"exported {out}")


def export_figure_dialog(window) -> None:
    kind, ok = QtWidgets.QInputDialog.getItem(
        window, "Export figure", "What to export:", list(FIGURES), 0, False
    )
    if not ok:
        return
    head = None
    if kind == "panel matrix":
        try:
            head = ask_matrix_head(window)
        except GazeExplorerError as err:
            window.show_message(str(err), True)
            return
        if head is None:
            return
    what = f"panel_matrix_L{head[0]}H{head[1]}" if head else kind
    path = save_path(window, "Export figure", what, "PNG (*.png);;SVG (*.svg);;PDF (*.pdf)")
    if path:
        _guarded(window, export_current_figure, kind, path, head)


def export_heads_dialog(window) -> None:
    which, ok = QtWidgets.QInputDialog.getItem(
        window, "Export head list", "What to export:", list(HEAD_LISTS), 0, False
    )
    if not ok:
        return
    path = save_path(window, "Export head list", f"heads_{which}", "JSON (*.json);;CSV (*.csv)")
    if path:
        _guarded(window, export_current_heads, which, path)


def export_run_dialog(window) -> None:
    path = save_path(window, "Export run", "run", "JSON (*.json)")
    if path:
        _guarded(window, export_current_run, path)
