"""The app's Qt-free observable models (psygnal signals): what the views show and edit.

Views take an :class:`AppState` in ``__init__``, subscribe to the signals of the sub-models they
show, and write back only through the models' setters; they never call each other. Nothing here
imports Qt, torch or h5py, so the models are tested without a display.

Sub-models:
- :class:`SessionModel` - image, token grid, regions and the runs of the open session, and which of
  them are selected (shown, compared).
- :class:`StepModel` - the current decode step, shared by every view.
- :class:`HeadSelectionModel` (``core.head_selection``) - per-head scores, the custom picks and the
  active head set.
- :class:`TargetModel` - the steering target (panel, box or schedule).
- :class:`OverlaySettings` - opacity, colormap and normalisation of the attention overlay.
- :class:`StatusModel` - model/device/dtype/memory/speed and whether a run is streaming.
- :class:`DiscoveryModel` - the last discovery (scores, panel matrices) and its summary.
- :class:`InspectorModel` - the head open in the head inspector.
- ``core.spans.SpanModel`` - the span on screen, the raw / value-weighted switch, the named spans.

:class:`AppState` wires the rules that tie the models together, once: the step range follows the
shown run (:meth:`AppState._step_follows_shown_run`), and selecting runs (the session browser, or a
reopened session's saved selection) makes the shown run's own head set the active one
(:meth:`HeadSelectionModel.use_run_heads`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from psygnal import Signal

from gaze_explorer.core.errors import RegionError, ScheduleError
from gaze_explorer.core.head_selection import HeadSelectionModel
from gaze_explorer.core.heads import Head, HeadSet
from gaze_explorer.core.regions import ImageTokenGrid, Region, box_region
from gaze_explorer.core.spans import SpanModel
from gaze_explorer.core.steering import Schedule, Switch, check_targets, parse_schedule

COLORMAPS = ("inferno", "magma", "viridis", "plasma")
NORMALISATIONS = ("per_step", "global")
OVERLAY_STYLES = ("colour", "greyscale", "contour")  # image under the heat: as is, grey, or contours only


@dataclass
class RunData:
    """One generation run as the app shows it (streamed live, or read back from a session).

    ``rows_at(step)`` returns the captured attention ``[layer, head, key]`` of that step, or None;
    it lets a run be backed by memory while it streams and by the session reader once reopened.
    """

    name: str
    tokens: list[str] = field(default_factory=list)
    targets: list[int | None] = field(default_factory=list)  # target region per step
    switches: list[Switch] = field(default_factory=list)
    status: str = "running"  # running | finished | cancelled | failed
    params: dict = field(default_factory=dict)
    run_id: str | None = None
    prompt_len: int = 0
    rows_at: Callable[[int], np.ndarray | None] | None = field(default=None, repr=False)
    regions: list[Region] = field(default_factory=list)  # the run's regions (panels, then a box)
    scheduled: list[int] = field(default_factory=list)  # steps where a schedule switches target
    prompt_tokens: list[str] = field(default_factory=list)  # the prompt's token strings
    # the token grid of the image the run was made on (a session holds runs on several images);
    # None: the session's grid
    grid: ImageTokenGrid | None = None

    @property
    def n_steps(self) -> int:
        return len(self.tokens)

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    @property
    def derived_label(self) -> str:
        """The label derived from the run's head set, target and switches so far
        (``core.run_label``: "top-10 gaze → 4 → 2 (live @7)"), whatever name the user gave it."""
        from gaze_explorer.core.run_label import run_label

        p = self.params
        return run_label(
            p.get("plan"), p.get("schedule"), p.get("target"), self.switches, [r.name for r in self.regions]
        )


class SessionModel:
    """The open session: image (``[H, W, 3]`` uint8), token grid, regions and runs.

    ``selected`` lists every selected run in the order it was picked (the comparison draws them
    all); the last is ``shown``, the one before it ``compare``. :meth:`select_runs` (a user's pick,
    or a reopened session's saved selection) announces it with ``runs_selected``; :meth:`show_runs`
    (a new run, a new image) only moves shown / compare, and ``selected`` follows them.
    """

    image_changed = Signal()
    runs_changed = Signal()
    run_updated = Signal(int)  # index of a run that got new tokens or a new status
    shown_runs_changed = Signal()
    runs_selected = Signal(list)  # select_runs: every selected run's index, in the order picked
    compared_changed = Signal(list)  # set_compared: the runs the Comparison dock shows, in order

    def __init__(self) -> None:
        self.path: str | None = None
        self.image: np.ndarray | None = None
        self.image_name: str = ""
        self.grid: ImageTokenGrid | None = None
        self.regions: list[Region] = []
        self.n_panels: int = 0
        self.runs: list[RunData] = []
        self.shown: int | None = None  # index of the run on display
        self.compare: int | None = None  # index of a second run shown under it
        self.selected: list[int] = []  # every selected run, in the order picked (shown is the last)
        # the runs the Comparison dock shows: the selected ones, or those of "Compare conditions"
        # (shown there without being selected: their staircases use the heads selected now)
        self.compared: list[int] = []

    def set_image(
        self,
        image: np.ndarray,
        grid: ImageTokenGrid | None,
        regions: Sequence[Region],
        n_panels: int,
        name: str = "",
    ) -> None:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be [H, W, 3], got {image.shape}")
        self.image = image
        self.grid = grid
        self.regions = list(regions)
        self.n_panels = int(n_panels)
        self.image_name = name
        self.image_changed.emit()

    def clear_runs(self) -> None:
        self.runs = []
        self.shown = None
        self.compare = None
        self.selected = []
        self.compared = []
        self.runs_changed.emit()
        self.shown_runs_changed.emit()

    def add_run(self, run: RunData, show: bool = True) -> int:
        self.runs.append(run)
        index = len(self.runs) - 1
        self.runs_changed.emit()
        if show:
            self.show_runs(index, self.compare)
        return index

    def notify_run(self, index: int) -> None:
        """Tell views that run ``index`` got tokens or a new status (called on the GUI thread)."""
        self.run_updated.emit(index)

    def show_runs(self, shown: int | None, compare: int | None = None) -> None:
        """Show run ``shown`` (and ``compare`` under it); the selection keeps its other runs while
        it still holds both, else it becomes these two."""
        for i in (shown, compare):
            if i is not None and not 0 <= i < len(self.runs):
                raise IndexError(f"no run {i}; the session has {len(self.runs)}")
        if compare == shown:
            compare = None
        self.shown, self.compare = shown, compare
        pair = [i for i in (compare, shown) if i is not None]
        if not pair or not set(pair) <= set(self.selected):
            self.selected = pair
        self.shown_runs_changed.emit()

    def select_runs(self, indices: Sequence[int]) -> None:
        """Select runs ``indices`` (in the order picked): the last is shown, the one before it
        compared, all of them listed in ``runs_selected``. An empty selection shows what it showed."""
        picked: list[int] = []
        for i in indices:
            i = int(i)
            if not 0 <= i < len(self.runs):
                raise IndexError(f"no run {i}; the session has {len(self.runs)}")
            if i not in picked:
                picked.append(i)
        if picked:
            self.show_runs(picked[-1], picked[-2] if len(picked) >= 2 else None)
        self.selected = picked
        self.runs_selected.emit(list(picked))

    def set_compared(self, indices: Sequence[int]) -> None:
        """The runs the Comparison dock shows (in this order); out-of-range indices are dropped (a
        saved comparison of a file whose runs changed)."""
        compared = list(dict.fromkeys(int(i) for i in indices if 0 <= int(i) < len(self.runs)))
        if compared != self.compared:
            self.compared = compared
            self.compared_changed.emit(list(compared))

    @property
    def shown_run(self) -> RunData | None:
        return None if self.shown is None else self.runs[self.shown]

    @property
    def compare_run(self) -> RunData | None:
        return None if self.compare is None else self.runs[self.compare]

    def region_at(self, x: float, y: float) -> int | None:
        """Index of the panel region whose box holds pixel (x, y), if any."""
        for i, region in enumerate(self.regions):
            if region.box is None:
                continue
            x0, y0, x1, y1 = region.box
            if x0 <= x < x1 and y0 <= y < y1:
                return i
        return None


class StepModel:
    """The current decode step and how many there are; shared by every view.

    The range is the shown run's token count (``AppState`` wires it: every change of the shown run
    sets it, clamping the step into it; a streaming run grows it). The step indexes the shown run:
    the step label, the token chips, the overlay, the grid and the inspector all show that run's
    token. A compared run longer than the shown one is drawn whole on the timeline's shared axis,
    but the step stops at the shown run's last token (there is no shown token past it).
    """

    step_changed = Signal(int)
    range_changed = Signal(int)
    playing_changed = Signal(bool)

    def __init__(self) -> None:
        self.step = 0
        self.n_steps = 0
        self.playing = False

    def set_n_steps(self, n: int, follow: bool = False) -> None:
        """Set the step count; ``follow`` moves to the last step (used while a run streams)."""
        self.n_steps = max(int(n), 0)
        self.range_changed.emit(self.n_steps)
        target = self.n_steps - 1 if follow else min(self.step, max(self.n_steps - 1, 0))
        self.set_step(target)

    def set_step(self, step: int) -> None:
        step = int(min(max(step, 0), max(self.n_steps - 1, 0)))
        if step != self.step:
            self.step = step
            self.step_changed.emit(step)

    def move(self, delta: int) -> None:
        self.set_step(self.step + delta)

    def set_playing(self, playing: bool) -> None:
        if playing != self.playing:
            self.playing = playing
            self.playing_changed.emit(playing)


class TargetModel:
    """The steering target: a panel, a drawn box, or a schedule, plus what is live right now."""

    target_changed = Signal()

    def __init__(self) -> None:
        self.kind = "panel"  # panel | box | schedule
        self.panel: int = 0  # 0-based region index
        self.box: tuple[float, float, float, float] | None = None
        self.schedule_text = ""
        self.switch_every = 8

    def set_panel(self, index: int) -> None:
        self.kind, self.panel = "panel", int(index)
        self.target_changed.emit()

    def set_box(self, box: Sequence[float]) -> None:
        x0, y0, x1, y1 = (float(v) for v in box)
        self.kind, self.box = "box", (x0, y0, x1, y1)
        self.target_changed.emit()

    def set_schedule(self, text: str, switch_every: int) -> None:
        self.kind, self.schedule_text, self.switch_every = "schedule", text.strip(), int(switch_every)
        self.target_changed.emit()

    def resolve(
        self, grid: ImageTokenGrid, panel_regions: Sequence[Region]
    ) -> tuple[list[Region], int | Schedule]:
        """The run's region list and its target: a region index, or a schedule over the regions.

        A box target appends a ``box`` region after the panels. Raises RegionError/ScheduleError.
        """
        regions = list(panel_regions)
        if self.kind == "box":
            if self.box is None:
                raise RegionError("draw a box on the image first")
            regions.append(box_region(grid, self.box))
            return regions, len(regions) - 1
        if not regions:
            raise RegionError("the image has no panels; give a panel count, or draw a box target")
        if self.kind == "schedule":
            if not self.schedule_text:
                raise ScheduleError("write a schedule such as 4,2,1,6,5,3")
            return regions, parse_schedule(self.schedule_text, len(regions), self.switch_every)
        check_targets((self.panel,), len(regions))
        return regions, self.panel


class OverlaySettings:
    """How the attention overlay is drawn."""

    settings_changed = Signal()

    def __init__(self) -> None:
        self.opacity = 0.6
        self.colormap = "inferno"
        self.normalisation = "per_step"
        self.style = "colour"  # see OVERLAY_STYLES

    def update(
        self,
        *,
        opacity: float | None = None,
        colormap: str | None = None,
        normalisation: str | None = None,
        style: str | None = None,
    ) -> None:
        if colormap is not None and colormap not in COLORMAPS:
            raise ValueError(f"colormap must be one of {COLORMAPS}")
        if normalisation is not None and normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation must be one of {NORMALISATIONS}")
        if style is not None and style not in OVERLAY_STYLES:
            raise ValueError(f"overlay style must be one of {OVERLAY_STYLES}")
        self.style = style or self.style
        if opacity is not None:
            self.opacity = float(min(max(opacity, 0.0), 1.0))
        self.colormap = colormap or self.colormap
        self.normalisation = normalisation or self.normalisation
        self.settings_changed.emit()


class StatusModel:
    """What the status bar shows, and whether a run is streaming."""

    status_changed = Signal()
    busy_changed = Signal(bool)
    message_posted = Signal(str, bool)  # text, is_error
    progress_changed = Signal(str, int, int)  # task, done, total (total 0 = idle)

    def __init__(self) -> None:
        self.model = "no model"
        self.device = "-"
        self.dtype = "-"
        self.memory_mb = 0.0
        self.tokens_per_s = 0.0
        self.busy = False
        self.activity = ""

    def update(self, **fields: object) -> None:
        for key, value in fields.items():
            if not hasattr(self, key) or key == "busy":
                raise AttributeError(f"StatusModel has no field {key!r}")
            setattr(self, key, value)
        self.status_changed.emit()

    def set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.busy_changed.emit(busy)

    def post(self, text: str, error: bool = False) -> None:
        """A message for the user (errors become a message box, others a status line)."""
        self.message_posted.emit(text, error)

    def set_progress(self, task: str, done: int, total: int) -> None:
        self.progress_changed.emit(task, int(done), int(total))

    def summary(self) -> str:
        parts = [self.model, self.device, self.dtype]
        if self.memory_mb:
            parts.append(f"{self.memory_mb:.0f} MB")
        if self.tokens_per_s:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        if self.activity:
            parts.append(self.activity)
        return " · ".join(parts)


class AppState:
    """Every model of the app, in one object handed to each view."""

    def __init__(self) -> None:
        self.session = SessionModel()
        self.step = StepModel()
        self.heads = HeadSelectionModel()
        self.target = TargetModel()
        self.overlay = OverlaySettings()
        self.status = StatusModel()
        self.grid_score_mode = GridScoreMode()
        self.discovery = DiscoveryModel()
        self.inspector = InspectorModel()
        self.spans = SpanModel()
        # the rules that tie the models together, wired once (the views only follow the models)
        self.session.shown_runs_changed.connect(self._step_follows_shown_run)
        self.session.runs_selected.connect(self._heads_follow_selected_run)

    def _step_follows_shown_run(self) -> None:
        """The step range is the shown run's token count, the step clamped into it (StepModel)."""
        run = self.session.shown_run
        n = 0 if run is None else run.n_steps
        if n != self.step.n_steps:
            self.step.set_n_steps(n)

    def _heads_follow_selected_run(self, _indices: list) -> None:
        """Selecting runs shows the shown run's own head set (a baseline keeps the current set)."""
        run = self.session.shown_run
        if run is not None:
            self.heads.use_run_heads(run.params.get("plan"), run.name)


