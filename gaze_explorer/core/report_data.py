"""The replication report's numbers (``gaze-explorer report``), from the stages' own JSON and arrays.

Pure Python + numpy: the paper's Qwen3-VL-8B reference numbers in one table (``PAPER``, from
the paper's text; the COCO size classes are ``core.coco.PAPER_REGION_ACCURACY``), the sections of
``report.json`` built from what ``discover --out``, ``evaluate --json`` and ``evaluate sweep --json``
wrote, the K grid of the sweep, and the rows of ``report --compare`` (the paper's Tab. 2 / Tab. 9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gaze_explorer.core.coco import PAPER_REGION_ACCURACY, SIZE_CLASSES
from gaze_explorer.core.heads import ranking
from gaze_explorer.core.sweep import ALL_HEADS, CONTROL

REPORT_SCHEMA_VERSION = 1
# the paper's model: Qwen3-VL-8B, 36 layers x 32 heads
PAPER_MODEL = "Qwen3-VL-8B"
PAPER_N_HEADS = 36 * 32
PAPER_KS = (5, 10, 50, 100, 150, 200, 350, 500)
# every reference number the report shows beside ours (fractions; rho as is); /work/shared/PAPER_PROTOCOL.md
PAPER: dict = {
    "model": PAPER_MODEL,
    "top_k": 100,
    # static VQA at K=100; image and localization heads at K=100 from Tab. 5
    "static": {"gaze": 0.831, "image": 0.69, "localization": 0.602, "random": 0.146, "all": 0.009},
    "narration": {"gaze": 0.794, "image": 0.591, "localization": 0.465, "random": 0.056, "all": 0.005},
    "dynamic_rho": {"gaze": 0.87, "image": 0.42, "localization": 0.33, "random": -0.15},
    "k_sweep": {  # Fig. 8, VQA: K -> (gaze, non-gaze)
        5: (0.37, 0.08),
        10: (0.453, 0.098),
        50: (0.632, 0.157),
        100: (0.831, 0.146),
        150: (0.756, 0.138),
        200: (0.73, 0.135),
        350: (0.58, 0.14),
        500: (0.28, 0.14),
    },
    "criteria_k": {  # Tab. 5, VQA accuracy by criterion and K
        "gaze": {10: 0.453, 50: 0.632, 100: 0.831, 150: 0.756, 200: 0.73},
        "image": {10: 0.10, 50: 0.362, 100: 0.69, 150: 0.608, 200: 0.582},
        "localization": {10: 0.243, 50: 0.417, 100: 0.602, 150: 0.595, 200: 0.588},
    },
    "agreement": {  # Tab. 6: overlaps of the top-K sets
        10: {"gaze&image": 0, "gaze&localization": 1},
        100: {"gaze&image": 43, "gaze&localization": 26, "image&localization": 33, "common": 13},
    },
    "gaze_layers": (20, 28),  # the 8B's gaze heads sit in layers 20-28 of 36
    "n_layers": 36,
    "region": {size: {"gaze": g, "random": c} for size, (g, c) in PAPER_REGION_ACCURACY.items()},
    "models": {  # Tab. 2/9/10: peak K, gaze / non-gaze / all heads
        "Qwen3-VL-2B": (10, 0.686, 0.013, 0.0),
        "Qwen3-VL-4B": (75, 0.729, 0.015, 0.0),
        "Qwen3-VL-8B": (100, 0.831, 0.146, 0.009),
        "Qwen3-VL-32B": (500, 0.702, 0.12, 0.002),
        "Ovis1.5-8B": (100, 0.687, 0.13, 0.027),
        "Qwen2-VL-7B": (90, 0.662, 0.0, 0.008),
        "InternVL3.5-8B": (140, 0.627, 0.31, 0.008),
        "LLaVA-1.5-13B": (160, 0.39, 0.138, 0.0),
        "LLaVA-NeXT-7B": (100, 0.353, 0.267, 0.0),
        "Bunny-3B": (10, 0.083, 0.0, 0.0),
    },
}


def sweep_ks(n_heads: int, quick: bool = False) -> tuple[int, ...]:
    """The paper's K grid scaled to this model's head count (the peak K grows with it), at most half
    the heads (the random control needs the rest); ``quick`` keeps every other value."""
    scale = n_heads / PAPER_N_HEADS
    ks = sorted({min(max(1, round(k * scale)), n_heads // 2) for k in PAPER_KS})
    if quick and len(ks) > 4:
        ks = ks[::2] + ([ks[-1]] if ks[-1] not in ks[::2] else [])
    return tuple(ks)


def _num(x) -> float | None:
    return None if x is None else float(x)


def discovery_section(
    meta: Mapping, scores: np.ndarray, matrices: np.ndarray, n_top: int, k: int, n_bins: int = 20
) -> dict:
    """Fig. 2a (the top heads' N x N matrices), the score histogram, the layer map (every head's
    score, mean and max per layer, the top-K heads per layer), the depth of the gaze heads and Tab. 6."""
    n_layers, n_heads = scores.shape
    finite = scores[np.isfinite(scores)]
    counts, edges = np.histogram(finite, bins=n_bins)
    top = [(r["layer"], r["head"]) for r in ranking(scores)[:k]]  # the ranking discover writes
    per_layer = [sum(1 for layer, _ in top if layer == i) for i in range(n_layers)]
    depth = float(np.mean([layer for layer, _ in top]) / max(n_layers - 1, 1))
    return {
        "n_strips": int(meta.get("n_strips", 0)),
        "n_panels": int(meta.get("n_panels", 0)),
        "n_layers": n_layers,
        "n_heads": n_heads,
        "top_k": k,
        "top_heads": [
            {
                "layer": layer,
                "head": head,
                "score": float(scores[layer, head]),
                "matrix": np.asarray(matrices[layer, head], dtype=float).round(6).tolist(),
            }
            for layer, head in top[:n_top]
        ],
        "histogram": {"counts": counts.astype(int).tolist(), "edges": edges.round(6).tolist()},
        "layer_map": {
            "scores": [[_num(v) if np.isfinite(v) else None for v in row] for row in scores.round(6)],
            "mean": [float(np.nanmean(row)) if np.isfinite(row).any() else None for row in scores],
            "max": [float(np.nanmax(row)) if np.isfinite(row).any() else None for row in scores],
            "top_k_per_layer": per_layer,
        },
        "gaze_depth": round(depth, 6),
        "agreement": [
            {
                "k": row["k"],
                "k_used": row["k_used"],
                "pairs": {f"{p['a']}&{p['b']}": p["overlap"] for p in row["pairs"]},
                "common": row["common"],
                "chance_pair": round(row["pairs"][0]["chance_overlap"], 6),
                "chance_common": round(row["chance_common"], 6),
                "paper": PAPER["agreement"].get(row["k"]),
            }
            for row in meta.get("agreement", [])
        ],
    }


def evaluation_section(report: Mapping, protocol: str) -> dict:
    """Fig. 3 (and Fig. 6 for dynamic): accuracy with its CI per condition, the paper's beside it."""
    paper = PAPER[
        "static" if protocol == "static" else "narration" if protocol == "narration" else "dynamic_rho"
    ]
    rows = []
    for name, c in report["conditions"].items():
        row = {
            "condition": name,
            "accuracy": _num(c.get("accuracy")),
            "ci95": [_num(v) for v in c.get("ci95", [None, None])],
            "degenerate_rate": _num(c.get("degenerate_rate")),
            "n": int(c.get("n", 0)),
            "paper": None if protocol == "dynamic" else paper.get(name),
        }
        if protocol == "dynamic":
            traj = c.get("trajectory") or {}
            row["rho"] = _num((c.get("spearman") or {}).get("mean"))
            row["rho_ci95"] = [_num(v) for v in (c.get("spearman") or {}).get("ci95", [None, None])]
            row["rho_blind"] = _num((traj.get("rho_schedule") or {}).get("mean"))
            row["rho_blind_ci95"] = [
                _num(v) for v in (traj.get("rho_schedule") or {}).get("ci95", [None, None])
            ]
            row["rho_natural"] = _num((traj.get("rho_natural") or {}).get("mean"))
            row["starts_correct"] = _num((traj.get("starts_correct") or {}).get("mean"))
            row["paper_rho"] = paper.get(name)
        rows.append(row)
    return {
        "protocol": protocol,
        "top_k": int(report["top_k"]),
        "n_pairs": int(report["n_pairs"]),
        "chance": _num(report.get("chance")),
        "status": report.get("status"),
        "rows": rows,
    }


