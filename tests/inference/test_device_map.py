"""A model split by an explicit accelerate device map (the vision tower and the first decoder
layer offloaded to disk, the rest on the CPU) gives the same discovery, captured rows, steering
and live switch as the unsplit model; and the fit check warns before loading a checkpoint that
will not fit.

This machine has no GPU, so the split is CPU + disk: the offloaded layers' parameters sit on the
``meta`` device and accelerate's hooks load them for each forward. That is where a device-mapped
model used to break (the inputs and the steer masks were put on the first parameter's device,
``meta``); rows gathered from layers on different GPUs are checked on a GPU box only.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import make_strip

from gaze_explorer.core.errors import ModelLoadError
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.core.steering import LiveTarget, SteeringPlan
from gaze_explorer.inference.discovery import DiscoveryResult, discover
from gaze_explorer.inference.generation import FinishedEvent, TokenEvent, generate_stream
from gaze_explorer.inference.loading import load_model
from gaze_explorer.inference.placement import ModelFitWarning, estimate_model_bytes, fit_warning

PROMPT = "describe the panel ."
STEERED = ((0, 1), (1, 0), (1, 3))
SPLIT = {
    "model.visual": "disk",
    "model.language_model.embed_tokens": "cpu",
    "model.language_model.layers.0": "disk",
    "model.language_model.layers.1": "cpu",
    "model.language_model.norm": "cpu",
    "model.language_model.rotary_emb": "cpu",
    "lm_head": "cpu",
}


@pytest.fixture(scope="module")
def split_qwen(tiny_qwen_dir):
    return load_model(tiny_qwen_dir, device="cpu", dtype="fp32", device_map=SPLIT)


def test_the_split_really_offloads_and_runs_on_the_cpu(split_qwen):
    offloaded = {
        n.split(".self_attn")[0] for n, p in split_qwen.model.named_parameters() if p.device.type == "meta"
    }
    assert "model.language_model.layers.0" in offloaded and "model.language_model.layers.1" not in offloaded
    assert next(split_qwen.model.parameters()).device.type == "meta"  # the vision tower's, on disk
    assert split_qwen.device == torch.device("cpu")


def _run(loaded, image, regions, plan=None, target=None, live_switch=None, n=8):
    """Tokens, rows ``[step, layer, head, key]`` and switch steps of one captured generation."""
    stream = generate_stream(
        loaded,
        image,
        PROMPT,
        regions=regions,
        plan=plan,
        target=target,
        options=GenerationOptions(max_new_tokens=n, ignore_eos=True),
        capture=CaptureSpec(),
    )
    tokens, rows, switches = [], [], []
    for ev in stream:
        if isinstance(ev, TokenEvent):
            tokens.append(ev.token_id)
            rows.append(ev.rows[..., : rows[0].shape[-1]] if rows else ev.rows)
            if live_switch is not None and ev.step == live_switch[0]:
                target.set(live_switch[1])  # lands at the next token, as a click in the app
        elif isinstance(ev, FinishedEvent):
            assert ev.status == "finished", ev.reason
            switches = [(s.step, s.to) for s in ev.switches]
    return tokens, np.stack(rows), switches


@pytest.mark.parametrize("kind", ["capture", "steering", "live switch"])
def test_split_model_generates_and_captures_like_the_unsplit_one(tiny_qwen, split_qwen, strip_image, kind):
    grid = tiny_qwen.prepare(strip_image, PROMPT).grids[0]
    regions = panel_regions(grid, 6)
    plan = None if kind == "capture" else SteeringPlan(HeadSet("three", STEERED))
    results = []
    for loaded in (tiny_qwen, split_qwen):
        target = {"capture": None, "steering": 2, "live switch": LiveTarget(1)}[kind]
        if isinstance(target, LiveTarget):
            target = LiveTarget(1)
        results.append(
            _run(loaded, strip_image, regions, plan, target, (3, 4) if kind == "live switch" else None)
        )
    (tok_a, rows_a, sw_a), (tok_b, rows_b, sw_b) = results
    assert tok_b == tok_a
    assert sw_b == sw_a
    if kind == "live switch":
        assert sw_a == [(4, 4)]
    np.testing.assert_allclose(rows_b, rows_a, atol=1e-6)
    if plan is not None:  # the steered heads really moved in both
        target_pos = regions[2 if kind == "steering" else 1].positions(grid)
        share = rows_b[2:4, 1, 0][:, target_pos].sum(-1) / rows_b[2:4, 1, 0][:, grid.positions].sum(-1)
        assert (share > 0.99).all()


def _discovery(loaded, strips) -> DiscoveryResult:
    results = [item for item in discover(loaded, strips) if isinstance(item, DiscoveryResult)]
    assert len(results) == 1
    return results[0]


def test_split_model_discovers_the_same_scores(tiny_qwen, split_qwen):
    strips = [SimpleNamespace(image=make_strip(seed=s), panel_widths=[64] * 6) for s in (1, 2)]
    a, b = _discovery(tiny_qwen, strips), _discovery(split_qwen, strips)
    np.testing.assert_allclose(b.scores, a.scores, atol=1e-6)
    np.testing.assert_allclose(b.matrices, a.matrices, atol=1e-6)
    assert [(r["layer"], r["head"]) for r in b.ranking] == [(r["layer"], r["head"]) for r in a.ranking]


def test_estimate_counts_the_weights_of_the_loaded_model(tiny_qwen, tiny_qwen_dir):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_qwen_dir)
    n_params = sum(p.numel() for p in tiny_qwen.model.parameters())
    assert estimate_model_bytes(config, torch.float32) == 4 * n_params
    assert estimate_model_bytes(config, torch.bfloat16) == 2 * n_params
    assert fit_warning(config, torch.float32, torch.device("cpu"), free_bytes=8 * n_params) is None
    message = fit_warning(config, torch.float32, torch.device("cpu"), free_bytes=2 * n_params)
    assert message is not None and "--device-map auto" in message and "RAM" in message


def test_load_warns_before_loading_a_checkpoint_larger_than_the_ram(tiny_qwen_dir, tmp_path):
    """A 32B geometry in float32 (~130 GB) with unreadable weights: the warning comes first, then
    the load fails on the weights (nothing of that size is ever allocated)."""
    from transformers import AutoTokenizer

    from gaze_explorer.inference.placement import free_memory_bytes
    from gaze_explorer.inference.random_init import qwen3_vl_config

    config = qwen3_vl_config("Qwen3-VL-32B-Instruct", AutoTokenizer.from_pretrained(tiny_qwen_dir))
    if estimate_model_bytes(config, torch.float32) < free_memory_bytes(torch.device("cpu")):
        pytest.skip("this machine has the RAM for a 32B model in float32")
    config.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not weights")
    with pytest.warns(ModelFitWarning, match="--device-map auto"), pytest.raises(ModelLoadError):
        load_model(tmp_path, device="cpu", dtype="fp32")


def test_device_map_auto_loads_and_generates_like_the_unsplit_model(tiny_qwen, tiny_qwen_dir, strip_image):
    auto = load_model(tiny_qwen_dir, device="cpu", dtype="fp32", device_map="auto")
    assert auto.device == torch.device("cpu")  # auto on a CPU-only machine: everything on the CPU
    grid = tiny_qwen.prepare(strip_image, PROMPT).grids[0]
    regions = panel_regions(grid, 6)
    plan = SteeringPlan(HeadSet("three", STEERED))
    tok_a, rows_a, _ = _run(tiny_qwen, strip_image, regions, plan, 3)
    tok_b, rows_b, _ = _run(auto, strip_image, regions, plan, 3)
    assert tok_b == tok_a
    np.testing.assert_allclose(rows_b, rows_a, atol=1e-6)
