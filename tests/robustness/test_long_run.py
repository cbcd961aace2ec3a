"""Long runs: 2,000 generated tokens with full decode capture streamed into a session file, with
flat memory, and the file still scrubbable (reader and the app's timeline view).

The model is a tiny random-initialised Qwen3-VL (2 layers x 4 heads, built locally): the pipeline
under test (generation, capture, bounded writer queue, per-step flushes) is the same for every
model, and this one keeps 2,000 steps affordable on 2 shared cores. ``ignore_eos`` keeps it going.
"""

from __future__ import annotations

import time

import numpy as np
import psutil
import pytest
from PIL import Image

from gaze_explorer.core.events import TokenEvent
from gaze_explorer.core.heads import all_heads
from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage import SessionReader, SessionWriter, record_events

N_TOKENS = 2000
FROM_STEP = 500  # memory is compared from here (start-up allocations and caches have settled)
SLACK_MIB = 8.0


@pytest.fixture(scope="module", autouse=True)
def _pyside_refcount_guard() -> None:
    """What the app's main() does: PySide6 6.12 on Python 3.11 leaks None/True/False references on
    Qt calls, and thousands of redraws would otherwise abort the interpreter."""
    from gaze_explorer.qt.compat import singleton_refs_guard

    singleton_refs_guard()


@pytest.fixture(scope="module")
def tiny_loaded(tmp_path_factory):
    """A tiny random-init Qwen3-VL on one torch thread (restored after the module)."""
    import torch

    from gaze_explorer.inference.loading import load_model
    from gaze_explorer.inference.random_init import build_random_qwen3_vl

    before = torch.get_num_threads()
    path = build_random_qwen3_vl(tmp_path_factory.mktemp("tiny") / "model", geometry="tiny", seed=0)
    # one thread: two OpenMP threads on 2 shared, busy cores wait on each other at every op
    yield load_model(str(path), device="cpu", dtype="float32", num_threads=1)
    torch.set_num_threads(before)