def sweep_section(sweep: Mapping) -> dict:
    """Fig. 8 (accuracy against K per criterion and the control, all heads as a level) and Tab. 5
    (criteria x K), the paper's values at the same K where it has them."""
    cells = [c for c in sweep["cells"] if c.get("accuracy") is not None or c.get("k") is not None]
    ks = sorted({int(c["k"]) for c in cells if c.get("k") is not None})
    curves: dict[str, list[dict]] = {}
    for c in sorted(cells, key=lambda c: (c["criterion"], c.get("k") or 0)):
        if c["criterion"] == ALL_HEADS:
            continue
        curves.setdefault(c["criterion"], []).append(
            {"k": int(c["k"]), "accuracy": _num(c["accuracy"]), "ci95": [_num(v) for v in c["ci95"]]}
        )
    all_heads = next((_num(c["accuracy"]) for c in cells if c["criterion"] == ALL_HEADS), None)
    peak = max(curves.get("gaze", []), key=lambda p: p["accuracy"] or -1.0, default=None)
    control = {p["k"]: p["accuracy"] for p in curves.get(CONTROL, [])}
    base = next(iter(sweep.get("baselines", {}).values()), {})
    return {
        "protocol": sweep["protocol"],
        "status": sweep["status"],
        "ks": ks,
        "curves": curves,
        "all_heads": all_heads,
        # cells that could not run (e.g. a control pool smaller than K): n/a in the table, said why here
        "errors": [
            {"criterion": c["criterion"], "k": c.get("k"), "error": c["error"]} for c in cells if "error" in c
        ],
        "baseline": _num(base.get("accuracy")),
        "n_strips": sweep["settings"].get("n_strips"),
        "peak": None
        if peak is None
        else {"k": peak["k"], "gaze": peak["accuracy"], "random": control.get(peak["k"]), "all": all_heads},
        "table": [
            {"criterion": name, "by_k": [next((p["accuracy"] for p in pts if p["k"] == k), None) for k in ks]}
            for name, pts in curves.items()
        ],
        "paper": {
            "k_sweep": {str(k): list(v) for k, v in PAPER["k_sweep"].items()},
            "criteria_k": {n: {str(k): v for k, v in d.items()} for n, d in PAPER["criteria_k"].items()},
        },
    }


