"""The head inspector and the discovery summary: they show the model's data for one head, and the
panel-matrix export defaults to the best-scoring head."""

from __future__ import annotations

import numpy as np
from PySide6 import QtWidgets

from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.scoring import overlay_heat, region_masses
from gaze_explorer.qt.views.discovery import START_TEXT, DiscoveryView
from gaze_explorer.qt.views.head_inspector import HeadInspectorView

N_PANELS = 6


def _discovered(state, best=(1, 2)):
    """A discovery result whose best head is ``best`` and whose matrices are distinct per head."""
    n_layers, n_heads = state.heads.n_layers, state.heads.n_heads
    rng = np.random.default_rng(7)
    scores = rng.random((n_layers, n_heads)) * 0.5
    scores[best] = 0.9
    matrices = rng.random((n_layers, n_heads, N_PANELS, N_PANELS))
    state.heads.set_gaze_scores(scores)
    state.discovery.set_result(scores, matrices, n_strips=12)
    return scores, matrices


def _shown(qtbot, widget, size=(900, 360)):
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_inspector_shows_the_heads_matrix_heat_and_masses(qtbot, state):
    _, matrices = _discovered(state)
    view = _shown(qtbot, HeadInspectorView(state))
    assert view.matrix is None and "Click a cell" in view.title.text()
    state.step.set_step(4)
    state.inspector.set_head((2, 1))
    run, grid, regions = state.session.shown_run, state.session.grid, state.session.regions
    one = HeadSet("L2H1", ((2, 1),))
    qtbot.waitUntil(lambda: view.matrix is not None and np.allclose(view.matrix, matrices[2, 1]))
    assert np.allclose(view.heat, overlay_heat(run.rows_at(4), grid, one))
    # the head's own attention at step 4 is the rows' [2, 1] slice on the image tokens
    assert np.allclose(view.heat.reshape(-1), run.rows_at(4)[2, 1, grid.positions])
    expected = np.stack(
        [region_masses(overlay_heat(run.rows_at(s), grid, one), regions) for s in range(run.n_steps)]
    )
    assert view.masses.shape == (run.n_steps, N_PANELS) and np.allclose(view.masses, expected)
    assert len(view.mass_curves) == N_PANELS and view.step_line.value() == 4
    assert np.array_equal(view.mass_curves[3].getData()[1], expected[:, 3])
    assert "L2 H1" in view.title.text() and "rank" in view.title.text()
    # the step moves the heat, not the masses
    state.step.set_step(1)
    qtbot.waitUntil(lambda: np.allclose(view.heat, overlay_heat(run.rows_at(1), grid, one)))
    assert view.step_line.value() == 1
    assert view.step_caption.toPlainText().startswith(f"step 1 {run.tokens[1]!r} · max ")
    # another run on display: its masses
    state.session.show_runs(0)
    other = state.session.runs[0]
    qtbot.waitUntil(
        lambda: np.allclose(
            view.masses[:, 0],
            [
                region_masses(overlay_heat(other.rows_at(s), grid, one), regions)[0]
                for s in range(other.n_steps)
            ],
        )
    )
    # Best opens the best-scoring head, the spin boxes follow
    view.best_button.click()
    assert state.inspector.head == (1, 2)
    assert (view.layer_spin.value(), view.head_spin.value()) == (1, 2)
    view.head_spin.setValue(3)
    assert state.inspector.head == (1, 3)


def test_inspector_lays_out_wide_and_tall(qtbot, state):
    view = _shown(qtbot, HeadInspectorView(state), (900, 300))
    items = view.graphics.ci.items
    assert {items[view.matrix_plot][0], items[view.mass_plot][0]} == {(0, 0), (0, 2)}
    view.resize(300, 800)
    QtWidgets.QApplication.processEvents()
    assert items[view.matrix_plot][0] == (0, 0) and view.graphics.ci.items[view.mass_plot][0] == (2, 0)