class GridScoreMode:
    """Which per-head score the layer x head grid shows: gaze, step->target, or step->panel k."""

    mode_changed = Signal()

    def __init__(self) -> None:
        self.mode = "gaze"  # gaze | target | panel
        self.panel = 0

    def set_mode(self, mode: str, panel: int | None = None) -> None:
        if mode not in ("gaze", "target", "panel"):
            raise ValueError(f"grid score mode must be gaze, target or panel, got {mode!r}")
        self.mode = mode
        if panel is not None:
            self.panel = int(panel)
        self.mode_changed.emit()


class DiscoveryModel:
    """The last discovery's results and the summary the discovery dock shows (paper Figs. 2a, 15, 16)."""

    result_changed = Signal()
    stored_changed = Signal()  # the session's stored discoveries, or which of them is shown
    chosen = Signal(str)  # the user asked for a stored discovery (the session control loads it)

    def __init__(self) -> None:
        self.scores: np.ndarray | None = None  # [layer, head] gaze score
        self.matrices: np.ndarray | None = None  # [layer, head, N, N] queried x attended panel mass
        self.n_strips = 0
        self.image_mass: np.ndarray | None = None  # [layer, head], for the other criteria
        self.image_maps: np.ndarray | None = None  # [layer, head, rows, cols]
        self.localization: dict = {}  # the Localization Heads variants the discovery was made with
        self._agreement: list[dict] | None = None
        self._agreement_done = False
        self.stored: list[tuple[str, str]] = []  # (key, label) of the session's discoveries, oldest first
        self.key: str | None = None  # the stored discovery shown (None: none, or one not saved)

    def set_stored(self, stored: Sequence[tuple[str, str]], key: str | None) -> None:
        """The session's stored discoveries and the key of the one shown."""
        self.stored = [(str(k), str(label)) for k, label in stored]
        self.key = key
        self.stored_changed.emit()

    def choose(self, key: str) -> None:
        """Ask for the stored discovery ``key`` to be shown (nothing if it is shown already)."""
        if key != self.key:
            self.chosen.emit(key)

    def set_result(
        self,
        scores: np.ndarray | None,
        matrices: np.ndarray | None,
        n_strips: int = 0,
        image_mass: np.ndarray | None = None,
        image_maps: np.ndarray | None = None,
        localization: Mapping | None = None,
    ) -> None:
        self.scores = None if scores is None else np.asarray(scores, dtype=np.float64)
        self.localization = dict(localization or {})  # the Localization Heads variants (agreement)
        self.matrices = None if matrices is None else np.asarray(matrices)
        self.n_strips = int(n_strips)
        self.image_mass, self.image_maps = image_mass, image_maps
        self._agreement, self._agreement_done = None, False
        self.key = None  # which stored discovery this is, if any: set_stored says
        self.result_changed.emit()

    @property
    def has_result(self) -> bool:
        return self.scores is not None

    def ranked(self) -> list[dict]:
        """Every scored head, best first (``core.heads.ranking``; NaN heads left out)."""
        from gaze_explorer.core.heads import ranking

        return [] if self.scores is None else ranking(self.scores)

    def best_head(self) -> Head | None:
        top = self.ranked()[:1]
        return (top[0]["layer"], top[0]["head"]) if top else None

    def histogram(self, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Counts and bin edges of the scored heads' gaze scores (paper Fig. 15)."""
        values = np.array([] if self.scores is None else self.scores[~np.isnan(self.scores)])
        if values.size == 0:
            return np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1)
        return np.histogram(values, bins=bins)

    def layer_counts(self, k: int) -> np.ndarray:
        """How many of the top-``k`` heads sit in each layer: ``[layer]`` (paper Fig. 16)."""
        if self.scores is None:
            return np.zeros(0, dtype=np.int64)
        counts = np.zeros(self.scores.shape[0], dtype=np.int64)
        for r in self.ranked()[: max(int(k), 0)]:
            counts[r["layer"]] += 1
        return counts

    def agreement(self) -> list[dict] | None:
        """The agreement table between criteria (``core.criteria.agreement``), when the discovery
        kept the image mass and maps the other criteria need; computed once."""
        if not self._agreement_done:
            self._agreement_done = True
            if self.scores is not None and self.image_mass is not None and self.image_maps is not None:
                from gaze_explorer.core.criteria import criteria_report

                report = criteria_report(self.scores, self.image_mass, self.image_maps, **self.localization)
                self._agreement = report["agreement"]
        return self._agreement


class InspectorModel:
    """The head the head inspector shows (None: nothing opened yet)."""

    head_changed = Signal()

    def __init__(self) -> None:
        self.head: Head | None = None

    def set_head(self, head: Head | None) -> None:
        head = None if head is None else (int(head[0]), int(head[1]))
        if head != self.head:
            self.head = head
            self.head_changed.emit()


def head_panel_masses(
    run: RunData, grid: ImageTokenGrid, regions: Sequence[Region], head: Head, start: int = 0
) -> np.ndarray:
    """One head's attention mass on each region at steps ``start`` .. ``n_steps - 1`` of ``run``:
    ``[step, region]`` (NaN where a step has no captured rows; a streaming view adds its new steps)."""
    from gaze_explorer.core.scoring import step_trajectory

    if run.rows_at is None or not regions:
        return np.zeros((max(run.n_steps - start, 0), len(regions)))
    one = HeadSet(f"L{head[0]}H{head[1]}", ((int(head[0]), int(head[1])),))
    return step_trajectory(run.rows_at, run.n_steps, grid, regions, one, start)
