"""Sweeps of an evaluation protocol over K and the bias strength (the paper's Fig. 8, Tab. 4, 5, 7):
the ``--over`` syntax, the grid of cells, the sweep JSON and resuming from it.

A cell is one evaluation of one head set: ``(criterion, k, strength, prompt)``, where the criterion
is a head-selection criterion (``gaze``, ``image``, ``localization``), the ``random`` control, or
``all`` (run once per strength and prompt: it has no K). The sweep JSON is rewritten atomically
after every cell, so an interrupted sweep keeps every finished cell and ``--resume`` skips them.
Pure Python (no torch), schema in ``docs/paper_protocol.md``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gaze_explorer.core.errors import SweepError
from gaze_explorer.core.protocol_choices import CRITERIA

SWEEP_SCHEMA_VERSION = 1
SWEEP_PARAMETERS = ("k", "strength")
SWEEP_CRITERIA = CRITERIA  # every criterion can be swept
CONTROL = "random"  # always swept beside the criteria, at the same K
ALL_HEADS = "all"  # once per (strength, prompt)


def parse_over(text: str) -> tuple[str, tuple[float, ...]]:
    """``k=5,10,50`` -> ("k", (5, 10, 50)); ``strength=1,10,1e4`` -> ("strength", (1.0, 10.0, 10000.0))."""
    name, sep, values = str(text).partition("=")
    name = name.strip()
    if not sep or name not in SWEEP_PARAMETERS:
        raise SweepError(f"--over {text!r}: write k=5,10,50 or strength=1,10,100")
    parts = [v.strip() for v in values.split(",") if v.strip()]
    if not parts:
        raise SweepError(f"--over {text!r}: no values after '='")
    out: list[float] = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise SweepError(f"--over {text!r}: {p!r} is not a number") from None
        if name == "k" and (v != int(v) or v < 1):
            raise SweepError(f"--over {text!r}: K must be a whole number >= 1, got {p}")
        if name == "strength" and not (math.isfinite(v) and v > 0):
            raise SweepError(f"--over {text!r}: the strength must be a positive number, got {p}")
        out.append(int(v) if name == "k" else v)
    if len(set(out)) != len(out):
        raise SweepError(f"--over {text!r}: a value is repeated")
    return name, tuple(out)


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per non-empty line (``--prompts FILE``: the paper's prompt-sensitivity runs)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"cannot read prompts file {path}: {exc}") from exc
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise SweepError(f"prompts file {path} holds no prompt (one per line)")
    return prompts


@dataclass(frozen=True)
class SweepCell:
    """One evaluation of the sweep. ``k`` is None for all heads; ``prompt`` None: the protocol's."""

    criterion: str
    k: int | None
    strength: float
    prompt: str | None

    def key(self) -> tuple:
        return (self.criterion, self.k, float(self.strength), self.prompt)

    def label(self) -> str:
        k = "" if self.k is None else f" K={self.k}"
        return f"{self.criterion}{k} strength={self.strength:g}"


def sweep_cells(
    criteria: Sequence[str],
    ks: Sequence[int],
    strengths: Sequence[float],
    prompts: Sequence[str | None],
    *,
    include_all: bool = True,
) -> list[SweepCell]:
    """Every cell, prompt by prompt and strength by strength: each K for each criterion and the
    random control, then all heads once."""
    bad = [c for c in criteria if c not in SWEEP_CRITERIA]
    if bad or not criteria:
        raise SweepError(f"unknown criteria {bad}; choose among {', '.join(SWEEP_CRITERIA)}")
    cells = []
    for prompt in prompts:
        for strength in strengths:
            for k in ks:
                cells += [SweepCell(c, int(k), float(strength), prompt) for c in (*criteria, CONTROL)]
            if include_all:
                cells.append(SweepCell(ALL_HEADS, None, float(strength), prompt))
    return cells


def cell_record(cell: SweepCell, condition: Mapping, heads: Mapping | None = None) -> dict:
    """A cell's JSON: its coordinates and its condition's summary from the evaluation report."""
    rec: dict = {
        "criterion": cell.criterion,
        "k": cell.k,
        "strength": float(cell.strength),
        "prompt": cell.prompt,
        "accuracy": condition.get("accuracy"),
        "ci95": list(condition.get("ci95", [None, None])),
        "n": condition.get("n", 0),
        "degenerate_rate": condition.get("degenerate_rate"),
    }
    for key in (
        "accuracy_without_rule",
        "same_as_baseline_rate",
        "spearman",
        "trajectory",
        "segment_accuracy",
    ):
        if key in condition:
            rec[key] = condition[key]
    if heads is not None:
        rec["heads"] = dict(heads)
    return rec


