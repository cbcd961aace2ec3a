"""Summaries of evaluation generations: accuracy per condition with bootstrap CIs, degenerate
rates, Spearman rho and the schedule-blind trajectory judge for dynamic narration; the stable JSON (``docs/evaluation_json.md``), its
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

from gaze_explorer.core.judges import token_jaccard, words
from gaze_explorer.core.protocol_choices import BASELINE_RULE_PROTOCOLS, BASELINE_RULES, DEFAULT_BASELINE_RULE
from gaze_explorer.core.stats import DEFAULT_RESAMPLES, bootstrap_ci, spearman

SCHEMA_VERSION = 1
PROTOCOLS = ("static", "narration", "dynamic", "region")
CONDITION_ORDER = ("gaze", "image", "localization", "random", "all", "baseline")


def finite_or_none(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def accuracy_summary(
    credits: Sequence[float], degenerate: Sequence[bool], n_resamples: int, seed: int
) -> dict:
    lo, hi = bootstrap_ci(credits, n_resamples=n_resamples, seed=seed)
    return {
        "accuracy": finite_or_none(float(np.mean(credits))) if credits else None,
        "ci95": [finite_or_none(lo), finite_or_none(hi)],
        "degenerate_rate": finite_or_none(float(np.mean(degenerate))) if degenerate else None,
        "n": len(credits),
    }


def same_as_baseline(text: str, baseline: str, rule: str = DEFAULT_BASELINE_RULE) -> bool:
    """Whether a steered answer counts as its strip's unsteered answer under ``rule``."""
    if rule == "jaccard":
        return token_jaccard(text, baseline) > 0.9
    if rule == "authors":
        return words(text) == words(baseline) or token_jaccard(text, baseline) >= 0.85
    if rule == "exact":
        return text.strip() == baseline.strip()
    if rule == "off":
        return False
    raise ValueError(f"unknown baseline rule {rule!r}; choose one of {', '.join(BASELINE_RULES)}")


def _apply_baseline_rule(generations: list[dict], rule: str) -> dict:
    """Mark each steered answer that counts as its strip's unsteered one (``same_as_baseline``) and
    make it a miss, keeping the judge's credit in ``judged_credit``. Returns the rule's counts."""
    base = {g["strip"]: g["text"] for g in generations if g["condition"] == "baseline"}
    n_flagged = n_removed = 0
    for g in generations:
        if g["condition"] == "baseline" or g["strip"] not in base:
            continue
        same = same_as_baseline(g["text"], base[g["strip"]], rule)
        g["same_as_baseline"] = same
        g["judged_credit"] = g["credit"]
        if same:
            n_flagged += 1
            n_removed += g["credit"] > 0
            g["credit"] = 0.0
    return {"n_flagged": n_flagged, "n_removed": n_removed}


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


# The schedule-blind trajectory judge (the paper's dynamic analysis): a strip with this many
# unjudgeable segments (degenerate, or matching no panel) says too little about its order to rank.
MAX_NULL_SEGMENTS = 3


def trajectory(schedule: Sequence[int], choices: Sequence[int | None]) -> dict:
    """One strip's trajectory as attributed segment by segment without the schedule.

    ``choices`` holds each segment's judged panel (1-based; None when unjudgeable), from a judge
    that never sees the scheduled targets. Returns ``excluded`` (at least
    :data:`MAX_NULL_SEGMENTS` null segments, or all of them), ``n_null``, ``rho_schedule`` (Spearman rho of the
    judged panels against the scheduled ones), ``rho_natural`` (against the left-to-right order
    1..N: high when the model narrates in reading order whatever the schedule says) and
    ``starts_correct`` (the first panel described, i.e. the first judged segment, is the first
    scheduled panel). Both rhos follow :func:`strip_spearman` (null segments dropped, undefined
    = 0); all three are None for an excluded strip.
    """
    n_null = sum(c is None for c in choices)
    # a strip too short to reach the threshold is still excluded when nothing in it was judged
    excluded = n_null >= MAX_NULL_SEGMENTS or n_null == len(choices)
    out: dict = {"choices": list(choices), "n_null": n_null, "excluded": excluded}
    if out["excluded"]:
        return {**out, "rho_schedule": None, "rho_natural": None, "starts_correct": None}
    first = next(c for c in choices if c is not None)  # fewer nulls than segments: one is judged
    return {
        **out,
        "rho_schedule": round(strip_spearman(schedule, choices), 6),
        "rho_natural": round(strip_spearman(range(1, len(choices) + 1), choices), 6),
        "starts_correct": bool(schedule and first == schedule[0]),
    }


