"""``evaluate sweep`` on the bundled demo model (2 strips, 2 K values, short answers): the JSON's
cells, the unsteered baselines generated once and reused, ``--resume`` skipping finished cells,
Ctrl-C keeping them, and the figure; the ``--over`` syntax and the cell grid (core.sweep)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gaze_explorer.cli import main
from gaze_explorer.core.errors import SweepError
from gaze_explorer.core.sweep import cell_record, curves, parse_over, sweep_cells

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo_model" / "config.json"
needs_demo = pytest.mark.skipif(not DEMO.exists(), reason="the demo model is not bundled in this checkout")
CELL_KEYS = {"criterion", "k", "strength", "prompt", "accuracy", "ci95", "n", "degenerate_rate", "heads"}


def test_over_syntax_and_cell_grid():
    assert parse_over("k=5,10,50") == ("k", (5, 10, 50))
    assert parse_over("strength=1,1e4") == ("strength", (1.0, 10000.0))
    for bad in ("k=0", "k=2.5", "k=", "depth=3", "k=5,5", "strength=-1", "strength=x"):
        with pytest.raises(SweepError):
            parse_over(bad)
    cells = sweep_cells(["gaze", "image"], [5, 10], [1.0, 10.0], ["p"])
    # per strength: (gaze, image, random) x 2 K, then all heads once
    assert len(cells) == 2 * (3 * 2 + 1)
    assert [(c.criterion, c.k) for c in cells[:7]] == [
        ("gaze", 5),
        ("image", 5),
        ("random", 5),
        ("gaze", 10),
        ("image", 10),
        ("random", 10),
        ("all", None),
    ]
    with pytest.raises(SweepError):
        sweep_cells(["random"], [5], [1.0], ["p"])


def test_curves_split_by_prompt_and_the_other_parameter():
    cells = sweep_cells(["gaze"], [5, 10], [1.0, 10.0], ["p", "q"])
    recs = [cell_record(c, {"accuracy": i / 100, "ci95": [0.0, 1.0], "n": 6}) for i, c in enumerate(cells)]
    along_k = curves(recs, "k")
    assert set(along_k) == {
        f"{c}, prompt {p}, strength={s}" for c in ("gaze", "random") for p in (1, 2) for s in (1, 10)
    }  # all heads has no K: no curve along K
    assert [x for x, *_ in along_k["gaze, prompt 2, strength=10"]] == [5.0, 10.0]
    along_strength = curves([r for r in recs if r["k"] in (5, None) and r["prompt"] == "p"], "strength")
    assert set(along_strength) == {"gaze", "random", "all"}  # one K, one prompt: plain names
    assert [x for x, *_ in along_strength["all"]] == [1.0, 10.0]
    # a refused cell (no accuracy) is a NaN point: a drawn line breaks there, never bridges it
    refused = [dict(r, accuracy=None, ci95=[None, None]) if r["k"] == 5 else r for r in recs]
    gaze = curves(refused, "k")["gaze, prompt 1, strength=1"]
    assert [x for x, *_ in gaze] == [5.0, 10.0]
    assert all(math.isnan(v) for v in gaze[0][1:]) and not math.isnan(gaze[1][1])


def test_a_prompt_only_sweep_is_drawn_as_bars_per_prompt(tmp_path):
    """Only the prompt varies (the paper's Tab. 7): one group of bars per prompt, a bar per cell
    with an accuracy (a refused cell has none), instead of curves along a one-value K axis."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gaze_explorer.cli.sweep import draw_prompt_bars, save_sweep_figure

    cells = sweep_cells(["gaze"], [10], [1e4], ["p", "q", "r"])  # gaze, random, all per prompt
    recs = [
        cell_record(c, {"accuracy": 0.5 + i / 100, "ci95": [0.4, 0.7], "n": 6}) for i, c in enumerate(cells)
    ]
    recs[4] = dict(recs[4], accuracy=None, ci95=[None, None])  # prompt q's random cell refused
    report = {
        "protocol": "static",
        "model": "demo",
        "over": {"k": [10], "strength": [1e4]},
        "prompts": ["p", "q", "r"],
        "cells": recs,
        "baselines": {p: {"accuracy": 1 / 6} for p in "pqr"},
        "settings": {"n_strips": 2, "n_panels": 6},
    }
    fig, ax = plt.subplots()
    draw_prompt_bars(ax, report)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["prompt 1", "prompt 2", "prompt 3"]
    heights = sorted(round(b.get_height(), 6) for b in ax.patches)
    assert heights == sorted(round(100 * r["accuracy"], 6) for r in recs if r["accuracy"] is not None)
    plt.close(fig)
    out = save_sweep_figure(report, tmp_path / "prompts.png")
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def discovery(tmp_path_factory):
    """A discover folder (gaze ranking, image mass and maps) made once on two demo strips."""
    out = tmp_path_factory.mktemp("sweep_discovery")
    assert main(["discover", "--model", "demo", "--device", "cpu", "--n-strips", "2", "--out", str(out)]) == 0
    return out


class Counter:
    """Counts the real generations (``generate_stream`` calls), unsteered ones apart; optionally
    raises KeyboardInterrupt when the n-th generation starts (a Ctrl-C)."""

    def __init__(self, monkeypatch, interrupt_at: int | None = None):
        import gaze_explorer.inference.generation as generation

        self.steered = self.unsteered = 0
        real = generation.generate_stream

        def counting(*args, **kwargs):
            if interrupt_at is not None and self.steered + self.unsteered + 1 == interrupt_at:
                raise KeyboardInterrupt
            if kwargs.get("plan") is None:
                self.unsteered += 1
            else:
                self.steered += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(generation, "generate_stream", counting)


def _sweep(discovery, out, *extra):
    argv = ["evaluate", "sweep", "--protocol", "static", "--model", "demo", "--device", "cpu"]
    argv += ["--max-strips", "2", "--heads-file", str(discovery / "ranking.json"), "--max-new-tokens", "4"]
    return main([*argv, "--criteria", "gaze", *extra, "--json", str(out)])


@needs_demo
def test_sweep_writes_one_cell_per_value_and_generates_each_baseline_once(discovery, tmp_path, monkeypatch):
    counter = Counter(monkeypatch)
    out = tmp_path / "sweep.json"
    figure = tmp_path / "curve.png"
    assert _sweep(discovery, out, "--over", "k=2,4", "--figure", str(figure)) == 0
    data = json.loads(out.read_text())
    assert data["kind"] == "sweep" and data["status"] == "finished" and data["protocol"] == "static"
    assert data["over"] == {"k": [2, 4], "strength": [10000.0]} and data["n_cells"] == data["n_done"] == 5
    assert [(c["criterion"], c["k"]) for c in data["cells"]] == [
        ("gaze", 2),
        ("random", 2),
        ("gaze", 4),
        ("random", 4),
        ("all", None),
    ]
    for cell in data["cells"]:
        assert set(cell) >= CELL_KEYS and cell["n"] == 12  # 2 strips x 6 targets
        lo, hi = cell["ci95"]
        assert 0.0 <= lo <= cell["accuracy"] <= hi <= 1.0
        assert len(cell["heads"]["heads"]) == (96 if cell["k"] is None else cell["k"])
    random4 = data["cells"][3]["heads"]
    assert random4["pool"] == "band" and random4["pool_size"] >= 4  # the evaluation's default control
    assert data["settings"]["control_pool"] == "band"
    # the baseline: one unsteered answer per strip for the whole sweep, not one per cell
    assert counter.unsteered == 2 and counter.steered == 5 * 12
    (prompt,) = data["prompts"]
    assert len(data["baseline_generations"][prompt]) == 2 and data["baselines"][prompt]["n"] == 12
    assert figure.stat().st_size > 1000 and figure.read_bytes()[:4] == b"\x89PNG"


@needs_demo
def test_ctrl_c_keeps_finished_cells_and_resume_runs_only_the_rest(discovery, tmp_path, monkeypatch):
    out = tmp_path / "sweep.json"
    # Ctrl-C as the 3rd cell's 5th generation starts: baselines (2) + 2 cells (24) + 4 done
    Counter(monkeypatch, interrupt_at=2 + 24 + 5)
    assert _sweep(discovery, out, "--over", "k=2,4") == 130
    data = json.loads(out.read_text())
    assert data["status"] == "cancelled" and data["n_done"] == 2 and data["n_cells"] == 5
    assert [(c["criterion"], c["k"]) for c in data["cells"]] == [("gaze", 2), ("random", 2)]
    kept = data["cells"]
    # resume: no baseline regenerated, the two finished cells not rerun, the other three run
    monkeypatch.undo()  # the interrupting counter goes
    counter = Counter(monkeypatch)
    assert _sweep(discovery, out, "--over", "k=2,4", "--resume", str(out)) == 0
    assert counter.unsteered == 0 and counter.steered == 3 * 12
    data = json.loads(out.read_text())
    assert data["status"] == "finished" and data["n_done"] == 5 and data["cells"][:2] == kept


@needs_demo
def test_resume_refuses_another_protocols_sweep(discovery, tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"kind": "sweep", "protocol": "narration", "model": "demo", "cells": []}))
    assert _sweep(discovery, tmp_path / "o.json", "--resume", str(other)) == 1
    assert "narration sweep of demo, not static" in capsys.readouterr().err
    # cells of another strip count (or bias, answer length, pool...) are never mixed in
    fewer = tmp_path / "fewer.json"
    fewer.write_text(
        json.dumps(
            {"kind": "sweep", "protocol": "static", "model": "demo", "cells": [], "settings": {"n_strips": 1}}
        )
    )
    assert _sweep(discovery, tmp_path / "o.json", "--resume", str(fewer)) == 1
    assert "other settings (n_strips 1 -> 2)" in capsys.readouterr().err


def test_sweep_only_flags_are_refused_elsewhere(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "static", "--model", "demo", "--over", "k=2"])
    assert exc.value.code == 2 and "--over only applies to evaluate sweep" in capsys.readouterr().err
