"""The writer thread writes steps in batches: fewer flushes than steps, the same file contents,
and a step that was waited for is on disk and counted."""

from __future__ import annotations

import numpy as np
import storage_synthetic as synthetic

from gaze_explorer.core.events import TokenEvent
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage import SessionReader, record_events


def _stream(writer, n_steps, on_step=None, switch_at=None):
    spec = RunSpec(
        name="r",
        prompt="p",
        n_layers=synthetic.N_LAYERS,
        n_heads=synthetic.N_HEADS,
        max_new_tokens=n_steps,
    )
    for event in record_events(synthetic.events(n_steps, switch_at=switch_at), writer, spec):
        if on_step is not None and isinstance(event, TokenEvent):
            on_step(event.step)


def test_a_burst_of_steps_is_written_in_fewer_commits_and_reads_back_exactly(new_writer):
    w = new_writer(queue_size=256)
    _stream(w, 120, switch_at=40)
    w.wait()
    assert w.committed_steps == 120
    assert w.commits < 120  # steps queued faster than the commit interval share a commit
    w.close()
    with SessionReader(w.path) as r:
        info = r.run_info(0)
        assert info.n_steps == 120 and info.status == "finished"
        for s in (0, 39, 40, 119):
            want = synthetic.softmax_rows(s, synthetic.N_LAYERS, synthetic.N_HEADS, synthetic.PROMPT_LEN + s)
            np.testing.assert_array_equal(r.step_rows(0, s), want.astype(np.float16).astype(np.float32))
        assert r.tokens(0) == [synthetic.TOKENS[s % len(synthetic.TOKENS)] for s in range(120)]
        assert [sw.step for sw in info.switches] == [40]


def test_a_waited_for_step_is_on_disk_and_counted(new_writer):
    w = new_writer()
    seen = []

    def check(step):
        w.wait()  # wait() returns only once the staged step is committed
        with SessionReader(w.path) as r:
            seen.append(r.run_info(0).n_steps)

    _stream(w, 6, on_step=check)
    assert seen == [1, 2, 3, 4, 5, 6]
    assert w.commits == w.committed_steps == 6  # nothing else queued: one step per commit
