"""Helpers of the robustness suite: real session files, digests, the demo model path."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

# the storage tests' synthetic event streams are reused to build real session files quickly
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))

import storage_synthetic as synthetic

from gaze_explorer.core.run_spec import RunSpec
from gaze_explorer.storage import SessionReader, SessionWriter, record

ROOT = Path(__file__).resolve().parents[2]
DEMO_MODEL = ROOT / "resources" / "demo_model"


def digest(path: Path) -> str:
    """SHA-256 of a file (the 'nothing lost' check: a refused input is never modified)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_session(path: Path, n_steps: int = 6) -> Path:
    """A real finished session file with one run of ``n_steps`` synthetic steps."""
    grid = synthetic.make_grid()
    w = SessionWriter(
        path,
        meta=synthetic.META,
        image=synthetic.make_image(),
        grid=grid,
        regions=synthetic.make_regions(grid),
    )
    try:
        spec = RunSpec(
            name="r",
            prompt="p",
            n_layers=synthetic.N_LAYERS,
            n_heads=synthetic.N_HEADS,
            max_new_tokens=n_steps,
        )
        record(synthetic.events(n_steps), w, spec)
    finally:
        w.close()
    return path


def read_all(path: Path) -> int:
    """Read every step of every run; returns the number of steps read."""
    n = 0
    with SessionReader(path) as r:
        for info in r.runs():
            for s in range(info.n_steps):
                r.step_rows(info.run_id, s)
                n += 1
    return n


def assert_flushed_prefix(path: Path, reference_rows: list, reference_tokens: list[str], run: int = 0) -> int:
    """Check a killed run: the file opens, the run reads ``unfinished``, and every flushed step's
    attention rows ``[layer, head, key]`` and token equal the uninterrupted run's. Returns the
    number of flushed steps."""
    import numpy as np

    with SessionReader(path) as r:
        info = r.run_info(run)
        assert info.status == "unfinished", f"{path}: run {run} is {info.status!r}, not unfinished"
        n = info.n_steps
        assert n <= len(reference_rows), (
            f"{path}: {n} steps, more than the uninterrupted {len(reference_rows)}"
        )
        for s in range(n):
            np.testing.assert_array_equal(
                r.step_rows(info.run_id, s), reference_rows[s], err_msg=f"{path} step {s}"
            )
        assert r.tokens(info.run_id) == list(reference_tokens[:n])
    return n


def read_everything(path: Path) -> None:
    """Touch every public reader call on every run, as the app does when it opens a file."""
    with SessionReader(path) as r:
        _ = r.meta, r.image, r.grid, r.regions
        for info in r.runs():
            r.tokens(info.run_id)
            r.token_ids(info.run_id)
            r.targets(info.run_id)
            r.prompt_tokens(info.run_id)
            r.prefill_rows(info.run_id)
            for s in range(info.n_steps):
                r.step_rows(info.run_id, s)
                r.image_attention(info.run_id, s)
            if info.n_steps:
                r.head_rows(info.run_id, 0, 0)
                r.trajectory(info.run_id)
        r.gaze_scores()
        r.panel_matrices()


def _serve_reads() -> None:
    """Child side of :class:`ReadWorker`: read each path named on stdin, answer one JSON line."""
    import json
    import traceback
    import warnings

    from gaze_explorer.core.errors import GazeExplorerError

    # as in pytest's configuration: our own package's warnings are errors
    for category in (DeprecationWarning, UserWarning, RuntimeWarning):
        warnings.filterwarnings("error", category=category, module="gaze_explorer")
    for line in sys.stdin:
        try:
            read_everything(Path(line.rstrip("\n")))
            answer = {"outcome": "ok", "detail": ""}
        except GazeExplorerError as exc:
            answer = {"outcome": "ours", "detail": f"{type(exc).__name__}: {exc}"}
        except BaseException:  # anything else is what the fuzz looks for
            answer = {"outcome": "other", "detail": traceback.format_exc()}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


class ReadWorker:
    """A child process that reads session files with :func:`read_everything`, one at a time, each
    under a time limit. HDF5 can spin in C on a damaged file, where no Python timeout reaches, so a
    read that overruns kills the child (and a fresh one serves the next read) instead of hanging."""

    def __init__(self) -> None:
        self._proc = None

    def _start(self):
        import os
        import subprocess

        env = dict(os.environ)
        here = str(Path(__file__).resolve().parent)
        env["PYTHONPATH"] = os.pathsep.join([here, str(ROOT), env.get("PYTHONPATH", "")])
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "import robust_helpers; robust_helpers._serve_reads()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=env,
        )

    def read(self, path: Path, timeout: float) -> tuple[str, str]:
        """``(outcome, detail)``: outcome is ``ok``, ``ours`` (our clear error), ``other`` (any other
        exception, with its traceback), ``crash`` (the child died) or ``timeout``."""
        import json
        import select

        if self._proc is None or self._proc.poll() is not None:
            self._start()
        proc = self._proc
        proc.stdin.write(f"{path}\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        if not ready:
            self.close()
            return "timeout", f"reading {path} took more than {timeout:g} s"
        line = proc.stdout.readline()
        if not line:
            code = proc.wait()
            self._proc = None
            return "crash", f"the reader process died (exit code {code})"
        answer = json.loads(line)
        return answer["outcome"], answer["detail"]

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
