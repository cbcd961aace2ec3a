"""The input-coverage warning of every command that feeds images to a model (issue 19).

A fixed-resolution processor under the ``native`` policy (CLIP's centre crop: LLaVA-1.5, InternVL,
Ovis) lets only part of a wide strip reach the language model. Each command says so on stderr
before it runs, in ``core.regions.coverage_warning``'s words (the app's too), naming the first image
of each size that loses part of itself: once per image size and loaded model, so a dataset of
same-size strips warns once, and the report's stages (one loaded model) do not repeat it.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterable

from gaze_explorer.core.errors import GazeExplorerError
from gaze_explorer.core.regions import coverage_warning

# Past this many sizes the rest are summed up in one line (a COCO folder has dozens of sizes).
MAX_DETAILED_SIZES = 3

# (input policy, (width, height)) -> coverage already measured (None: the processor refused the
# size), per loaded model's adapter
_checked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def image_coverage(loaded, size: tuple[int, int]) -> float:
    """The fraction of a ``size`` (width, height) image that reaches the language model under the
    model's input policy. The processors look at the size only, never at the pixels, so a blank
    image of that size is measured once per size and policy (``FamilyAdapter.coverage``)."""
    from PIL import Image

    size = (int(size[0]), int(size[1]))
    measured = _checked.setdefault(loaded.adapter, {})
    key = (loaded.adapter.input_policy, size)
    if measured.get(key) is None:  # not measured, or refused by the processor (it says why again)
        prepared = loaded.adapter.build_inputs(Image.new("RGB", size), "describe the image")
        measured[key] = float(prepared.info["vision"].get("coverage", 1.0))
    return measured[key]


def warn_partial_coverage(
    loaded,
    images: Iterable[tuple[str, tuple[int, int]]],
    known: dict[tuple[int, int], float] | None = None,
) -> list[str]:
    """Print a warning on stderr for each image size not checked yet on ``loaded`` that loses part
    of the image (``images``: (name, (width, height)) in the order they are fed); returns the lines
    printed. ``known`` maps a size to a coverage already measured (``generate``'s own inputs)."""
    policy = loaded.adapter.input_policy
    measured = _checked.setdefault(loaded.adapter, {})
    cropped: list[tuple[str, tuple[int, int], float]] = []
    for name, size in images:
        size = (int(size[0]), int(size[1]))
        if (policy, size) in measured:
            continue  # said (or not) when first seen
        try:
            coverage = (known or {}).get(size)
            if coverage is None:
                coverage = image_coverage(loaded, size)
            measured[(policy, size)] = coverage
        except GazeExplorerError:
            measured[(policy, size)] = None  # refused: fails with its own message when it is fed
            continue
        if coverage < 0.999:
            cropped.append((name, size, coverage))
    lines = []
    for name, (width, height), coverage in cropped[:MAX_DETAILED_SIZES]:
        where = f"{name}, {width}x{height} px, and any other image of that size"
        lines.append(f"warning: {coverage_warning(coverage, policy, loaded.family, where)}")
    if len(cropped) > MAX_DETAILED_SIZES:
        rest = cropped[MAX_DETAILED_SIZES:]
        lines.append(
            f"warning: {len(rest)} more image sizes lose part of the image under input policy {policy!r} "
            f"(as little as {min(c for _, _, c in rest):.0%} reaches the model); use --input-policy squash "
            "to keep every image whole"
        )
    for line in lines:
        print(line, file=sys.stderr)
    return lines


def strip_sizes(strips) -> list[tuple[str, tuple[int, int]]]:
    """(name, (width, height)) of each strip, for :func:`warn_partial_coverage`."""
    return [(strip.name, strip.image.size) for strip in strips]
