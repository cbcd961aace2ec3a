"""Gaze-head discovery: which heads look at the panel that the question names.

For each strip of N panels we ask "what is happening in the k-th panel" for every k, as ONE
left-padded batch of N prompts, and capture only the last prompt row of every layer and head (no
decoding). Summing that row over each panel's image tokens gives the ``[layer, head, N, N]``
queried x attended matrix; the gaze score is its diagonal mean over panels and strips
(``core/scoring.py``). Progress is yielded per strip; a cancel stops after the strip in hand and
yields a partial result.

The same rows also give what the other head-selection criteria need (``core/criteria.py``), with
no extra forward pass: each head's total attention on the image tokens (Image Heads, MaskCD) and
its attention over the image token grid as a ``[rows, cols]`` map (Localization Heads, Kang et
al.), both averaged over every question of every strip.

The N rows of a strip's batch hold the same image and differ only in a few words, so the work they
share is done once (``inference/batch_sharing.py``): the image and the common start of the prompt
go through the model once, and only the N differing endings run as a batch on top of that cache.
Where sharing is not possible the plain batched forward runs; both give the same scores.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gaze_explorer.core.criteria import MapAverage
from gaze_explorer.core.errors import RegionError
from gaze_explorer.core.heads import ranking
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.core.scoring import gaze_scores, mean_matrices, panel_matrix
from gaze_explorer.inference.attention import ForwardRequest, attention_control
from gaze_explorer.inference.batch_sharing import prefix_shared_rows, shared_image_kwargs
from gaze_explorer.inference.loading import LoadedModel

PAPER_PROMPT = (
    "Look carefully at this {n_word}-panel comic strip. What is happening in the {ordinal} panel "
    "from the left? Answer briefly."
)
NUMBER_WORDS = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
)


def ordinal(k: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"


def number_word(n: int) -> str:
    return NUMBER_WORDS[n] if 0 <= n < len(NUMBER_WORDS) else str(n)


def panel_prompt(template: str, k: int, n: int) -> str:
    """The question about panel ``k`` (1-based) of ``n``; the template may use {ordinal},
    {n_word}, {k} and {n}."""
    return template.format(ordinal=ordinal(k), n_word=number_word(n), k=k, n=n)


@dataclass
class DiscoveryProgress:
    done: int  # strips finished
    total: int
    strip_name: str = ""


@dataclass
class DiscoveryResult:
    scores: np.ndarray  # [layer, head] gaze score
    matrices: np.ndarray  # [layer, head, N, N] mean over strips (queried x attended)
    ranking: list[dict]  # authors' format, best first
    n_strips: int
    n_panels: int
    strip_matrices: np.ndarray | None = None  # [strip, layer, head, N, N]
    cancelled: bool = False
    image_mass: np.ndarray | None = None  # [layer, head] attention on all image tokens, mean over questions
    image_maps: np.ndarray | None = None  # [layer, head, rows, cols] attention over the token grid, mean
    # how the strips reached the model: the adapter's input policy and the smallest fraction of a
    # strip that reached the language model (1 = all of it); None in a result built elsewhere
    input_policy: str | None = None
    image_coverage: float | None = None


@dataclass
class StripAttention:
    """What one strip's forward pass gives every criterion (all from the last prompt rows)."""

    matrix: np.ndarray  # [layer, head, N, N] queried x attended panel sums
    image_mass: np.ndarray  # [layer, head] sum over all image tokens, mean over the N questions
    image_map: np.ndarray  # [layer, head, rows, cols] attention per image token, mean over the questions
    coverage: float = 1.0  # the fraction of the strip that reached the LM (the input policy's)


def discovery_input_params(result) -> dict:
    """``input_policy`` and ``image_coverage`` of a discovery, for discovery.json and the session's
    discovery params (empty when unknown: partials of a sharded run written before they were kept)."""
    keys = ("input_policy", "image_coverage")
    return {key: getattr(result, key) for key in keys if getattr(result, key, None) is not None}


def strip_matrix(
    loaded: LoadedModel, strip: Any, template: str = PAPER_PROMPT, *, share: bool = True
) -> np.ndarray:
    """The ``[layer, head, N, N]`` queried x attended matrix of one strip (one batched forward).

    ``share=False`` forces the plain batched forward that encodes the image and the common prompt
    start once per question (for checks and benchmarks; the result is the same)."""
    return strip_attention(loaded, strip, template, share=share).matrix


