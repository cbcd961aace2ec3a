"""Value-vector norms in the session: a real demo-model run stores ``||v||`` of every prompt key per
layer and KV head (``attention/value_norms``), equal to the norms of the value states the model's
own KV cache holds after a stock prefill; the reader gives them back per query head; a session
written before they existed has none (value weighting falls back to raw)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gaze_explorer.core.options import CaptureSpec, GenerationOptions
from gaze_explorer.core.regions import panel_regions
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.demo.comics import load_heldout_strips
from gaze_explorer.inference.generation import generate_stream
from gaze_explorer.inference.loading import load_model
from gaze_explorer.storage import SessionReader, SessionWriter
from gaze_explorer.storage.record import record
from gaze_explorer.storage.writer import kv_value_norms

ROOT = Path(__file__).resolve().parents[2]
DEMO_SESSION = ROOT / "tests" / "data" / "session_v1.h5"
pytestmark = pytest.mark.skipif(
    not (ROOT / "resources" / "demo_model" / "config.json").exists(), reason="no demo model"
)
PROMPT = "Describe each panel of this comic strip in order."


@pytest.fixture(scope="module")
def loaded():
    return load_model("demo", device="cpu", num_threads=1)


def test_a_recorded_run_stores_the_value_norms_of_its_prompt_keys(loaded, tmp_path):
    strip = load_heldout_strips(n=1)[0]
    prepared = loaded.prepare(strip.image, PROMPT)
    grid = prepared.grid
    regions = panel_regions(grid, strip.n_panels, strip.panel_widths)
    path = tmp_path / "s.h5"
    options = GenerationOptions(max_new_tokens=3)
    image = np.asarray(strip.image)
    with SessionWriter(path, meta=loaded.describe(), image=image, grid=grid, regions=regions) as w:
        spec = RunSpec("baseline", PROMPT, loaded.n_layers, loaded.n_heads, options=options)
        stream = generate_stream(loaded, strip.image, PROMPT, regions=regions, options=options)
        run_id = record(stream, w, spec)

    # the value states of a stock prefill (the model's own attention, not ours), from its KV cache
    model = loaded.model
    with torch.inference_mode():
        out = model(**loaded.adapter.prefill_kwargs(model, prepared), use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    expect = np.stack(
        [cache.layers[i].values[0].float().norm(dim=-1).numpy() for i in range(loaded.n_layers)]
    )
    n_kv = expect.shape[1]  # [layer, kv_head, key]
    assert n_kv < loaded.n_heads  # the demo model shares KV heads (GQA)

    with h5py.File(path, "r") as f:
        d = f["runs"][run_id]["attention"]["value_norms"]
        stored = d[()]
        assert stored.shape == expect.shape and int(d.attrs["heads_per_kv"]) == loaded.n_heads // n_kv
    np.testing.assert_allclose(stored, expect, rtol=1e-4, atol=1e-5)
    with SessionReader(path) as r:
        per_head = r.value_norms(run_id)  # [layer, head, key]: each KV head's norms for its heads
    assert per_head.shape == (loaded.n_layers, loaded.n_heads, prepared.prompt_len)
    np.testing.assert_array_equal(per_head, np.repeat(stored, loaded.n_heads // n_kv, axis=1))


def test_a_run_that_captures_nothing_records_no_norms_and_old_sessions_have_none():
    assert CaptureSpec().value_norms and not CaptureSpec(decode=False, prefill="none").value_norms
    with SessionReader(DEMO_SESSION) as r:
        assert all(r.value_norms(run_id) is None for run_id in r.run_ids())


def test_kv_grouping_is_lossless_and_keeps_heads_that_do_not_share():
    rng = np.random.default_rng(0)
    kv = rng.random((2, 3, 5)).astype(np.float32)
    norms, group = kv_value_norms(np.repeat(kv, 4, axis=1), 2, 12)
    assert group == 4
    np.testing.assert_array_equal(norms, kv)
    distinct = rng.random((2, 6, 5)).astype(np.float32)
    norms, group = kv_value_norms(distinct, 2, 6)
    assert group == 1
    np.testing.assert_array_equal(norms, distinct)
    with pytest.raises(ValueError, match="value norms must be"):
        kv_value_norms(distinct, 2, 5)
