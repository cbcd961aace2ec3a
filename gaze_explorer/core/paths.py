"""Where the bundled resources are: the demo model, the demo comics and the model geometries.

They live in the repository's top-level ``resources/`` folder, which pyproject.toml installs as the
package ``gaze_explorer.resources`` (package data), so an editable install, ``pip install .`` and a
built wheel all find them with :mod:`importlib.resources`. Every module asks here; none computes the
path from its own ``__file__``. When the package is not installed at all (a bare checkout on
``PYTHONPATH``), the checkout's ``resources/`` folder is used.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path

from gaze_explorer.core.errors import GazeExplorerError

RESOURCES_PACKAGE = "gaze_explorer.resources"


@functools.cache
def resources_dir() -> Path:
    """The folder that holds the bundled resources (a real directory, so transformers can load from it)."""
    try:
        root = importlib.resources.files(RESOURCES_PACKAGE)
    except ModuleNotFoundError:
        # not installed: a checkout whose package is imported from the working tree
        checkout = Path(__file__).resolve().parents[2] / "resources"
        if checkout.is_dir():
            return checkout
        raise GazeExplorerError(
            f"the bundled resources ({RESOURCES_PACKAGE}) are not installed; reinstall gaze-explorer"
        ) from None
    if not isinstance(root, Path):  # e.g. a zipped install: the model must be a directory on disk
        raise GazeExplorerError(f"the bundled resources are not a folder on disk ({root}); install unzipped")
    return root


def demo_model_dir() -> Path:
    """The bundled demo model's checkpoint directory."""
    return resources_dir() / "demo_model"


def demo_comics_dir() -> Path:
    """The bundled held-out demo comics (``comicN/p1.png..p6.png`` + ground truth)."""
    return resources_dir() / "demo_comics"


def geometry_file() -> Path:
    """The published Qwen3-VL shapes (plus our ``tiny`` one) for random-initialised checkpoints."""
    return resources_dir() / "qwen3_vl_geometry.json"
