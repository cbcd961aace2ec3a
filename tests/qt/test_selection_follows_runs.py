"""What selecting a run (or reopening a session) puts on screen: the step range of the shown run,
the comparison of every selected run, the shown run's own head set (named as its recorded choice
when the discovery on screen gives it, else as the run's fixed set), and the head-set control a
baseline keeps. Real MainWindow, real session files written through the storage writer (no model)."""

from __future__ import annotations

import json

import h5py
import pytest

from gaze_explorer.core.criteria import criterion_scores
from gaze_explorer.core.events import FinishedEvent, PrefillEvent, TokenEvent
from gaze_explorer.core.heads import HeadChoice, HeadSet, choose_heads
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.core.steering import SteeringPlan
from gaze_explorer.storage import SessionWriter, record
from gaze_explorer.storage.schema import UI_ATTR
from tests.handmade_sessions import GRID_A, IMAGE_A, META, N_HEADS, N_LAYERS, PROMPT_LEN, _rows, discovery

DISCOVERY = discovery(1, 3)  # ascending scores: the top-10 gaze heads are the last ten
SCORES = criterion_scores(DISCOVERY.scores, DISCOVERY.image_mass, DISCOVERY.image_maps)
TOP10 = choose_heads("gaze:10", N_LAYERS, N_HEADS, scores=SCORES)
RANDOM5 = choose_heads("random:5", N_LAYERS, N_HEADS, scores=SCORES, seed=7, pool="all-non-gaze")
# a top-10 recorded under another discovery (descending scores): not what this one's top-10 gives
STALE_HEADS = tuple((i // N_HEADS, i % N_HEADS) for i in range(10))
STALE = HeadChoice(HeadSet("top-10", STALE_HEADS), "gaze:10", "gaze", 10)
PICKS = HeadChoice(HeadSet("custom", ((1, 1), (2, 0))), "custom")
# name, token count, the head choice it was steered with (None: a baseline)
RUNS = [
    ("baseline", 7, None),
    ("top ten", 40, TOP10),
    ("random five", 10, RANDOM5),
    ("stale top ten", 12, STALE),
    ("picked", 9, PICKS),
]


def _events(n_steps: int, seed: int):
    prompt = [f"p{i} " for i in range(PROMPT_LEN)]
    yield PrefillEvent(PROMPT_LEN, GRID_A, list(range(PROMPT_LEN)), prompt, _rows(seed, PROMPT_LEN, 1))
    for s in range(n_steps):
        yield TokenEvent(s, 100 + s, f" w{s}", 0, _rows(seed + 1 + s, PROMPT_LEN + s))
    yield FinishedEvent("finished", [])


def write_session(path, ui: dict | None = None):
    """Five runs of different lengths on one image (a baseline, and runs steered with the chosen
    sets above), then the discovery the top-10 and random runs were chosen under."""
    w = SessionWriter(path, meta=META, image=IMAGE_A, grid=GRID_A, regions=panel_regions(GRID_A, 3))
    try:
        for seed, (name, n, choice) in enumerate(RUNS):
            plan = None if choice is None else SteeringPlan(choice.heads, choice=choice)
            spec = RunSpec(
                name=name,
                prompt="what?",
                n_layers=N_LAYERS,
                n_heads=N_HEADS,
                max_new_tokens=n,
                plan=plan,
                target=None if plan is None else 0,
            )
            record(_events(n, 10 * seed), w, spec)
        w.write_discovery(DISCOVERY, source="demo", params={"n_strips": 3})
        if ui is not None:
            w.write_ui(ui)
    finally:
        w.close()
    return path


def _ui(path) -> dict:
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs[UI_ATTR])


@pytest.fixture
def session_file(tmp_path):
    return write_session(tmp_path / "runs.h5")


def _window(qtbot, path):
    from gaze_explorer.qt.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    assert win.open_session(str(path)), getattr(win, "messages", None)
    return win


def _index(win, name: str) -> int:
    """The index of the run written as ``name`` (the session lists runs in the order written)."""
    index = [n for n, _, _ in RUNS].index(name)
    assert win.state.session.runs[index].n_steps == RUNS[index][1]
    return index


def test_the_step_range_follows_the_selected_run(qtbot, session_file):
    win = _window(qtbot, session_file)
    s, browser = win.state, win.session_view
    assert (s.step.n_steps, s.step.step) == (9, 8)  # reopened on its last run, at its last step
    browser.select_run(_index(win, "random five"))  # 10 tokens: the step stays where it was
    assert (s.step.n_steps, s.step.step) == (10, 8)
    browser.select_run(_index(win, "top ten"))  # 40 tokens: the step can reach its 31st token
    assert s.step.n_steps == 40
    s.step.set_step(30)
    assert s.step.step == 30
    timeline = win.timeline_view
    assert timeline.slider.maximum() == 39 and timeline.step_label.text().startswith("step 30/39")
    # Ctrl+click the 7-token baseline: shown, so the step is clamped to its last token
    browser.select_run(_index(win, "baseline"), add=True)
    assert (s.session.shown, s.session.compare) == (_index(win, "baseline"), _index(win, "top ten"))
    assert (s.step.n_steps, s.step.step) == (7, 6)
    assert timeline.slider.maximum() == 6 and timeline.step_label.text().startswith("step 6/6")


def test_a_reopened_selection_of_three_runs_is_compared_again(qtbot, session_file):
    win = _window(qtbot, session_file)
    picked = [_index(win, n) for n in ("baseline", "top ten", "random five")]
    win.session_view.select_run(picked[0])
    for i in picked[1:]:
        win.session_view.select_run(i, add=True)
    assert win.comparison_view.indices == picked
    win.controller.shutdown()  # what closing does: the selection is saved
    ids = [win.state.session.runs[i].run_id for i in picked]
    ui = _ui(session_file)
    assert ui["selected"] == ids and (ui["shown"], ui["compare"]) == (ids[2], ids[1])

    other = _window(qtbot, session_file)
    assert other.comparison_view.indices == picked
    assert [r.label for r in other.comparison_view.rows] == ["baseline", "top-10 gaze → 1", "random-5 → 1"]
    chosen = {other.session_view.list.row(item) for item in other.session_view.list.selectedItems()}
    assert chosen == set(picked)
    assert (other.state.session.shown, other.state.session.compare) == (picked[2], picked[1])
    assert other.docks["Comparison"].isVisibleTo(other)


def test_an_older_file_with_shown_and_compare_is_compared_on_reopening(qtbot, tmp_path):
    path = tmp_path / "older.h5"
    write_session(path)
    first = _window(qtbot, path)
    ids = [r.run_id for r in first.state.session.runs]
    first.controller.shutdown()
    write_ui = {"shown": ids[1], "compare": ids[0], "step": 3}  # what files saved before "selected" hold
    with SessionWriter(path, meta=META, image=IMAGE_A, grid=GRID_A, regions=panel_regions(GRID_A, 3)) as w:
        w.write_ui(write_ui)
    win = _window(qtbot, path)
    assert win.comparison_view.indices == [0, 1]
    assert (win.state.session.shown, win.state.session.compare, win.state.step.step) == (1, 0, 3)


def test_selecting_a_steered_run_outlines_its_own_heads(qtbot, session_file):
    win = _window(qtbot, session_file)
    s = win.state
    win.session_view.select_run(_index(win, "top ten"))
    assert s.heads.active.heads == TOP10.heads.heads
    win.session_view.select_run(_index(win, "random five"))
    assert s.heads.active.heads == RANDOM5.heads.heads
    assert (s.heads.kind, s.heads.k, s.heads.seed, s.heads.pool) == ("random", 5, 7, "all-non-gaze")
    track = win.timeline_view.tracks[0]
    qtbot.waitUntil(lambda: track.plot.titleLabel.text.startswith("random-5 → 1 · "), timeout=5000)
    assert track.plot.titleLabel.text.endswith("· random-5"), track.plot.titleLabel.text
    assert s.heads.mask().sum() == 5  # the grid outlines these five
    win.session_view.select_run(_index(win, "baseline"))  # a baseline steers nothing: the set stays
    assert s.heads.active.heads == RANDOM5.heads.heads


def test_the_head_set_control_is_saved_and_restored_with_a_baseline_shown(qtbot, session_file):
    win = _window(qtbot, session_file)
    s = win.state
    win.session_view.select_run(_index(win, "baseline"))
    s.heads.set_custom([(0, 3), (1, 4)])
    s.heads.set_kind("top", k=20, criterion="image", seed=11, pool="all-non-gaze")
    want = s.heads.active.heads
    assert len(want) == 20
    win.controller.shutdown()
    assert _ui(session_file)["heads"]["k"] == 20

    other = _window(qtbot, session_file)  # the baseline is shown: the control comes back as it was
    h = other.state.heads
    assert (h.kind, h.k, h.criterion, h.seed, h.pool) == ("top", 20, "image", 11, "all-non-gaze")
    assert h.custom == {(0, 3), (1, 4)} and h.active.heads == want
    panel = other.steering_panel
    assert (panel.k_spin.value(), panel.criterion_combo.currentText()) == (20, "image")
    assert panel.head_buttons["top"].isChecked()


def test_the_steering_dock_names_a_runs_set_by_its_choice_or_as_the_runs_own(qtbot, tmp_path):
    path = write_session(tmp_path / "runs.h5")
    win = _window(qtbot, path)
    panel, heads = win.steering_panel, win.state.heads
    # reopened on the last run, a custom pick: a fixed set named for the run, not "from file"
    assert win.state.session.shown == _index(win, "picked")
    assert heads.kind == "file" and heads.active.heads == PICKS.heads.heads
    button = panel.head_buttons["file"]
    assert button.isChecked() and button.text() != "from file"
    named = f"heads of run '{win.state.session.shown_run.name}'"  # its label, "custom → 1"
    assert named in button.toolTip() and named in panel.heads_label.text()
    # a top-10 the discovery on screen gives: shown as top-K with its K and criterion
    win.session_view.select_run(_index(win, "top ten"))
    assert panel.head_buttons["top"].isChecked() and panel.k_spin.value() == 10
    assert panel.criterion_combo.currentText() == "gaze" and not button.isChecked()
    # a top-10 recorded under another discovery: the run's own fixed set, named for it
    win.session_view.select_run(_index(win, "stale top ten"))
    assert heads.kind == "file" and heads.active.heads == STALE.heads.heads
    stale = f"heads of run '{win.state.session.shown_run.name}'"
    assert button.isChecked() and stale in button.toolTip() and panel.k_spin.value() == 10
    # a random control: its kind, K, seed
    win.session_view.select_run(_index(win, "random five"))
    assert panel.head_buttons["random"].isChecked()
    assert (panel.k_spin.value(), panel.seed_spin.value()) == (5, 7)
    # a list loaded from a file is "from file" again
    listed = tmp_path / "heads.json"
    listed.write_text(json.dumps([{"layer": 1, "head": 2}]))
    assert panel.load_head_file(str(listed))
    assert button.isChecked() and button.text() == "from file" and "heads of run" not in button.toolTip()
    # reopening with the stale run shown takes the same path as selecting it
    win.controller.shutdown()
    with SessionWriter(path, meta=META, image=IMAGE_A, grid=GRID_A, regions=panel_regions(GRID_A, 3)) as w:
        runs = win.state.session.runs
        w.write_ui({"shown": runs[_index(win, "stale top ten")].run_id, "compare": None})
    other = _window(qtbot, path)
    assert other.state.heads.kind == "file" and other.state.heads.active.heads == STALE.heads.heads
    assert other.steering_panel.head_buttons["file"].toolTip() == stale
