"""Peak memory stays flat: writing 400 steps costs at most a few MB more than writing 50."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
CODE = r"""
import sys, numpy as np
sys.path.insert(0, sys.argv[3])
import storage_synthetic as syn
from gaze_explorer.storage import SessionWriter
L, H, P, n = 16, 16, 600, int(sys.argv[2])
grid = syn.make_grid()
w = SessionWriter(sys.argv[1], meta={}, image=syn.make_image(), grid=grid, regions=syn.make_regions(grid))
run = w.begin_run("r", prompt="p", n_layers=L, n_heads=H, max_keys=P + 400, prompt_len=P)
rows = syn.softmax_rows(0, L, H, P + 400)
for s in range(n):
    w.append_step(run, syn.TokenEvent(s, s, "tok", None, rows[:, :, : P + s]))
w.end_run(run, "finished")
w.close()
print(int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]))
"""


def _peak_kib(tmp_path, n_steps):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CODE,
            str(tmp_path / f"m{n_steps}.h5"),
            str(n_steps),
            str(Path(__file__).parent),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


def test_peak_rss_400_steps_within_a_few_mb_of_50(tmp_path):
    small = _peak_kib(tmp_path, 50)
    large = _peak_kib(tmp_path, 400)
    print(f"peak RSS 50 steps {small / 1024:.1f} MiB, 400 steps {large / 1024:.1f} MiB")
    assert large - small < 8 * 1024, (small, large)
