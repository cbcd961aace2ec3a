"""The layering of ARCHITECTURE.md, read from pyproject.toml's [tool.importlinter], its only copy.

``lint-imports`` checks the contracts on the static import graph (also in .ci/run); it runs here too
so that the README's ``python -m pytest -q`` alone catches a broken layer. The static graph stops at
the first external package, so the second test imports each layer in a fresh interpreter and checks
that no forbidden heavy package arrived through a third-party import either.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"


def _contracts() -> list[dict]:
    return tomllib.loads(PYPROJECT.read_text())["tool"]["importlinter"]["contracts"]


def _external_bans() -> list[tuple[str, str, tuple[str, ...]]]:
    """(contract name, source package, forbidden external packages) for each forbidden contract."""
    bans = []
    for contract in _contracts():
        if contract["type"] != "forbidden":
            continue
        external = tuple(m for m in contract["forbidden_modules"] if not m.startswith("gaze_explorer"))
        for source in contract["source_modules"]:
            if external:
                bans.append((contract["name"], source, external))
    return bans


def test_lint_imports_passes(capsys):
    from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

    code = lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True)
    assert code == EXIT_STATUS_SUCCESS, capsys.readouterr().out


@pytest.mark.parametrize(
    ("contract", "source", "forbidden"),
    [pytest.param(*ban, id=f"{ban[1]}-{ban[0]}") for ban in _external_bans()],
)
def test_no_forbidden_package_arrives_at_run_time(contract, source, forbidden):
    pkg = __import__(source, fromlist=["_"])
    path = getattr(pkg, "__path__", [])  # a package's modules too; a plain module alone
    modules = [source] + [
        m.name for m in pkgutil.walk_packages(path, prefix=f"{source}.") if not m.name.endswith("__main__")
    ]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"print('\\n'.join(sorted(n for n in sys.modules if n.split('.')[0] in {forbidden!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    leaked = out.stdout.split()
    assert not leaked, f"{contract}: importing {source} loads {leaked[:5]}"
