"""``discovery`` benchmark: strips per second of gaze-head discovery, ours vs the authors' method.

Ours: ``inference.discovery.discover`` (the N panel questions of a strip in one left-padded batch,
only the last query row captured by the registered attention function).
Compared (the authors' method): one forward per question with eager attention and
``output_attentions=True`` (every layer's full ``[head, T, T]`` matrix), then the last row summed
over each panel's image tokens. Both score the same strips; the scores must agree within 1e-4.
"""

from __future__ import annotations

import time

import numpy as np

from gaze_explorer.bench.harness import Result, alternate, summary
from gaze_explorer.bench.models import demo_strips, load_bench_model

TARGET = 3.0
TOLERANCE = 1e-4


def ours_scores(loaded, strips) -> np.ndarray:
    """Gaze scores ``[layer, head]`` from our batched, last-row discovery."""
    from gaze_explorer.inference.discovery import DiscoveryResult, discover

    result = None
    for item in discover(loaded, strips):
        if isinstance(item, DiscoveryResult):
            result = item
    if result is None:
        raise RuntimeError("discovery produced no result")
    return np.asarray(result.scores, dtype=np.float64)


def authors_strip_matrix(loaded, strip, template: str) -> np.ndarray:
    """``[layer, head, N, N]`` for one strip: one eager forward per question, full attentions."""
    import torch

    from gaze_explorer.core.regions import panel_regions
    from gaze_explorer.inference.discovery import panel_prompt

    model, adapter = loaded.model, loaded.adapter
    widths = list(strip.panel_widths)
    n = len(widths)
    rows = np.zeros((loaded.n_layers, loaded.n_heads, n, n), dtype=np.float64)
    for k in range(n):
        prepared = loaded.prepare(strip.image, panel_prompt(template, k + 1, n))
        with torch.inference_mode():
            out = model(**adapter.prefill_kwargs(model, prepared), use_cache=False, output_attentions=True)
        # out.attentions: one [batch=1, head, T, T] per decoder layer; the last row asks the question
        last = (
            torch.stack([a[0, :, -1, :] for a in out.attentions]).float().cpu().numpy()
        )  # [layer, head, key]
        grid = prepared.grids[0]
        for j, region in enumerate(panel_regions(grid, n, widths)):
            rows[:, :, k, j] = last[:, :, region.positions(grid)].sum(axis=-1)
        del out
    return rows


def authors_scores(loaded, strips, template: str) -> np.ndarray:
    """Gaze scores ``[layer, head]`` by the authors' method (eager attention, set then restored)."""
    from gaze_explorer.core.scoring import gaze_scores

    model = loaded.model
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")  # output_attentions needs eager in transformers 5
    try:
        mats = np.stack(
            [authors_strip_matrix(loaded, s, template) for s in strips]
        )  # [strip, layer, head, N, N]
    finally:
        model.set_attn_implementation(previous)
    return np.asarray(gaze_scores(mats), dtype=np.float64)


def run(
    strips: int = 4,
    repeats: int = 5,
    model: str = "demo",
    random_init: str | None = None,
    device: str = "cpu",
) -> Result:
    """Strips per second of both methods (alternating), and the largest score difference."""
    from gaze_explorer.inference.discovery import PAPER_PROMPT

    loaded, label = load_bench_model(model, random_init, device)
    chosen = demo_strips(strips)
    n = len(chosen)
    diffs: list[float] = []

    def ours() -> float:
        t0 = time.perf_counter()
        s = ours_scores(loaded, chosen)
        dt = time.perf_counter() - t0
        ours.last = s
        return n / dt

    def compared() -> float:
        t0 = time.perf_counter()
        s = authors_scores(loaded, chosen, PAPER_PROMPT)
        dt = time.perf_counter() - t0
        compared.last = s
        return n / dt

    ours(), compared()  # warm-up (first-call allocations, kernel selection)
    diffs.append(float(np.max(np.abs(ours.last - compared.last))))
    a, b = alternate(ours, compared, repeats)
    diffs.append(float(np.max(np.abs(ours.last - compared.last))))
    ours_s, comp_s = summary(a), summary(b)
    ratio = ours_s["median"] / comp_s["median"]
    max_diff = max(diffs)
    return Result(
        name="discovery",
        ours=ours_s,
        compared=comp_s,
        unit="strips/s",
        ratio=ratio,
        target=f">= {TARGET}x faster and scores within {TOLERANCE}",
        met=ratio >= TARGET and max_diff <= TOLERANCE,
        model=label,
        repeats=len(a),
        extra={
            "strips": n,
            "n_panels": len(chosen[0].panel_widths),
            "max_abs_score_diff": max_diff,
            "scores_equal": max_diff <= TOLERANCE,
            "layers_x_heads": [loaded.n_layers, loaded.n_heads],
            "device": str(loaded.device),
        },
    )
