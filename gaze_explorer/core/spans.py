"""Spans: named step ranges of a run (e.g. the tokens that describe one object), their parsing,
checking and automatic proposal.

A span's heatmap is the selected heads' attention over the image tokens averaged over its steps
(``core.scoring.span_heat``: raw, or value-weighted when value norms are at hand; sessions do not
store them, so spans read back from a session are raw). Spans round-trip through the session as
the run attribute ``spans_json`` (``docs/session_schema.md``). A proposal groups consecutive steps
whose per-step heatmap peaks in the same region (``core.scoring.step_peaks``): the run's panels or
boxes, or for a natural image a coarse grid of blocks (:func:`block_regions`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gaze_explorer.core.errors import SpanError
from gaze_explorer.core.regions import ImageTokenGrid, Region

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
