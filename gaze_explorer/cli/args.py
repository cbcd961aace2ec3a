"""Argument types and flag groups shared by the CLI commands, the app's own flags
(``cli.app_args``) and ``gaze-explorer bench`` (``cli.bench``).

Only argparse and the standard library are imported at module level, so the CLI and the app can
parse their flags before torch, h5py or Qt load. Every type raises ``ArgumentTypeError``, which
argparse turns into the usage, one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import math
from itertools import pairwise

from gaze_explorer.core.model_choices import DEVICES, DTYPES  # standard library only: cheap
from gaze_explorer.core.protocol_choices import CRITERIA  # standard library only

# the values some flags choose among (the CLI's parser, the app's and the docs use these)
PROTOCOLS = ("static", "narration", "dynamic", "region")
MODES = ("boost_suppress", "suppress_image", "suppress_all", "max_suppress_all")  # core.steering.SteeringMode
CONDITIONS = ("gaze", "image", "localization", "random", "all", "baseline")  # inference.evaluation.CONDITIONS
DEFAULT_CONDITIONS = ("gaze", "random", "all", "baseline")
FIGURES = ("grid", "overlay", "timeline", "matrix", "heads", "all")
DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
REAL_PANEL_HEIGHT = 256  # strip height of a real comics folder when --panel-height is not given
INPUT_POLICIES = ("native", "squash", "pad")  # inference.adapters.base.INPUT_POLICIES


# -- argument types ----------------------------------------------------------------------------------
def _whole_number(text: str, minimum: int, requirement: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {requirement}, got {value}")
    return value


def positive_int(text: str) -> int:
    return _whole_number(text, 1, "at least 1")


def non_negative_int(text: str) -> int:
    return _whole_number(text, 0, "0 or more")


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} must be finite")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value:g}")
    return value


def box(text: str) -> tuple[float, float, float, float]:
    """``x0,y0,x1,y1`` in image pixels, with x1 > x0 and y1 > y0."""
    parts = [p.strip() for p in text.split(",")]
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a box is four numbers x0,y0,x1,y1 in image pixels"
        ) from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise argparse.ArgumentTypeError(f"{text!r}: coordinates must be finite")
    if x1 <= x0 or y1 <= y0:
        raise argparse.ArgumentTypeError(f"{text!r}: need x1 > x0 and y1 > y0")
    return (x0, y0, x1, y1)


def _numbers(text: str, what: str, example: str) -> tuple[float, ...]:
    try:
        values = tuple(float(p.strip()) for p in text.replace(";", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write {what} separated by commas, e.g. {example}"
        ) from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: {what} must be finite")
    return values


def panel_widths(text: str) -> tuple[float, ...]:
    """Relative widths of side-by-side panels (pixels or ratios), e.g. ``1,2,1,3``."""
    values = _numbers(text, "panel widths", "1,2,1,3")
    if len(values) < 2 or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give two or more positive panel widths, e.g. 1,2,1,3")
    return values


def panel_bounds(text: str) -> tuple[float, ...]:
    """Pixel x-positions of the boundaries between panels, increasing, e.g. ``300,900,1100``."""
    values = _numbers(text, "boundary x-positions", "300,900,1100")
    if any(v <= 0 for v in values) or any(b <= a for a, b in pairwise(values)):
        raise argparse.ArgumentTypeError(f"{text!r}: boundaries must be positive and increasing")
    return values


def schedule(text: str) -> tuple[int, ...]:
    """Panel numbers (1-based) separated by commas, e.g. ``4,2,1,6,5,3``."""
    parts = [p.strip() for p in text.replace(";", ",").split(",")]
    try:
        panels = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write panel numbers separated by commas, e.g. 4,2,1,6,5,3"
        ) from None
    if any(p < 1 for p in panels):
        raise argparse.ArgumentTypeError(f"{text!r}: panels are numbered from 1")
    return panels


def shard(text: str) -> str:
    """``i/n`` with 1 <= i <= n: this job's share of the strips."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: write i/n, e.g. 1/4 for the first of four shards"
        ) from None
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: need 1 <= i <= n")
    return f"{i}/{n}"


def head_spec(text: str) -> str:
    """``top:K``, ``random:K``, ``all`` or a head-list file (checked by ``core.heads.parse_head_spec``)."""
    from gaze_explorer.core.errors import HeadSpecError
    from gaze_explorer.core.heads import parse_head_spec

    try:
        parse_head_spec(text)
    except HeadSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def control_pool(text: str) -> str:
    """``band``, ``all-non-gaze`` or ``percentile:P`` (checked by ``core.heads.ControlPool.parse``),
    refused here so that a typo fails before any model or strip loads."""
    from gaze_explorer.core.errors import HeadSpecError
    from gaze_explorer.core.heads import ControlPool

    try:
        ControlPool.parse(text)
    except HeadSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _is_cuda_device(text: str) -> bool:
    return text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit())