def strip_attention(
    loaded: LoadedModel, strip: Any, template: str = PAPER_PROMPT, *, share: bool = True
) -> StripAttention:
    """The panel matrix, image mass and image map of one strip, from one batched forward."""
    widths = list(getattr(strip, "panel_widths", None) or [])
    n = len(widths)
    if n < 1:
        raise RegionError(f"strip {getattr(strip, 'name', '')!r} has no panel widths")
    prompts = [panel_prompt(template, k, n) for k in range(1, n + 1)]
    prepared = loaded.prepare(strip.image, prompts)
    model, adapter = loaded.model, loaded.adapter
    with torch.inference_mode():
        kwargs = adapter.prefill_kwargs(model, prepared)
        with attention_control(loaded) as ctl:
            rows = None
            if share:
                rows = prefix_shared_rows(model, kwargs, prepared.batch_size, adapter.image_token_id, ctl)
            if rows is None:
                if share:
                    kwargs = shared_image_kwargs(model, kwargs, prepared.batch_size) or kwargs
                ctl.set_request(ForwardRequest(capture_rows="last"))
                model(**kwargs, use_cache=False, logits_to_keep=1)
                rows = ctl.take_rows()  # [layer, batch, head, 1, key]
    rows_np = rows[:, :, :, 0].float().cpu().numpy().transpose(1, 0, 2, 3)  # [query, layer, head, key]
    positions = []
    for grid in prepared.grids:
        regions = panel_regions(grid, n, widths)
        positions.append([r.positions(grid) for r in regions])
    # every question's row over its own image tokens (left padding shifts them per row), row-major:
    # [question][layer, head, image token]
    on_image = [rows_np[k][..., grid.positions] for k, grid in enumerate(prepared.grids)]
    grid0 = prepared.grids[0]
    image_map = np.mean(on_image, axis=0).reshape(*on_image[0].shape[:2], grid0.rows, grid0.cols)
    return StripAttention(
        matrix=panel_matrix(rows_np, positions),
        image_mass=np.mean([row.sum(axis=-1) for row in on_image], axis=0),
        image_map=image_map,
        coverage=float(prepared.info.get("vision", {}).get("coverage", 1.0)),
    )


def discover(
    loaded: LoadedModel,
    strips: Iterable[Any],
    *,
    prompt_template: str = PAPER_PROMPT,
    cancel: threading.Event | None = None,
) -> Iterator[DiscoveryProgress | DiscoveryResult]:
    """Score every head on ``strips`` (objects with ``.image`` and ``.panel_widths``).

    Yields a DiscoveryProgress after each strip and finally a DiscoveryResult (partial, with
    ``cancelled=True``, when ``cancel`` is set mid-way; none if cancelled before the first strip
    finished). All strips must have the same panel count.
    """
    strips = list(strips)
    if not strips:
        raise RegionError("discovery needs at least one strip")
    counts = {len(getattr(s, "panel_widths", None) or []) for s in strips}
    if len(counts) != 1 or 0 in counts:
        raise RegionError(f"every strip needs the same, non-zero number of panels; got {sorted(counts)}")
    n_panels = counts.pop()
    return _discover(loaded, strips, n_panels, prompt_template, cancel)


def _discover(loaded, strips, n_panels, template, cancel):
    mats: list[np.ndarray] = []
    mass_sum: np.ndarray | None = None  # [layer, head]
    maps = MapAverage()  # [layer, head, rows, cols]; strips of other widths have other grids
    coverage = 1.0  # the smallest fraction of a strip that reached the LM
    cancelled = False
    yield DiscoveryProgress(0, len(strips))
    for i, strip in enumerate(strips):
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        att = strip_attention(loaded, strip, template)
        mats.append(att.matrix)
        mass_sum = att.image_mass if mass_sum is None else mass_sum + att.image_mass
        maps.add(att.image_map)
        coverage = min(coverage, att.coverage)
        yield DiscoveryProgress(i + 1, len(strips), str(getattr(strip, "name", "") or f"strip {i + 1}"))
    if not mats:
        return  # cancelled before the first strip finished: nothing to report
    stacked = np.stack(mats).astype(np.float32)  # [strip, layer, head, N, N]
    scores = gaze_scores(stacked)
    yield DiscoveryResult(
        scores=scores,
        matrices=mean_matrices(stacked).astype(np.float32),
        ranking=ranking(scores),
        n_strips=len(mats),
        n_panels=n_panels,
        strip_matrices=stacked,
        cancelled=cancelled,
        image_mass=(mass_sum / len(mats)).astype(np.float32),  # every strip asks N questions: equal weights
        image_maps=maps.mean().astype(np.float32),
        input_policy=str(getattr(loaded.adapter, "input_policy", "native")),
        image_coverage=float(coverage),
    )
