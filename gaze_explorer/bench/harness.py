"""Shared benchmark harness: side-by-side alternating repeats, medians with spread, the JSON record.

Every benchmark times *our* method and the *compared* (usual) method in the same process on the
same machine, alternating the two so that drift (thermal, other jobs on a shared box) hits both
alike. The ratio of the medians is the figure; absolute numbers are printed too.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KEYS = ("name", "ours", "compared", "unit", "ratio", "target", "met", "machine", "model", "repeats")


def summary(samples: list[float]) -> dict:
    """Median and spread (min, max, interquartile range) of ``samples``."""
    xs = sorted(float(x) for x in samples)
    if not xs:
        raise ValueError("no samples to summarise")
    if len(xs) >= 4:
        q = statistics.quantiles(xs, n=4)
        iqr = q[2] - q[0]
    else:
        iqr = xs[-1] - xs[0]
    return {
        "median": statistics.median(xs),
        "spread": {"min": xs[0], "max": xs[-1], "iqr": iqr},
        "samples": xs,
    }


def alternate(
    ours: Callable[[], float], compared: Callable[[], float], repeats: int
) -> tuple[list[float], list[float]]:
    """Run ``ours`` and ``compared`` alternately ``repeats`` times each (order flips every round)."""
    a: list[float] = []
    b: list[float] = []
    for i in range(max(1, int(repeats))):
        if i % 2 == 0:
            a.append(float(ours()))
            b.append(float(compared()))
        else:
            b.append(float(compared()))
            a.append(float(ours()))
    return a, b


def machine() -> dict:
    """A short description of where the benchmark ran."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    torch = sys.modules.get(
        "torch"
    )  # describe torch only where the benchmark loaded it (importing costs 1.5 s)
    if torch is not None:
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


@dataclass
class Result:
    """One benchmark's outcome (``to_dict`` gives the JSON record)."""

    name: str
    ours: dict
    compared: dict | None
    unit: str
    ratio: float | None
    target: str
    met: bool
    model: str
    repeats: int
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {
            "name": self.name,
            "ours": self.ours,
            "compared": self.compared,
            "unit": self.unit,
            "ratio": self.ratio,
            "target": self.target,
            "met": bool(self.met),
            "machine": machine(),
            "model": self.model,
            "repeats": int(self.repeats),
        }
        d.update(self.extra)
        return d


def report(result: Result, json_path: str | os.PathLike | None = None, stream=None) -> dict:
    """Print a human summary of ``result`` and write its JSON record to ``json_path``."""
    stream = stream or sys.stdout
    d = result.to_dict()
    ours = d["ours"]["median"]
    line = f"{d['name']}: ours {ours:.4g} {d['unit']}"
    if d["compared"] is not None:
        line += f", compared {d['compared']['median']:.4g} {d['unit']}"
    if d["ratio"] is not None:
        line += f", ratio {d['ratio']:.3f}"
    line += f"  (target {d['target']}: {'met' if d['met'] else 'MISSED'}; {d['repeats']} repeats, model {d['model']})"
    print(line, file=stream)
    for k, v in result.extra.items():
        if isinstance(v, dict) and "median" in v:  # a nested summary: no raw samples on screen
            v = {key: val for key, val in v.items() if key != "samples"}
        print(f"  {k}: {v}", file=stream)
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(d, indent=2))
        os.replace(tmp, path)  # atomic: a reader never sees half a record
    return d
