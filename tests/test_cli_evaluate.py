"""A real `evaluate` run on the bundled demo model: well-formed JSON and a readable table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gaze_explorer.cli import main

DEMO = Path(__file__).resolve().parents[1] / "resources" / "demo_model" / "config.json"


@pytest.mark.skipif(not DEMO.exists(), reason="the demo model is not bundled in this checkout")
@pytest.mark.parametrize("protocol", ["static", pytest.param("dynamic", marks=pytest.mark.slow)])
def test_evaluate_on_the_demo_model_writes_the_documented_json(protocol, tmp_path, capsys):
    out = tmp_path / "out.json"
    argv = [
        "evaluate",
        protocol,
        "--model",
        "demo",
        "--device",
        "cpu",
        "--max-strips",
        "1",
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert data["protocol"] == protocol and data["model"] == "demo" and data["status"] == "finished"
    assert set(data["conditions"]) == {"gaze", "random", "all", "baseline"}
    for c in data["conditions"].values():
        assert 0.0 <= c["accuracy"] <= 1.0 and c["ci95"][0] <= c["accuracy"] <= c["ci95"][1]
        assert 0.0 <= c["degenerate_rate"] <= 1.0
    assert data["top_k"] == 10 and len(data["heads"]["gaze"]) == 10  # 10 % of the demo's 96 heads
    assert not set(map(tuple, data["heads"]["gaze"])) & set(map(tuple, data["heads"]["random"]))
    if protocol == "static":
        assert data["n_pairs"] == 6 and len(data["generations"]) == 1 + 3 * 6
    else:
        assert "mean" in data["spearman"] and len(data["segment_accuracy"]) == 6
        sched = data["generations"][0]["schedule"]
        assert sorted(sched) == [1, 2, 3, 4, 5, 6] and all(p != i + 1 for i, p in enumerate(sched))
    assert "gaze" in capsys.readouterr().out
