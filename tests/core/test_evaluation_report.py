"""The evaluation summary on crafted generation records whose right answers are known."""

from __future__ import annotations

import json
import math

import pytest

from gaze_explorer.core.evaluation_report import build_report, format_table, strip_spearman, write_json
from gaze_explorer.core.heads import HeadSet


def _verdict(choice, n=3, degenerate=False):
    return {
        "choice": choice,
        "best": [] if choice is None else [choice],
        "scores": [1.0 if k == choice else 0.0 for k in range(n)],
        "degenerate": degenerate,
        "reason": "empty" if degenerate else "",
    }


def _static(strip, condition, target, choice, text=None):
    if text is None:  # a distinct answer per generation, so the same-as-unsteered rule stays out
        text = f"answer {strip} {condition} {target}"
    rec = {"strip": strip, "condition": condition, "text": text, "n_tokens": 3}
    rec["judge"] = _verdict(choice, degenerate=choice is None)
    rec["degenerate"] = choice is None
    if condition == "baseline":
        rec["target"] = None
        rec["credits"] = [1.0 if k == choice else 0.0 for k in range(3)]
    else:
        rec["target"] = target + 1
        rec["credit"] = 1.0 if choice == target else 0.0
    return rec


HEADS = {
    "gaze": HeadSet("top-2", ((0, 1), (1, 2))),
    "random": HeadSet("random-2", ((0, 0), (1, 0))),
    "all": HeadSet("all", tuple((ly, h) for ly in range(2) for h in range(4))),
}


def test_static_report_accuracy_ci_and_degenerate_rate():
    gens = []
    for s in ("a", "b"):
        gens.append(_static(s, "baseline", None, 0))
        for k in range(3):
            gens.append(_static(s, "gaze", k, k))  # always right
            gens.append(_static(s, "random", k, 0))  # stuck on panel 1
            gens.append(_static(s, "all", k, None))  # degenerate
    rep = build_report(protocol="static", model="m", generations=gens, heads=HEADS, settings={})
    c = rep["conditions"]
    assert list(c) == ["gaze", "random", "all", "baseline"]
    assert c["gaze"] == {
        "accuracy": 1.0,
        "ci95": [1.0, 1.0],
        "degenerate_rate": 0.0,
        "n": 6,
        "same_as_baseline_rate": 0.0,
        "n_removed": 0,
        "accuracy_without_rule": 1.0,
    }
    assert (
        c["random"]["accuracy"] == pytest.approx(1 / 3)
        and c["random"]["ci95"][0] < 1 / 3 < c["random"]["ci95"][1]
    )
    assert c["all"]["accuracy"] == 0.0 and c["all"]["degenerate_rate"] == 1.0
    assert c["baseline"]["accuracy"] == pytest.approx(1 / 3) and c["baseline"]["n"] == 6
    assert rep["n_pairs"] == 6 and rep["top_k"] == 2 and rep["protocol"] == "static"
    assert rep["heads"]["gaze"] == [[0, 1], [1, 2]] and rep["heads"]["all"] == 8
    assert rep["chance"] == pytest.approx(1 / 3)
    table = format_table(rep)
    assert "gaze" in table and "100.0" in table and "33.3" in table


def test_narration_answer_identical_to_baseline_is_a_miss():
    gens = [
        _static("a", "baseline", None, 1, text="it shows red"),
        _static("a", "gaze", 1, 1, text="it shows red"),
        _static("a", "gaze", 2, 2, text="it shows blue"),
    ]
    rep = build_report(protocol="narration", model="m", generations=gens, heads=HEADS, settings={})
    assert rep["conditions"]["gaze"]["accuracy"] == 0.5
    assert rep["conditions"]["gaze"]["same_as_baseline_rate"] == 0.5
    assert rep["generations"][1]["same_as_baseline"] is True and rep["generations"][1]["credit"] == 0.0
    # the input records are not modified
    assert gens[1]["credit"] == 1.0


# ten words; the variants share 10 of 11 words (Jaccard 0.909) or 9 of 11 (0.818) with it
BASE = "the red cat sits on a mat near the big blue door today"
NEAR = BASE + " again"  # 11 distinct words vs 10: J = 10/11 > 0.9
FAR = BASE.replace("today", "tonight") + " again"  # J = 9/12 = 0.75


def _rule_gens(protocol_targets=3):
    gens = [_static("a", "baseline", None, 0, text=BASE)]
    gens.append(_static("a", "gaze", 0, 0, text=BASE.upper() + "!"))  # judged hit, same words
    gens.append(_static("a", "gaze", 1, 1, text=NEAR))  # judged hit, J > 0.9
    gens.append(_static("a", "gaze", 2, 2, text=FAR))  # judged hit, different enough
    gens.append(_static("a", "random", 1, 0, text=NEAR))  # judged miss anyway
    return gens