def staircase_section(stage: Mapping) -> dict:
    """Fig. 2b: the staircase of a gaze-steered and a random-control dynamic run on one strip: per
    decode step, the attention mass of the read-out heads (the top-K gaze heads, in both runs) on each
    panel (``core.scoring.trajectory``'s ``raw``, as the session reader gives it), the scheduled panel
    of each step, and how often the step's most attended panel is the scheduled one."""
    runs = []
    for run in stage["runs"]:
        mass = np.asarray(run["mass"], dtype=float)  # [step, panel]
        targets = [None if t is None else int(t) for t in run["targets"]]  # 1-based, None: no target
        steps = [i for i, t in enumerate(targets) if t is not None]
        on = [int(np.argmax(mass[i])) + 1 == targets[i] for i in steps]
        at = [mass[i, targets[i] - 1] for i in steps]
        others = [np.delete(mass[i], targets[i] - 1).mean() for i in steps if mass.shape[1] > 1]
        runs.append(
            {
                "condition": run["condition"],
                "heads": run["heads"],
                "mass": mass.round(6).tolist(),
                "targets": targets,
                "on_target": float(np.mean(on)) if on else None,
                "target_mass": round(float(np.mean(at)), 6) if at else None,
                "other_mass": round(float(np.mean(others)), 6) if others else None,
            }
        )
    return {
        "strip": stage["strip"],
        "schedule": list(stage["schedule"]),
        "switch_every": int(stage["switch_every"]),
        "k": int(stage["k"]),
        "readout": [list(h) for h in stage["readout"]],
        "runs": runs,
    }


def region_section(report: Mapping) -> dict:
    """Tab. 1: gaze and control accuracy with CIs by COCO size class, the paper's beside them."""
    rows = []
    for size in ("overall", *SIZE_CLASSES):
        row = {"size": size, "paper": PAPER["region"].get(size)}
        for cond, c in report["conditions"].items():
            s = c["overall"] if size == "overall" else c["by_size"][size]
            ci = [_num(v) for v in s.get("ci95", [None, None])]
            row[cond] = {"accuracy": _num(s.get("accuracy")), "ci95": ci, "n": int(s.get("n", 0))}
        rows.append(row)
    return {"conditions": list(report["conditions"]), "rows": rows}


def compare_rows(reports: Sequence[Mapping]) -> list[dict]:
    """One row per checkpoint (the paper's Tab. 2 / 9): peak K with gaze / non-gaze / all heads at
    it (from the K sweep; the fixed-K static evaluation when there is no sweep) and the gaze heads'
    mean layer over the model's depth (0 = first layer, 1 = last)."""
    rows = []
    for rep in reports:
        sweep = rep.get("sweep") or {}
        peak = sweep.get("peak")
        if peak is None and rep.get("static"):
            acc = {r["condition"]: r["accuracy"] for r in rep["static"]["rows"]}
            peak = {
                "k": rep["static"]["top_k"],
                "gaze": acc.get("gaze"),
                "random": acc.get("random"),
                "all": acc.get("all"),
            }
        disc = rep.get("discovery") or {}
        rows.append(
            {
                "model": rep.get("model"),
                "n_layers": disc.get("n_layers"),
                "n_heads": disc.get("n_heads"),
                "peak": peak,
                "gaze_depth": disc.get("gaze_depth"),
            }
        )
    return rows


def paper_depth() -> float:
    """The 8B's gaze heads' layers 20-28 of 36, as the report's depth (mid-band over n_layers - 1)."""
    lo, hi = PAPER["gaze_layers"]
    return round((lo + hi) / 2 / (PAPER["n_layers"] - 1), 6)