def test_discovery_summary_says_what_to_do_then_summarises(qtbot, state):
    view = _shown(qtbot, DiscoveryView(state), (320, 700))
    state.discovery.set_result(None, None)
    assert view.summary_label.text() == START_TEXT and not view.summary_plots.isVisible()
    scores, _ = _discovered(state)
    text = view.summary_label.text()
    assert "12 strip(s)" in text and "L1H2 0.90" in text
    assert view.summary_plots.isVisible()
    counts, _ = np.histogram(scores, bins=20)
    assert np.array_equal(view.hist_item.opts["height"], counts)
    state.heads.set_kind("top", k=3)
    top3 = np.argsort(-scores, axis=None)[:3] // scores.shape[1]
    expected = np.bincount(top3, minlength=scores.shape[0])
    qtbot.waitUntil(lambda: np.array_equal(view.layer_item.opts["height"], expected))


def test_discovery_summary_shows_the_agreement_between_criteria(qtbot, state):
    view = _shown(qtbot, DiscoveryView(state), (320, 700))
    n_layers, n_heads = state.heads.n_layers, state.heads.n_heads
    rng = np.random.default_rng(3)
    scores = rng.random((n_layers, n_heads))
    state.discovery.set_result(
        scores, None, 4, rng.random((n_layers, n_heads)), rng.random((n_layers, n_heads, 2, 6))
    )
    table = state.discovery.agreement()
    assert table and "Agreement between criteria" in view.summary_label.text()
    first = table[0]
    row = "".join(
        f"<td>{p['overlap']} ({p['chance_overlap']:.1f})<br>J {p['jaccard']:.2f}</td>" for p in first["pairs"]
    )
    common = f"{first['common']} ({first['chance_common']:.1f})"
    assert f"<tr><td>{first['k_used']}</td>{row}<td>{common}</td></tr>" in view.summary_label.text()
    assert "<th>gaze∩img</th><th>gaze∩loc</th><th>img∩loc</th>" in view.summary_label.text()


def test_panel_matrix_export_defaults_to_the_best_head(qtbot, state, tmp_path, monkeypatch):
    """The export asks which head, offering the best-scoring one first (was: the first active head),
    or the head open in the inspector."""
    from gaze_explorer.qt import export_dialogs
    from gaze_explorer.qt.main_window import MainWindow

    win = MainWindow(state)
    qtbot.addWidget(win)
    _discovered(state, best=(2, 0))
    state.heads.set_custom([(0, 1), (2, 0)])
    state.heads.set_kind("custom")  # the first active head is L0H1: not what the export shows
    assert state.heads.active.heads[0] == (0, 1)
    assert export_dialogs.default_matrix_head(win) == (2, 0)
    fig = export_dialogs.current_figure(win, "panel matrix")
    assert "L2H0" in fig.getItem(0, 0).text
    asked = {}

    def fake_get_item(parent, title, label, items, current, editable):
        asked.update(items=items, current=current)
        return items[current], True

    monkeypatch.setattr(QtWidgets.QInputDialog, "getItem", staticmethod(fake_get_item))
    assert export_dialogs.ask_matrix_head(win) == (2, 0)
    assert asked["current"] == 0 and asked["items"][0].startswith("L2H0") and "0.900" in asked["items"][0]
    assert len(asked["items"]) == state.heads.n_layers * state.heads.n_heads
    # a head open in the inspector is what the export proposes (as `gaze-explorer export` does)
    state.inspector.set_head((0, 1))
    assert export_dialogs.default_matrix_head(win) == (0, 1)
    assert export_dialogs.ask_matrix_head(win) == (0, 1) and asked["items"][asked["current"]].startswith(
        "L0H1"
    )


def test_export_file_names_and_suffixes(qtbot, state):
    from gaze_explorer.qt import export_dialogs
    from gaze_explorer.qt.main_window import MainWindow

    win = MainWindow(state)
    qtbot.addWidget(win)
    state.step.set_step(3)
    assert export_dialogs.default_file_name(win, "overlay", ".png") == "overlay_steered_step3.png"
    assert export_dialogs.default_file_name(win, "timeline", ".svg") == "timeline_steered.svg"
    assert export_dialogs.default_file_name(win, "grid", ".pdf") == "grid.pdf"
    filters = "PNG (*.png);;SVG (*.svg);;PDF (*.pdf)"
    assert export_dialogs.path_with_suffix("/x/fig", "SVG (*.svg)", filters) == "/x/fig.svg"
    assert export_dialogs.path_with_suffix("/x/fig.pdf", "SVG (*.svg)", filters) == "/x/fig.pdf"
    assert export_dialogs.path_with_suffix("/x/fig.v2", "PNG (*.png)", filters) == "/x/fig.v2.png"
    # the status bar confirms an export
    export_dialogs._guarded(win, lambda _w: "/x/fig.png")
    assert win.statusBar().currentMessage() == "exported /x/fig.png"


