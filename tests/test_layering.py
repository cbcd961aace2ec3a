"""The layering of ../shared/ARCHITECTURE.md: core imports nothing heavy; core, inference,
storage and demo never import Qt. Checked on the real import graph, in a fresh interpreter."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import gaze_explorer

FORBIDDEN = {
    "core": ("PySide6", "pyqtgraph", "torch", "transformers", "h5py", "gaze_explorer.qt"),
    "inference": ("PySide6", "pyqtgraph", "gaze_explorer.qt"),
    "storage": ("PySide6", "pyqtgraph", "gaze_explorer.qt", "torch", "transformers"),
    "demo": ("PySide6", "pyqtgraph", "gaze_explorer.qt"),
}


def _modules(layer: str) -> list[str]:
    pkg = __import__(f"gaze_explorer.{layer}", fromlist=["_"])
    names = [f"gaze_explorer.{layer}"]
    names += [m.name for m in pkgutil.walk_packages(pkg.__path__, prefix=f"gaze_explorer.{layer}.")]
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_does_not_import_forbidden_packages(layer):
    modules = _modules(layer)
    forbidden = FORBIDDEN[layer]
    code = (
        "import sys, importlib\n"
        f"mods = {modules!r}\n"
        "for m in mods:\n"
        "    if m.endswith('__main__'):\n"
        "        continue\n"
        "    importlib.import_module(m)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {forbidden!r} or "
        f"any(n == f or n.startswith(f + '.') for f in {forbidden!r}))\n"
        "print('\\n'.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    leaked = [line for line in out.stdout.splitlines() if line]
    assert not leaked, f"gaze_explorer.{layer} imports {leaked[:5]}"


def test_package_has_the_architecture_layers():
    names = {m.name for m in pkgutil.iter_modules(gaze_explorer.__path__)}
    assert {"core", "inference", "storage", "demo", "qt"} <= names
