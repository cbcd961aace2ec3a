"""Summaries of evaluation generations: accuracy per condition with bootstrap CIs, degenerate
rates, Spearman rho for dynamic narration; the stable JSON (``docs/evaluation_json.md``), its
atomic writing, and the readable table the CLI prints.

Pure Python + numpy, so scripts can rebuild a report from the ``generations`` of saved JSON
files (e.g. to merge shards) without torch.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gaze_explorer.core.stats import bootstrap_ci, spearman

SCHEMA_VERSION = 1
PROTOCOLS = ("static", "narration", "dynamic", "region")
CONDITION_ORDER = ("gaze", "random", "all", "baseline")


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _summary(credits: Sequence[float], degenerate: Sequence[bool], n_resamples: int, seed: int) -> dict:
    lo, hi = bootstrap_ci(credits, n_resamples=n_resamples, seed=seed)
    return {
        "accuracy": _finite(float(np.mean(credits))) if credits else None,
        "ci95": [_finite(lo), _finite(hi)],
        "degenerate_rate": _finite(float(np.mean(degenerate))) if degenerate else None,
        "n": len(credits),
    }


def _same_as_baseline(generations: list[dict]) -> None:
    """Narration: a steered answer identical to its strip's unsteered answer is a miss."""
    base = {g["strip"]: g["text"].strip() for g in generations if g["condition"] == "baseline"}
    for g in generations:
        if g["condition"] != "baseline" and g["strip"] in base:
            same = g["text"].strip() == base[g["strip"]]
            g["same_as_baseline"] = same
            if same:
                g["credit"] = 0.0


def strip_spearman(schedule: Sequence[int], choices: Sequence[int | None]) -> float:
    """rho between a strip's scheduled panels and the judged ones (segments judged None dropped).

    Undefined rho (fewer than 2 judged segments, or all judged the same panel) counts as 0: no
    order was recovered.
    """
    pairs = [(s, c) for s, c in zip(schedule, choices, strict=False) if c is not None]
    if len(pairs) < 2:
        return 0.0
    rho = spearman([p[0] for p in pairs], [p[1] for p in pairs])
    return 0.0 if math.isnan(rho) else rho


def _dynamic_condition(gens: list[dict], n_resamples: int, seed: int) -> dict:
    credits = [seg["credit"] for g in gens for seg in g["segments"]]
    degenerate = [seg["judge"]["degenerate"] for g in gens for seg in g["segments"]]
    out = _summary(credits, degenerate, n_resamples, seed)
    n_segments = max((len(g["segments"]) for g in gens), default=0)
    out["segment_accuracy"] = [
        _finite(float(np.mean([g["segments"][s]["credit"] for g in gens if len(g["segments"]) > s])))
        for s in range(n_segments)
    ]
    rhos = []
    for g in gens:
        choices = [
            None if seg["judge"]["choice"] is None else seg["judge"]["choice"] + 1 for seg in g["segments"]
        ]
        g["spearman"] = strip_spearman(g["schedule"], choices)
        rhos.append(g["spearman"])
    lo, hi = bootstrap_ci(rhos, n_resamples=n_resamples, seed=seed)
    out["spearman"] = {
        "mean": _finite(float(np.mean(rhos))) if rhos else None,
        "ci95": [_finite(lo), _finite(hi)],
    }
    return out


