"""A run's label is derived from its head set, target and switches as they happened."""

from __future__ import annotations

from gaze_explorer.core.run_label import display_name, heads_label, run_label
from gaze_explorer.core.steering import Switch

TOP10 = {
    "head_set": "top-10",
    "heads": [[4, i] for i in range(10)],
    "choice": {"spec": "gaze:10", "criterion": "gaze", "k": 10, "seed": None, "pool": None},
}
PANELS = [f"panel {i}" for i in range(1, 7)]


def test_live_switched_run_lists_every_target_with_its_step():
    switches = [Switch(7, 3, 1, "live"), Switch(13, 1, 5, "live")]
    assert run_label(TOP10, None, 3, switches, PANELS) == "top-10 gaze → 4 → 2 (live @7) → 6 (live @13)"


def test_scheduled_run_names_its_schedule_and_only_live_switches():
    schedule = {"targets": [4, 2, 6], "switch_every": 3}
    switches = [Switch(3, 3, 1, "schedule"), Switch(5, 1, 0, "live"), Switch(6, 0, 5, "schedule")]
    label = run_label(TOP10, schedule, None, switches, PANELS)
    assert label == "top-10 gaze → schedule 4,2,6 every 3 → 1 (live @5)"


def test_heads_of_other_choices_and_box_targets():
    random10 = {**TOP10, "choice": {"spec": "random:10", "criterion": "gaze", "k": 10, "seed": 0}}
    image5 = {**TOP10, "choice": {"spec": "image:5", "criterion": "image", "k": 5}}
    old = {"head_set": "top-10", "heads": TOP10["heads"]}  # a version-1 plan: no choice recorded
    assert [heads_label(p) for p in (None, random10, image5, old)] == [
        "baseline",
        "random-10",
        "top-5 image",
        "top-10 gaze",
    ]
    assert run_label(image5, None, {"fixed": 6}, (), [*PANELS, "box"]) == "top-5 image → box"
    assert display_name("  ", "top-5 image → box") == "top-5 image → box"
    assert display_name("my run", "top-5 image → box") == "my run"
