"""Spans: named step ranges of a run (e.g. the tokens that describe one object), their parsing,
checking and automatic proposal.

A span's heatmap is the selected heads' attention over the image tokens averaged over its steps
(``core.scoring.span_heat``: raw, or value-weighted with the run's value norms; sessions store them
as ``attention/value_norms`` since they were recorded, older ones are raw only). Spans round-trip
through the session as the run attribute ``spans_json`` (``docs/session_schema.md``). A proposal
groups consecutive steps whose per-step heatmap peaks in the same region
(``core.scoring.step_peaks``): the run's panels or boxes, or for a natural image a coarse grid of
blocks (:func:`block_regions`); :func:`propose_run_spans` does it for a run.

:class:`SpanModel` is the app's Qt-free span state (psygnal, like ``core.state``): the span on
screen, the raw / value-weighted switch, and each run's named spans and value norms, loaded from
and saved to the session through a :class:`SpanStore` the app attaches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from psygnal import Signal

from gaze_explorer.core.errors import SpanError
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.regions import ImageTokenGrid, Region
from gaze_explorer.core.scoring import overlay_heat, step_peaks

_RANGE = re.compile(r"^\s*(?:(?P<name>[^:,]+?)\s*:)?\s*(?P<start>\d+)\s*(?:-\s*(?P<end>\d+))?\s*$")


@dataclass(frozen=True)
class Span:
    """Decode steps ``start`` to ``end`` (both included, 0-based) of a run, under a name."""

    name: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise SpanError(f"span {self.name!r}: steps {self.start}-{self.end} (need 0 <= start <= end)")

    @property
    def steps(self) -> range:
        return range(self.start, self.end + 1)

    def to_dict(self) -> dict:
        return {"name": self.name, "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, data: Mapping) -> Span:
        try:
            return cls(str(data["name"]), int(data["start"]), int(data["end"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SpanError(f'a span is {{"name", "start", "end"}}, got {data!r:.80}') from exc


def parse_spans(text: str) -> list[Span]:
    """Spans from ``"0-12,13-30"`` (named ``"0-12"``, ``"13-30"``), ``"intro:0-12,dog:13-30"`` or a
    single step ``"5"``."""
    spans = []
    for part in str(text).split(","):
        m = _RANGE.match(part)
        if not m:
            raise SpanError(
                f"--spans: {part.strip()!r} is not a step range; write START-END (e.g. 0-12,13-30)"
            )
        start = int(m["start"])
        end = int(m["end"]) if m["end"] is not None else start
        spans.append(Span(m["name"] or f"{start}-{end}", start, end))
    return spans


def spans_from_json(data) -> list[Span]:
    """Spans from parsed JSON: a list of ``{"name", "start", "end"}``, or ``{"name": [start, end]}``."""
    if isinstance(data, Mapping):
        out = []
        for name, value in data.items():
            if not (isinstance(value, Sequence) and len(value) == 2):
                raise SpanError(f"span {name!r}: give [start, end], got {value!r:.60}")
            out.append(Span.from_dict({"name": name, "start": value[0], "end": value[1]}))
        return out
    if isinstance(data, list):
        return [Span.from_dict(d if isinstance(d, Mapping) else {}) for d in data]
    raise SpanError('spans JSON must be a list of {"name", "start", "end"} or {"name": [start, end]}')


def read_spans(arg: str) -> list[Span]:
    """``--spans``: a spans JSON file when ``arg`` names an existing file, else ``"0-12,13-30"``."""
    p = Path(arg)
    if p.suffix.lower() == ".json" or p.is_file():
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpanError(f"spans file {p} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SpanError(f"cannot read spans file {p}: {exc}") from exc
        return spans_from_json(data)
    return parse_spans(arg)


def check_spans(spans: Sequence[Span], n_steps: int) -> list[Span]:
    """The spans, checked against a run of ``n_steps`` decode steps; names must be unique."""
    names = [s.name for s in spans]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SpanError(f"span names must be unique; repeated: {', '.join(dup)}")
    for s in spans:
        if s.end >= n_steps:
            raise SpanError(f"span {s.name!r} ends at step {s.end}, but the run has steps 0-{n_steps - 1}")
    return list(spans)


def dumps_spans(spans: Sequence[Span]) -> str:
    """The session attribute's JSON text."""
    return json.dumps([s.to_dict() for s in spans])


def loads_spans(text: str | None) -> list[Span]:
    """Spans from the session attribute's JSON text (none when absent)."""
    if not text:
        return []
    try:
        return spans_from_json(json.loads(text))
    except json.JSONDecodeError as exc:
        raise SpanError(f"stored spans are not valid JSON: {exc}") from exc