def device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (:data:`DEVICES`, plus ``cuda:N``)."""
    if not (text in DEVICES or _is_cuda_device(text)):
        raise argparse.ArgumentTypeError(f"{text!r}: use auto, cpu, cuda, cuda:N or mps")
    return text


def device_map(text: str) -> str:
    """An accelerate ``device_map``: a placement strategy, or one device for the whole model."""
    if not (text in DEVICE_MAP_STRATEGIES or text in ("cpu", "mps", "disk") or _is_cuda_device(text)):
        raise argparse.ArgumentTypeError(
            f"{text!r}: use {', '.join(DEVICE_MAP_STRATEGIES)}, or one device (cpu, cuda, cuda:N, mps)"
        )
    return text


def capture_scope(text: str) -> str:
    """``full``, ``image-keys`` or ``heads:FILE`` (the file is read when the run starts)."""
    if text in ("full", "image-keys") or (text.startswith("heads:") and len(text) > len("heads:")):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: use full, image-keys or heads:FILE (a head list)")


def conditions(text: str) -> tuple[str, ...]:
    """A comma list drawn from :data:`CONDITIONS`."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [n for n in names if n not in CONDITIONS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: choose among {','.join(CONDITIONS)}")
    return names


def criteria(text: str) -> tuple[str, ...]:
    """A comma list drawn from :data:`CRITERIA` (``evaluate sweep --criteria``)."""
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [n for n in names if n not in CRITERIA]
    if bad or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r}: choose among {','.join(CRITERIA)}, each once")
    return names


# -- flag groups -------------------------------------------------------------------------------------
def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--device``, ``--dtype`` and the placement flags: every parser that loads a model."""
    p.add_argument(
        "--model", default="demo", help="'demo' (bundled), a local folder, or a cached Hugging Face id"
    )
    p.add_argument(
        "--device", type=device, default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)"
    )
    p.add_argument("--dtype", default="auto", choices=DTYPES, help="weights' dtype (default auto)")
    p.add_argument(
        "--input-policy",
        choices=INPUT_POLICIES,
        default=None,
        help="how the image is fitted to the model: native (its own processor), squash (resize to the "
        "tower's square first: the paper's fix for strips) or pad; default: the family's (docs/models.md)",
    )
    add_placement_args(p)


def add_placement_args(p: argparse.ArgumentParser) -> None:
    """``--device-map`` and ``--trust-remote-code``."""
    p.add_argument(
        "--device-map",
        type=device_map,
        default=None,
        help="spread a checkpoint too large for one GPU with accelerate: auto, balanced, "
        "balanced_low_0, sequential, or one device (overrides --device; default off)",
    )
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run the Python code shipped in the model folder (needed by some checkpoints); "
        "only for checkpoints you trust (default off)",
    )


def add_executor_args(p: argparse.ArgumentParser) -> None:
    """``--executor`` and its settings: run the command as ``--jobs`` shards (``cli.executor``)."""
    x = p.add_argument_group("sharded runs (--executor)")
    x.add_argument(
        "--executor",
        choices=("local", "slurm"),
        default=None,
        help="run as --jobs shards, then merge: local (parallel processes here) or slurm (one job "
        "array through submitit: pip install 'gaze-explorer[cluster]'); rerun to resume failed shards",
    )
    x.add_argument("--jobs", type=positive_int, default=4, help="number of shards (default 4)")
    x.add_argument(
        "--shard-dir", default=None, help="folder of the shards' partial results (default OUT.shards)"
    )
    x.add_argument("--retries", type=non_negative_int, default=1, help="reruns of failed shards (default 1)")
    x.add_argument(
        "--detach", action="store_true", help="slurm: return once submitted; merge with `merge DIR`"
    )
    x.add_argument("--slurm-partition", default=None, help="slurm partition")
    x.add_argument("--slurm-gpus-per-job", type=non_negative_int, default=None, help="GPUs per shard")
    x.add_argument("--slurm-cpus-per-job", type=positive_int, default=None, help="CPUs per shard")
    x.add_argument("--slurm-mem-gb", type=positive_int, default=None, help="memory per shard (GB)")
    x.add_argument("--slurm-time-min", type=positive_int, default=None, help="time limit per shard (minutes)")
    x.add_argument(
        "--slurm-array-parallelism",
        type=positive_int,
        default=None,
        help="shards running at once (default all)",
    )


def add_comics_args(p: argparse.ArgumentParser) -> None:
    """``--comics``, ``--use-raw``, ``--n-panels``, ``--panel-height``, ``--seed``, ``--n-strips``."""
    # here, not at module level: demo.comics imports numpy and PIL, which `import gaze_explorer.cli`
    # must not pay for
    from gaze_explorer.demo.comics import PANEL_SIZE

    p.add_argument(
        "--comics",
        default="demo",
        help="'demo' (bundled held-out strips) or a folder of comicN/p1..pN strips",
    )
    p.add_argument(
        "--use-raw", action="store_true", help="--comics is the COMICS corpus: <comic>/<page>_<panel>.jpg"
    )
    p.add_argument("--n-panels", type=positive_int, default=6, help="panels per strip (default 6)")
    p.add_argument(
        "--panel-height",
        type=positive_int,
        default=None,
        help=f"strip height in px (default {REAL_PANEL_HEIGHT}; demo {PANEL_SIZE})",
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of raw-corpus windows, controls, schedules"
    )
    p.add_argument("--n-strips", type=positive_int, default=None, help="use at most this many strips")


def add_steering_args(p: argparse.ArgumentParser) -> None:
    """``--mode``, ``--strength`` and the decoding flags shared by ``generate`` and ``evaluate``."""
    p.add_argument("--mode", choices=MODES, default="boost_suppress", help="steering bias mode")
    p.add_argument("--strength", type=positive_float, default=1e4, help="bias strength (default 1e4)")
    p.add_argument("--max-new-tokens", type=positive_int, default=None, help="tokens to generate")
    p.add_argument("--repetition-penalty", type=positive_float, default=1.0)
    p.add_argument("--no-repeat-ngram-size", type=non_negative_int, default=0)
