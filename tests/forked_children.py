"""Child processes forked from one pre-imported Python, for the tests that start a process only to
SIGKILL it or to fill its disk (tests/robustness/test_kills.py, tests/storage/test_crash_model.py,
tests/robustness/test_disk_full.py, tests/storage/test_app_kill.py).

A fresh ``python`` that loads a model spends ~6 s of CPU importing torch, transformers' Qwen3-VL
code and Qt before it does anything; these tests start 17 such processes. multiprocessing's
``forkserver`` imports those modules once, in one server process started on first use, and forks
each child from it. Every child is still a separate, real process (its own pid, memory, open files
and threads) that runs the same entry point as the command line (``gaze_explorer.cli:main``) or
the test's child script, and that a real SIGKILL ends; only the imports are shared.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import resource
import signal
import sys
from pathlib import Path

# imported once by the fork server; a module that fails to import is skipped there (then imported
# by each child, slower but the same)
PRELOAD = [
    "torch",
    "transformers",
    "transformers.models.qwen3_vl.modeling_qwen3_vl",
    "h5py",
    "gaze_explorer.cli",
    "gaze_explorer.cli.generate",
    "gaze_explorer.inference.generation",
    "gaze_explorer.inference.loading",
    "gaze_explorer.storage",
    "PySide6.QtWidgets",
    "gaze_explorer.qt.main_window",
]


def _context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # takes effect when the server starts (the first child)
    return ctx


def _child(entry: str, argv: list[str], out, err_path: str, fsize_limit: int | None) -> None:
    """In the forked child: stdout into the parent's pipe, stderr into ``err_path``, one torch
    thread (what ``OMP_NUM_THREADS=1`` gives a fresh process), the file-size limit if any, then
    ``entry(argv)``; its return value is the exit code."""
    os.dup2(out.fileno(), 1)
    out.close()
    err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(err, 2)
    os.close(err)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    if fsize_limit is not None:  # SIGXFSZ ignored: a write past the limit fails with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))
    module, name = entry.split(":")
    code = getattr(importlib.import_module(module), name)(list(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(int(code or 0))


class Child:
    """A started child, used like ``subprocess.Popen``: ``pid``, ``stdout`` (unbuffered, binary:
    ``fileno()`` for ``select``, ``readline()``), ``poll()``, ``send_signal()``, ``kill()``,
    ``wait(timeout)`` and ``returncode`` (``-signal.SIGKILL`` once killed). ``fsize_limit``: the
    child's ``RLIMIT_FSIZE`` in bytes (its stderr file counts too)."""

    def __init__(self, entry: str, argv: list[str], err_path: Path, fsize_limit: int | None = None):
        ctx = _context()
        read, write = ctx.Pipe(duplex=False)
        args = (entry, list(argv), write, str(err_path), fsize_limit)
        self._process = ctx.Process(target=_child, args=args)
        self._process.start()
        write.close()  # the child holds the only write end: EOF once it is gone
        self.stdout = os.fdopen(os.dup(read.fileno()), "rb", buffering=0)
        read.close()
        self.pid = self._process.pid

    def poll(self) -> int | None:
        return self._process.exitcode

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def kill(self) -> None:
        self._process.kill()

    def wait(self, timeout: float | None = None) -> int | None:
        self._process.join(timeout)
        return self._process.exitcode

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode
