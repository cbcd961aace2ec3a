"""The schedule-blind trajectory judge of dynamic narration (rho vs schedule, rho vs reading order,
exclusion of strips with >= 3 unjudgeable segments, starts-correct), on hand-made trajectories."""

from __future__ import annotations

import pytest

from gaze_explorer.core.evaluation_report import (
    MAX_NULL_SEGMENTS,
    build_report,
    format_table,
    trajectory,
    trajectory_summary,
)
from gaze_explorer.core.heads import HeadSet

SCHEDULE = [2, 4, 1, 3]


def test_a_followed_schedule_has_rho_one_against_it_and_zero_against_reading_order():
    t = trajectory(SCHEDULE, [2, 4, 1, 3])
    # ranks of 2,4,1,3 against 1..4: d = (-1, -2, 2, 1), rho = 1 - 6*10/(4*15) = 0
    assert t["rho_schedule"] == pytest.approx(1.0) and t["rho_natural"] == pytest.approx(0.0)
    assert t["starts_correct"] is True and t["n_null"] == 0 and t["excluded"] is False


def test_reading_order_narration_ignores_the_schedule():
    t = trajectory(SCHEDULE, [1, 2, 3, 4])
    assert t["rho_natural"] == pytest.approx(1.0) and t["rho_schedule"] == pytest.approx(0.0)
    assert t["starts_correct"] is False
    assert trajectory([4, 3, 2, 1], [1, 2, 3, 4])["rho_schedule"] == pytest.approx(-1.0)


def test_three_unjudgeable_segments_exclude_the_strip_two_do_not():
    assert MAX_NULL_SEGMENTS == 3
    out = trajectory(SCHEDULE, [None, 4, None, None])
    assert out["excluded"] and out["n_null"] == 3
    assert out["rho_schedule"] is None and out["rho_natural"] is None and out["starts_correct"] is None
    kept = trajectory(SCHEDULE, [None, 4, 1, None])
    assert not kept["excluded"] and kept["n_null"] == 2
    assert kept["rho_schedule"] == pytest.approx(1.0)  # (4, 4) and (1, 1): nulls dropped
    # the first panel described is the first judged segment's (4), not the scheduled 2
    assert kept["starts_correct"] is False
    assert trajectory([1, 2], [None, None])["excluded"]  # nothing judged: excluded though short


def test_one_panel_throughout_has_undefined_rho_scored_zero_and_can_start_correct():
    t = trajectory(SCHEDULE, [2, None, None, 2])
    assert t["rho_schedule"] == 0.0 and t["rho_natural"] == 0.0 and t["starts_correct"] is True


def test_the_judge_is_blind_to_the_schedule_only_rho_schedule_and_start_depend_on_it():
    choices = [3, 1, None, 2]
    a, b = trajectory([3, 1, 4, 2], choices), trajectory([2, 4, 1, 3], choices)
    assert a["rho_natural"] == b["rho_natural"] and a["n_null"] == b["n_null"]
    assert a["rho_schedule"] == pytest.approx(1.0) and b["rho_schedule"] < 0.5
    assert a["starts_correct"] and not b["starts_correct"]


def test_summary_averages_over_strips_not_excluded():
    ts = [
        trajectory(SCHEDULE, [2, 4, 1, 3]),  # rho_s 1, rho_n 0, starts
        trajectory(SCHEDULE, [None, None, None, 3]),  # excluded
        trajectory(SCHEDULE, [1, 2, 3, 4]),  # rho_s 0, rho_n 1, does not start right
    ]
    s = trajectory_summary(ts, n_resamples=1000, seed=0)
    assert s["n_strips"] == 3 and s["n_excluded"] == 1
    assert s["rho_schedule"]["mean"] == pytest.approx(0.5) and s["rho_natural"]["mean"] == pytest.approx(0.5)
    assert s["starts_correct"]["mean"] == pytest.approx(0.5) and s["starts_correct"]["n"] == 2
    lo, hi = s["rho_schedule"]["ci95"]
    assert lo == pytest.approx(0.0) and hi == pytest.approx(1.0)
    empty = trajectory_summary([], n_resamples=10, seed=0)
    assert empty["rho_schedule"]["mean"] is None and empty["starts_correct"]["n"] == 0


def _segment(target, choice):
    verdict = {
        "choice": None if choice is None else choice - 1,
        "best": [] if choice is None else [choice - 1],
        "scores": [0.0] * 4,
        "degenerate": choice is None,
        "reason": "",
    }
    return {"target": target, "text": "", "judge": verdict, "credit": float(choice == target)}


def _dynamic(strip, condition, schedule, choices):
    return {
        "strip": strip,
        "condition": condition,
        "target": None,
        "text": "",
        "n_tokens": 0,
        "schedule": schedule,
        "segments": [_segment(t, c) for t, c in zip(schedule, choices, strict=True)],
    }


def test_dynamic_report_carries_the_trajectory_judge_per_strip_condition_and_in_the_table():
    heads = {
        "gaze": HeadSet("g", ((0, 1),)),
        "random": HeadSet("r", ((0, 0),)),
        "all": HeadSet("all", ((0, 0),)),
    }
    gens = [
        _dynamic("a", "gaze", SCHEDULE, [2, 4, 1, 3]),
        _dynamic("b", "gaze", [3, 1, 4, 2], [None, None, None, 2]),
        _dynamic("a", "baseline", SCHEDULE, [1, 2, 3, 4]),
    ]
    rep = build_report(
        protocol="dynamic", model="m", generations=gens, heads=heads, settings={}, n_resamples=100
    )
    gaze = rep["conditions"]["gaze"]["trajectory"]
    assert gaze["n_strips"] == 2 and gaze["n_excluded"] == 1 and gaze["rho_schedule"]["mean"] == 1.0
    assert rep["trajectory"] == gaze
    assert rep["conditions"]["baseline"]["trajectory"]["rho_natural"]["mean"] == 1.0
    assert rep["generations"][1]["trajectory"]["excluded"] is True
    table = format_table(rep)
    assert "schedule-blind: rho vs schedule +1.00" in table and "1 excluded" in table
