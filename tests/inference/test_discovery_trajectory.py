"""Discovery (batched per strip, last-row capture) and trajectories of a steered run."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
from conftest import make_strip

from gaze_explorer.core.events import PrefillEvent, TokenEvent
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.core.scoring import stack_step_rows, trajectory
from gaze_explorer.core.steering import SteeringPlan
from gaze_explorer.inference.attention import ForwardRequest, attention_control
from gaze_explorer.inference.discovery import (
    PAPER_PROMPT,
    DiscoveryProgress,
    DiscoveryResult,
    discover,
    ordinal,
    panel_prompt,
)
from gaze_explorer.inference.generation import generate_stream


@dataclass
class _Strip:
    image: object
    panel_widths: list
    name: str


def test_prompt_words():
    assert [ordinal(k) for k in (1, 2, 3, 4, 11, 22)] == ["1st", "2nd", "3rd", "4th", "11th", "22nd"]
    assert panel_prompt(PAPER_PROMPT, 2, 6) == (
        "Look carefully at this six-panel comic strip. What is happening in the 2nd panel from the left? "
        "Answer briefly."
    )


def test_discover_matches_unbatched_rows_and_cancels(tiny_qwen):
    strips = [_Strip(make_strip(seed=s), [64] * 6, f"s{s}") for s in range(2)]
    events = list(discover(tiny_qwen, strips))
    assert [e.done for e in events if isinstance(e, DiscoveryProgress)] == [0, 1, 2]
    res = events[-1]
    assert isinstance(res, DiscoveryResult) and not res.cancelled
    assert res.scores.shape == (2, 4) and res.matrices.shape == (2, 4, 6, 6)
    np.testing.assert_allclose(res.scores, np.diagonal(res.matrices, axis1=-2, axis2=-1).mean(-1), atol=1e-6)
    assert res.ranking[0]["score"] >= res.ranking[-1]["score"] and len(res.ranking) == 8
    # query 3 of strip 0, alone (no padding): same panel masses as its row in the batch
    prompt = panel_prompt(PAPER_PROMPT, 3, 6)
    prepared = tiny_qwen.prepare(strips[0].image, prompt)
    with torch.inference_mode(), attention_control(tiny_qwen) as ctl:
        ctl.set_request(ForwardRequest(capture_rows="last"))
        tiny_qwen.model(**tiny_qwen.adapter.prefill_kwargs(tiny_qwen.model, prepared))
        row = ctl.take_rows()[:, 0, :, 0].numpy()  # [layer, head, key]
    regions = panel_regions(prepared.grid, 6, [64] * 6)
    masses = np.stack([row[..., r.positions(prepared.grid)].sum(-1) for r in regions], -1)
    np.testing.assert_allclose(res.strip_matrices[0][:, :, 2], masses, atol=1e-4)
    cancel = threading.Event()
    partial = None
    for ev in discover(tiny_qwen, strips, cancel=cancel):
        if isinstance(ev, DiscoveryProgress) and ev.done == 1:
            cancel.set()
        if isinstance(ev, DiscoveryResult):
            partial = ev
    assert partial is not None and partial.cancelled and partial.n_strips == 1


def test_trajectory_of_a_steered_run(tiny_qwen, strip_image):
    prompt = "describe the panel ."
    prepared = tiny_qwen.prepare(strip_image, prompt)
    regions = panel_regions(prepared.grid, 6)
    heads = HeadSet("two", ((1, 0), (1, 3)))
    stream = generate_stream(
        tiny_qwen,
        strip_image,
        prompt,
        regions=regions,
        plan=SteeringPlan(heads),
        target=4,
        options=GenerationOptions(max_new_tokens=4),
        capture=CaptureSpec(value_norms=True),
    )
    events = list(stream)
    prefill = events[0]
    assert isinstance(prefill, PrefillEvent)
    step_rows = stack_step_rows([e.rows for e in events if isinstance(e, TokenEvent)])
    positions = [r.positions(prefill.grid) for r in regions]
    traj = trajectory(step_rows, heads, positions, prefill.value_norms)
    assert traj["raw"].shape == (4, 6) and traj["weighted"].shape == (4, 6)
    # decode-only steering: step 0 (from the unbiased prefill) is free, every later step on panel 5
    assert np.all(traj["normalised"][1:, 4] > 0.99) and traj["normalised"][0, 4] < 0.9
    np.testing.assert_allclose(traj["normalised"].sum(-1), 1.0, atol=1e-6)
    assert np.all(traj["weighted_normalised"][1:, 4] > 0.99)
    # the value norms captured during generation equal those of a separate prefill pass
    model, adapter = tiny_qwen.model, tiny_qwen.adapter
    with torch.inference_mode(), attention_control(tiny_qwen) as ctl:
        ctl.set_request(ForwardRequest(value_norms=True))
        model(**adapter.prefill_kwargs(model, prepared), use_cache=False, logits_to_keep=1)
        norms = ctl.take_value_norms()[:, 0].float().numpy()  # [layer, head, key]
    np.testing.assert_allclose(norms, prefill.value_norms, rtol=1e-5)
