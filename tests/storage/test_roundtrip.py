"""Round trips through a real HDF5 file: what the writer stored, the reader gives back."""

from __future__ import annotations

import numpy as np
import pytest
import storage_synthetic as synthetic

from gaze_explorer.core.errors import HeadSpecError, SessionFileError
from gaze_explorer.core.heads import HeadSet
from gaze_explorer.core.options import GenerationOptions
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.core.steering import Schedule, SteeringMode, SteeringPlan, Switch
from gaze_explorer.storage import SessionReader, record
from gaze_explorer.storage.schema import ATTENTION_DTYPE

PLAN = SteeringPlan(HeadSet("top:2", ((0, 1), (2, 3))), SteeringMode.SUPPRESS_IMAGE, 5000.0, True)


def _record(writer, n_steps=12, **kw):
    opts = dict(
        name="baseline",
        prompt="Décris le 2ᵉ panneau 🙂",
        n_layers=synthetic.N_LAYERS,
        n_heads=synthetic.N_HEADS,
        max_new_tokens=n_steps,
        options=GenerationOptions(max_new_tokens=n_steps),
    )
    ev = {k: kw.pop(k) for k in ("prefill", "status", "switch_at", "seed") if k in kw}
    opts.update(kw)
    spec = RunSpec(prefill_mode=ev.get("prefill", "last"), **opts)
    return record(synthetic.events(n_steps, **ev), writer, spec)


def _f16(a):
    return np.asarray(a, dtype=ATTENTION_DTYPE).astype(np.float32)


def test_session_header_and_finished_run_read_back_identical(new_writer):
    w = new_writer()
    run_id = _record(w, plan=PLAN, schedule=Schedule((2, 0), 4), switch_at=5)
    w.close()
    with SessionReader(w.path) as r:
        assert r.meta["schema_version"] == 2 and r.meta["format"] == "gaze-explorer-session"
        assert r.meta["model_id"] == "tiny/test-model" and r.meta["revision"] == "abc123"
        assert r.meta["model"] == synthetic.META
        np.testing.assert_array_equal(r.image, synthetic.make_image())
        grid = synthetic.make_grid()
        np.testing.assert_array_equal(r.grid.token_boxes, grid.token_boxes)
        np.testing.assert_array_equal(r.grid.positions, grid.positions)
        assert [x.to_dict() for x in r.regions] == [x.to_dict() for x in synthetic.make_regions(grid)]
        info = r.run_info(run_id)
        assert info.status == "finished" and info.n_steps == 12 and info.name == "baseline"
        assert info.prompt == "Décris le 2ᵉ panneau 🙂"
        assert info.plan == PLAN.to_dict()
        assert info.schedule == {"targets": [3, 1], "switch_every": 4}
        assert info.options == GenerationOptions(max_new_tokens=12).to_dict()
        assert info.switches == (Switch(5, 0, 2, "live"),)
        assert r.tokens(run_id) == [synthetic.TOKENS[s % len(synthetic.TOKENS)] for s in range(12)]
        np.testing.assert_array_equal(r.token_ids(run_id), 1000 + np.arange(12))
        assert r.targets(run_id) == [0] * 5 + [2] * 7
        ids, strings = r.prompt_tokens(run_id)
        assert list(ids) == list(range(synthetic.PROMPT_LEN)) and strings[3] == "p3·"
        for s in (0, 7, 11):
            want = synthetic.softmax_rows(s, synthetic.N_LAYERS, synthetic.N_HEADS, synthetic.PROMPT_LEN + s)
            got = r.step_rows(run_id, s)
            assert got.shape == want.shape and got.dtype == np.float32
            np.testing.assert_array_equal(got, _f16(want))
        pre = r.prefill_rows(run_id)
        want = synthetic.softmax_rows(10_000, synthetic.N_LAYERS, synthetic.N_HEADS, synthetic.PROMPT_LEN, 1)
        np.testing.assert_array_equal(pre, _f16(want))


def test_full_prefill_and_head_rows(new_writer):
    w = new_writer()
    run_id = _record(w, n_steps=5, prefill="full")
    w.close()
    with SessionReader(w.path) as r:
        pre = r.prefill_rows(run_id)
        assert pre.shape == (
            synthetic.N_LAYERS,
            synthetic.N_HEADS,
            synthetic.PROMPT_LEN,
            synthetic.PROMPT_LEN,
        )
        hr = r.head_rows(run_id, 2, 1)  # [step, key]
        assert hr.shape == (5, synthetic.PROMPT_LEN + 4)
        for s in range(5):
            want = synthetic.softmax_rows(s, synthetic.N_LAYERS, synthetic.N_HEADS, synthetic.PROMPT_LEN + s)[
                2, 1
            ]
            np.testing.assert_array_equal(hr[s, : synthetic.PROMPT_LEN + s], _f16(want))
            assert not hr[s, synthetic.PROMPT_LEN + s :].any()


