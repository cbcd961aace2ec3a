"""Steering really moves where the steered heads look, and nothing else."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.core.regions import box_region, panel_regions
from gaze_explorer.core.steering import LiveTarget, SteeringMode, SteeringPlan
from gaze_explorer.inference.generation import FinishedEvent, TokenEvent, build_bias, generate_stream

PROMPT = "describe the panel ."
# heads 0 and 1 of a layer share KV head 0 (GQA); steer only head 0 of layer 1, and head 3
STEERED = ((1, 0), (1, 3))


@pytest.fixture(scope="module")
def setup(tiny_qwen, strip_image):
    grid = tiny_qwen.prepare(strip_image, PROMPT).grid
    return grid, panel_regions(grid, 6)


def _steps(loaded, image, regions, plan=None, target=None, n=6, capture=None):
    events = list(
        generate_stream(
            loaded,
            image,
            PROMPT,
            regions=regions,
            plan=plan,
            target=target,
            options=GenerationOptions(max_new_tokens=n),
            capture=capture,
        )
    )
    assert isinstance(events[-1], FinishedEvent) and events[-1].status == "finished", events[-1]
    return [e for e in events if isinstance(e, TokenEvent)]


def _target_share(rows, grid, region):
    image_mass = rows[..., grid.positions].sum(-1)
    return rows[..., region.positions(grid)].sum(-1) / image_mass


def test_boost_suppress_moves_steered_heads_and_leaves_the_rest(tiny_qwen, strip_image, setup):
    grid, regions = setup
    base = _steps(tiny_qwen, strip_image, regions)
    for target in (0, 4):
        plan = SteeringPlan(HeadSet("two", STEERED))
        steered = _steps(tiny_qwen, strip_image, regions, plan, target)
        # decode-only: token 0 comes from the unbiased prefill, identical to the baseline
        assert steered[0].token_id == base[0].token_id
        np.testing.assert_allclose(steered[0].rows, base[0].rows, atol=1e-6)
        for ev in steered[1:]:
            for layer, head in STEERED:
                assert _target_share(ev.rows[layer, head], grid, regions[target]) >= 0.99
        # step 1 feeds the same token 0 in both runs: layer 0 and the unsteered heads of layer 1
        # (head 1 shares its KV head with steered head 0) must be untouched
        np.testing.assert_allclose(steered[1].rows[0], base[1].rows[0], atol=1e-6)
        for head in (1, 2):
            np.testing.assert_allclose(steered[1].rows[1, head], base[1].rows[1, head], atol=1e-6)
        assert _target_share(base[1].rows[1, 0], grid, regions[target]) < 0.5  # it really moved


def test_full_sequence_steering_keeps_causality(tiny_qwen, strip_image, setup):
    grid, regions = setup
    plan = SteeringPlan(HeadSet("two", STEERED), decode_only=False)
    events = list(
        generate_stream(
            tiny_qwen,
            strip_image,
            PROMPT,
            regions=regions,
            plan=plan,
            target=2,
            options=GenerationOptions(max_new_tokens=2),
            capture=CaptureSpec(prefill="full"),
        )
    )
    pre, tok0 = events[0], events[1]
    # the first token is steered too now
    assert _target_share(tok0.rows[1, 0], grid, regions[2]) >= 0.99
    # no query sees a later key, though later image tokens carry +1e4 (the mask arrives as None)
    assert np.allclose(np.triu(pre.rows, k=1), 0.0)
    last_image = grid.positions.max()
    np.testing.assert_allclose(pre.rows[1, 0, last_image + 1 :].sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("mode", list(SteeringMode))
def test_modes_suppress_what_the_paper_says(tiny_qwen, strip_image, setup, mode):
    grid, regions = setup
    target = 3
    plan = SteeringPlan(HeadSet("two", STEERED), mode=mode)
    steps = _steps(tiny_qwen, strip_image, regions, plan, target, n=4)
    prompt_len = steps[0].rows.shape[-1]
    others = np.setdiff1d(grid.positions, regions[target].positions(grid))
    text = np.setdiff1d(np.arange(prompt_len), grid.positions)
    for ev in steps[1:]:
        row = ev.rows[1, 0]
        assert row[others].sum() < 1e-3  # every mode suppresses the other image tokens
        if mode in (SteeringMode.SUPPRESS_ALL, SteeringMode.MAX_SUPPRESS_ALL):
            assert row[text].sum() < 1e-3
        if mode == SteeringMode.MAX_SUPPRESS_ALL:
            assert row[prompt_len:].sum() < 1e-3
            assert row[regions[target].positions(grid)].sum() > 0.99
        if mode == SteeringMode.SUPPRESS_IMAGE:
            assert row[text].sum() > 0.01  # text keeps its share


def test_build_bias_values():
    image = np.arange(2, 8)
    target = np.array([4, 5])
    mask = np.ones(10, dtype=bool)
    mask[0] = False  # padding
    b = build_bias(SteeringMode.BOOST_SUPPRESS, 10.0, 12, 10, image, target, mask).numpy()
    assert b.tolist() == [0, 0, -10, -10, 10, 10, -10, -10, 0, 0, 0, 0]
    b = build_bias(SteeringMode.SUPPRESS_ALL, 10.0, 12, 10, image, target, mask).numpy()
    assert b.tolist() == [0, -10, -10, -10, 0, 0, -10, -10, -10, -10, 0, 0]
    b = build_bias(SteeringMode.MAX_SUPPRESS_ALL, 10.0, 12, 10, image, target, mask).numpy()
    assert b.tolist() == [0, -10, -10, -10, 0, 0, -10, -10, -10, -10, -10, -10]


def test_box_region_target(tiny_qwen, strip_image, setup):
    grid, _ = setup
    box = box_region(grid, (0, 0, 120, 32))
    steps = _steps(tiny_qwen, strip_image, [box], SteeringPlan(HeadSet("two", STEERED)), 0, n=3)
    assert _target_share(steps[2].rows[1, 3], grid, box) >= 0.99


def test_live_switch_from_another_thread_lands_at_the_next_step(tiny_qwen, strip_image, setup):
    grid, regions = setup
    live = LiveTarget(1)
    at_step = threading.Event()
    switched = threading.Event()

    def gui():
        at_step.wait(30)
        live.set(5)
        switched.set()

    thread = threading.Thread(target=gui, name="gaze-explorer-test-gui")
    thread.start()
    plan = SteeringPlan(HeadSet("two", STEERED))
    stream = generate_stream(
        tiny_qwen,
        strip_image,
        PROMPT,
        regions=regions,
        plan=plan,
        target=live,
        options=GenerationOptions(max_new_tokens=7),
    )
    tokens = []
    for ev in stream:
        if isinstance(ev, TokenEvent):
            tokens.append(ev)
            if ev.step == 3:
                at_step.set()
                assert switched.wait(30)
        elif isinstance(ev, FinishedEvent):
            finished = ev
    thread.join(30)
    assert [t.target for t in tokens] == [1, 1, 1, 1, 5, 5, 5]
    assert [(s.step, s.previous, s.to, s.source) for s in finished.switches] == [(4, 1, 5, "live")]
    assert tokens[4].switch is not None and tokens[4].switch.step == 4
    assert _target_share(tokens[3].rows[1, 0], grid, regions[1]) >= 0.99
    assert _target_share(tokens[4].rows[1, 0], grid, regions[5]) >= 0.99


def test_live_target_out_of_range_fails_the_run_cleanly(tiny_qwen, strip_image, setup):
    _, regions = setup
    live = LiveTarget(0)
    stream = generate_stream(
        tiny_qwen,
        strip_image,
        PROMPT,
        regions=regions,
        plan=SteeringPlan(HeadSet("two", STEERED)),
        target=live,
        options=GenerationOptions(max_new_tokens=5),
    )
    events = []
    for ev in stream:
        events.append(ev)
        if isinstance(ev, TokenEvent) and ev.step == 1:
            live.set(42)
    assert events[-1].status == "failed" and "does not exist" in events[-1].reason