def sweep_report(
    *,
    protocol: str,
    model: str,
    criteria: Sequence[str],
    over: Mapping[str, Sequence[float]],
    prompts: Sequence[str | None],
    settings: Mapping,
    baselines: Mapping[str, Mapping],
    cells: Iterable[Mapping],
    n_cells: int,
    status: str,
) -> dict:
    """The sweep JSON (see docs/paper_protocol.md)."""
    cells = list(cells)
    return {
        "schema_version": SWEEP_SCHEMA_VERSION,
        "kind": "sweep",
        "protocol": protocol,
        "model": model,
        "status": status,
        "criteria": list(criteria),
        "over": {name: list(values) for name, values in over.items()},
        "prompts": list(prompts),
        "n_cells": n_cells,
        "n_done": len(cells),
        "settings": dict(settings),
        "baselines": dict(baselines),
        "cells": cells,
    }


def record_key(rec: Mapping) -> tuple:
    """The key of a cell record (matches :meth:`SweepCell.key`)."""
    return (rec["criterion"], rec["k"], float(rec["strength"]), rec["prompt"])


def load_resume(path: str | Path, *, protocol: str, model: str) -> dict:
    """A previous sweep JSON to continue: refused when it is not a sweep of this protocol and model."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"--resume {p}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SweepError(f"--resume {p} is not a sweep JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("kind") != "sweep" or not isinstance(data.get("cells"), list):
        raise SweepError(f"--resume {p} is not a sweep JSON (written by evaluate sweep --json)")
    if data.get("protocol") != protocol or data.get("model") != model:
        raise SweepError(
            f"--resume {p} is a {data.get('protocol')} sweep of {data.get('model')}, not {protocol} of {model}"
        )
    return data


CURVE_METRICS = ("accuracy", "spearman")


def _metric(rec: Mapping, metric: str) -> tuple[float, float, float] | None:
    """A cell's ``(value, lo, hi)`` of ``metric``: its accuracy, or (dynamic) the mean Spearman rho
    between the schedule and the judged panels; None when the cell has none (refused)."""
    if metric == "accuracy":
        value, ci = rec.get("accuracy"), rec.get("ci95") or [None, None]
    elif metric == "spearman":
        rho = rec.get("spearman") or {}
        value, ci = rho.get("mean"), rho.get("ci95") or [None, None]
    else:
        raise SweepError(f"unknown curve metric {metric!r}; choose one of {', '.join(CURVE_METRICS)}")
    if value is None:
        return None
    lo, hi = ci
    return float(value), (math.nan if lo is None else float(lo)), (math.nan if hi is None else float(hi))


def curves(
    cells: Sequence[Mapping], parameter: str, metric: str = "accuracy"
) -> dict[str, list[tuple[float, float, float, float]]]:
    """The points ``(x, value, lo, hi)`` of ``metric`` (``accuracy``, or ``spearman``: dynamic's rho
    vs the schedule) along ``parameter`` (``k`` or ``strength``), sorted by
    x, one curve per criterion, and per prompt and per value of the other parameter when those vary
    (named ``"gaze, prompt 2, strength=10"``). All heads (no K) only has a curve along the strength.
    A refused cell (no accuracy, e.g. a control pool smaller than K) is a NaN point, so a line drawn
    through the curve breaks there instead of bridging the gap."""
    other = "strength" if parameter == "k" else "k"
    prompts = list(dict.fromkeys(rec["prompt"] for rec in cells))
    others = {rec[other] for rec in cells if rec[other] is not None}
    out: dict[str, list[tuple[float, float, float, float]]] = {}
    for rec in cells:
        x = rec.get(parameter)
        if x is None:
            continue
        label = rec["criterion"]
        if len(prompts) > 1:
            label += f", prompt {prompts.index(rec['prompt']) + 1}"
        if len(others) > 1 and rec[other] is not None:
            label += f", {other}={rec[other]:g}"
        value = _metric(rec, metric)
        point = (float(x), math.nan, math.nan, math.nan) if value is None else (float(x), *value)
        out.setdefault(label, []).append(point)
    return {name: sorted(points) for name, points in out.items()}
