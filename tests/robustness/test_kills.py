"""SIGKILL during generation, at seeded random moments, from the CLI and from the app's worker.

Every kill leaves a session file that opens, whose run reads as unfinished, and whose flushed steps
(attention rows and tokens) equal those of one uninterrupted run of the same input. The
uninterrupted run is the CLI's; the app records the same greedy generation (same image, prompt,
options and thread count), so one reference serves both.

Each child is a real process forked from one server that has imported torch, transformers and Qt
(tests/forked_children.py): it runs the CLI's entry point (``gaze_explorer.cli.main``) or the app
child's, and is ended by a real SIGKILL; the ~6 s of imports a fresh ``python`` pays are paid once.
"""

from __future__ import annotations

import os
import select
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from forked_children import Child
from robust_helpers import DEMO_MODEL, ROOT, assert_flushed_prefix

from gaze_explorer.storage import SessionReader

pytestmark = pytest.mark.skipif(not (DEMO_MODEL / "config.json").exists(), reason="no demo model")

CLI_ENTRY, APP_ENTRY = "gaze_explorer.cli:main", "kill_app_child:main"
SEED = 20261121
N_CLI_KILLS, N_APP_KILLS = 5, 5
MAX_NEW_TOKENS = 64  # the demo model's narration ends (EOS) after ~40 tokens
CHILD_TIMEOUT_S = 300.0  # a saturated 2-core machine can take minutes to start a child


def _cli_command(image: Path, prompt: str, session: Path) -> list[str]:
    # the children run on one torch thread (forked_children): the app, the CLI and the reference
    # then compute bit-identical rows
    return [
        "generate",
        "--model",
        "demo",
        "--image",
        str(image),
        "--panels",
        "6",
        "--prompt",
        prompt,
        "--max-new-tokens",
        str(MAX_NEW_TOKENS),
        "--session",
        str(session),
    ]


def _app_command(image: Path, prompt: str, session_dir: Path) -> list[str]:
    return [str(image), "6", prompt, str(MAX_NEW_TOKENS), str(session_dir)]


@dataclass
class Killed:
    kind: str  # "cli" | "app"
    path: Path | None  # the session file
    shown: int  # steps the child had shown when the kill was sent
    kill_at: int
    returncode: int | None  # None: the child hung and was killed at the deadline
    output: str


def _progress(kind: str, text: str) -> tuple[int, Path | None]:
    """Steps shown so far and the session path, from a child's stdout so far.

    The CLI prints each token's text as it streams; the demo tokenizer is word-level, so the
    number of words is the number of tokens shown. The app child prints ``step <n>`` lines.
    """
    if kind == "cli":
        return len(text.split()), None
    path, shown = None, 0
    for line in text.splitlines():
        if line.startswith("session "):
            path = Path(line[len("session ") :])
        elif line.startswith("step "):
            shown = int(line.split()[1])
    return shown, path


def _kill_when(
    kind: str, command: list[str], kill_at: int, delay_s: float, path: Path | None, err_file: Path
) -> Killed:
    """Start the child, SIGKILL it ``delay_s`` after it has shown ``kill_at`` steps."""
    child = Child(CLI_ENTRY if kind == "cli" else APP_ENTRY, command, err_file)
    fd = child.stdout.fileno()
    text, shown, deadline = "", 0, time.monotonic() + CHILD_TIMEOUT_S
    try:
        while shown < kill_at or (kind == "app" and path is None):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:  # the child ended (or hung) before the chosen moment
                break
            text += chunk.decode(errors="replace")
            shown, found = _progress(kind, text)
            path = path or found
        else:
            time.sleep(delay_s)  # a random moment inside the step: mid-forward, mid-write or mid-flush
            child.send_signal(signal.SIGKILL)
    finally:
        hung = child.poll() is None and time.monotonic() > deadline
        if hung:
            child.kill()
        child.wait(CHILD_TIMEOUT_S)
        child.stdout.close()
    # a child that hung is reported as such, never counted as killed mid-run
    code = None if hung else child.returncode
    return Killed(kind, path, shown, kill_at, code, text + err_file.read_text()[-2000:])


@pytest.fixture(scope="module")
def strip_png(tmp_path_factory) -> Path:
    from gaze_explorer.core.strips import iter_strip_folders

    strip = next(iter(iter_strip_folders(ROOT / "resources" / "demo_comics")))
    path = tmp_path_factory.mktemp("kills") / "strip.png"
    strip.image.save(path)
    return path


@pytest.mark.slow
def test_sigkill_cli_and_app_at_random_moments(strip_png, tmp_path):
    from gaze_explorer.demo.prompts import NARRATION_PROMPT

    ref_path = tmp_path / "reference.h5"
    ref = Child(CLI_ENTRY, _cli_command(strip_png, NARRATION_PROMPT, ref_path), tmp_path / "ref-stderr.txt")
    ref_out = ref.stdout.read().decode()  # to EOF: the child has ended
    ref.stdout.close()
    assert ref.wait(CHILD_TIMEOUT_S) == 0, (ref_out, (tmp_path / "ref-stderr.txt").read_text())
    with SessionReader(ref_path) as r:
        info = r.run_info(0)
        assert info.status == "finished"
        reference_rows = [r.step_rows(info.run_id, s) for s in range(info.n_steps)]  # [layer, head, key] each
        reference_tokens = r.tokens(info.run_id)
    n_ref = len(reference_rows)
    assert n_ref >= 12, f"the uninterrupted run must be long enough to kill mid-run ({n_ref} steps)"

    # seeded random moments: after k >= 3 shown steps (so at least one is flushed), k in the first
    # ~60 % of the run (so the kill lands before its end), plus a delay inside the following step
    rng = np.random.default_rng(SEED)
    jobs = []
    for i in range(N_CLI_KILLS + N_APP_KILLS):
        kind = "cli" if i < N_CLI_KILLS else "app"
        kill_at = int(rng.integers(3, max(4, int(0.6 * n_ref))))
        delay_s = float(rng.uniform(0.0, 0.015))
        if kind == "cli":
            path = tmp_path / f"cli{i}.h5"
            command = _cli_command(strip_png, NARRATION_PROMPT, path)
        else:
            path = None
            session_dir = tmp_path / f"app{i}"
            session_dir.mkdir()
            command = _app_command(strip_png, NARRATION_PROMPT, session_dir)
        jobs.append((kind, command, kill_at, delay_s, path, tmp_path / f"stderr{i}.txt"))
    with ThreadPoolExecutor(max_workers=2) as pool:  # two children at a time: start-up dominates
        results = list(pool.map(lambda job: _kill_when(*job), jobs))

    flushed = []
    for k in results:
        assert k.returncode == -signal.SIGKILL, f"{k.kind} child was not killed mid-run: {k.output}"
        assert k.path is not None and k.path.exists(), k.output
        n = assert_flushed_prefix(k.path, reference_rows, reference_tokens)
        assert 1 <= n < n_ref, f"{k.kind} kill at {k.kill_at} left {n} of {n_ref} steps"
        flushed.append((k.kind, k.kill_at, n))
    print(
        f"\n{len(results)} SIGKILLs (kind, shown steps at kill, flushed steps): {flushed}; reference {n_ref} steps"
    )
    assert sum(kind == "cli" for kind, _, _ in flushed) == N_CLI_KILLS
    assert sum(kind == "app" for kind, _, _ in flushed) == N_APP_KILLS