def trajectory_summary(trajectories: Sequence[Mapping], n_resamples: int, seed: int) -> dict:
    """The trajectory judge over strips: mean rho vs the schedule and vs natural order, and the
    starts-correct rate, each with a bootstrap CI over the strips not excluded."""
    kept = [t for t in trajectories if not t["excluded"]]

    def mean_ci(values: list[float]) -> dict:
        lo, hi = bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
        return {
            "mean": finite_or_none(float(np.mean(values))) if values else None,
            "ci95": [finite_or_none(lo), finite_or_none(hi)],
        }

    starts = [float(t["starts_correct"]) for t in kept]
    return {
        "n_strips": len(trajectories),
        "n_excluded": len(trajectories) - len(kept),
        "rho_schedule": mean_ci([t["rho_schedule"] for t in kept]),
        "rho_natural": mean_ci([t["rho_natural"] for t in kept]),
        "starts_correct": {**mean_ci(starts), "n": len(starts)},
    }


def _dynamic_condition(gens: list[dict], n_resamples: int, seed: int) -> dict:
    credits = [seg["credit"] for g in gens for seg in g["segments"]]
    degenerate = [seg["judge"]["degenerate"] for g in gens for seg in g["segments"]]
    out = accuracy_summary(credits, degenerate, n_resamples, seed)
    n_segments = max((len(g["segments"]) for g in gens), default=0)
    out["segment_accuracy"] = [
        finite_or_none(float(np.mean([g["segments"][s]["credit"] for g in gens if len(g["segments"]) > s])))
        for s in range(n_segments)
    ]
    rhos = []
    for g in gens:
        choices = [
            None if seg["judge"]["choice"] is None else seg["judge"]["choice"] + 1 for seg in g["segments"]
        ]
        g["spearman"] = strip_spearman(g["schedule"], choices)
        g["trajectory"] = trajectory(g["schedule"], choices)
        rhos.append(g["spearman"])
    lo, hi = bootstrap_ci(rhos, n_resamples=n_resamples, seed=seed)
    out["spearman"] = {
        "mean": finite_or_none(float(np.mean(rhos))) if rhos else None,
        "ci95": [finite_or_none(lo), finite_or_none(hi)],
    }
    out["trajectory"] = trajectory_summary([g["trajectory"] for g in gens], n_resamples, seed)
    return out


