"""Untrusted files: scan our own source for code paths that could run code from a file.

No pickle (or marshal/shelve/dill) anywhere, no builtin ``eval``/``exec``/``compile``, ``torch.load``
only with ``weights_only=True``, ``trust_remote_code`` never hard-wired to ``True``, and the shipped
demo model is safetensors only. The scan parses the AST, so ``model.eval()`` and ``app.exec()``
(methods, not the builtins) are fine, while a real ``eval(...)`` call is caught.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [*sorted((ROOT / "gaze_explorer").rglob("*.py")), ROOT / "main.py"]
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "dill", "marshal", "shelve", "cloudpickle", "joblib"}
BANNED_BUILTINS = {"eval", "exec", "compile", "__import__"}


def _violations(source: str, name: str) -> list[str]:
    """Every unsafe construct in one module's source, as 'file:line: what'."""
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in BANNED_MODULES:
                    found.append(f"{name}:{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in BANNED_MODULES:
            found.append(f"{name}:{node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in BANNED_BUILTINS:
                found.append(f"{name}:{node.lineno}: {func.id}(...)")
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "load"
                and getattr(func.value, "id", "") == "torch"
            ):
                safe = any(
                    k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                    for k in node.keywords
                )
                if not safe:
                    found.append(f"{name}:{node.lineno}: torch.load without weights_only=True")
            for k in node.keywords:
                if (
                    k.arg == "trust_remote_code"
                    and isinstance(k.value, ast.Constant)
                    and k.value.value is True
                ):
                    found.append(f"{name}:{node.lineno}: trust_remote_code=True hard-wired")
        elif isinstance(node, ast.Attribute) and getattr(node.value, "id", "") in BANNED_MODULES:
            found.append(f"{name}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_scanner_catches_each_unsafe_construct():
    """The scanner itself must flag what it claims to (so a clean result means something)."""
    bad = (
        "import pickle\nfrom marshal import loads\nimport torch\n"
        "x = eval('1')\nexec('y=1')\ntorch.load('w.pt')\nf(trust_remote_code=True)\npickle.loads(b'')\n"
    )
    hits = _violations(bad, "bad.py")
    assert len(hits) == 7, hits
    ok = "import torch\nmodel.eval()\napp.exec()\ntorch.load('w.pt', weights_only=True)\nf(trust_remote_code=flag)\n"
    assert _violations(ok, "ok.py") == []


def test_no_pickle_eval_exec_or_unsafe_load_in_the_package():
    assert len(SOURCES) > 20, "the scan found too few modules; is the package path right?"
    found = []
    for path in SOURCES:
        found += _violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == [], "unsafe constructs:\n" + "\n".join(found)


def test_trust_remote_code_defaults_to_false():
    import inspect

    from gaze_explorer.inference.loading import load_model

    assert inspect.signature(load_model).parameters["trust_remote_code"].default is False


@pytest.mark.parametrize("folder", ["resources/demo_model"])
def test_shipped_weights_are_safetensors_only(folder):
    path = ROOT / folder
    if not path.is_dir():
        pytest.skip(f"{folder} not built yet")
    suffixes = {p.suffix for p in path.iterdir()}
    assert ".safetensors" in suffixes
    assert not suffixes & {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}
