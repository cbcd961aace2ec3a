"""Size estimates, the free-space check before a run, and a disk-full failure in mid-run."""

from __future__ import annotations

import errno
import re
import shutil

import numpy as np
import pytest
import storage_synthetic as synthetic

from gaze_explorer.core.errors import DiskSpaceError
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage import SessionReader, SessionWriter, check_disk_space, estimate_run_bytes, record


def test_estimate_counts_padded_decode_rows_and_prefill():
    # 10 steps x 2 layers x 3 heads x (20 + 10) keys x 2 bytes, + last prefill row 2x3x20x2, + tokens
    assert estimate_run_bytes(2, 3, 20, 10, "last") == 10 * 2 * 3 * 30 * 2 + 2 * 3 * 20 * 2 + 640
    assert estimate_run_bytes(2, 3, 20, 10, "full") == 10 * 2 * 3 * 30 * 2 + 2 * 3 * 20 * 20 * 2 + 640
    assert estimate_run_bytes(2, 3, 20, 10, "none", capture_decode=False) == 640
    # an 8B model, 1500 prompt tokens, 300 new tokens: over a GiB
    assert estimate_run_bytes(36, 32, 1500, 300, "last") > 2**30


def test_check_disk_space_states_both_numbers(tmp_path):
    free = shutil.disk_usage(tmp_path).free
    assert check_disk_space(tmp_path / "new" / "s.h5", 1024) == pytest.approx(free, rel=0.05)
    with pytest.raises(DiskSpaceError) as info:
        check_disk_space(tmp_path / "s.h5", free * 1000)
    msg = str(info.value)
    assert re.search(r"needs about [\d.]+ [KMGT]iB", msg) and re.search(r"only [\d.]+ [KMGT]?i?B", msg)
    assert str(free * 1000) in msg


def test_begin_run_refuses_a_run_larger_than_the_disk(new_writer):
    w = new_writer()
    free = shutil.disk_usage(w.path.parent).free
    n_keys = 10**6
    with pytest.raises(DiskSpaceError, match="not enough free disk space"):
        w.begin_run(
            "huge",
            prompt="p",
            n_layers=64,
            n_heads=64,
            max_keys=n_keys + free // 10**7,
            prompt_len=n_keys,
            prefill_mode="full",
        )
    w.close()
    with SessionReader(w.path) as r:
        assert r.runs() == []  # nothing was created


class _DiskFullWriter(SessionWriter):
    """The documented test seam: the step write fails like a full disk from step ``fail_at`` on."""

    fail_at = 5

    def _write_step(self, ops, run_id, step, *rest):
        if step >= self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        super()._write_step(ops, run_id, step, *rest)


def test_disk_full_mid_run_surfaces_to_the_producer_and_keeps_the_file_readable(tmp_path):
    grid = synthetic.make_grid()
    w = _DiskFullWriter(
        tmp_path / "full.h5",
        meta=synthetic.META,
        image=synthetic.make_image(),
        grid=grid,
        regions=synthetic.make_regions(grid),
        queue_size=2,
    )
    with pytest.raises(DiskSpaceError) as info:
        spec = RunSpec(
            name="r",
            prompt="p",
            n_layers=synthetic.N_LAYERS,
            n_heads=synthetic.N_HEADS,
            max_new_tokens=40,
        )
        record(synthetic.events(40), w, spec)
    assert "full.h5" in str(info.value) and "disk is full" in str(info.value)
    assert re.search(r"needed about [\d.]+ [KMGT]?i?B", str(info.value))
    with pytest.raises(DiskSpaceError):
        w.close()  # the error stays visible; the thread is gone
    with SessionReader(tmp_path / "full.h5") as r:
        info = r.run_info(0)
        assert info.n_steps == 5 and info.status == "failed"
        want = synthetic.softmax_rows(4, synthetic.N_LAYERS, synthetic.N_HEADS, synthetic.PROMPT_LEN + 4)
        np.testing.assert_array_equal(r.step_rows(0, 4), want.astype(np.float16).astype(np.float32))
