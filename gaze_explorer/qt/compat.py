"""Work-arounds for bugs in the Qt bindings that the app must survive."""

from __future__ import annotations

import sys


def singleton_refs_guard(n: int = 1 << 40) -> None:
    """Give None, True and False a reserve of references for the rest of the process.

    PySide6 6.12 on Python 3.11 drops one reference to None on every call of a Qt method that
    returns nothing (``setText``, ``setStyleSheet``, ...; about 660 per scrub step, see
    docs/benchmarks.md). Without a reserve, None's count reaches zero after some thousands of
    calls and the interpreter aborts ("none_dealloc"). Python >= 3.12 makes None immortal; there
    this does nothing.
    """
    import ctypes

    if sys.version_info >= (3, 12):
        return
    # ob_refcnt is the first field of every CPython object; raising it once is all that is needed.
    # True and False leak the same way from Qt methods that return a bool.
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += n