def test_inspector_follows_a_streaming_run_step_by_step(qtbot, state):
    """New steps of a streaming run extend the per-region masses (the earlier steps are kept)."""
    _discovered(state)
    view = _shown(qtbot, HeadInspectorView(state))
    run, grid, regions = state.session.shown_run, state.session.grid, state.session.regions
    full_tokens, full_targets = list(run.tokens), list(run.targets)
    del run.tokens[3:], run.targets[3:]
    state.inspector.set_head((0, 3))
    qtbot.waitUntil(lambda: view.masses is not None and view.masses.shape == (3, N_PANELS))
    first = view.masses.copy()
    run.tokens[:], run.targets[:] = full_tokens, full_targets
    state.session.notify_run(state.session.shown)
    qtbot.waitUntil(lambda: view.masses.shape == (run.n_steps, N_PANELS))
    one = HeadSet("L0H3", ((0, 3),))
    expected = np.stack(
        [region_masses(overlay_heat(run.rows_at(s), grid, one), regions) for s in range(run.n_steps)]
    )
    assert np.array_equal(view.masses[:3], first) and np.allclose(view.masses, expected)
    assert len(view.mass_curves[0].getData()[1]) == run.n_steps


def test_export_dialog_remembers_the_last_folder_and_takes_the_filter_extension(
    qtbot, state, tmp_path, monkeypatch
):
    from PySide6 import QtCore

    from gaze_explorer.qt import export_dialogs
    from gaze_explorer.qt.main_window import MainWindow

    win = MainWindow(state)
    qtbot.addWidget(win)
    store = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    monkeypatch.setattr(export_dialogs, "settings", lambda: store)
    opened = []

    def fake_exec(dialog):  # the user picks the SVG filter and types a name without extension
        opened.append(
            (
                dialog.directory().absolutePath(),
                [QtCore.QFileInfo(f).fileName() for f in dialog.selectedFiles()],
            )
        )
        dialog.selectNameFilter("SVG (*.svg)")
        dialog.selectFile(str(tmp_path / "out" / "my_figure"))
        return QtWidgets.QDialog.DialogCode.Accepted

    monkeypatch.setattr(QtWidgets.QFileDialog, "exec", fake_exec)
    (tmp_path / "out").mkdir()
    filters = "PNG (*.png);;SVG (*.svg);;PDF (*.pdf)"
    path = export_dialogs.save_path(win, "Export figure", "timeline", filters)
    assert path == str(tmp_path / "out" / "my_figure.svg")
    assert opened[0][1] == ["timeline_steered.png"]  # the proposed name
    export_dialogs.save_path(win, "Export figure", "grid", filters)
    assert opened[1][0] == str(tmp_path / "out")  # the next dialog opens where the last export went


def test_inspector_shows_nothing_for_rows_that_miss_the_image_tokens(qtbot, state):
    """A run whose rows stop before the image tokens (the bench's tiny synthetic sessions) leaves the
    inspector empty instead of raising on every step."""
    from gaze_explorer.core.state import RunData

    short = np.full((3, 4, 5), 0.2)  # [layer, head, key]: 5 keys, the image tokens start at 2 and end at 13
    run = RunData(
        "short",
        tokens=["a", "b"],
        targets=[0, 0],
        status="finished",
        rows_at=lambda s: short,
        regions=list(state.session.regions),
    )
    state.session.add_run(run)
    view = _shown(qtbot, HeadInspectorView(state))
    state.inspector.set_head((1, 1))
    view.refresh()
    assert view.heat is None and view.masses is None and not view.heat_item.isVisible()
