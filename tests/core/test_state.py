"""The app's Qt-free models: signals fire on change, setters validate, reductions are right."""

from __future__ import annotations

import numpy as np
import pytest

from gaze_explorer.core.errors import RegionError, ScheduleError
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.regions import ImageTokenGrid, panel_regions
from gaze_explorer.core.scoring import head_region_mass, overlay_heat, step_trajectory
from gaze_explorer.core.state import AppState, RunData
from gaze_explorer.core.state_data import grid_corners


def _grid() -> ImageTokenGrid:
    return ImageTokenGrid.uniform(192, 64, rows=2, cols=6, first_position=3)


def test_step_model_clamps_and_emits_only_on_change():
    state = AppState()
    seen: list[int] = []
    state.step.step_changed.connect(seen.append)
    state.step.set_n_steps(10)
    state.step.set_step(4)
    state.step.set_step(4)
    state.step.move(100)
    state.step.move(-3)
    state.step.set_step(-5)
    assert seen == [4, 9, 6, 0]
    state.step.set_n_steps(20, follow=True)
    assert state.step.step == 19


def test_head_selection_top_random_custom_all():
    state = AppState()
    heads = state.heads
    events: list[str] = []
    heads.selection_changed.connect(lambda: events.append(heads.active.name))
    scores = np.arange(12, dtype=float).reshape(3, 4)
    heads.set_gaze_scores(scores)
    heads.set_kind("top", k=2)
    assert heads.active.heads == ((2, 2), (2, 3))
    # the default pool, band: layer 2 holds the top 2, so the control is the other two heads of layer 2
    heads.set_kind("random", k=2, seed=1)
    assert set(heads.active.heads) == {(2, 0), (2, 1)} and heads.problem == ""
    # the authors' pool (percentile:5 of 12 scores) holds one head: no control, and the model says why
    heads.set_kind("random", pool="percentile:5")
    assert len(heads.active) == 0 and "holds 1 head(s), fewer than K=2" in heads.problem
    heads.set_kind("random", pool="all-non-gaze")
    assert len(heads.active) == 2 and not set(heads.active.heads) & {(2, 2), (2, 3)}
    heads.set_kind("custom")
    heads.toggle((1, 1))
    heads.toggle((0, 3))
    heads.toggle((1, 1))
    heads.toggle((9, 9))  # out of range: ignored
    assert heads.active.heads == ((0, 3),)
    assert heads.mask().sum() == 1 and heads.mask()[0, 3]
    heads.set_kind("all")
    assert len(heads.active) == 12
    assert events[-1] == "all"


def test_all_heads_of_a_hybrid_model_are_its_attention_layers_before_any_discovery():
    # Qwen3.5-like: layers 0 and 2 are linear attention; no scores yet (a model just loaded)
    heads = AppState().heads
    heads.set_shape(4, 3, attention_layers=(1, 3))
    heads.set_kind("all")
    assert {layer for layer, _ in heads.active.heads} == {1, 3} and len(heads.active) == 6
    heads.set_shape(4, 3, attention_layers=None)  # a file that does not say: every layer
    assert len(heads.active) == 12


def test_target_resolve_panel_box_schedule_and_errors():
    grid = _grid()
    panels = panel_regions(grid, 6)
    target = AppState().target
    fired: list[str] = []
    target.target_changed.connect(lambda: fired.append(target.kind))
    target.set_panel(3)
    regions, t = target.resolve(grid, panels)
    assert t == 3 and len(regions) == 6
    target.set_box((0, 0, 70, 64))
    regions, t = target.resolve(grid, panels)
    assert t == 6 and regions[6].kind == "box" and list(regions[6].token_indices) == [0, 1, 6, 7]
    target.set_schedule("4,2,1", 5)
    _, sched = target.resolve(grid, panels)
    assert sched.targets == (3, 1, 0) and sched.switch_every == 5
    target.set_schedule("4,9", 5)
    with pytest.raises(ScheduleError, match="panel 9"):
        target.resolve(grid, panels)
    target.set_panel(0)
    with pytest.raises(RegionError, match="no panels"):
        target.resolve(grid, [])
    assert fired == ["panel", "box", "schedule", "schedule", "panel"]


def test_overlay_heat_and_region_mass_follow_positions():
    grid = _grid()
    rows = np.zeros((2, 3, 20), dtype=np.float32)  # [layer, head, key]
    rows[1, 2, 3 + 7] = 0.5  # image token 7 = row 1, col 1
    rows[0, 0, 3 + 0] = 1.0
    heat = overlay_heat(rows, grid, HeadSet("x", ((1, 2),)))
    assert heat.shape == (2, 6) and heat[1, 1] == 0.5 and heat.sum() == 0.5
    both = overlay_heat(rows, grid, HeadSet("x", ((1, 2), (0, 0))))
    assert both[0, 0] == 0.5 and both[1, 1] == 0.25
    panels = panel_regions(grid, 6)
    mass = head_region_mass(rows, grid, panels[1])
    assert mass.shape == (2, 3) and mass[1, 2] == 0.5 and mass.sum() == 0.5
    traj = step_trajectory(lambda s: rows if s != 1 else None, 3, grid, panels, HeadSet("x", ((1, 2),)))
    assert traj.shape == (3, 6) and np.isnan(traj[1]).all() and traj[0, 1] == 0.5


def test_grid_corners_are_the_token_boxes():
    grid = _grid()
    x, y = grid_corners(grid)
    assert x.shape == (3, 7) and list(x[0]) == [0, 32, 64, 96, 128, 160, 192]
    assert list(y[:, 0]) == [0, 32, 64]


def test_session_runs_and_region_lookup():
    state = AppState()
    grid = _grid()
    image = np.zeros((64, 192, 3), dtype=np.uint8)
    state.session.set_image(image, grid, panel_regions(grid, 6), 6)
    assert state.session.region_at(100, 10) == 3
    assert state.session.region_at(500, 10) is None
    shown: list[tuple] = []
    state.session.shown_runs_changed.connect(
        lambda: shown.append((state.session.shown, state.session.compare))
    )
    a = state.session.add_run(RunData("baseline"))
    b = state.session.add_run(RunData("steered"))
    state.session.show_runs(b, a)
    assert shown == [(0, None), (1, None), (1, 0)]
    with pytest.raises(IndexError):
        state.session.show_runs(5)
    with pytest.raises(ValueError):
        state.session.set_image(np.zeros((4, 4)), grid, [], 0)