def build_report(
    *,
    protocol: str,
    model: str,
    generations: list[dict],
    heads: Mapping[str, object],
    settings: Mapping[str, object],
    status: str = "finished",
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """The evaluation JSON from generation records (see docs/evaluation_json.md for the fields)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    gens = [dict(g) for g in generations]
    if protocol == "narration":
        _same_as_baseline(gens)
    present = [c for c in CONDITION_ORDER if any(g["condition"] == c for g in gens)]
    conditions: dict[str, dict] = {}
    for c in present:
        these = [g for g in gens if g["condition"] == c]
        if protocol == "dynamic":
            conditions[c] = _dynamic_condition(these, n_resamples, seed)
            continue
        if c == "baseline":
            credits = [x for g in these for x in g["credits"]]
        else:
            credits = [g["credit"] for g in these]
        summary = _summary(credits, [g["degenerate"] for g in these], n_resamples, seed)
        if protocol == "narration" and c != "baseline":
            summary["same_as_baseline_rate"] = _finite(
                float(np.mean([g.get("same_as_baseline", False) for g in these]))
            )
        conditions[c] = summary
    gaze_heads = heads.get("gaze")
    report: dict = {
        "schema_version": SCHEMA_VERSION,
        "protocol": protocol,
        "model": model,
        "status": status,
        "n_pairs": max((v["n"] for v in conditions.values()), default=0),
        "top_k": len(gaze_heads) if gaze_heads is not None else None,
        "conditions": conditions,
    }
    if protocol == "dynamic":
        main = conditions.get("gaze") or next(iter(conditions.values()), None)
        report["spearman"] = main["spearman"] if main else {"mean": None, "ci95": [None, None]}
        report["segment_accuracy"] = main["segment_accuracy"] if main else []
    report["chance"] = _chance(gens)
    report["judge_agreement"] = _judge_agreement(gens)
    report["heads"] = {
        name: ([list(h) for h in hs.heads] if name != "all" else len(hs))
        for name, hs in heads.items()  # type: ignore[attr-defined]
    }
    report["settings"] = dict(settings)
    report["generations"] = gens
    return report


def _chance(gens: list[dict]) -> float | None:
    ns = [len(g["judge"]["scores"]) for g in gens if "judge" in g] + [
        len(seg["judge"]["scores"]) for g in gens for seg in g.get("segments", ())
    ]
    return _finite(float(np.mean([1.0 / n for n in ns if n]))) if ns else None


def _judge_agreement(gens: list[dict]) -> dict | None:
    """How often the lexical caption judge agrees with the exact attribute judge."""
    pairs = [(g["judge"], g["caption_judge"]) for g in gens if "caption_judge" in g]
    if not pairs:
        return None
    agree = [
        (exact["choice"] is None and cap["choice"] is None)
        or (cap["choice"] is not None and cap["choice"] in exact["best"])
        for exact, cap in pairs
    ]
    judged = [a for a, (exact, _) in zip(agree, pairs, strict=True) if not exact["degenerate"]]
    return {
        "n": len(agree),
        "rate": _finite(float(np.mean(agree))),
        "n_non_degenerate": len(judged),
        "rate_non_degenerate": _finite(float(np.mean(judged))) if judged else None,
    }


def write_json(path: str | Path, report: Mapping) -> Path:
    """Write ``report`` atomically (a temporary file in the same folder, then a rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def _pct(x: float | None) -> str:
    return "  n/a" if x is None else f"{100 * x:5.1f}"


def format_table(report: Mapping) -> str:
    """A readable summary: one line per condition (accuracy, CI, degenerate rate)."""
    lines = [
        f"{report['protocol']} on {report['model']}: {report['n_pairs']} pairs, top-K = {report['top_k']}"
        + ("" if report.get("status") == "finished" else f" [{report.get('status')}: partial]"),
        f"{'condition':<10} {'acc %':>6} {'95% CI':>15} {'degen %':>8} {'n':>6}",
    ]
    for name, c in report["conditions"].items():
        lo, hi = c["ci95"]
        ci = "n/a" if lo is None else f"[{_pct(lo).strip()}, {_pct(hi).strip()}]"
        lines.append(
            f"{name:<10} {_pct(c['accuracy']):>6} {ci:>15} {_pct(c['degenerate_rate']):>8} {c['n']:>6}"
        )
        if "spearman" in c:
            s = c["spearman"]
            slo, shi = s["ci95"]
            rho = "n/a" if s["mean"] is None else f"{s['mean']:+.2f}"
            rng = "" if slo is None else f" [{slo:+.2f}, {shi:+.2f}]"
            segs = " ".join(_pct(a).strip() for a in c["segment_accuracy"])
            lines.append(f"{'':<10} rho {rho}{rng}; per-segment acc %: {segs}")
    if report.get("chance") is not None:
        lines.append(f"chance: {_pct(report['chance']).strip()} %")
    agreement = report.get("judge_agreement")
    if agreement:
        lines.append(
            f"caption judge agrees with the exact judge on {_pct(agreement['rate']).strip()} % "
            f"of {agreement['n']} generations"
        )
    return "\n".join(lines)
