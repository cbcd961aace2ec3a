"""Runs side by side: what the comparison view shows, computed without Qt.

For each run: its label, its full answer, its staircase (``core.scoring.step_trajectory`` of the
observed heads, the same numbers the token timeline draws) and, for a run whose target changed
(a schedule, or a live switch), its answer split at the switch steps into segments, each with the
target it was generated under and the panel the offline judge (``core.judges``) reads in it.

``segment_record`` is the one form of a judged segment: ``evaluate dynamic`` (``inference.evaluation``)
writes its per-segment records with it too, so the app and the evaluation JSON agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np

from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.judges import Judge, Judgement, PanelTruth, judge_for
from gaze_explorer.core.regions import ImageTokenGrid
from gaze_explorer.core.scoring import step_trajectory

if TYPE_CHECKING:  # the state module (psygnal) is not needed to judge segments
    from gaze_explorer.core.state import RunData

# the paper's four conditions, in the order the comparison shows them
COMPARE_CONDITIONS = ("baseline", "gaze", "random", "all")


def segment_record(text: str, target: int | None, verdict: Judgement) -> dict:
    """One judged segment as the evaluation JSON records it: ``target`` 1-based, the text, the
    judge's verdict and the credit of the (0-based) ``target``."""
    return {
        "target": None if target is None else target + 1,
        "text": text,
        "judge": verdict.to_dict(),
        "credit": 0.0 if target is None else verdict.credit(target),
    }


@dataclass(frozen=True)
class Segment:
    """Steps ``start``..``stop - 1`` of a run, generated under ``target`` (0-based region)."""

    start: int
    stop: int
    target: int | None
    text: str
    judgement: Judgement | None = None  # None: no ground truth to judge against

    @property
    def judged(self) -> int | None:
        """The panel (0-based) the judge reads in the segment, or None."""
        return None if self.judgement is None else self.judgement.choice

    @property
    def credit(self) -> float | None:
        if self.judgement is None or self.target is None:
            return None
        return self.judgement.credit(self.target)

    def to_dict(self) -> dict:
        """The evaluation JSON's form (``segment_record``), plus the segment's steps."""
        out = {"start": self.start, "stop": self.stop}
        if self.judgement is None:
            return {**out, "target": None if self.target is None else self.target + 1, "text": self.text}
        return {**out, **segment_record(self.text, self.target, self.judgement)}


def switch_steps(run: RunData) -> list[int]:
    """The steps where the run's target changed (recorded switches, else the schedule's), inside
    the run's steps and in order."""
    steps = {int(s.step) for s in run.switches} or {int(s) for s in run.scheduled}
    return sorted(s for s in steps if 0 < s < run.n_steps)


def split_segments(
    tokens: Sequence[str],
    targets: Sequence[int | None],
    boundaries: Sequence[int],
    truth: PanelTruth | None = None,
    judge: Judge | None = None,
) -> list[Segment]:
    """The answer split at ``boundaries`` (switch steps); each segment's target is the target of
    its first step; with ``truth``, each segment is judged (``judge``, default ``judge_for``)."""
    n = len(tokens)
    edges = [0, *sorted({int(b) for b in boundaries if 0 < int(b) < n}), n]
    out = []
    for start, stop in pairwise(edges):
        if stop <= start:
            continue
        target = targets[start] if start < len(targets) else None
        text = "".join(tokens[start:stop])
        judgement = None if truth is None else (judge or judge_for(truth)).judge(text, truth)
        out.append(Segment(start, stop, target, text, judgement))
    return out


@dataclass
class ComparisonRow:
    """One run as the comparison shows it."""

    index: int  # the run's index in the session
    label: str
    text: str
    tokens: list[str]
    status: str
    staircase: np.ndarray | None  # [step, region] raw attention of the observed heads
    switch_steps: list[int] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)  # only for runs whose target changed

    @property
    def n_steps(self) -> int:
        return len(self.tokens)


def comparison_rows(
    runs: Sequence[RunData],
    indices: Sequence[int],
    grid: ImageTokenGrid | None,
    regions: Sequence,
    heads: HeadSet,
    truth: PanelTruth | None = None,
    staircase_of: Callable[[int], np.ndarray | None] | None = None,
) -> list[ComparisonRow]:
    """The rows of runs ``indices`` of ``runs``. The staircase needs a grid, captured rows and
    observed ``heads`` (else None); ``staircase_of(index)`` gives it instead (a cache that grows
    with a streaming run). Segments are judged when ``truth`` is given."""
    out = []
    for i in indices:
        run = runs[i]
        run_regions = run.regions or list(regions)
        run_grid = run.grid if run.grid is not None else grid  # the run's own image's grid
        staircase = None
        if staircase_of is not None:
            staircase = staircase_of(i)
        elif run_grid is not None and run.rows_at is not None and run_regions and heads.heads and run.n_steps:
            staircase = step_trajectory(run.rows_at, run.n_steps, run_grid, run_regions, heads)
        steps = switch_steps(run)
        segments = split_segments(run.tokens, run.targets, steps, truth) if steps else []
        out.append(
            ComparisonRow(i, run.name, run.text, list(run.tokens), run.status, staircase, steps, segments)
        )
    return out


def shared_step_count(rows: Sequence[ComparisonRow]) -> int:
    """The length of the shared step axis: the longest run's steps."""
    return max((r.n_steps for r in rows), default=0)