def test_cancelled_halfway_run_keeps_its_steps(new_writer):
    w = new_writer()
    stream = synthetic.events(20, status="cancelled")
    events = list(stream)
    # stop after 9 of 20 tokens, as a cancel does
    kept = [*events[:10], synthetic.FinishedEvent("cancelled", [], "stopped by the user")]
    spec = RunSpec(
        name="cut",
        prompt="p",
        n_layers=synthetic.N_LAYERS,
        n_heads=synthetic.N_HEADS,
        max_new_tokens=20,
    )
    run_id = record(iter(kept), w, spec)
    w.close()
    with SessionReader(w.path) as r:
        info = r.run_info(run_id)
        assert (info.status, info.n_steps, info.reason) == ("cancelled", 9, "stopped by the user")
        assert len(r.tokens(run_id)) == 9
        np.testing.assert_array_equal(
            r.step_rows(run_id, 8),
            _f16(synthetic.softmax_rows(8, synthetic.N_LAYERS, synthetic.N_HEADS, synthetic.PROMPT_LEN + 8)),
        )
        with pytest.raises(SessionFileError, match="9 complete step"):
            r.step_rows(run_id, 9)


def test_runs_append_across_writers_and_derived_arrays(new_writer, tmp_path):
    w = new_writer("multi.h5")
    a = _record(w, n_steps=3, name="baseline")
    b = _record(w, n_steps=4, name="steered", plan=PLAN, seed=50)
    scores = np.arange(12, dtype=np.float32).reshape(3, 4)
    w.write_derived("gaze_scores", scores, {"n_strips": 20})
    w.close()
    w2 = new_writer("multi.h5")  # reopen the same session to add a run
    c = _record(w2, n_steps=2, name="later")
    w2.write_derived("trajectory", np.ones((2, 3)), run=c)
    w2.close()
    with SessionReader(tmp_path / "multi.h5") as r:
        assert [i.run_id for i in r.runs()] == [a, b, c] == ["run_000", "run_001", "run_002"]
        assert [i.name for i in r.runs()] == ["baseline", "steered", "later"]
        assert [i.n_steps for i in r.runs()] == [3, 4, 2]
        np.testing.assert_array_equal(r.gaze_scores(), scores)
        assert r.panel_matrices() is None
        np.testing.assert_array_equal(r.derived("trajectory", run=c), np.ones((2, 3)))
        np.testing.assert_array_equal(
            r.step_rows(b, 3), _f16(synthetic.softmax_rows(53, synthetic.N_LAYERS, synthetic.N_HEADS, 43))
        )


def test_image_attention_and_trajectory_sum_region_tokens(new_writer):
    w = new_writer()
    run_id = _record(w, n_steps=6)
    w.close()
    heads = HeadSet("two", ((0, 0), (1, 3)))
    grid = synthetic.make_grid()
    regions = synthetic.make_regions(grid)
    with SessionReader(w.path) as r:
        rows = r.step_rows(run_id, 4)
        per_token, per_region = r.image_attention(run_id, 4, heads)
        want_tok = (rows[0, 0, grid.positions] + rows[1, 3, grid.positions]) / 2
        np.testing.assert_allclose(per_token, want_tok, rtol=1e-6)
        np.testing.assert_allclose(per_region, [want_tok[x.token_indices].sum() for x in regions], rtol=1e-6)
        traj = r.trajectory(run_id, heads, block=4)
        assert traj.shape == (6, 3)
        np.testing.assert_allclose(traj[4], per_region, rtol=1e-5)
        traj_all = r.trajectory(run_id)
        _, all_region = r.image_attention(run_id, 2)
        np.testing.assert_allclose(traj_all[2], all_region, rtol=1e-5)
        with pytest.raises(HeadSpecError, match="out of range"):
            r.image_attention(run_id, 0, [(9, 0)])
        with pytest.raises(HeadSpecError, match="out of range"):
            r.trajectory(run_id, [(0, 9)])


def test_step_rows_lru_cache_serves_repeated_steps(new_writer):
    w = new_writer()
    run_id = _record(w, n_steps=4)
    w.close()
    r = SessionReader(w.path, cache_steps=2)
    first = r.step_rows(run_id, 1, as_stored=True)
    assert first.dtype == np.float16
    with pytest.raises(ValueError):  # shared with the cache, so read-only: nobody can corrupt it
        first[:] = -1
    assert r.step_rows(run_id, 1, as_stored=True) is first
    mine = r.step_rows(run_id, 1)  # float32, a fresh array the caller may change
    mine[:] = -1
    again = r.step_rows(run_id, 1)
    assert again.dtype == np.float32 and (again >= 0).all()
    np.testing.assert_array_equal(again, first.astype(np.float32))
    r.step_rows(run_id, 2)
    r.step_rows(run_id, 3)
    assert list(r._cache) == [(run_id, 2), (run_id, 3)]
    r.close()
