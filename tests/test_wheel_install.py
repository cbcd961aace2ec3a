"""A built wheel carries the bundled demo model and comics as package data and runs the demo from a
fresh virtual environment (what ``pip install .`` does: build a wheel, install it).

The wheel is built from a copy of the working tree, so the repository is left untouched. The fresh
venv gets the project from the wheel only; its dependencies (torch, transformers, ...) come from the
running environment through a ``.pth`` file, so nothing is downloaded. Commands run from a temporary
folder with no ``PYTHONPATH``, and the test checks that ``gaze_explorer`` and its resources were
imported from the new venv, not from this checkout.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "resources"
PREFIX = "gaze_explorer/resources/"
AMBIGUOUS = "What is happening in this panel of the comic strip?"  # demo.prompts.AMBIGUOUS_PROMPT
# What the copy of the working tree leaves out (environments, caches, build output, sessions).
NOT_COPIED = (
    ".venv",
    ".git",
    "build",
    "dist",
    "sessions",
    "*.egg-info",
    "__pycache__",
    "*cache*",
    ".hypothesis",
)


def _can_build_offline() -> bool:
    """setuptools builds wheels itself from 70.1 on; before that it needs the ``wheel`` package."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) >= (70, 1):
        return True
    try:
        importlib.metadata.version("wheel")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(*NOT_COPIED))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(src)]
    if _can_build_offline():  # otherwise pip fetches the build backend from the package registry
        cmd.insert(4, "--no-build-isolation")
    _run(cmd, cwd=tmp)
    (built,) = (tmp / "dist").glob("gaze_explorer-*.whl")
    return built


def test_the_package_list_names_every_package_folder():
    """pyproject lists the packages (a package-dir mapping rules out packages.find): a new subpackage
    missing from the list would be left out of the wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "gaze_explorer").rglob("__init__.py")
    }
    assert listed - {"gaze_explorer.resources"} == on_disk
    assert (RESOURCES / "__init__.py").is_file()


@pytest.mark.slow
def test_the_wheel_holds_the_demo_model_and_comics(wheel):
    with zipfile.ZipFile(wheel) as z:
        sizes = {info.filename: info.file_size for info in z.infolist()}
    shipped = [RESOURCES / "qwen3_vl_geometry.json"]
    for folder in (RESOURCES / "demo_model", RESOURCES / "demo_comics"):
        shipped += [p for p in folder.rglob("*") if p.is_file()]
    assert len(shipped) > 100  # the model's files and 24 strips of 6 panels
    for path in shipped:
        name = PREFIX + path.relative_to(RESOURCES).as_posix()
        assert sizes.get(name) == path.stat().st_size, name
    assert not any(n.startswith("resources/") for n in sizes)  # no stray top-level package


@pytest.mark.slow
def test_the_installed_wheel_runs_the_demo_from_its_own_files(wheel, tmp_path):
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    py = venv / "bin" / "python"
    site = Path(
        _run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp_path
        ).stdout.strip()
    )
    # the dependencies (and pip) from this environment; the project itself only from the wheel
    here = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_deps_from_test_env.pth").write_text("".join(f"{p}\n" for p in here))
    _run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
        tmp_path,
    )

    probe = _run([str(py), "-c", PROBE, str(tmp_path / "strip.png")], cwd=tmp_path)
    found = json.loads(probe.stdout)
    for key in ("package", "resources", "demo_model"):
        assert Path(found[key]).is_relative_to(venv), (key, found[key])

    gaze_explorer = str(venv / "bin" / "gaze-explorer")
    flags = ["--model", "demo", "--device", "cpu", "--panels", "6", "--max-new-tokens", "8"]
    cmd = [gaze_explorer, "generate", *flags, "--image", str(tmp_path / "strip.png"), "--prompt", AMBIGUOUS]
    out = _run(cmd, cwd=tmp_path)
    answer = out.stdout.split()
    # the demo model answers the ambiguous question about panel 1: "a <object> square on <background> ."
    first = found["panel1"]
    assert answer[:5] == ["a", first["object"], "square", "on", first["background"]], out.stdout


# Run inside the new venv: where the package and its resources come from, and the first demo strip.
PROBE = """
import json, sys
import gaze_explorer
from gaze_explorer.core.paths import demo_comics_dir, demo_model_dir, resources_dir
from gaze_explorer.core.strips import iter_strip_folders
strip = next(iter(iter_strip_folders(demo_comics_dir())))
strip.image.save(sys.argv[1])
print(json.dumps({"package": gaze_explorer.__file__, "resources": str(resources_dir()),
                  "demo_model": str(demo_model_dir()), "panel1": strip.attributes[0]}))
"""
