"""A run's label, derived from what it stored: head set, target and the switches as they happened.

``run_label`` is a pure function of a run's parameters (the ``plan``/``schedule``/``target`` dicts
a session stores, ``docs/session_schema.md``) and its switch history, so the app's run list, a
reopened session and the CLI all name a run the same way, e.g.
``top-10 gaze → 4 → 2 (live @7) → 6 (live @13)``. A name the user typed wins over the label
(``display_name``).
"""

from __future__ import annotations

from collections.abc import Sequence

ARROW = " → "


def heads_label(plan: dict | None) -> str:
    """``baseline``, ``top-10 gaze``, ``random-10``, ``all``, or the head set's own name."""
    if not plan:
        return "baseline"
    choice = plan.get("choice") or {}
    criterion, k, spec = choice.get("criterion"), choice.get("k"), str(choice.get("spec") or "")
    n = len(plan.get("heads") or ())
    if spec.startswith("random"):  # a random control (its criterion names the pool's score)
        return f"random-{k or n}"
    if spec == "all":
        return "all"
    if criterion and k:
        return f"top-{k} {criterion}"
    name = str(plan.get("head_set") or "")
    if name.startswith("top-") and " " not in name:  # a plan recorded before the choice: top-K by gaze
        return f"{name} gaze"
    return name or f"{n} heads"


def _target_name(index: int | None, region_names: Sequence[str]) -> str:
    if index is None:
        return "none"
    if 0 <= index < len(region_names) and not str(region_names[index]).startswith("panel"):
        return str(region_names[index])  # a box, or a named region
    return str(index + 1)


def run_label(
    plan: dict | None,
    schedule: dict | None = None,
    target: int | dict | None = None,
    switches: Sequence = (),
    region_names: Sequence[str] = (),
) -> str:
    """The label of a run. ``switches`` are ``core.steering.Switch`` (step, previous, to, source);
    ``target`` is the 0-based region the run started on (a stored ``{"fixed": i}`` is accepted);
    regions are named by panel number, a box by its name.

    A fixed or live-switched run lists every target it had: ``top-10 gaze → 4 → 2 (live @7)``. A
    scheduled run names its schedule, then only the live switches (its scheduled ones follow from
    the schedule): ``top-10 gaze → schedule 1,3,2 every 8 → 2 (live @5)``.
    """
    heads = heads_label(plan)
    if not plan:
        return heads
    if isinstance(target, dict):
        target = target.get("fixed")
    parts = [heads]
    live_only = False
    if schedule:
        targets = ",".join(str(int(t)) for t in schedule.get("targets", ()))
        parts.append(f"schedule {targets} every {int(schedule.get('switch_every', 0))}")
        live_only = True
    else:
        parts.append(_target_name(None if target is None else int(target), region_names))
    for s in switches:
        if live_only and s.source != "live":
            continue
        parts.append(f"{_target_name(s.to, region_names)} ({s.source} @{int(s.step)})")
    return ARROW.join(parts)


def display_name(user_name: str, label: str) -> str:
    """What the run list shows: the user's name for the run if they gave one, else its label."""
    return user_name.strip() or label
