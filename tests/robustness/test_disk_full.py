"""Disk full in the middle of a real ``gaze-explorer generate`` run.

The CLI runs in a child process under a file-size limit (``RLIMIT_FSIZE``, with ``SIGXFSZ``
ignored so that a write past it fails with ``EFBIG`` instead of killing the process), sized to hit
mid-run. The child runs the CLI's entry point (``gaze_explorer.cli.main``), forked from a server
that has imported torch and transformers once (tests/forked_children.py). Generation must stop with one clear error line naming the file and the space needed, and
the session must stay readable, its run marked failed, every written step equal to the same step of
an unlimited run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from forked_children import Child
from robust_helpers import ROOT

from gaze_explorer.core.errors import SessionFileError
from gaze_explorer.core.strips import compose_strip, load_image
from gaze_explorer.storage import SessionReader

N_TOKENS = 24
PROMPT = "Describe each panel of this comic strip in order, one short sentence each."


def _generate(image: Path, session: Path, fsize_limit: int | None = None) -> tuple[int, str]:
    """``gaze-explorer generate`` on the demo model, in a child process (one torch thread),
    optionally size-limited; its exit code and stderr."""
    argv = [
        "generate",
        "--model",
        "demo",
        "--device",
        "cpu",
        "--image",
        str(image),
        "--panels",
        "6",
        "--prompt",
        PROMPT,
        "--max-new-tokens",
        str(N_TOKENS),
        "--ignore-eos",
        "--session",
        str(session),
    ]
    err = session.with_name(session.name + ".stderr.txt")
    child = Child("gaze_explorer.cli:main", argv, err, fsize_limit=fsize_limit)
    child.stdout.read()  # to EOF: the child has ended
    child.stdout.close()
    return child.wait(400), err.read_text()


@pytest.fixture(scope="module")
def strip_image(tmp_path_factory) -> Path:
    """A bundled demo strip at the demo model's panel height."""
    folder = ROOT / "resources" / "demo_comics" / "comic1"
    panels = [load_image(folder / f"p{i}.png") for i in range(1, 7)]
    path = tmp_path_factory.mktemp("strip") / "strip.png"
    compose_strip(panels, height=96).image.save(path)
    return path


@pytest.fixture(scope="module")
def unlimited_run(tmp_path_factory, strip_image) -> Path:
    """The same generation with no size limit: the reference for every step."""
    session = tmp_path_factory.mktemp("unlimited") / "s.h5"
    code, stderr = _generate(strip_image, session)
    assert code == 0, stderr
    return session


@pytest.mark.slow  # two CLI generations with the demo model (forked children: no imports of their own)
def test_disk_full_mid_run_stops_cleanly_and_keeps_the_written_steps(tmp_path, strip_image, unlimited_run):
    full_size = unlimited_run.stat().st_size
    with SessionReader(unlimited_run) as r:
        ref = r.run_info(0)
        assert ref.status == "finished" and ref.n_steps == N_TOKENS
        ref_rows = [r.step_rows(0, s) for s in range(N_TOKENS)]
        ref_tokens = r.tokens(0)
        ref_ids = r.token_ids(0)

    session = tmp_path / "limited.h5"
    limit = int(full_size * 0.7)  # the session's fixed part fits; the run's steps do not
    code, stderr = _generate(strip_image, session, fsize_limit=limit)

    # one clear line, no traceback, a failure exit code
    assert code == 1, (code, stderr)
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, stderr
    line = errors[0]
    assert line.startswith("gaze-explorer generate: error: ")
    assert str(session) in line
    assert "needs about" in line and "bytes" in line and f"file-size limit of {limit} bytes" in line

    # the file opens; the run is marked failed, with the reason; its steps equal the unlimited run's
    assert session.stat().st_size <= limit
    with SessionReader(session) as r:
        info = r.run_info(0)
        assert info.status == "failed"
        assert "stopped writing" in info.reason and str(session) in info.reason
        n = info.n_steps
        assert 1 <= n < N_TOKENS, f"the limit did not hit mid-run ({n} of {N_TOKENS} steps written)"
        for s in range(n):
            np.testing.assert_array_equal(r.step_rows(0, s), ref_rows[s], err_msg=f"step {s}")
        assert r.tokens(0) == ref_tokens[:n]
        np.testing.assert_array_equal(r.token_ids(0), ref_ids[:n])
        with pytest.raises(SessionFileError, match="no step"):
            r.step_rows(0, n)


WRITER_CHILD = """
import resource, signal, sys
import storage_synthetic as synthetic
from gaze_explorer.core.errors import DiskSpaceError
from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage import SessionWriter, record
path, limit = sys.argv[1], int(sys.argv[2])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
grid = synthetic.make_grid()
w = SessionWriter(path, meta=synthetic.META, image=synthetic.make_image(), grid=grid,
                  regions=synthetic.make_regions(grid))
try:
    spec = RunSpec(
        name="r", prompt="p", n_layers=synthetic.N_LAYERS, n_heads=synthetic.N_HEADS, max_new_tokens=200,
    )
    record(synthetic.events(200), w, spec)
except DiskSpaceError as exc:
    print(exc)
    sys.exit(3)
sys.exit(0)
"""


@pytest.mark.parametrize("limit", [150_000, 400_000])
def test_writer_under_a_file_size_limit_stops_before_hdf5_fails(tmp_path, limit):
    """Without the model: a writer process under a file-size limit raises DiskSpaceError, exits
    normally (a write that fails inside HDF5 once left a file claiming more bytes than it had, and
    crashed the process at exit), and leaves a readable file with its run failed."""
    path = tmp_path / "s.h5"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests" / "storage")]))
    done = subprocess.run(
        [sys.executable, "-c", WRITER_CHILD, str(path), str(limit)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 3, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert f"stopped writing {path}" in done.stdout and "needs about" in done.stdout
    assert path.stat().st_size <= limit
    with SessionReader(path) as r:
        info = r.run_info(0)
        assert info.status == "failed" and 1 <= info.n_steps < 200
        r.step_rows(0, info.n_steps - 1)