def block_regions(grid: ImageTokenGrid, n_rows: int = 3, n_cols: int = 3) -> list[Region]:
    """A coarse ``n_rows x n_cols`` partition of the token grid (at most the grid's size): the
    regions a natural image's heat peaks are compared in when the run has no panels or boxes."""
    n_rows, n_cols = min(n_rows, grid.rows), min(n_cols, grid.cols)
    r_of = np.arange(grid.rows) * n_rows // grid.rows  # token row -> block row
    c_of = np.arange(grid.cols) * n_cols // grid.cols
    block = (r_of[:, None] * n_cols + c_of[None, :]).reshape(-1)  # [n_image_tokens]
    out = []
    for b in range(n_rows * n_cols):
        idx = np.flatnonzero(block == b)
        x0, y0 = grid.token_boxes[idx, 0].min(), grid.token_boxes[idx, 1].min()
        x1, y1 = grid.token_boxes[idx, 2].max(), grid.token_boxes[idx, 3].max()
        out.append(Region(f"block {b // n_cols + 1},{b % n_cols + 1}", "tokens", idx, (x0, y0, x1, y1)))
    return out


def propose_spans(
    peaks: Sequence[int], region_names: Sequence[str] | None = None, min_steps: int = 2
) -> list[Span]:
    """Spans of consecutive steps whose heatmap peaks in the same region (``peaks[step]``: region
    index, -1 for a step without heat). Runs shorter than ``min_steps`` and steps without heat
    start no span. Each span is named after its region (``"P2"``; ``"P2 #2"`` when it recurs)."""
    if min_steps < 1:
        raise SpanError(f"min_steps must be >= 1, got {min_steps}")
    spans: list[Span] = []
    seen: dict[str, int] = {}
    peaks = [int(p) for p in peaks]
    start = 0
    while start < len(peaks):
        end = start
        while end + 1 < len(peaks) and peaks[end + 1] == peaks[start]:
            end += 1
        region = peaks[start]
        if region >= 0 and end - start + 1 >= min_steps:
            base = region_names[region] if region_names is not None else f"region {region + 1}"
            seen[base] = seen.get(base, 0) + 1
            spans.append(Span(base if seen[base] == 1 else f"{base} #{seen[base]}", start, end))
        start = end + 1
    return spans


def propose_run_spans(
    rows_at: Callable[[int], np.ndarray | None],
    n_steps: int,
    grid: ImageTokenGrid,
    regions: Sequence[Region],
    heads: HeadSet,
    min_steps: int = 2,
) -> list[Span]:
    """:func:`propose_spans` for a run read step by step (``rows_at(step)`` -> ``[layer, head,
    key]`` or None): each step's heat peak among ``regions`` (its panels or boxes; fewer than two
    -- none, or the whole image of a natural image run without panels -- cannot tell peaks apart,
    so 3x3 :func:`block_regions`). Empty when no ``min_steps`` consecutive steps peak in one region."""
    regions = list(regions) if len(regions) >= 2 else block_regions(grid)
    heats = np.full((n_steps, grid.rows, grid.cols), np.nan)  # [step, rows, cols]
    for step in range(n_steps):
        rows = rows_at(step)
        if rows is not None:
            heats[step] = overlay_heat(rows, grid, heads)
    return propose_spans(step_peaks(heats, regions), [r.name for r in regions], min_steps)


def span_caption(span: Span, n_steps: int, weighted: bool) -> str:
    """How the app names a span's mean heat, e.g. ``span 'dog': steps 3-11, mean of 9 steps · raw
    attention`` (a span reaching past a still-short run names the steps it has)."""
    last = min(span.end, max(int(n_steps) - 1, span.start))
    name = f"span {span.name!r}: " if span.name else "span: "
    kind = "value-weighted (‖v‖, renormalised over the image)" if weighted else "raw attention"
    return f"{name}steps {span.start}-{last}, mean of {last - span.start + 1} steps · {kind}"


class SpanStore(Protocol):
    """Where a run's spans and value norms live (the app's session file); ``run`` is a
    ``core.state.RunData``."""

    def load_spans(self, run: Any) -> list[Span]: ...

    def save_spans(self, run: Any, spans: Sequence[Span]) -> None: ...

    def load_value_norms(self, run: Any) -> np.ndarray | None: ...


NORMS_MISSING = (
    "value weighting needs the run's value-vector norms, and this run has none (a session written "
    "before they were recorded, or a run that was not saved): spans are raw attention"
)