def build_report(
    *,
    protocol: str,
    model: str,
    generations: list[dict],
    heads: Mapping[str, object],
    settings: Mapping[str, object],
    status: str = "finished",
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    baseline_rule: str = DEFAULT_BASELINE_RULE,
    head_choices: Mapping[str, Mapping] | None = None,
) -> dict:
    """The evaluation JSON from generation records (see docs/evaluation_json.md for the fields);
    ``head_choices`` says how each head set was chosen (``core.heads.HeadChoice.to_dict``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    if baseline_rule not in BASELINE_RULES:
        raise ValueError(
            f"unknown baseline rule {baseline_rule!r}; choose one of {', '.join(BASELINE_RULES)}"
        )
    gens = [dict(g) for g in generations]
    applies = protocol in BASELINE_RULE_PROTOCOLS and baseline_rule != "off"
    rule_counts = _apply_baseline_rule(gens, baseline_rule) if applies else {"n_flagged": 0, "n_removed": 0}
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
        summary = accuracy_summary(credits, [g["degenerate"] for g in these], n_resamples, seed)
        if applies and c != "baseline":
            flagged = [g.get("same_as_baseline", False) for g in these]
            summary["same_as_baseline_rate"] = finite_or_none(float(np.mean(flagged)))
            summary["n_removed"] = sum(
                1 for g in these if g.get("same_as_baseline") and g["judged_credit"] > 0
            )
            judged = [g.get("judged_credit", g["credit"]) for g in these]
            summary["accuracy_without_rule"] = finite_or_none(float(np.mean(judged)))
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
        report["trajectory"] = main["trajectory"] if main else trajectory_summary([], n_resamples, seed)
    report["baseline_rule"] = {
        "rule": baseline_rule,
        "definition": BASELINE_RULES[baseline_rule],
        "applied": applies,
        **rule_counts,
    }
    report["chance"] = _chance(gens)
    report["judge_agreement"] = _judge_agreement(gens)
    report["heads"] = {
        name: ([list(h) for h in hs.heads] if name != "all" else len(hs))
        for name, hs in heads.items()  # type: ignore[attr-defined]
    }
    if head_choices is not None:
        report["head_choices"] = {name: dict(choice) for name, choice in head_choices.items()}
    report["settings"] = dict(settings)
    report["generations"] = gens
    return report


def _chance(gens: list[dict]) -> float | None:
    ns = [len(g["judge"]["scores"]) for g in gens if "judge" in g] + [
        len(seg["judge"]["scores"]) for g in gens for seg in g.get("segments", ())
    ]
    return finite_or_none(float(np.mean([1.0 / n for n in ns if n]))) if ns else None


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
        "rate": finite_or_none(float(np.mean(agree))),
        "n_non_degenerate": len(judged),
        "rate_non_degenerate": finite_or_none(float(np.mean(judged))) if judged else None,
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


def format_percent(x: float | None, width: int = 5) -> str:
    """``x`` as a percentage with one decimal, right-aligned to ``width`` ("n/a" for None)."""
    return "n/a".rjust(width) if x is None else f"{100 * x:{width}.1f}"


def _trajectory_line(t: Mapping) -> str:
    def rho(d: Mapping) -> str:
        lo, hi = d["ci95"]
        return (
            "n/a"
            if d["mean"] is None
            else f"{d['mean']:+.2f}" + ("" if lo is None else f" [{lo:+.2f}, {hi:+.2f}]")
        )

    s = t["starts_correct"]
    starts = "n/a" if s["mean"] is None else f"{format_percent(s['mean']).strip()} %"
    return (
        f"schedule-blind: rho vs schedule {rho(t['rho_schedule'])}, vs order 1..N {rho(t['rho_natural'])}; "
        f"starts correct {starts} ({t['n_strips'] - t['n_excluded']} strips, {t['n_excluded']} excluded"
        f" with >= {MAX_NULL_SEGMENTS} unjudgeable segments)"
    )


def format_table(report: Mapping) -> str:
    """A readable summary: one line per condition (accuracy, CI, degenerate rate)."""
    lines = [
        f"{report['protocol']} on {report['model']}: {report['n_pairs']} pairs, top-K = {report['top_k']}"
        + ("" if report.get("status") == "finished" else f" [{report.get('status')}: partial]"),
        f"{'condition':<10} {'acc %':>6} {'95% CI':>15} {'degen %':>8} {'n':>6}",
    ]
    for name, c in report["conditions"].items():
        lo, hi = c["ci95"]
        ci = "n/a" if lo is None else f"[{format_percent(lo).strip()}, {format_percent(hi).strip()}]"
        lines.append(
            f"{name:<10} {format_percent(c['accuracy']):>6} {ci:>15} {format_percent(c['degenerate_rate']):>8} {c['n']:>6}"
        )
        if "spearman" in c:
            s = c["spearman"]
            slo, shi = s["ci95"]
            rho = "n/a" if s["mean"] is None else f"{s['mean']:+.2f}"
            rng = "" if slo is None else f" [{slo:+.2f}, {shi:+.2f}]"
            segs = " ".join(format_percent(a).strip() for a in c["segment_accuracy"])
            lines.append(f"{'':<10} rho {rho}{rng}; per-segment acc %: {segs}")
        if "trajectory" in c:
            lines.append(f"{'':<10} {_trajectory_line(c['trajectory'])}")
    rule = report.get("baseline_rule")
    if rule and rule.get("applied"):
        lines.append(
            f"same-as-unsteered rule ({rule['rule']}): {rule['n_flagged']} steered answers counted as misses, "
            f"{rule['n_removed']} of them judged hits; without it: "
            + ", ".join(
                f"{name} {format_percent(c['accuracy_without_rule']).strip()} %"
                for name, c in report["conditions"].items()
                if "accuracy_without_rule" in c
            )
        )
    if report.get("chance") is not None:
        lines.append(f"chance: {format_percent(report['chance']).strip()} %")
    agreement = report.get("judge_agreement")
    if agreement:
        lines.append(
            f"caption judge agrees with the exact judge on {format_percent(agreement['rate']).strip()} % "
            f"of {agreement['n']} generations"
        )
    return "\n".join(lines)
