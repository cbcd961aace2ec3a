"""Each benchmark runs on a tiny budget and writes a well-formed JSON record (no timed asserts).

The benchmarks that run a model set this process's torch threads (``--threads``, default 2); the
tests pass ``--threads 1`` so the rest of the suite keeps the one thread of tests/conftest.py."""

from __future__ import annotations

import json

import pytest

from gaze_explorer.bench.harness import KEYS, alternate, summary
from gaze_explorer.bench.ui import stall_stats
from gaze_explorer.cli.bench import run_bench


def _check_record(path, name: str, ours_figure: str | None = None) -> dict:
    """The record's shape, and its ratio recomputed from its own figures: ours (the median, or the
    extra field ``ours_figure`` where the target is on another statistic) over the compared median."""
    d = json.loads(path.read_text())
    assert set(KEYS) <= set(d)
    assert d["name"] == name
    for side in ("ours", "compared"):
        s = d[side]
        assert set(s) >= {"median", "spread"}
        assert s["spread"]["min"] <= s["median"] <= s["spread"]["max"]
        assert s["median"] > 0
    ours = d["ours"]["median"] if ours_figure is None else d[ours_figure]
    assert d["ratio"] == pytest.approx(ours / d["compared"]["median"]) and d["ratio"] > 0
    assert isinstance(d["met"], bool)
    assert d["repeats"] >= 1
    assert d["machine"]["cpu_count"] >= 1
    return d


def test_summary_and_alternation():
    s = summary([3.0, 1.0, 2.0, 10.0])
    assert s["median"] == 2.5
    assert s["spread"]["min"] == 1.0 and s["spread"]["max"] == 10.0
    order: list[str] = []
    a, b = alternate(lambda: order.append("o") or 1.0, lambda: order.append("c") or 2.0, 3)
    assert order == ["o", "c", "c", "o", "o", "c"]  # the order flips every round
    assert a == [1.0] * 3 and b == [2.0] * 3
    with pytest.raises(ValueError):
        summary([])


def test_capture_emits_json(tmp_path, capsys):
    out = tmp_path / "capture.json"
    assert (
        run_bench(["capture", "--tokens", "4", "--repeats", "1", "--threads", "1", "--json", str(out)]) == 0
    )
    d = _check_record(out, "capture")
    assert d["unit"] == "ms/token" and d["model"] == "demo"
    assert 1 <= d["tokens"] <= 4
    assert d["session_bytes_per_run"] > 0
    split = d["capture_without_writer"]  # the same generation without the writer, timed too
    assert split["spread"]["min"] <= split["median"] <= split["spread"]["max"] and split["median"] > 0
    assert d["ratio_without_writer"] == pytest.approx(split["median"] / d["compared_again"]["median"])
    assert "capture: ours" in capsys.readouterr().out


def test_discovery_emits_json_and_scores_agree(tmp_path):
    out = tmp_path / "discovery.json"
    assert (
        run_bench(["discovery", "--strips", "1", "--repeats", "1", "--threads", "1", "--json", str(out)]) == 0
    )
    d = _check_record(out, "discovery")
    assert d["unit"] == "strips/s" and d["strips"] == 1
    # our batched last-row scores equal the authors' per-question eager scores
    assert d["max_abs_score_diff"] <= 1e-4 and d["scores_equal"] is True


def test_scrub_emits_json(tmp_path, qapp):
    out = tmp_path / "scrub.json"
    argv = ["scrub", "--steps", "5", "--layers", "3", "--heads", "2", "--keys", "40", "--json", str(out)]
    assert run_bench(argv) == 0
    d = _check_record(out, "scrub", ours_figure="latency_p95_ms")  # the target is on the p95
    assert d["unit"] == "ms" and d["repeats"] == 5
    assert d["latency_p95_ms"] > 0 and d["work_p95_ms"] > 0
    assert d["session_bytes"] > 0


def test_unknown_benchmark_is_a_usage_error():
    with pytest.raises(SystemExit):
        run_bench(["nope"])


def test_memory_emits_json(tmp_path):
    out = tmp_path / "memory.json"
    # four fresh processes (each imports torch): two at a time, one torch thread each
    argv = ["memory", "--short", "2", "--long", "6", "--repeats", "1", "--jobs", "2", "--threads", "1"]
    assert run_bench([*argv, "--json", str(out)]) == 0
    d = json.loads(out.read_text())
    assert set(KEYS) <= set(d) and d["name"] == "memory"
    assert d["unit"] == "% peak RSS growth" and d["ratio"] > 0
    # the ratio of the growth factors, compared over ours
    growth = (1 + d["compared"]["median"] / 100) / (1 + d["ours"]["median"] / 100)
    assert d["ratio"] == pytest.approx(growth)
    peaks = d["peaks_mib"]
    for variant in ("ours", "compared"):
        assert peaks[variant][0]["short"] > 50  # a real process with torch and a model loaded
    assert d["ours_long_tokens_produced"] >= 1


def test_startup_emits_json(tmp_path):
    from gaze_explorer.bench.startup import BUDGET_S

    out = tmp_path / "startup.json"
    assert run_bench(["startup", "--repeats", "2", "--json", str(out)]) == 0
    d = _check_record(out, "startup")
    launches = d["ours"]["samples"]
    assert d["unit"] == "s" and d["repeats"] == len(launches) == 2  # two real launches of main.py
    assert d["ours"]["median"] == pytest.approx(sum(launches) / 2) and d["max_s"] == max(launches)
    assert d["met"] is (d["ours"]["median"] <= BUDGET_S) and str(BUDGET_S) in d["target"]


def test_discovery_on_a_random_init_geometry(tmp_path):
    out = tmp_path / "discovery-tiny.json"
    argv = ["discovery", "--random-init", "tiny", "--strips", "1", "--repeats", "1", "--threads", "1"]
    assert run_bench([*argv, "--json", str(out)]) == 0
    d = _check_record(out, "discovery")
    assert d["model"] == "random-init tiny"
    assert d["layers_x_heads"] == [2, 4]  # the tiny geometry, not the demo model's 6 x 8
    assert d["scores_equal"] is True


def test_stall_stats_reads_gaps():
    # a tick 100 ms late among 5 ms ticks is one 95 ms stall; on-time ticks are no stall
    stats = stall_stats([0.0, 0.005, 0.010, 0.110, 0.115], 0.005)
    assert stats["n"] == 4 and stats["max"] == pytest.approx(95.0)
    assert stats["p50"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        stall_stats([1.0], 0.005)


def test_ui_emits_json(tmp_path, qapp):
    out = tmp_path / "ui.json"
    assert run_bench(["ui", "--tokens", "6", "--threads", "1", "--json", str(out)]) == 0
    d = _check_record(out, "ui")
    assert d["unit"] == "ms" and d["tokens"] == 6 and d["repeats"] == 1 == len(d["runs"])
    run = d["runs"][0]
    # the record is consistent with itself (percentiles in order); no bound on the times themselves
    stalls = [run["p50"], run["p95"], run["max"]]
    assert run["n"] >= 1 and stalls == sorted(stalls)
    assert d["ours"]["median"] == pytest.approx(run["p95"])  # the figure is the run's p95 stall


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "never.json"
    assert run_bench(["capture", "--model", str(tmp_path / "no-such-model"), "--json", str(out)]) == 1
    err = capsys.readouterr().err
    assert "gaze-explorer bench capture: error:" in err and "no-such-model" in err
    assert not out.exists()