class SpanModel:
    """The span on screen, the raw / value-weighted switch and each run's named spans.

    ``selection`` is the span whose mean the overlay shows (None: per-step mode); it has a name
    once it is one of the run's named spans, ``""`` while it is only a dragged range. Spans and
    norms are loaded once per run from the attached :class:`SpanStore` (none attached: kept in
    memory only). Runs are keyed by identity, so a run streaming without an id yet works too.
    """

    selection_changed = Signal()  # the span on screen changed (or was cleared)
    spans_changed = Signal()  # a run's named spans changed
    weighting_changed = Signal()  # the raw / value-weighted switch changed

    def __init__(self) -> None:
        self.selection: Span | None = None
        self.value_weighted = False
        self.store: SpanStore | None = None
        self._spans: dict[int, tuple[Any, list[Span]]] = {}  # id(run) -> (run, its spans)
        self._norms: dict[int, tuple[Any, np.ndarray | None]] = {}

    def attach(self, store: SpanStore | None) -> None:
        """Load and save spans (and read norms) through ``store``; forgets what was cached."""
        self.store = store
        self.forget()

    def forget(self) -> None:
        """Drop the cached spans and norms and the selection (another session was opened)."""
        self._spans.clear()
        self._norms.clear()
        self.clear()

    def prune(self, runs: Sequence[Any]) -> None:
        """Forget the cached spans and norms of runs no longer in ``runs`` (the session's)."""
        alive = {id(r): r for r in runs}
        for cache in (self._spans, self._norms):
            for key in [k for k, (run, _) in cache.items() if alive.get(k) is not run]:
                del cache[key]

    # ---- the span on screen ------------------------------------------------------------------
    def select(self, start: int, end: int) -> None:
        """Show the mean over steps ``start``..``end`` (either order; unnamed)."""
        lo, hi = sorted((int(start), int(end)))
        span = Span("", max(lo, 0), max(hi, 0))
        if span != self.selection:
            self.selection = span
            self.selection_changed.emit()

    def show(self, span: Span) -> None:
        """Show a named span."""
        if span != self.selection:
            self.selection = span
            self.selection_changed.emit()

    def clear(self) -> None:
        """Back to per-step mode."""
        if self.selection is not None:
            self.selection = None
            self.selection_changed.emit()

    def set_value_weighted(self, on: bool) -> None:
        if bool(on) != self.value_weighted:
            self.value_weighted = bool(on)
            self.weighting_changed.emit()

    # ---- a run's named spans -----------------------------------------------------------------
    def spans(self, run: Any) -> list[Span]:
        """The run's named spans (loaded from the store the first time)."""
        if run is None:
            return []
        cached = self._spans.get(id(run))
        if cached is not None and cached[0] is run:
            return list(cached[1])
        loaded = []
        if self.store is not None and getattr(run, "run_id", None) is not None:
            loaded = list(self.store.load_spans(run))
        self._spans[id(run)] = (run, loaded)
        return list(loaded)

    def add(self, run: Any, name: str) -> Span:
        """Name the selected range and keep it with the run (saved); returns the named span."""
        if self.selection is None:
            raise SpanError("select a step range first: drag across the timeline")
        name = str(name).strip()
        if not name:
            raise SpanError("give the span a name")
        span = Span(name, self.selection.start, self.selection.end)
        self._set(run, [*self.spans(run), span])
        self.show(span)
        return span

    def remove(self, run: Any, name: str) -> None:
        """Delete the run's span ``name`` (saved)."""
        kept = [s for s in self.spans(run) if s.name != name]
        self._set(run, kept)
        if self.selection is not None and self.selection.name == name:
            self.clear()

    def replace(self, run: Any, spans: Sequence[Span]) -> None:
        """Make ``spans`` the run's named spans (saved), e.g. a proposal."""
        self._set(run, list(spans))

    def _set(self, run: Any, spans: list[Span]) -> None:
        if run is None:
            raise SpanError("no run is shown")
        check_spans(spans, max(int(getattr(run, "n_steps", 0)), 1))
        if self.store is not None and getattr(run, "run_id", None) is not None:
            self.store.save_spans(run, spans)
        self._spans[id(run)] = (run, list(spans))
        self.spans_changed.emit()

    # ---- value norms -------------------------------------------------------------------------
    def value_norms(self, run: Any) -> np.ndarray | None:
        """The run's value norms ``[layer, head, key]``, or None (not recorded, not saved)."""
        if run is None:
            return None
        cached = self._norms.get(id(run))
        if cached is not None and cached[0] is run:
            return cached[1]
        if self.store is None or getattr(run, "run_id", None) is None:
            return None  # not saved (yet): asked again once the run has an id
        norms = self.store.load_value_norms(run)
        self._norms[id(run)] = (run, norms)
        return norms

    def weights_for(self, run: Any) -> np.ndarray | None:
        """The norms the overlay weights ``run``'s span by: None when the switch is on raw or the
        run has no norms (raw is then the only mode)."""
        return self.value_norms(run) if self.value_weighted else None