@pytest.mark.parametrize("protocol", ["static", "narration"])
def test_paper_rule_same_as_unsteered_is_a_miss_by_word_jaccard(protocol):
    rep = build_report(protocol=protocol, model="m", generations=_rule_gens(), heads=HEADS, settings={})
    rule = rep["baseline_rule"]
    assert (rule["rule"], rule["applied"]) == ("jaccard", True)  # the paper's rule is the default
    assert rule["n_flagged"] == 3 and rule["n_removed"] == 2  # the random miss was no hit to remove
    g = rep["conditions"]["gaze"]
    assert g["accuracy"] == pytest.approx(1 / 3) and g["accuracy_without_rule"] == 1.0
    assert g["n_removed"] == 2 and g["same_as_baseline_rate"] == pytest.approx(2 / 3)
    assert [x.get("same_as_baseline") for x in rep["generations"][1:]] == [True, True, False, True]
    assert rep["generations"][2]["judged_credit"] == 1.0 and rep["generations"][2]["credit"] == 0.0
    assert "without it: gaze 100.0 %" in format_table(rep)


def test_baseline_rule_variants_and_where_they_apply():
    gens = _rule_gens()
    exact = build_report(
        protocol="static", model="m", generations=gens, heads=HEADS, settings={}, baseline_rule="exact"
    )
    assert exact["baseline_rule"]["n_flagged"] == 0  # no answer is the same text
    authors = build_report(
        protocol="static", model="m", generations=gens, heads=HEADS, settings={}, baseline_rule="authors"
    )
    assert authors["baseline_rule"]["n_flagged"] == 3  # normalised-equal, J >= 0.85
    off = build_report(
        protocol="static", model="m", generations=gens, heads=HEADS, settings={}, baseline_rule="off"
    )
    assert off["conditions"]["gaze"]["accuracy"] == 1.0 and not off["baseline_rule"]["applied"]
    assert "accuracy_without_rule" not in off["conditions"]["gaze"]
    region = build_report(protocol="region", model="m", generations=gens, heads=HEADS, settings={})
    assert not region["baseline_rule"]["applied"] and region["conditions"]["gaze"]["accuracy"] == 1.0
    with pytest.raises(ValueError, match="baseline rule"):
        build_report(
            protocol="static", model="m", generations=gens, heads=HEADS, settings={}, baseline_rule="x"
        )


def _dynamic(strip, condition, schedule, choices):
    segs = [
        {
            "target": t,
            "text": "",
            "judge": _verdict(None if c is None else c - 1, n=4, degenerate=c is None),
            "credit": 1.0 if c == t else 0.0,
        }
        for t, c in zip(schedule, choices, strict=True)
    ]
    return {
        "strip": strip,
        "condition": condition,
        "target": None,
        "text": "",
        "n_tokens": 0,
        "schedule": list(schedule),
        "segments": segs,
    }


def test_dynamic_report_has_spearman_and_segment_accuracy():
    gens = [
        _dynamic("a", "gaze", [2, 4, 1, 3], [2, 4, 1, 3]),  # followed exactly: rho 1
        _dynamic("b", "gaze", [3, 1, 4, 2], [3, 1, 4, 1]),  # last segment wrong
        _dynamic("a", "baseline", [2, 4, 1, 3], [1, 2, 3, 4]),
        _dynamic("b", "baseline", [3, 1, 4, 2], [None, None, None, None]),
    ]
    rep = build_report(protocol="dynamic", model="m", generations=gens, heads=HEADS, settings={})
    g = rep["conditions"]["gaze"]
    assert g["accuracy"] == pytest.approx(7 / 8) and g["segment_accuracy"] == [1.0, 1.0, 1.0, 0.5]
    rho_b = strip_spearman([3, 1, 4, 2], [3, 1, 4, 1])
    assert g["spearman"]["mean"] == pytest.approx((1.0 + rho_b) / 2, abs=1e-6)
    assert rep["spearman"] == g["spearman"] and rep["segment_accuracy"] == g["segment_accuracy"]
    base = rep["conditions"]["baseline"]
    assert base["degenerate_rate"] == 0.5 and base["spearman"]["mean"] == pytest.approx(0.0)
    assert rep["n_pairs"] == 8


def test_strip_spearman_drops_unjudged_segments_and_scores_undefined_as_zero():
    assert strip_spearman([1, 2, 3], [1, None, 3]) == pytest.approx(1.0)
    assert strip_spearman([1, 2, 3], [2, 2, 2]) == 0.0
    assert strip_spearman([1, 2, 3], [None, None, 1]) == 0.0
    assert strip_spearman([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)


def test_judge_agreement_and_atomic_json_without_nan(tmp_path):
    a = _static("a", "gaze", 0, 0)
    a["caption_judge"] = _verdict(0)
    b = _static("a", "gaze", 1, 1)
    b["caption_judge"] = _verdict(2)
    rep = build_report(protocol="static", model="m", generations=[a, b], heads=HEADS, settings={"x": 1})
    assert rep["judge_agreement"]["rate"] == 0.5 and rep["judge_agreement"]["n"] == 2
    assert "baseline" not in rep["conditions"]
    path = write_json(tmp_path / "sub" / "out.json", rep)
    data = json.loads(path.read_text())
    assert data["conditions"]["gaze"]["accuracy"] == 1.0 and data["settings"] == {"x": 1}
    assert not list(path.parent.glob("*.tmp"))
    empty = build_report(protocol="static", model="m", generations=[], heads=HEADS, settings={})
    assert empty["conditions"] == {} and empty["n_pairs"] == 0
    write_json(tmp_path / "empty.json", empty)  # no NaN reaches JSON
    with pytest.raises(ValueError):
        write_json(tmp_path / "bad.json", {"x": math.nan})
    assert not (tmp_path / "bad.json").exists()
