"""Real small runs of ``evaluate narration``, ``region`` and ``dynamic`` on the bundled demo model
(one strip, few tokens, a ranking discovered once), each checked against the JSON schema of
docs/evaluation_json.md; and docs/evaluation_json.md checked against the code (docs/cli.md: test_cli_args.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gaze_explorer.cli import main
from gaze_explorer.core.judges import token_jaccard

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "resources" / "demo_model" / "config.json"
CONDITIONS = {"gaze", "random", "all", "baseline"}
TOP_LEVEL = [
    "schema_version",
    "protocol",
    "model",
    "status",
    "n_pairs",
    "top_k",
    "conditions",
    "baseline_rule",
    "chance",
    "judge_agreement",
    "heads",
    "head_choices",
    "settings",
    "generations",
]
SETTINGS = [
    "prompt",
    "input_policy",
    "image_coverage_min",
    "mode",
    "strength",
    "max_new_tokens",
    "bias_on",
    "switch_every",
    "switch_alignment",
    "seed",
    "random_percentile",
    "control_pool",
    "n_resamples",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "judge",
    "n_strips",
    "baseline_rule",
    "shard",
    "n_strips_total",
]
needs_demo = pytest.mark.skipif(not DEMO.exists(), reason="the demo model is not bundled in this checkout")


@pytest.fixture(scope="module")
def heads_file(tmp_path_factory):
    """A gaze ranking discovered once on two demo strips, shared by the runs below."""
    out = tmp_path_factory.mktemp("eval_discovery")
    assert main(["discover", "--model", "demo", "--device", "cpu", "--n-strips", "2", "--out", str(out)]) == 0
    return out / "ranking.json"


def _evaluate(protocol, heads_file, out, *extra):
    argv = ["evaluate", protocol, "--model", "demo", "--device", "cpu", "--max-strips", "1"]
    argv += ["--heads-file", str(heads_file), "--top-k", "4", "--json", str(out), *extra]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    extra_keys = {"spearman", "segment_accuracy", "trajectory"} if protocol == "dynamic" else set()
    assert set(data) == set(TOP_LEVEL) | extra_keys
    assert data["schema_version"] == 1 and data["protocol"] == protocol and data["model"] == "demo"
    assert data["status"] == "finished" and data["top_k"] == 4 and set(data["conditions"]) == CONDITIONS
    assert list(data["settings"]) == SETTINGS and data["settings"]["n_strips"] == 1
    # the demo model is a Qwen3-VL: its own processing keeps every strip whole
    assert data["settings"]["input_policy"] == "native" and data["settings"]["image_coverage_min"] == 1.0
    for c in data["conditions"].values():
        lo, hi = c["ci95"]
        assert 0.0 <= lo <= c["accuracy"] <= hi <= 1.0 and 0.0 <= c["degenerate_rate"] <= 1.0
    ranked = [[r["layer"], r["head"]] for r in json.loads(heads_file.read_text())]
    assert sorted(data["heads"]["gaze"]) == sorted(ranked[:4])  # --top-k 4 of --heads-file
    assert not {tuple(h) for h in data["heads"]["gaze"]} & {tuple(h) for h in data["heads"]["random"]}
    assert data["heads"]["all"] == 96  # the demo model: 6 layers x 16 heads
    return data


@needs_demo
def test_evaluate_narration_marks_answers_identical_to_the_baseline(heads_file, tmp_path, capsys):
    data = _evaluate("narration", heads_file, tmp_path / "narration.json", "--max-new-tokens", "8")
    gens = data["generations"]
    assert data["n_pairs"] == 6 and len(gens) == 1 + 3 * 6
    base = next(g for g in gens if g["condition"] == "baseline")
    assert base["target"] is None and len(base["credits"]) == 6
    steered = [g for g in gens if g["condition"] != "baseline"]
    assert sorted({g["target"] for g in steered}) == [1, 2, 3, 4, 5, 6]
    for g in steered:
        assert 1 <= g["n_tokens"] <= 8 and set(g["judge"]) == {
            "choice",
            "best",
            "scores",
            "degenerate",
            "reason",
        }
        # the paper's rule, by default: word Jaccard > 0.9 with the unsteered answer is a miss
        assert g["same_as_baseline"] == (token_jaccard(g["text"], base["text"]) > 0.9)
        if g["same_as_baseline"]:
            assert g["credit"] == 0.0
        else:
            assert g["credit"] == g["judged_credit"]
    rule = data["baseline_rule"]
    assert rule["rule"] == "jaccard" and rule["applied"]
    assert rule["n_flagged"] == sum(g["same_as_baseline"] for g in steered)
    assert rule["n_removed"] == sum(g["same_as_baseline"] and g["judged_credit"] > 0 for g in steered)
    for name in ("gaze", "random", "all"):
        these = [g for g in steered if g["condition"] == name]
        rate = sum(g["same_as_baseline"] for g in these) / len(these)
        assert data["conditions"][name]["same_as_baseline_rate"] == pytest.approx(
            rate, abs=1e-6
        )  # JSON keeps 6 decimals
        acc = sum(g["credit"] for g in these) / len(these)
        assert data["conditions"][name]["accuracy"] == pytest.approx(acc, abs=1e-6)
        judged = sum(g["judged_credit"] for g in these) / len(these)
        assert data["conditions"][name]["accuracy_without_rule"] == pytest.approx(judged, abs=1e-6)
    table = capsys.readouterr().out
    assert "narration on demo: 6 pairs, top-K = 4" in table


@needs_demo
def test_evaluate_region_steers_to_each_box(heads_file, tmp_path):
    boxes = tmp_path / "boxes.json"
    # comic1 is the first demo strip: 64-px panels, so these boxes lie inside panels 1 and 2
    boxes.write_text(json.dumps({"comic1": [[6, 6, 58, 58], [70, 6, 122, 58]]}))
    data = _evaluate(
        "region", heads_file, tmp_path / "region.json", "--boxes", str(boxes), "--max-new-tokens", "6"
    )
    gens = data["generations"]
    assert data["n_pairs"] == 2 and len(gens) == 1 + 3 * 2
    assert sorted({g["target"] for g in gens if g["condition"] != "baseline"}) == [1, 2]
    base = next(g for g in gens if g["condition"] == "baseline")
    assert len(base["credits"]) == 2 and data["conditions"]["baseline"]["n"] == 2
    for g in gens:
        assert len(g["judge"]["scores"]) == 6  # each box is judged against the strip's panels
    # a box that names no strip of the run is a clear error, not a KeyError
    boxes.write_text(json.dumps({"comic99": [[0, 0, 5, 5]]}))
    argv = ["evaluate", "region", "--max-strips", "1", "--heads-file", str(heads_file), "--boxes", str(boxes)]
    assert main(argv) == 1


@needs_demo
def test_evaluate_dynamic_reports_spearman_and_segment_accuracy(heads_file, tmp_path):
    data = _evaluate("dynamic", heads_file, tmp_path / "dynamic.json", "--switch-every", "2")
    gens = data["generations"]
    assert data["n_pairs"] == 6 and len(gens) == 4  # one scheduled narration per condition
    assert data["settings"]["switch_every"] == 2 and data["settings"]["max_new_tokens"] == 12
    # on the demo model the narration request is the one it was trained on, not the paper's longer one
    from gaze_explorer.demo.prompts import NARRATION_PROMPT

    assert data["settings"]["prompt"] == NARRATION_PROMPT
    schedule = gens[0]["schedule"]
    assert sorted(schedule) == [1, 2, 3, 4, 5, 6] and all(p != i + 1 for i, p in enumerate(schedule))
    for g in gens:
        assert g["schedule"] == schedule and len(g["segments"]) == 6
        assert [s["target"] for s in g["segments"]] == schedule
        assert -1.0 <= g["spearman"] <= 1.0
    for name, c in data["conditions"].items():
        assert len(c["segment_accuracy"]) == 6
        rhos = [g["spearman"] for g in gens if g["condition"] == name]
        assert c["spearman"]["mean"] == pytest.approx(sum(rhos) / len(rhos), abs=1e-6)
    assert data["spearman"] == data["conditions"]["gaze"]["spearman"]
    assert data["segment_accuracy"] == data["conditions"]["gaze"]["segment_accuracy"]
    # the schedule-blind trajectory: each segment's judged panel, whatever was scheduled
    for g in gens:
        choices = [None if s["judge"]["choice"] is None else s["judge"]["choice"] + 1 for s in g["segments"]]
        assert g["trajectory"]["choices"] == choices
    assert data["trajectory"] == data["conditions"]["gaze"]["trajectory"]
    assert data["trajectory"]["n_strips"] == 1


@needs_demo
def test_evaluate_dynamic_authors_alignment_switches_one_token_later(heads_file, tmp_path):
    steps = {}
    for alignment in ("project", "authors"):
        out = tmp_path / f"{alignment}.json"
        extra = ["--switch-every", "2"]
        extra += ["--switch-alignment", alignment] if alignment == "authors" else []  # project: the default
        data = _evaluate("dynamic", heads_file, out, *extra)
        assert data["settings"]["switch_alignment"] == alignment
        steps[alignment] = data["generations"][0]["switch_steps"]
    project, authors = steps["project"], steps["authors"]
    assert project and authors  # the runs got past their first switch
    assert project == [2 * k for k in range(1, len(project) + 1)]  # token 2k: the first under panel k+1
    assert authors == [2 * k + 1 for k in range(1, len(authors) + 1)]


@needs_demo
def test_evaluate_control_pool_is_the_gaze_band_by_default_and_recorded(heads_file, tmp_path):
    data = _evaluate("static", heads_file, tmp_path / "band.json", "--max-new-tokens", "3")
    choice = data["head_choices"]["random"]
    assert choice["pool"] == "band" and data["settings"]["control_pool"] == "band"
    gaze = {tuple(h) for h in data["heads"]["gaze"]}
    layers = [layer for layer, _ in gaze]
    band = [(layer, h) for layer in range(min(layers), max(layers) + 1) for h in range(16)]
    assert choice["pool_size"] == len(band) - len(gaze)  # the band's heads, without the gaze heads
    drawn = {tuple(h) for h in choice["heads"]}
    assert drawn == {tuple(h) for h in data["heads"]["random"]} and len(drawn) == 4
    assert drawn <= set(band) - gaze
    other = _evaluate(
        "static", heads_file, tmp_path / "pct.json", "--max-new-tokens", "3", "--control-pool", "all-non-gaze"
    )
    assert other["head_choices"]["random"]["pool"] == "all-non-gaze"
    assert other["head_choices"]["random"]["pool_size"] == 96 - 4


# -- docs truth ------------------------------------------------------------------------------------
def test_docs_evaluation_json_names_every_key():
    text = (ROOT / "docs" / "evaluation_json.md").read_text()
    named = set(re.findall(r"`([a-z_0-9]+)`", text))
    rule_keys = ["same_as_baseline_rate", "accuracy_without_rule", "n_removed", "n_flagged", "judged_credit"]
    rule_keys += [
        "head_choices",
        "control_pool",
        "pool_size",
        "trajectory",
        "switch_steps",
        "rho_schedule",
        "rho_natural",
        "starts_correct",
        "excluded",
    ]
    missing = [
        k for k in [*TOP_LEVEL, *SETTINGS, "spearman", "segment_accuracy", *rule_keys] if k not in named
    ]
    assert not missing, f"docs/evaluation_json.md does not name {missing}"
