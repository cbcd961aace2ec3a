"""Every session compression writes rows that read back exactly, also in a fresh process (where
only the storage package's own imports can have registered the Blosc filter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import storage_synthetic as synthetic

from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage import SessionReader, record
from gaze_explorer.storage.schema import COMPRESSIONS, DEFAULT_COMPRESSION

ROOT = Path(__file__).parents[2]
READ_BACK = """
import sys
from gaze_explorer.storage import SessionReader
with SessionReader(sys.argv[1]) as r:
    rows = r.step_rows(0, 3)
    print(rows.shape[0], rows.shape[1], rows.shape[2], float(rows.sum()))
"""


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_rows_read_back_exactly_in_this_and_a_fresh_process(new_writer, compression):
    w = new_writer(f"{compression}.h5", compression=compression)
    spec = RunSpec(
        name="r",
        prompt="p",
        n_layers=synthetic.N_LAYERS,
        n_heads=synthetic.N_HEADS,
        max_new_tokens=5,
    )
    record(synthetic.events(5), w, spec)
    w.close()
    want = synthetic.softmax_rows(3, synthetic.N_LAYERS, synthetic.N_HEADS, synthetic.PROMPT_LEN + 3)
    want = want.astype(np.float16).astype(np.float32)
    with SessionReader(w.path) as r:
        np.testing.assert_array_equal(r.step_rows(0, 3), want)
    with h5py.File(w.path, "r") as f:
        assert f["runs/run_000"].attrs["compression"] == compression
        filters = f["runs/run_000/attention/decode"]._filters
        assert bool(filters) == (compression != "none")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", READ_BACK, str(w.path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    shape_and_sum = out.stdout.split()
    assert [int(v) for v in shape_and_sum[:3]] == list(want.shape)
    assert float(shape_and_sum[3]) == pytest.approx(float(want.sum()), rel=1e-6)


def test_the_default_compression_is_blosc_lz4():
    assert DEFAULT_COMPRESSION == "lz4"
    from gaze_explorer.storage.schema import compression_kwargs

    kw = compression_kwargs("lz4")
    assert kw["compression"] == 32001  # the registered Blosc filter id
