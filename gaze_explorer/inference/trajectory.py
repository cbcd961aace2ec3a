"""Attention trajectories ("staircases"): per decode step x region attention of a head set.

The math is in ``core/scoring.trajectory``; this module gathers its inputs from a generation
stream (the captured step rows, and the value-vector norms at prefill) or computes the value
norms directly with one prefill pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from PIL import Image

from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.regions import Region
from gaze_explorer.core.scoring import trajectory
from gaze_explorer.inference.attention import ForwardRequest, attention_control
from gaze_explorer.inference.generation import PrefillEvent, TokenEvent
from gaze_explorer.inference.loading import LoadedModel


def value_norms(loaded: LoadedModel, image: Image.Image, prompt: str) -> np.ndarray:
    """``||v||`` of every prompt key at prefill, ``[layer, head, key]`` (KV heads repeated, GQA)."""
    prepared = loaded.prepare(image, prompt)
    model, adapter = loaded.model, loaded.adapter
    with torch.inference_mode(), attention_control(loaded) as ctl:
        ctl.set_request(ForwardRequest(value_norms=True))
        model(**adapter.prefill_kwargs(model, prepared), use_cache=False, logits_to_keep=1)
        norms = ctl.take_value_norms()  # [layer, batch, head, key]
    return norms[:, 0].float().cpu().numpy()


def stack_step_rows(events: Iterable[object]) -> tuple[np.ndarray, PrefillEvent | None]:
    """The step rows of a stream's TokenEvents, zero-padded to ``[step, layer, head, max_key]``."""
    rows: list[np.ndarray] = []
    prefill = None
    for ev in events:
        if isinstance(ev, PrefillEvent):
            prefill = ev
        elif isinstance(ev, TokenEvent) and ev.rows is not None:
            rows.append(ev.rows)
    if not rows:
        raise ValueError("the stream carried no captured decode rows (CaptureSpec(decode=True) is needed)")
    n_keys = max(r.shape[-1] for r in rows)
    out = np.zeros((len(rows), *rows[0].shape[:2], n_keys), dtype=np.float32)
    for s, r in enumerate(rows):
        out[s, ..., : r.shape[-1]] = r
    return out, prefill


def stream_trajectory(
    events: Iterable[object],
    heads: HeadSet | Sequence[tuple[int, int]],
    regions: Sequence[Region],
) -> dict[str, np.ndarray]:
    """Trajectory of a finished stream's events (``raw``, ``normalised``, and the value-norm
    weighted ones when the stream captured value norms)."""
    step_rows, prefill = stack_step_rows(events)
    if prefill is None:
        raise ValueError("the events lack the PrefillEvent (its grid maps regions to positions)")
    positions = [r.positions(prefill.grid) for r in regions]
    return trajectory(step_rows, heads, positions, prefill.value_norms)