@pytest.mark.slow
def test_2000_tokens_flat_memory_and_scrubbable(tiny_loaded, tmp_path, qtbot):
    loaded = tiny_loaded
    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 255, (64, 384, 3), dtype=np.uint8))
    prompt = "what is in the panel ?"
    grid = loaded.adapter.build_inputs(image, prompt).grids[0]
    regions = panel_regions(grid, 6)
    options = GenerationOptions(max_new_tokens=N_TOKENS, ignore_eos=True)
    keep = {0, FROM_STEP, N_TOKENS - 1, *rng.choice(N_TOKENS, 12, replace=False).tolist()}
    kept: dict[int, np.ndarray] = {}  # a few steps' rows as stored (float16), to check the file
    rss: dict[int, float] = {}
    proc = psutil.Process()
    path = tmp_path / "long.h5"
    writer = SessionWriter(path, meta=loaded.describe(), image=np.asarray(image), grid=grid, regions=regions)
    t0 = time.perf_counter()
    try:
        stream = generate_stream_for(loaded, image, prompt, regions, options)
        spec = RunSpec(
            name="long",
            prompt=prompt,
            n_layers=loaded.n_layers,
            n_heads=loaded.n_heads,
            max_new_tokens=N_TOKENS,
            options=options,
            regions=regions,
        )
        for event in record_events(stream, writer, spec):
            if not isinstance(event, TokenEvent):
                continue
            step = event.step
            if step in keep:
                kept[step] = event.rows.astype(np.float16).astype(np.float32)  # [layer, head, key]
            if step % 100 == 0 or step == N_TOKENS - 1:
                rss[step] = proc.memory_info().rss / 2**20
    finally:
        writer.close()
    seconds = time.perf_counter() - t0

    # Flat memory. What may legitimately grow from step 500 to 2,000 is the KV cache (float32 keys
    # and values: layers x 2 x kv_heads x head_dim x 4 B per token, 0.75 MiB here) and a few
    # allocator/HDF5-cache pages; SLACK_MIB covers those. A leak of the captured rows themselves
    # (the thing this guards) would cost >= heads x keys x 2 B per step, i.e. >= 20 MiB over these
    # 1,500 steps even in float16, and the bound catches any leak above ~5 KiB per step.
    text = loaded.model.config.text_config
    kv_mib = (
        (N_TOKENS - FROM_STEP)
        * text.num_hidden_layers
        * 2
        * text.num_key_value_heads
        * text.head_dim
        * 4
        / 2**20
    )
    after = max(v for s, v in rss.items() if s >= FROM_STEP)  # steps before FROM_STEP are start-up
    growth = after - rss[FROM_STEP]
    print(
        f"\n{N_TOKENS} tokens in {seconds:.1f} s; RSS at step {FROM_STEP} {rss[FROM_STEP]:.1f} MiB, "
        f"max after {after:.1f} MiB (growth {growth:.2f} MiB, bound {kv_mib + SLACK_MIB:.2f} MiB)"
    )
    assert growth <= kv_mib + SLACK_MIB, rss

    # Scrub the file: random steps, one head over all steps, the trajectory.
    with SessionReader(path) as r:
        info = r.run_info(0)
        assert info.status == "finished" and info.n_steps == N_TOKENS
        latencies = []
        for step in rng.permutation(sorted(kept)):
            t = time.perf_counter()
            rows = r.step_rows(info.run_id, int(step))  # [layer, head, key]
            latencies.append(time.perf_counter() - t)
            assert rows.shape == (loaded.n_layers, loaded.n_heads, info.prompt_len + int(step))
            np.testing.assert_array_equal(rows, kept[int(step)])
        layer, head = loaded.n_layers - 1, int(rng.integers(loaded.n_heads))
        per_head = r.head_rows(info.run_id, layer, head)  # [step, key]
        assert per_head.shape == (N_TOKENS, info.prompt_len + N_TOKENS - 1)
        for step in kept:
            np.testing.assert_array_equal(per_head[step, : info.prompt_len + step], kept[step][layer, head])
        heads = all_heads(loaded.n_layers, loaded.n_heads)
        traj = r.trajectory(info.run_id, heads)  # [step, region]
        assert traj.shape == (N_TOKENS, len(regions))
        for step in kept:
            _, per_region = r.image_attention(info.run_id, step, heads)
            np.testing.assert_allclose(traj[step], per_region, rtol=1e-5, atol=1e-6)
    print(
        f"random step reads: median {1000 * np.median(latencies):.2f} ms, max {1000 * max(latencies):.2f} ms"
    )
    assert np.median(latencies) < 0.1, latencies

    scrub_in_timeline(path, qtbot, kept)


def generate_stream_for(loaded, image, prompt, regions, options):
    from gaze_explorer.inference.generation import generate_stream

    return generate_stream(loaded, image, prompt, regions=regions, options=options, capture=CaptureSpec())


def scrub_in_timeline(path, qtbot, kept: dict[int, np.ndarray]) -> None:
    """Reopen the file in the app's models and scrub the token timeline across the 2,000 steps."""
    from gaze_explorer.core.state import AppState
    from gaze_explorer.qt.session_io import open_session
    from gaze_explorer.qt.views.token_timeline import TokenTimelineView

    t0 = time.perf_counter()
    state = AppState()
    reader = open_session(path, state)
    state.heads.set_kind("all")
    view = TokenTimelineView(state)
    qtbot.addWidget(view)
    view.refresh()
    assert len(view.chips) == N_TOKENS
    drawn = view.tracks[0].data  # [region, step]
    assert drawn.shape == (len(state.session.regions), N_TOKENS)
    np.testing.assert_allclose(drawn.T, reader.trajectory(0, state.heads.active), rtol=1e-4, atol=1e-6)
    print(f"reopened in the timeline view (2,000 chips, trajectory) in {time.perf_counter() - t0:.1f} s")
    for step in sorted(kept):
        state.step.set_step(step)
        assert view.slider.value() == step
        assert view.step_label.text().startswith(f"step {step}/{N_TOKENS - 1}")
    reader.close()
